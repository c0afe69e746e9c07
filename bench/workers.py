#!/usr/bin/env python
"""Workers benchmark (not a test): requests per CPU-second of `conduit serve` on iris
with server.workers 1 and 2, unbatched and batched.

    python bench/workers.py [--duration 8] [--concurrency 16]

Nothing is pinned: the workers need both cores, and wrk (one thread) shares them.
Requests per CPU-second (the server's processes, supervisor and workers together)
is the measure that says whether a second process costs anything: on a machine
with more cores than workers + wrk, req/s would scale with it (bench/README.md).
Several workers need a shared async store (`conduit validate` refuses the memory
one): a redis-server of the benchmark's own, on a free port, serves as that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import API_KEY, LOGS, LUA, ROOT, conduit_command, free_port, http_get, tree_cpu_s


def config(workers: int, batched: bool, store: str) -> Path:
    example = ROOT / "examples" / "iris"
    data = yaml.safe_load((example / "conduit.yaml").read_text())
    data["server"]["workers"] = workers
    data["server"]["async_store"] = store
    if not batched:
        for stage in data["models"]:
            stage.pop("batch", None)
    path = example / f".bench-workers-{workers}{'-batched' if batched else ''}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.contextmanager
def redis_store() -> Iterator[str]:
    """A redis-server of this run's own, its URL; stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (scripts/setup installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", ""],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def measure(workers: int, batched: bool, seconds: int, connections: int, store: str) -> tuple[float, float]:
    """(req/s, req/CPU-s) over `seconds` of wrk after 2 s of warm-up."""
    path, port = config(workers, batched, store), free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"workers-{workers}.log").open("wb") as log:
        proc = subprocess.Popen([*conduit_command(), "serve", "-f", str(path), "--port", str(port)],
                                env={**os.environ, "CONDUIT_API_KEY": API_KEY}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http_get(port, "/ready") == 200:
                    break
            time.sleep(0.05)
        else:
            raise SystemExit(f"workers={workers}: not ready in 120 s (log in {LOGS})")
        body = ROOT / "bench" / "results" / ".iris-body.json"
        body.write_bytes(b"[[5.1,3.5,1.4,0.2]]")
        env = {**os.environ, "WRK_BODY_FILE": str(body), "WRK_CONTENT_TYPE": "application/json", "WRK_AUTH": API_KEY}
        command = ["wrk", "-t1", f"-c{connections}", "-s", str(LUA), f"http://127.0.0.1:{port}/predict"]
        subprocess.run([*command[:3], "-d2s", *command[3:]], env=env, capture_output=True, check=True)
        before = tree_cpu_s(proc.pid)
        done = subprocess.run([*command[:3], f"-d{seconds}s", *command[3:]], env=env, capture_output=True, text=True,
                              check=True)
        used = tree_cpu_s(proc.pid) - before
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON "))
        data = json.loads(line.removeprefix("WRKJSON "))
        requests, elapsed = data["requests"], data["duration_us"] / 1e6
        return requests / elapsed, requests / used
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"| iris JSON, c={args.concurrency} | workers | req/s | req/CPU-s | kept per CPU-s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with redis_store() as store:
        table(args.duration, args.concurrency, store)


def table(seconds: int, connections: int, store: str) -> None:
    for batched in (False, True):
        one = None
        for workers in (1, 2):
            rps, per_cpu = measure(workers, batched, seconds, connections, store)
            one = one or per_cpu
            kept = f"{per_cpu / one:.0%}" if workers > 1 else ""
            print(f"| {'batched' if batched else 'unbatched'} | {workers} | {rps:,.0f} | {per_cpu:,.0f} | {kept} |",
                  flush=True)


if __name__ == "__main__":
    main()
