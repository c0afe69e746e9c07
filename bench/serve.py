#!/usr/bin/env python
"""Serving benchmark (not a test): conduit against the HTTP floor, a hand-written
Starlette server and BentoML 1.4, on the iris (JSON) and digits (one PNG per
multipart request, 8x8 and 256x256) examples, at concurrency 1, 16 and 64.

    python bench/serve.py [--duration S] [--soak] [--skip-bentoml]

Every server runs alone, pinned to core 0 (one process, or BentoML's arbiter
plus its one worker), with no access log; wrk (one thread, bench/lua/post.lua)
and this script are pinned to core 1; only 127.0.0.1. Each cell: 2 s of
warm-up, then --duration seconds measured. Also measured: process spawn to the
first 200 from /ready of `conduit serve` on iris (median of 5) and, with
--soak, 90 s at concurrency 16 on iris against conduit, sampling the server's
RSS every second. The Markdown table is printed and written to
bench/results/serve-<date>.md; server logs go to bench/results/logs/.

The servers compared:
  conduit   `conduit serve` on examples/<name>/conduit.yaml without its `batch:` keys
  batched   the same with the example's `batch:` (adaptive batching of the model call)
  floor     bench/servers/floor.py: parses the same body, answers a constant
  hand      bench/servers/handwritten.py: the same model called directly
  bentoml   bench/bentoml_service/service.py under `bentoml serve`, in its own
            venv bench/.venvs/bentoml (made here on first use)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs"
LUA = BENCH / "lua" / "post.lua"
BENTOML_VENV = BENCH / ".venvs" / "bentoml"
BENTOML_REQUIREMENTS = ["bentoml==1.4.*", "scikit-learn==1.9.1", "pillow"]
API_KEY = "bench-key-0123456789"
WARMUP_S = 2
SERVER_CORE, CLIENT_CORE = 0, 1
SERVERS = ("conduit", "batched", "floor", "hand", "bentoml")
SERVER_NAMES = {
    "conduit": "conduit",
    "batched": "conduit, batched",
    "floor": "(a) floor",
    "hand": "(b) hand-written",
    "bentoml": "(c) BentoML",
}


# -- the workloads ---------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    example: str  # examples/<example>
    body: bytes
    content_type: str
    expect: list[Any]  # the `result` a correct server gives


def multipart(png: Path) -> tuple[bytes, str]:
    """The body of `curl -F data='[null]' -F files=@PNG`: one data field, one file part."""
    boundary = "----conduitbench7MA4YWxkTrZu0gW"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="data"\r\n\r\n',
            b"[null]\r\n",
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="files"; filename="{png.name}"\r\n'.encode(),
            b"Content-Type: image/png\r\n\r\n",
            png.read_bytes(),
            b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def workloads() -> list[Workload]:
    samples = ROOT / "examples" / "digits" / "samples"
    small, small_type = multipart(samples / "three.png")
    large, large_type = multipart(samples / "three-256.png")
    return [
        Workload("iris JSON", "iris", b"[[5.1,3.5,1.4,0.2]]", "application/json", [0]),
        Workload("digits PNG 8x8", "digits", small, small_type, [3]),
        Workload("digits PNG 256x256", "digits", large, large_type, [3]),
    ]


def ensure_models() -> None:
    for example, needed in (
        ("iris", ["model.pkl"]),
        ("digits", ["model.pkl", "samples/three.png", "samples/three-256.png"]),
    ):
        folder = ROOT / "examples" / example
        if not all((folder / name).exists() for name in needed):
            print(f"making examples/{example}/model.pkl", file=sys.stderr)
            subprocess.run([sys.executable, str(folder / "make_model.py")], check=True, cwd=ROOT)


# -- pinning -----------------------------------------------------------------------


def can_pin() -> bool:
    return {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0)


PINNED = False


def on_core(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if PINNED else []


# -- servers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def conduit_command() -> list[str]:
    """The `conduit` entry point next to this interpreter (a pyenv shim would add its own start-up)."""
    script = Path(sys.executable).parent / "conduit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "conduit_build"]


@dataclass
class Server:
    label: str
    proc: subprocess.Popen[bytes]
    port: int
    ready_path: str
    log: Path
    started: float

    @property
    def pid(self) -> int:
        return self.proc.pid


class Fleet:
    """Every server this run started, so that all of them are stopped, whatever happens."""

    def __init__(self) -> None:
        self.running: list[Server] = []

    def spawn(self, label: str, command: list[str], env: dict[str, str], ready_path: str, port: int) -> Server:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / f"{label.replace(' ', '_')}.log"
        with log.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [*on_core(SERVER_CORE), *command],
                cwd=ROOT,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: Ctrl-C here reaches us, and we stop it
            )
        server = Server(label, proc, port, ready_path, log, started)
        self.running.append(server)
        return server

    def stop(self, server: Server) -> None:
        if server in self.running:
            self.running.remove(server)
        tree = process_tree(server.pid) if server.proc.poll() is None else []
        if server.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGTERM)
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait(timeout=5)
        # Whatever it started and left behind (BentoML's workers have process groups of their own).
        deadline = time.monotonic() + 5
        for pid in tree[1:]:
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for server in list(self.running):
            try:
                self.stop(server)
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {server.label} (pid {server.pid}): {exc}", file=sys.stderr)


def http_get(port: int, path: str, timeout: float = 1.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def http_post(port: int, body: bytes, content_type: str, auth: bool = True) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": content_type}
        if auth:
            headers["Authorization"] = API_KEY
        conn.request("POST", "/predict", body=body, headers=headers)
        response = conn.getresponse()
        text = response.read()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text[:300]
    finally:
        conn.close()


def wait_ready(server: Server, timeout: float, poll_s: float = 0.005) -> float:
    """Seconds from spawn to the first 200 on the ready path."""
    deadline = server.started + timeout
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.label} exited with {server.proc.returncode}; log:\n{tail(server.log)}")
        try:
            if http_get(server.port, server.ready_path, timeout=1.0) == 200:
                return time.perf_counter() - server.started
        except OSError:
            pass
        time.sleep(poll_s)
    raise RuntimeError(f"{server.label} not ready after {timeout:.0f} s; log:\n{tail(server.log)}")


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def ensure_bentoml_venv() -> Path:
    """bench/.venvs/bentoml with bentoml 1.4 and the models' libraries (made once)."""
    python = BENTOML_VENV / "bin" / "python"
    marker = BENTOML_VENV / ".bench-requirements"
    wanted = "\n".join(BENTOML_REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return BENTOML_VENV
    print(f"setting up {BENTOML_VENV.relative_to(ROOT)}: pip install {' '.join(BENTOML_REQUIREMENTS)}", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENTOML_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *BENTOML_REQUIREMENTS],
        check=True,
    )
    marker.write_text(wanted)
    return BENTOML_VENV


BENCH_CONFIGS: list[Path] = []  # written beside the examples' conduit.yaml, removed at the end


def bench_config(example: Path, batched: bool) -> Path:
    """The example's conduit.yaml with its `batch:` keys (batched) or without them."""
    text = (example / "conduit.yaml").read_text()
    if not batched:
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("batch:")) + "\n"
    elif "batch:" not in text:
        raise SystemExit(f"{example}/conduit.yaml has no batch: key to measure batched")
    path = example / f".bench-{'batched' if batched else 'unbatched'}.yaml"
    path.write_text(text)
    if path not in BENCH_CONFIGS:
        BENCH_CONFIGS.append(path)
    return path


def start_server(fleet: Fleet, kind: str, work: Workload) -> Server:
    port = free_port()
    example = ROOT / "examples" / work.example
    model = example / "model.pkl"
    env = {"CONDUIT_API_KEY": API_KEY, "PYTHONUNBUFFERED": "0"}
    ready_path, timeout = "/ready", 60.0
    if kind in ("conduit", "batched"):
        command = [
            *conduit_command(),
            "serve",
            "-f",
            str(bench_config(example, batched=kind == "batched")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    elif kind == "floor":
        command = [sys.executable, str(BENCH / "servers" / "floor.py"), str(port)]
    elif kind == "hand":
        command = [sys.executable, str(BENCH / "servers" / "handwritten.py"), work.example, str(model), str(port)]
    elif kind == "bentoml":
        service = {"iris": "service:Iris", "digits": "service:Digits"}[work.example]
        command = [
            str(BENTOML_VENV / "bin" / "bentoml"),
            "serve",
            service,
            "--working-dir",
            str(BENCH / "bentoml_service"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env |= {
            "BENCH_MODEL": str(model),
            "BENTOML_DO_NOT_TRACK": "True",
            "BENTOML_HOME": str(BENCH / ".venvs" / "bentoml_home"),
        }
        ready_path, timeout = "/readyz", 180.0
    else:
        raise ValueError(kind)
    server = fleet.spawn(f"{kind}-{work.example}", command, env, ready_path, port)
    wait_ready(server, timeout)
    return server


def check_answer(server: Server, kind: str, work: Workload) -> None:
    """One request by hand before the load: a server that answers wrong is not measured."""
    status, answer = http_post(server.port, work.body, work.content_type)
    if status != 200:
        raise RuntimeError(f"{server.label}: {work.name} answered {status}: {answer!r}; log:\n{tail(server.log)}")
    result = answer if kind == "bentoml" else answer.get("result") if isinstance(answer, dict) else None
    if kind != "floor" and result != work.expect:
        raise RuntimeError(f"{server.label}: {work.name} answered {answer!r}, expected result {work.expect}")


# -- the load generator --------------------------------------------------------------


@dataclass
class Measure:
    requests: int
    seconds: float
    errors: int  # connect/read/write/timeout errors and non-2xx answers
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float = 0.0  # CPU time the server's processes used meanwhile
    load: float = 0.0  # the machine's 1-minute load average at the end

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        """The server's CPU use in cores; below ~0.9 at c=16 means something else took its core."""
        return self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_s(self) -> float:
        """Requests per CPU-second of the server: less sensitive to a busy machine than req/s."""
        return self.requests / self.cpu_s if self.cpu_s else 0.0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def process_tree(root: int) -> list[int]:
    """root and its live descendants (BentoML's workers sit in process groups of their own)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_s(root: int) -> float:
    """user + system CPU seconds of a server's live processes."""
    ticks = 0
    for pid in process_tree(root):
        if (fields := proc_stat(pid)) is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / CLOCK_TICKS


def load_average() -> float:
    return os.getloadavg()[0]


def wrk(port: int, work: Workload, connections: int, seconds: int, body_file: Path) -> Measure:
    command = [
        *on_core(CLIENT_CORE),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}/predict",
    ]
    env = {**os.environ, "WRK_BODY_FILE": str(body_file), "WRK_CONTENT_TYPE": work.content_type, "WRK_AUTH": API_KEY}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    latency = data["latency_us"]
    return Measure(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=sum(data["errors"].values()),
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )


# -- the runs ---------------------------------------------------------------------------


@dataclass
class Cell:
    work: str
    concurrency: int
    server: str
    runs: list[Measure] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(m.rps for m in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(m.p50_ms for m in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(m.p99_ms for m in self.runs)

    @property
    def max_ms(self) -> float:
        return max(m.max_ms for m in self.runs)

    @property
    def errors(self) -> int:
        return sum(m.errors for m in self.runs)

    @property
    def cpu_share(self) -> float:
        return statistics.median(m.cpu_share for m in self.runs)

    @property
    def per_cpu_s(self) -> float:
        return statistics.median(m.per_cpu_s for m in self.runs)

    @property
    def load(self) -> float:
        return statistics.median(m.load for m in self.runs)


@dataclass
class Report:
    started: datetime.datetime
    args: argparse.Namespace
    cells: dict[tuple[str, int, str], Cell] = field(default_factory=dict)
    ready_s: list[float] = field(default_factory=list)
    soak: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    source_at_start: str = ""

    def cell(self, work: str, concurrency: int, server: str) -> Cell:
        key = (work, concurrency, server)
        if key not in self.cells:
            self.cells[key] = Cell(work, concurrency, server)
        return self.cells[key]

    def get(self, work: str, concurrency: int, server: str) -> Cell | None:
        cell = self.cells.get((work, concurrency, server))
        return cell if cell and cell.runs else None


def measure_matrix(
    fleet: Fleet, report: Report, servers: list[str], works: list[Workload], bodies: dict[str, Path]
) -> None:
    args = report.args
    for rep in range(args.repeat):
        for work in works:
            for kind in servers:
                label = f"{SERVER_NAMES[kind]} on {work.name}" + (f" (round {rep + 1})" if args.repeat > 1 else "")
                print(f"-- {label}", file=sys.stderr, flush=True)
                server = start_server(fleet, kind, work)
                try:
                    check_answer(server, kind, work)
                    for connections in args.concurrency:
                        wrk(server.port, work, connections, WARMUP_S, bodies[work.name])
                        cpu_before = tree_cpu_s(server.pid)
                        result = wrk(server.port, work, connections, args.duration, bodies[work.name])
                        result.cpu_s = tree_cpu_s(server.pid) - cpu_before
                        result.load = load_average()
                        report.cell(work.name, connections, kind).runs.append(result)
                        print(
                            f"   c={connections:<3} {result.rps:9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                            f"p99 {result.p99_ms:7.2f} ms  max {result.max_ms:7.1f} ms  errors {result.errors}  "
                            f"server CPU {result.cpu_share:4.0%}  {result.per_cpu_s:6.0f} req/CPU-s  load {result.load:.1f}",
                            file=sys.stderr,
                            flush=True,
                        )
                finally:
                    fleet.stop(server)


def measure_ready(fleet: Fleet, report: Report, iris: Workload, times: int = 5) -> None:
    print(f"-- conduit serve on iris: spawn to first 200 from /ready, {times} times", file=sys.stderr, flush=True)
    for _ in range(times):
        server = start_server(fleet, "conduit", iris)
        try:
            report.ready_s.append(time.perf_counter() - server.started)
        finally:
            fleet.stop(server)
        time.sleep(0.2)
    print("   " + ", ".join(f"{s * 1000:.0f} ms" for s in report.ready_s), file=sys.stderr, flush=True)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def measure_soak(fleet: Fleet, report: Report, iris: Workload, body: Path, seconds: int, chunk: int = 10) -> None:
    print(
        f"-- soak: conduit on iris, c=16, {seconds} s in {chunk} s chunks, RSS every second",
        file=sys.stderr,
        flush=True,
    )
    server = start_server(fleet, "conduit", iris)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        begun = time.perf_counter()
        while not stop.wait(1.0):
            with contextlib.suppress(OSError, RuntimeError):
                samples.append((time.perf_counter() - begun, rss_kib(server.pid)))

    try:
        check_answer(server, "conduit", iris)
        ready_rss = rss_kib(server.pid)
        wrk(server.port, iris, 16, WARMUP_S, body)
        warm_rss = rss_kib(server.pid)
        cpu_before = tree_cpu_s(server.pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        chunks: list[Measure] = []
        remaining = seconds
        while remaining > 0:
            step = min(chunk, remaining)
            chunks.append(wrk(server.port, iris, 16, step, body))
            remaining -= step
            last = chunks[-1]
            print(
                f"   {seconds - remaining:4d} s  {last.rps:7.0f} req/s  p99 {last.p99_ms:6.2f} ms  max {last.max_ms:6.1f} ms  "
                f"RSS {rss_kib(server.pid) / 1024:6.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
        end_rss = rss_kib(server.pid)
        cpu_s = tree_cpu_s(server.pid) - cpu_before
    finally:
        stop.set()
        fleet.stop(server)
    rss = [kib for _, kib in samples] or [end_rss]
    report.soak = {
        "seconds": seconds,
        "requests": sum(m.requests for m in chunks),
        "rps": sum(m.requests for m in chunks) / sum(m.seconds for m in chunks),
        "errors": sum(m.errors for m in chunks),
        "cpu_share": cpu_s / sum(m.seconds for m in chunks),
        "load": load_average(),
        "worst_chunk_p99_ms": max(m.p99_ms for m in chunks),
        "max_ms": max(m.max_ms for m in chunks),
        "chunk_max_ms": [round(m.max_ms, 1) for m in chunks],
        "ready_rss_kib": ready_rss,
        "warm_rss_kib": warm_rss,
        "end_rss_kib": end_rss,
        "peak_rss_kib": max(rss),
        "change_pct": (end_rss - warm_rss) / warm_rss * 100,
        "peak_change_pct": (max(rss) - warm_rss) / warm_rss * 100,
    }


# -- the report ------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def version_of(python: str, module: str) -> str:
    done = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({module!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def source_state() -> str:
    """The commit measured, and whether the runtime had uncommitted changes (others work in this tree)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "conduit_runtime", "conduit_build"],
        capture_output=True,
        text=True,
        check=False,
    )
    changed = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
    state = f"commit {head.stdout.strip() or '?'}"
    state += f"; uncommitted changes in {', '.join(changed)} (measured as they were)" if changed else "; clean"
    return f"{state}; source digest {source_digest()}"


def source_digest() -> str:
    """A digest of the conduit code every server start loads, to notice edits made during a run."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("conduit_runtime/**/*.py"), *ROOT.glob("conduit_build/**/*.py")]):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def fmt_ratio(a: Cell | None, b: Cell | None, per_cpu: bool = False) -> str:
    if not a or not b:
        return "—"
    x, y = (a.per_cpu_s, b.per_cpu_s) if per_cpu else (a.rps, b.rps)
    return f"{x / y:.2f}×" if y else "—"


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**MISSED**")


def render(report: Report, servers: list[str], works: list[Workload]) -> str:
    args = report.args
    out: list[str] = []
    when = report.started.strftime("%Y-%m-%d %H:%M %Z").strip()
    out.append(f"# Conduit serving benchmark, {when}" + (" (INTERRUPTED: partial)" if report.interrupted else ""))
    out.append("")
    out.append(
        f"- machine: `nproc` = {os.cpu_count()}, {cpu_model()}; Linux {platform.release()}; Python {platform.python_version()}"
    )
    versions = (
        f"conduit-build {version_of(sys.executable, 'conduit-build')}, starlette {version_of(sys.executable, 'starlette')}, "
        f"uvicorn {version_of(sys.executable, 'uvicorn')}, scikit-learn {version_of(sys.executable, 'scikit-learn')}, "
        f"Pillow {version_of(sys.executable, 'pillow')}"
    )
    if "bentoml" in servers and (BENTOML_VENV / "bin" / "python").exists():
        bpy = str(BENTOML_VENV / "bin" / "python")
        versions += f"; BentoML venv: bentoml {version_of(bpy, 'bentoml')}, uvicorn {version_of(bpy, 'uvicorn')}"
    out.append(f"- versions: {versions}")
    out.append(f"- conduit source at the start: {report.source_at_start}")
    end = source_digest()
    if not report.source_at_start.endswith(end):
        out.append(
            f"- **the conduit source changed during the run** (digest now {end}; at the end: {source_state()}): "
            "servers started after the change ran the new code"
        )
    out.append(
        f"- method: each server alone{' on core 0' if PINNED else ''}, one worker, no access log; "
        f"wrk -t1{' on core 1' if PINNED else ''} (bench/lua/post.lua); {WARMUP_S} s warm-up then {args.duration} s measured "
        f"per cell{f', median of {args.repeat} rounds' if args.repeat > 1 else ''}; 127.0.0.1 only; the machine was "
        "shared with other work, so absolute numbers are noisy"
    )
    out.append(
        "- servers: conduit = `conduit serve`; (a) floor = Starlette parsing the body, constant answer; "
        "(b) hand-written = Starlette + run_in_threadpool calling the same model.pkl; (c) BentoML 1.4 `bentoml serve`"
    )
    for note in report.notes:
        out.append(f"- {note}")
    out.append("")
    out.append("## Requests/s and latency")
    out.append("")
    out.append(
        "| workload | conc. | server | req/s | p50 ms | p99 ms | max ms | errors | conduit ÷ this (req/s) "
        "| server CPU | req/CPU-s | conduit ÷ this (req/CPU-s) | load |"
    )
    out.append("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for work in works:
        for connections in args.concurrency:
            mine = report.get(work.name, connections, "conduit")
            for kind in servers:
                cell = report.get(work.name, connections, kind)
                if cell is None:
                    continue
                errors = f"**{cell.errors}**" if cell.errors else "0"
                out.append(
                    f"| {work.name} | {connections} | {SERVER_NAMES[kind]} | {cell.rps:,.0f} | {cell.p50_ms:.2f} | "
                    f"{cell.p99_ms:.2f} | {cell.max_ms:.1f} | {errors} | {fmt_ratio(mine, cell) if kind != 'conduit' else ''} "
                    f"| {cell.cpu_share:.0%} | {cell.per_cpu_s:,.0f} | "
                    f"{fmt_ratio(mine, cell, per_cpu=True) if kind != 'conduit' else ''} | {cell.load:.1f} |"
                )
    out.append("")
    out.append(
        "server CPU: the server's processes' CPU time over the measured seconds (1 core at most, pinned); "
        "well under 100% at c=16 means other work on the machine took its core. req/CPU-s: requests per CPU-second "
        "of the server, the view least disturbed by other work. load: 1-minute load average after the cell."
    )
    out.append("")
    batched = [(work, c) for work in works for c in args.concurrency if report.get(work.name, c, "batched")]
    if batched:
        out.append("## Batched conduit against the hand-written server and unbatched conduit (same run)")
        out.append("")
        out.append("| workload | conc. | batched ÷ hand-written (req/s) | (req/CPU-s) | p99 ms batched / hand-written "
                   "| batched ÷ unbatched (req/s) | p50 ms batched / unbatched |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for work, connections in batched:
            cell = report.get(work.name, connections, "batched")
            hand = report.get(work.name, connections, "hand")
            plain = report.get(work.name, connections, "conduit")
            assert cell is not None
            p99 = f"{cell.p99_ms:.2f} / {hand.p99_ms:.2f}" if hand else "—"
            p50 = f"{cell.p50_ms:.2f} / {plain.p50_ms:.2f}" if plain else "—"
            out.append(f"| {work.name} | {connections} | {fmt_ratio(cell, hand)} | {fmt_ratio(cell, hand, per_cpu=True)} "
                       f"| {p99} | {fmt_ratio(cell, plain)} | {p50} |")
        out.append("")
        out.append("Targets (issue 11, on an otherwise idle machine): iris c16 ≥ 2.0× hand-written with a p99 no worse; "
                   "digits 8×8 c16 ≥ 1.5×; c1 latency within 5% of unbatched.")
        out.append("")
    if report.ready_s:
        out.append("## Start to /ready (`conduit serve`, iris)")
        out.append("")
        out.append(
            f"Process spawn → first 200 from /ready: median **{statistics.median(report.ready_s) * 1000:.0f} ms** "
            f"({', '.join(f'{s * 1000:.0f}' for s in report.ready_s)} ms)."
        )
        out.append("")
    if report.soak:
        s = report.soak
        out.append(f"## Soak (conduit, iris, concurrency 16, {s['seconds']} s)")
        out.append("")
        out.append(
            "| requests | req/s | errors | worst 10 s p99 ms | slowest request ms | RSS ready MiB | RSS after warm-up MiB | "
            "RSS end MiB | RSS peak MiB | end vs warm-up | server CPU | load |"
        )
        out.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        out.append(
            f"| {s['requests']:,} | {s['rps']:,.0f} | {s['errors']} | {s['worst_chunk_p99_ms']:.2f} | {s['max_ms']:.1f} | "
            f"{s['ready_rss_kib'] / 1024:.1f} | {s['warm_rss_kib'] / 1024:.1f} | {s['end_rss_kib'] / 1024:.1f} | "
            f"{s['peak_rss_kib'] / 1024:.1f} | {s['change_pct']:+.1f}% | {s['cpu_share']:.0%} | {s['load']:.1f} |"
        )
        out.append("")
        out.append(f"Slowest request per 10 s chunk (ms): {', '.join(str(v) for v in s['chunk_max_ms'])}.")
        out.append("")
    out.append("## Targets")
    out.append("")
    out.append("| target | measured | verdict |")
    out.append("| --- | --- | --- |")
    for target, measured, ok in targets(report, works):
        out.append(f"| {target} | {measured} | {verdict(ok)} |")
    out.append("")
    return "\n".join(out)


def per_cpu(a: Cell, b: Cell) -> float:
    return a.per_cpu_s / b.per_cpu_s if b.per_cpu_s else float("nan")


def targets(report: Report, works: list[Workload]) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = []
    for work in works:
        mine, hand, bento = (report.get(work.name, 16, k) for k in ("conduit", "hand", "bentoml"))
        factor = 4.0 if work.example == "iris" else 3.0
        if mine and hand:
            share = mine.rps / hand.rps
            rows.append(
                (
                    f"{work.name}, c=16: conduit ≥ 90% of hand-written req/s",
                    f"{share:.0%} ({mine.rps:,.0f} vs {hand.rps:,.0f}); per CPU-s {per_cpu(mine, hand):.0%}",
                    share >= 0.9,
                )
            )
        else:
            rows.append((f"{work.name}, c=16: conduit ≥ 90% of hand-written req/s", "—", None))
        if mine and bento:
            times = mine.rps / bento.rps
            rows.append(
                (
                    f"{work.name}, c=16: conduit ≥ {factor:g}× BentoML req/s",
                    f"{times:.2f}× ({mine.rps:,.0f} vs {bento.rps:,.0f}); per CPU-s {per_cpu(mine, bento):.2f}×",
                    times >= factor,
                )
            )
        else:
            rows.append((f"{work.name}, c=16: conduit ≥ {factor:g}× BentoML req/s", "—", None))
    c1 = report.get("iris JSON", 1, "conduit")
    rows.append(
        ("iris, c=1: conduit p99 < 2 ms", f"{c1.p99_ms:.2f} ms" if c1 else "—", c1.p99_ms < 2.0 if c1 else None)
    )
    if report.ready_s:
        ready = statistics.median(report.ready_s)
        rows.append(("start to /ready < 1.5 s (iris, median of 5)", f"{ready * 1000:.0f} ms", ready < 1.5))
    else:
        rows.append(("start to /ready < 1.5 s (iris, median of 5)", "—", None))
    if report.soak:
        s = report.soak
        rows.append(
            (
                "soak: RSS at the end within 5% of after warm-up",
                f"{s['change_pct']:+.1f}% (peak {s['peak_change_pct']:+.1f}%)",
                abs(s["change_pct"]) <= 5.0,
            )
        )
        rows.append(("soak: slowest request < 50 ms", f"{s['max_ms']:.1f} ms", s["max_ms"] < 50.0 and s["errors"] == 0))
    else:
        rows.append(("soak: RSS within 5% of after warm-up", "— (run with --soak)", None))
        rows.append(("soak: slowest request < 50 ms", "— (run with --soak)", None))
    return rows


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, metavar="S", help="seconds measured per cell (default 10)")
    parser.add_argument("--soak", action="store_true", help="also run the soak: conduit, iris, c=16, RSS sampled")
    parser.add_argument("--soak-only", action="store_true", help="run only the soak (and start to /ready)")
    parser.add_argument("--soak-duration", type=int, default=90, metavar="S", help="soak length (default 90)")
    parser.add_argument("--skip-bentoml", action="store_true", help="leave BentoML out (no venv is made)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument(
        "--workloads", default="iris,digits8,digits256", help="comma-separated subset of iris,digits8,digits256"
    )
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated connection counts (default 1,16,64)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds over all servers; cells report the median (default 1)"
    )
    parser.add_argument("--no-pin", action="store_true", help="don't pin the server and wrk to cores 0 and 1")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    if args.duration < 1 or args.soak_duration < 1 or args.repeat < 1:
        parser.error("--duration, --soak-duration and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    global PINNED
    args = parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        print(f"unknown servers: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.skip_bentoml and "bentoml" in servers:
        servers.remove("bentoml")
    report = Report(datetime.datetime.now().astimezone(), args, source_at_start=source_state())

    PINNED = not args.no_pin and can_pin()
    if PINNED:
        os.sched_setaffinity(0, {CLIENT_CORE})  # this script (and its ready polling) stays off the server's core
    elif not args.no_pin:
        report.notes.append("could not pin (cores 0 and 1 are not both available): nothing pinned")

    # Stop every server on Ctrl-C and on SIGTERM/SIGHUP too.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    ensure_models()
    works_all = workloads()
    by_key = dict(zip(("iris", "digits8", "digits256"), works_all, strict=True))
    try:
        works = [by_key[w] for w in args.workloads.split(",") if w]
    except KeyError as exc:
        print(f"unknown workload {exc}", file=sys.stderr)
        return 2
    if "bentoml" in servers and not args.soak_only:
        ensure_bentoml_venv()

    fleet = Fleet()
    status = 0
    with tempfile.TemporaryDirectory(prefix="conduit-bench-") as tmp:
        bodies = {}
        for work in works_all:
            path = Path(tmp) / f"{work.name.replace(' ', '_')}.body"
            path.write_bytes(work.body)
            bodies[work.name] = path
        iris = by_key["iris"]
        try:
            measure_ready(fleet, report, iris)
            if not args.soak_only:
                measure_matrix(fleet, report, servers, works, bodies)
            if args.soak or args.soak_only:
                measure_soak(fleet, report, iris, bodies[iris.name], args.soak_duration)
        except KeyboardInterrupt:
            report.interrupted = True
            status = 130
            print("\ninterrupted: stopping the servers", file=sys.stderr)
        except Exception as exc:
            report.interrupted = True
            status = 1
            print(f"\nfailed: {exc}", file=sys.stderr)
        finally:
            fleet.stop_all()
            for path in BENCH_CONFIGS:
                path.unlink(missing_ok=True)
    if args.soak_only:
        works = [iris]
    text = render(report, servers, works)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"serve-{report.started.strftime('%Y-%m-%d-%H%M%S')}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
