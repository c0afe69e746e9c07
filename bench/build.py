"""Benchmark of `conduit build` (not a test; run by hand on a quiet machine).

    python bench/build.py [--example iris] [--runs 5]

Measures, end to end through the CLI as a user runs it:
  cold build      `conduit build --no-cache` (the base image and the engine's uv helper image
                  present, no layer cache), without a lock (uv resolves in the builder) and with
                  one (`conduit lock` first); with --empty-caches the first one also makes the
                  uv helper image (conduit-uv:<version>), as on a fresh engine
  reference       a plain two-stage Dockerfile that pip-installs the same requirements into a
                  venv and copies it over, built --no-cache in the same run (the issue 10 target:
                  Conduit's cold build at most half of it)
  hook-only edit  rebuild after appending a comment to hooks.py (median of --runs edits)
  no-op rebuild   `conduit build` again with nothing changed (median of --runs)
  baseline        with --baseline DIR, the same hook-only and no-op rebuilds by the build tool
                  in DIR (an older tree: `git archive REV | tar -x -C DIR`), in the same run
  image size      against base image + the installed site-packages (the venv)
  run → /ready    `docker run` until GET /ready answers 200 (median of --runs)
and prints a Markdown table. Needs the engine, base image and registry of scripts/engine.

    python bench/build.py --big-model 2000

instead builds a project holding a 2,000 MB model file and prints the build tool's peak
RSS (target: under 300 MB, whatever the model's size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parent.parent


def conduit(*args: str, tree: Path = ROOT) -> tuple[float, subprocess.CompletedProcess[str]]:
    """The CLI of the build tool in `tree` (this one unless a baseline's), timed."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "conduit_build", *args], capture_output=True, text=True, check=False,
                            env=env)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"conduit {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result


def build(config: Path, *extra: str, tree: Path = ROOT) -> tuple[float, dict[str, str]]:
    elapsed, result = conduit("build", "-f", str(config), "--json", *extra, tree=tree)
    return elapsed, json.loads(result.stdout)


def rebuilds(config: Path, runs: int, tree: Path = ROOT, *extra: str) -> tuple[float, float, set[str]]:
    """Medians of `runs` hook-only rebuilds and of `runs` no-op rebuilds; the tags built."""
    hooks = config.parent / "hooks.py"
    edits, noops, tags = [], [], set()
    for run in range(runs):
        hooks.write_text(hooks.read_text() + f"# edit {run}\n")
        elapsed, rebuilt = build(config, *extra, tree=tree)
        edits.append(elapsed)
        tags.add(rebuilt["tag"])
        elapsed, again = build(config, *extra, tree=tree)
        assert again["cached"], "the no-op rebuild built something"
        noops.append(elapsed)
    return statistics.median(edits), statistics.median(noops), tags


def project_copy(example: str, folder: Path) -> Path:
    """A private copy, so that its hook edits never touch the repository."""
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / example / "make_model.py")], check=True, capture_output=True
    )
    target = folder / example
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ROOT / "examples" / example, target, ignore=shutil.ignore_patterns("__pycache__"))
    hooks = target / "hooks.py"
    if not hooks.exists():  # iris has none: give it a pass-through hook to edit
        hooks.write_text("def pre(data):\n    return data\n")
        config = target / "conduit.yaml"
        config.write_text(
            config.read_text().replace("    file: model.pkl", "    hooks: {pre: hooks.py:pre}\n    file: model.pkl", 1)
        )
    # A unique comment: this run's images are its own, never an earlier run's.
    hooks.write_text(hooks.read_text() + f"\n# bench {uuid.uuid4()}\n")
    return target / "conduit.yaml"


REFERENCE = """\
FROM python:3.11-slim AS builder
RUN python3 -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM python:3.11-slim
COPY --from=builder /opt/venv /opt/venv
COPY . /app
"""


def reference_build(engine: docker.DockerClient, config: Path) -> float:
    """A plain two-stage pip build of the same requirements.txt as Conduit's context, --no-cache."""
    sys.path.insert(0, str(ROOT))
    from conduit_build.config import load
    from conduit_build.image.lockfile import lock_inputs

    with tempfile.TemporaryDirectory(prefix="conduit-bench-reference-") as folder:
        context = Path(folder)
        (context / "requirements.txt").write_text(lock_inputs(load(config)).requirements)
        (context / "Dockerfile").write_text(REFERENCE)
        for path in config.parent.iterdir():
            if path.is_file():
                shutil.copy(path, context / path.name)
        tag = f"conduit-bench-reference:{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        engine.images.build(path=str(context), tag=tag, nocache=True, rm=True, forcerm=True)
        elapsed = time.perf_counter() - started
        engine.images.remove(tag, force=True)
    return elapsed


def ready_after_run(engine: docker.DockerClient, tag: str, port: int) -> float:
    started = time.perf_counter()
    container = engine.containers.run(
        tag, detach=True, ports={f"{port}/tcp": ("127.0.0.1", None)}, environment={"CONDUIT_API_KEY": "bench"}
    )
    try:
        container.reload()
        host_port = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{host_port}/ready"
        while time.perf_counter() - started < 60:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError("never ready")
    finally:
        container.remove(force=True)


def venv_bytes(engine: docker.DockerClient, tag: str) -> int:
    output = engine.containers.run(tag, ["du", "-sb", "/opt/venv"], remove=True, user="0")
    return int(output.split()[0])


def big_model_rss(megabytes: int) -> None:
    """Peak RSS of `conduit build` for a project with a model file of `megabytes` MB."""
    import resource

    engine = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="conduit-bench-") as folder:
        project = Path(folder) / "big"
        project.mkdir()
        (project / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
        (project / "conduit.yaml").write_text(f"name: big-{uuid.uuid4().hex[:8]}\n"
                                              "models: [{type: python, file: 'model.py:Model'}]\n")
        with (project / "weights.bin").open("wb") as handle:
            for _ in range(megabytes):
                handle.write(os.urandom(1 << 20))  # incompressible: nothing is smaller than it looks
        elapsed, built = build(project / "conduit.yaml")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        engine.images.remove(built["tag"], force=True)
    print(f"| `conduit build` with a {megabytes:,} MB model file | peak RSS {rss_mb:.0f} MB | {elapsed:.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default="iris", choices=["iris", "digits", "pipeline"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also time hook-only and no-op rebuilds with the build tool of this older tree")
    parser.add_argument("--empty-caches", action="store_true",
                        help="remove the uv helper image first: the first cold build makes it, as on a fresh engine")
    parser.add_argument("--big-model", type=int, metavar="MB", help="only measure the peak RSS of a build with an MB-sized model")
    args = parser.parse_args()
    if args.big_model:
        big_model_rss(args.big_model)
        return
    engine = docker.from_env()
    sys.path.insert(0, str(ROOT))
    from conduit_build.image.uv import UV_IMAGE

    baseline: tuple[float, float] | None = None
    with tempfile.TemporaryDirectory(prefix="conduit-bench-") as folder:
        if args.baseline:  # the older build tool first, on a copy of its own (its own images)
            old = project_copy(args.example, Path(folder) / "baseline")
            _, first = build(old, tree=args.baseline)
            old_edit, old_noop, old_tags = rebuilds(old, args.runs, args.baseline)
            baseline = (old_edit, old_noop)
            for tag in old_tags | {first["tag"]}:
                engine.images.remove(tag, force=True)
        config = project_copy(args.example, Path(folder))
        reference = reference_build(engine, config)
        if args.empty_caches and any(UV_IMAGE in image.tags for image in engine.images.list("conduit-uv")):
            engine.images.remove(UV_IMAGE)
        cold, built = build(config, "--no-cache")
        conduit("lock", "-f", str(config))
        cold_locked, built_locked = build(config, "--no-cache", "--locked")
        hook_edit, noop, rebuilt_tags = rebuilds(config, args.runs)
        rebuilt = {"tag": sorted(rebuilt_tags)[0]}
        image = engine.images.get(rebuilt["tag"])
        base = engine.images.get("python:3.11-slim")
        venv = venv_bytes(engine, rebuilt["tag"])
        port = 8000
        ready = statistics.median(ready_after_run(engine, rebuilt["tag"], port) for _ in range(args.runs))
        for tag in {built["tag"], built_locked["tag"], *rebuilt_tags}:
            engine.images.remove(tag, force=True)
    size, base_size = image.attrs["Size"], base.attrs["Size"]
    floor = base_size + venv
    mb = 1_000_000
    rows = [
        ("cold build (`--no-cache`, base present), no lock" + (", uv helper image made first" if args.empty_caches else ""), f"{cold:.1f} s ({cold / reference:.2f} x reference)",
         f"<= 0.5 x reference = {reference / 2:.1f} s (BentoML 1.4: 32 s)"),
        ("cold build with conduit.lock (`--locked`)", f"{cold_locked:.1f} s ({cold_locked / reference:.2f} x reference)",
         f"<= 0.5 x reference = {reference / 2:.1f} s"),
        ("  reference: plain two-stage pip Dockerfile, same requirements", f"{reference:.1f} s", ""),
        (f"rebuild after editing only hooks.py (median of {args.runs})", f"{hook_edit:.2f} s",
         f"no slower than the baseline: {baseline[0]:.2f} s" if baseline else "<= 3 s (BentoML: 2.2 s + 1.6 s)"),
        (f"no-op rebuild (median of {args.runs})", f"{noop:.2f} s",
         f"no slower than the baseline: {baseline[1]:.2f} s" if baseline else "<= 1 s"),
        ("image size", f"{size / mb:.0f} MB", f"<= base + venv + 10% = {floor * 1.1 / mb:.0f} MB (BentoML: 1280 MB)"),
        ("  of which base / venv", f"{base_size / mb:.0f} MB / {venv / mb:.0f} MB", ""),
        (
            f"`docker run` → /ready (median of {args.runs})",
            f"{ready:.2f} s",
            "<= 1.5 s (BentoML: 2.3 s to first answer)",
        ),
    ]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"`conduit build` of examples/{args.example}, {time.strftime('%Y-%m-%d')}, {cpu}, "
        f"{len([1 for line in Path('/proc/cpuinfo').read_text().splitlines() if line.startswith('processor')])} cores\n"
    )
    print("| measure | conduit | target / reference |\n|---|---|---|")
    for measure, value, target in rows:
        print(f"| {measure} | {value} | {target} |")


if __name__ == "__main__":
    main()
