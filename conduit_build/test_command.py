"""`conduit test [--image I | --url U | --local] [--junit FILE] [--json]`:
bring a server up (or take one that runs), run the contract suite against it,
report, and exit 1 on any failure. The server is always stopped afterwards."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from .errors import ContractError, UsageError

if TYPE_CHECKING:  # the CLI imports this module for add_arguments: keep that cheap
    from .config import Project
    from .contract import Report

# (project, api_key, ready_timeout_s) → a context yielding the base URL of a ready server
Target = Callable[["Project", str | None, float], AbstractContextManager[str]]
# (image, project, api_key, ready_timeout_s) → the same, for a container of the image: it must
# pass the key at run time, wait for /ready (raising ContractError with the container's logs
# when it never gets ready) and remove the container on the way out, Ctrl-C included.
ContainerRunner = Callable[[str, "Project", str | None, float], AbstractContextManager[str]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `conduit test`; -f/--file and --json come from the CLI's common flags."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--image", metavar="I", help="run this image as a container and test it")
    where.add_argument("--url", metavar="U", help="test a server that already runs at this base URL")
    where.add_argument("--local", action="store_true", help="run `conduit serve` in a child process (no Docker) and test it")
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    parser.add_argument("--ready-timeout", type=float, default=120, metavar="S",
                        help="seconds to wait for /ready (default: 120)")
    parser.add_argument("--repeat", type=int, default=20, metavar="N",
                        help="timed calls per example for p50/p95 latency (default: 20)")


def api_key(project: Project, generate: bool) -> str | None:
    """The key from server.api_key_env; a random one when we start the server ourselves."""
    name = project.config.server.api_key_env
    key = os.environ.get(name) or None
    if key is None and generate:
        print(f"{name} is not set: using a random API key for this test run", file=sys.stderr)
        key = secrets.token_urlsafe(24)
    return key


@contextmanager
def running_at(url: str, ready_timeout_s: float) -> Iterator[str]:
    """A server someone else runs: only wait for it to get ready."""
    from .local import wait_until_ready

    base_url = url.rstrip("/").removesuffix("/predict")
    wait_until_ready(base_url, ready_timeout_s, exited=lambda: None, logs=None)
    yield base_url


def choose_target(args: argparse.Namespace, run_container: ContainerRunner | None) -> tuple[Target, str]:
    """What to test, and how to name it in the report."""
    from .local import local_server

    if args.url:
        url: str = args.url
        return (lambda _project, _key, timeout: running_at(url, timeout)), url
    if args.image:
        # --image: container mode, wired in with docker_engine (cli passes run_container).
        if run_container is None:
            raise UsageError("--image needs the Docker engine, which `conduit test` cannot use yet",
                             "test with --local or --url U")
        image: str = args.image
        return (lambda project, key, timeout: run_container(image, project, key, timeout)), f"image {image}"
    return (lambda project, key, timeout: local_server(project, key, timeout)), "conduit serve (local)"


def run_against(project: Project, target: Target, label: str, key: str | None, ready_timeout_s: float,
                 repeat: int) -> Report:
    from .contract import run_contract, startup_failure

    try:
        with target(project, key, ready_timeout_s) as base_url:
            return run_contract(project, base_url, key, repeat=repeat)
    except ContractError as never_ready:
        return startup_failure(project, label, never_ready.message)


def cmd_test(args: argparse.Namespace, run_container: ContainerRunner | None = None) -> int:
    from .config import load

    project = load(str(getattr(args, "file", None) or "conduit.yaml"))
    if args.repeat < 0:
        raise UsageError("--repeat must be 0 or more")
    target, label = choose_target(args, run_container)
    key = api_key(project, generate=not args.url)
    if not args.url:
        print(f"starting {label} for {project.name} …", file=sys.stderr)
    report = run_against(project, target, label, key, args.ready_timeout, args.repeat)
    if args.junit:
        report.to_junit(args.junit)
    print(json.dumps(report.to_dict(), indent=2) if getattr(args, "json", False) else report.render())
    return 0 if report.ok else 1


__all__ = ["ContainerRunner", "add_arguments", "cmd_test"]
