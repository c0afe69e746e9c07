#!/usr/bin/env python
"""Where a server's time goes under load: py-spy samples it while wrk drives it.

    python bench/profile.py [--server conduit|hand|floor] [--workload iris|digits8|digits256]
                            [--duration S] [--concurrency N] [--all-threads]

The server is started and pinned as in bench/serve.py (core 0; wrk and py-spy on
core 1), warmed up for 2 s, then sampled for --duration seconds at concurrency
--concurrency. By default only samples of the thread holding the GIL are kept
(py-spy --gil): on one core that is where the CPU time of Python code goes.
The raw collapsed stacks (for flamegraph.pl or speedscope) are written to
bench/results/profile-<server>-<workload>-<date>.txt, and the hottest frames
are printed: inclusive and self share of the samples, the conduit_runtime/
frames listed on their own. Needs py-spy (pip install py-spy) and root or
ptrace rights.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve  # bench/serve.py

LINE = re.compile(r":\d+\)$")


def summarize(raw: Path, top: int) -> str:
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
    if not total:
        return "no samples"
    out = [f"{total} samples", "", f"hottest frames, inclusive (top {top}):"]
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    out += ["", f"hottest frames, self (top {top}):"]
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    mine = [(frame, n) for frame, n in inclusive.most_common() if "conduit_runtime/" in frame]
    if mine:
        out += ["", "conduit_runtime/ frames, inclusive:"]
        out += [f"  {n / total:6.1%}  (self {own[frame] / total:5.1%})  {frame}" for frame, n in mine[:top]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="conduit", choices=["conduit", "hand", "floor"])
    parser.add_argument("--workload", default="iris", choices=["iris", "digits8", "digits256"])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--all-threads", action="store_true", help="keep samples of threads without the GIL too")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
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
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    raw = serve.RESULTS / f"profile-{args.server}-{args.workload}-{stamp}.txt"
    body = serve.RESULTS / f".body-{args.workload}"
    body.write_bytes(work.body)
    fleet = serve.Fleet()
    try:
        server = serve.start_server(fleet, args.server, work)
        serve.check_answer(server, args.server, work)
        serve.wrk(server.port, work, args.concurrency, serve.WARMUP_S, body)
        result: list[serve.Measure] = []
        load = threading.Thread(
            target=lambda: result.append(serve.wrk(server.port, work, args.concurrency, args.duration + 1, body))
        )
        load.start()
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
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        load.join()
    finally:
        fleet.stop_all()
        body.unlink(missing_ok=True)
    if result:
        m = result[0]
        print(
            f"{args.server} on {work.name}, c={args.concurrency}: {m.rps:,.0f} req/s, p50 {m.p50_ms:.2f} ms, "
            f"p99 {m.p99_ms:.2f} ms while sampled ({'GIL holder only' if not args.all_threads else 'all threads'})"
        )
    print(summarize(raw, args.top))
    print(f"\nraw stacks: {raw.relative_to(serve.ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
