"""`conduit test [--image I | --url U | --local] [--junit F]`: the contract suite; exit 1 on any failure."""

from __future__ import annotations

import argparse
import json

from .output import note, project
from .parser import Commands, command, repeats, seconds


def run(args: argparse.Namespace) -> int:
    from ..contract import contract_test

    report = contract_test(project(args), image=args.image, url=args.url, local=args.local, junit=args.junit,
                           ready_timeout_s=args.ready_timeout, repeat=args.repeat, say=note)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def add(commands: Commands) -> None:
    sub = command(commands, "test", run, "contract-test the image (default), a URL, or a local server")
    where = sub.add_mutually_exclusive_group()
    where.add_argument("--image", metavar="I", help="run this image as a container and test it")
    where.add_argument("--url", metavar="U", help="test a server that already runs at this base URL")
    where.add_argument("--local", action="store_true", help="run `conduit serve` in a child process (no Docker) and test it")
    sub.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    sub.add_argument("--ready-timeout", type=seconds, default=120, metavar="S", help="seconds to wait for /ready (default: 120)")
    sub.add_argument("--repeat", type=repeats, default=20, metavar="N",
                     help="timed calls per example for p50/p95 latency (default: 20; 0: none)")
