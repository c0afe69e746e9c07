#!/usr/bin/env python
"""Where a server's time goes under load: py-spy samples it while wrk drives it.

    python bench/profile.py [--servers conduit,hand] [--workload iris|digits8|digits256]
                            [--duration S] [--concurrency N] [--all-threads]

Each server is started and pinned as in bench/serve.py (core 0; wrk and py-spy
on core 1), warmed up for 2 s, then sampled for --duration seconds at
concurrency --concurrency. By default only samples of the thread holding the
GIL are kept (py-spy --gil): on one core, that is where the CPU time of Python
code goes. Samples are turned into microseconds per request (samples / rate /
requests), so servers of different speeds compare directly: with two or more
servers a side-by-side table shows self time per request by package
(conduit_runtime, starlette, uvicorn, sklearn, asyncio, ...).

The raw collapsed stacks (for flamegraph.pl or speedscope) are written to
bench/results/profile-<server>-<workload>-<date>.txt. Needs py-spy
(pip install py-spy) and the right to ptrace the server (root here).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve  # bench/serve.py

LINE = re.compile(r":\d+\)$")
FILE = re.compile(r"\(([^()]*)\)$")


@dataclass
class Profile:
    server: str
    requests: int
    rps: float
    p99_ms: float
    rate: int
    total: int
    inclusive: collections.Counter[str]
    own: collections.Counter[str]

    def us_per_request(self, samples: int) -> float:
        return samples / self.rate / self.requests * 1e6 if self.requests else 0.0


def package(frame: str) -> str:
    """'Route.handle (starlette/routing.py)' -> 'starlette'; 'Thread.run (threading.py)' -> 'threading'."""
    match = FILE.search(frame)
    if not match:
        return "(native or unknown)"
    path = match.group(1)
    return path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")


def load(raw: Path) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [LINE.sub(")", frame) for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return total, inclusive, own


def describe(p: Profile, top: int) -> str:
    if not p.total:
        return f"{p.server}: no samples"
    us = p.us_per_request
    out = [
        f"== {p.server}: {p.rps:,.0f} req/s, p99 {p.p99_ms:.2f} ms while sampled; {p.total} samples, "
        f"{us(p.total):.0f} µs of sampled time per request",
        "",
        f"hottest frames, inclusive (top {top}): share, µs/request",
    ]
    out += [f"  {n / p.total:6.1%} {us(n):7.1f}  {frame}" for frame, n in p.inclusive.most_common(top)]
    out += ["", f"hottest frames, self (top {top}): share, µs/request"]
    out += [f"  {n / p.total:6.1%} {us(n):7.1f}  {frame}" for frame, n in p.own.most_common(top)]
    mine = [(frame, n) for frame, n in p.inclusive.most_common() if "conduit_runtime/" in frame]
    if mine:
        out += ["", "conduit_runtime/ frames: inclusive share, µs/request, self µs/request"]
        out += [f"  {n / p.total:6.1%} {us(n):7.1f} {us(p.own[frame]):7.1f}  {frame}" for frame, n in mine[:top]]
    return "\n".join(out)


def compare(profiles: list[Profile], mode: str) -> str:
    by_package: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for p in profiles:
        counts: collections.Counter[str] = collections.Counter()
        for frame, n in p.own.items():
            counts[package(frame)] += n
        for name, n in counts.items():
            by_package[name][p.server] = p.us_per_request(n)
    names = [p.server for p in profiles]
    first = names[0]
    rows = sorted(by_package.items(), key=lambda kv: -max(kv[1].values()))
    out = [
        f"== self time per request by package (µs of sampled time, {mode})",
        "",
        "| package | " + " | ".join(names) + (f" | {first} − {names[1]} |" if len(names) > 1 else " |"),
        "| --- | " + " | ".join("---:" for _ in names) + (" | ---: |" if len(names) > 1 else ""),
    ]
    for name, values in rows:
        cells = " | ".join(f"{values.get(n, 0.0):.1f}" for n in names)
        diff = f" | {values.get(first, 0.0) - values.get(names[1], 0.0):+.1f} |" if len(names) > 1 else " |"
        out.append(f"| {name} | {cells}{diff}")
    totals = " | ".join(f"{p.us_per_request(p.total):.1f}" for p in profiles)
    diff = (
        f" | {profiles[0].us_per_request(profiles[0].total) - profiles[1].us_per_request(profiles[1].total):+.1f} |"
        if len(profiles) > 1
        else " |"
    )
    out.append(f"| **all** | {totals}{diff}")
    return "\n".join(out)


def profile_one(args: argparse.Namespace, spy: str, kind: str, work: serve.Workload, body: Path) -> Profile:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    raw = serve.RESULTS / f"profile-{kind}-{args.workload}-{stamp}.txt"
    fleet = serve.Fleet()
    result: list[serve.Measure] = []
    try:
        server = serve.start_server(fleet, kind, work)
        serve.check_answer(server, kind, work)
        serve.wrk(server.port, work, args.concurrency, serve.WARMUP_S, body)
        # wrk runs a little longer than py-spy, so that every sample is taken under load.
        load_thread = threading.Thread(
            target=lambda: result.append(serve.wrk(server.port, work, args.concurrency, args.duration + 1, body))
        )
        load_thread.start()
        command = [
            *serve.on_core(serve.CLIENT_CORE),
            spy,
            "record",
            "--pid",
            str(server.pid),
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
        ]
        if not args.all_threads:
            command.append("--gil")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load_thread.join()
    finally:
        fleet.stop_all()
    print(f"raw stacks: {raw.relative_to(serve.ROOT)}", file=sys.stderr)
    measure = result[0]
    total, inclusive, own = load(raw)
    # Requests served while py-spy sampled: wrk's rate over its run times the sampled seconds.
    return Profile(
        kind, round(measure.rps * args.duration), measure.rps, measure.p99_ms, args.rate, total, inclusive, own
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="conduit,hand", help="comma-separated: conduit, batched, hand, floor")
    parser.add_argument("--workload", default="iris", choices=["iris", "digits8", "digits256"])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--all-threads", action="store_true", help="keep samples of threads without the GIL too")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    kinds = [k for k in args.servers.split(",") if k]
    if not set(kinds) <= {"conduit", "batched", "hand", "floor"}:
        parser.error("--servers: conduit, batched, hand, floor")
    spy = shutil.which("py-spy")
    if not spy:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2

    serve.PINNED = serve.can_pin()
    if serve.PINNED:
        os.sched_setaffinity(0, {serve.CLIENT_CORE})
    serve.ensure_models()
    work = dict(zip(("iris", "digits8", "digits256"), serve.workloads(), strict=True))[args.workload]
    serve.RESULTS.mkdir(parents=True, exist_ok=True)
    body = serve.RESULTS / f".body-{args.workload}"
    body.write_bytes(work.body)
    try:
        profiles = [profile_one(args, spy, kind, work, body) for kind in kinds]
    finally:
        body.unlink(missing_ok=True)
    mode = "all threads" if args.all_threads else "GIL holder only"
    print(
        f"# {work.name}, concurrency {args.concurrency}, {args.duration} s sampled at {args.rate} Hz ({mode}), "
        f"load {os.getloadavg()[0]:.1f}\n"
    )
    for p in profiles:
        print(describe(p, args.top))
        print()
    print(compare(profiles, mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
