"""A real redis-server of a test's own (Debian's), in a temp dir, on a free port."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import free_port, wait_for


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[redis.Redis]:
    """A client of a fresh redis-server (stopped afterwards); its URL is `url(client)`."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: scripts/setup installs Debian's redis-server")
    port = free_port()
    folder.mkdir(parents=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--protected-mode", "no"],
        stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: pings(client), 20, "redis-server to answer")
        yield client
    finally:
        process.terminate()
        process.wait(10)


def url(client: redis.Redis) -> str:
    return f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"


def pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
