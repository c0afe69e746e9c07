"""The async keys of conduit.yaml: defaults reach the server's spec, a Redis store
puts the pinned client into the image (and only then), a store URL with a password
or another scheme is refused at its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import conduit

from conduit_build.config import load
from conduit_build.errors import ConfigError
from conduit_build.image.context import render
from conduit_build.image.pip import PipSettings
from conduit_build.image.requirements import REDIS
from conduit_runtime.spec import ServerSpec


def project(root: Path, server: str = "") -> Path:
    (root / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (root / "conduit.yaml").write_text(
        f"name: asyncconf\nmodels: [{{type: python, file: 'model.py:Model'}}]\n{server}")
    return root / "conduit.yaml"


def test_defaults_reach_the_server_spec(tmp_path: Path) -> None:
    loaded = load(project(tmp_path))
    spec = ServerSpec.from_dict(loaded.runtime_spec(), tmp_path)
    assert (spec.async_timeout_s, spec.async_ttl_s, spec.async_max_queue, spec.async_max_results) == (
        3600.0, 3600.0, 1000, 10000)
    assert spec.async_store == "memory" and spec.webhook_secret_env == "CONDUIT_WEBHOOK_SECRET"


def test_a_redis_store_brings_its_client_into_the_image(tmp_path: Path) -> None:
    plain = render(load(project(tmp_path)), PipSettings()).files["requirements.txt"].decode().splitlines()
    assert not any(line.startswith("redis") for line in plain)
    assert "standardwebhooks==1.1.0" in plain  # webhooks are always on offer
    config = project(tmp_path, "server:\n  async_store: redis://redis.models.svc:6379/0\n  async_max_queue: 5\n")
    loaded = load(config)
    assert REDIS in render(loaded, PipSettings()).files["requirements.txt"].decode().splitlines()
    spec = ServerSpec.from_dict(loaded.runtime_spec(), tmp_path)
    assert spec.async_store == "redis://redis.models.svc:6379/0" and spec.async_max_queue == 5


@pytest.mark.parametrize("url", ["redis://user:secret@host:6379/0", "rediss://host:6379/0", "postgres://x/1", "mem"])
def test_other_stores_are_refused_where_they_stand(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(project(tmp_path, f"server:\n  async_store: {url}\n"))
    assert "conduit.yaml:4:16: server.async_store:" in str(raised.value)


@pytest.mark.parametrize(("server", "refused"), [
    ("server:\n  workers: 2\n", True),
    ("server:\n  workers: auto\n", True),
    ("server:\n  workers: 2\n  async_store: redis://127.0.0.1:6379/0\n", False),
    ("", False),
])
def test_validate_refuses_workers_that_cannot_share_async_state(tmp_path: Path, server: str, refused: bool) -> None:
    """Several workers with the memory store: a GET may reach a worker that never saw the id
    (an error at the workers key since issue 19; a warning before)."""
    done = conduit("validate", "-f", str(project(tmp_path, server)))
    assert done.returncode == (2 if refused else 0), done.stderr
    assert ("conduit.yaml:4:12: server.workers:" in done.stderr and "async_store: redis://" in done.stderr) is refused, \
        done.stderr
