"""Issue 21's numbers: a `python` model project with 200 MB of random weights, `bundled` against
`separate`: the time of `conduit build` + `conduit push` and the bytes of new blobs the registry
stores, for a hook edit and for a retrain; and, for `separate`, start-to-ready of a container
that pulls its weights (cold cache) and of one that finds them in its cache (warm, the registry
unreachable).

    DOCKER_HOST=unix:///run/conduit-docker/docker.sock python bench/weights.py [--size-mb 200]

Needs the engine and the registry on 127.0.0.1:5000 (scripts/engine). "New blobs" are the blobs
the pushed manifests (the image's, and the weights artifact's) name that the previous push's did
not: what the registry had to store. A benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "docker"))

from conftest import conduit, free_port  # noqa: E402
from test_weights_separate import (  # noqa: E402
    DOCKER_MANIFEST,
    EDITED,
    KEY,
    OCI_MANIFEST,
    blobs,
    config_text,
    make_project,
    new_bytes,
    wait_ready,
    write_random,
)


def cli(cache: Path, config: Path, *args: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    result = conduit(*args, "-f", str(config), "--json", env={"CONDUIT_CACHE_DIR": str(cache)}, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout), time.monotonic() - started


def stored(name: str, pushed: dict[str, Any]) -> dict[str, int]:
    found = blobs(name, pushed["digest"], DOCKER_MANIFEST)
    if pushed.get("weights"):
        found.update(blobs(f"{name}-weights", pushed["weights"]["digest"], OCI_MANIFEST))
    return found


def release(cache: Path, config: Path, name: str, before: dict[str, Any] | None) -> tuple[dict[str, Any], float, int]:
    _, build_s = cli(cache, config, "build")
    pushed, push_s = cli(cache, config, "push")
    new = new_bytes(stored(name, before) if before else {}, stored(name, pushed))
    return pushed, build_s + push_s, new


def one_mode(mode: str, size: int, work: Path) -> dict[str, Any]:
    name = f"bench-weights-{mode}-{uuid.uuid4().hex[:6]}"
    cache = work / f"cache-{mode}"
    config = make_project(work / mode, size, config_text(name, free_port(), free_port(), mode))
    first, first_s, first_new = release(cache, config, name, None)
    (config.parent / "hooks.py").write_text(EDITED)
    edited, edit_s, edit_new = release(cache, config, name, first)
    write_random(config.parent / "weights.bin", size)
    retrained, retrain_s, retrain_new = release(cache, config, name, edited)
    row = {"mode": mode, "first": (first_s, first_new), "hook edit": (edit_s, edit_new),
           "retrain": (retrain_s, retrain_new), "name": name, "config": config, "pushed": retrained}
    print(f"{mode:9} first build+push {first_s:6.1f} s {first_new / 1e6:7.1f} MB | hook edit {edit_s:6.1f} s "
          f"{edit_new / 1e6:7.2f} MB | retrain {retrain_s:6.1f} s {retrain_new / 1e6:7.1f} MB", flush=True)
    return row


def start_to_ready(row: dict[str, Any], work: Path) -> tuple[float, float]:
    import docker

    engine = docker.from_env(timeout=600)
    text = row["config"].read_text()
    port = int(text.split("server: {port: ")[1].split("}")[0])
    image, pin = row["pushed"]["reference"], row["pushed"]["weights"]["pinned"]
    folder = Path(tempfile.mkdtemp(dir=work, prefix="runtime-cache-"))
    folder.chmod(0o777)
    times = []
    for reference in (pin, f"127.0.0.1:{free_port()}/{row['name']}-weights@{pin.split('@')[1]}"):
        started = time.monotonic()
        container = engine.containers.run(
            image, detach=True, network_mode="host", volumes={str(folder): {"bind": "/cache", "mode": "rw"}},
            environment={"CONDUIT_WEIGHTS": reference, "CONDUIT_WEIGHTS_CACHE": "/cache", "CONDUIT_API_KEY": KEY})
        try:
            status, error = wait_ready(container, f"http://127.0.0.1:{port}")
            times.append(time.monotonic() - started)
            if status != 200:
                raise SystemExit(f"not ready: {error}\n{container.logs().decode()[-2000:]}")
            httpx.post(f"http://127.0.0.1:{port}/predict", json=[[1]], headers={"Authorization": KEY}, timeout=30)
        finally:
            container.remove(force=True)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"weights {args.size_mb} MB; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as folder:
        work = Path(folder)
        rows = [one_mode(mode, args.size_mb * 1024 * 1024, work) for mode in ("bundled", "separate")]
        cold, warm = start_to_ready(rows[1], work)
        print(f"separate  start-to-ready: cold cache (pull) {cold:.1f} s, warm cache (registry unreachable) {warm:.1f} s")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
