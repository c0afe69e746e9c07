"""`conduit …`: commands only. Each handler parses nothing, calls one library
function, prints, and returns an exit status; `main()` alone turns a
ConduitError into `error: …` lines (tracebacks only with --debug)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import ConduitError, ConfigError, UsageError
from .schema import MODEL_TYPES
from .test_command import add_arguments as add_test_arguments

Handler = Callable[[argparse.Namespace], int]


def config_path(args: argparse.Namespace) -> str:
    return str(args.file or "conduit.yaml")


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


# -- commands ----------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import load

    project = load(config_path(args))
    stages = " → ".join(stage.type for stage in project.config.models)
    emit(args, {"ok": True, "name": project.name, "models": [s.type for s in project.config.models]},
         f"{config_path(args)}: ok ({project.name}: {stages})")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .scaffold import init

    written = init(Path(args.dir), args.type, force=args.force)
    emit(args, {"written": [str(p) for p in written]},
         "\n".join(f"wrote {p}" for p in written) + f"\nnext: cd {args.dir} && conduit validate && conduit serve")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from conduit_runtime.server import serve
    from conduit_runtime.spec import ServerSpec

    from .config import load

    project = load(config_path(args))
    spec = ServerSpec.from_dict(project.runtime_spec(), project.root)
    port = args.port or spec.port
    print(f"serving {project.name} on http://{args.host}:{port} (POST /predict; /ready once loaded)", file=sys.stderr)
    serve(spec, host=args.host, port=port)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .client import predict

    status, body = predict(args.url, config_path(args), args.json_data, args.files, args.key_env)
    print(json.dumps(body, indent=2) if isinstance(body, (dict, list)) else body)
    return 0 if status < 400 else 1


def cmd_render(args: argparse.Namespace) -> int:
    from .config import load
    from .render import render

    context = render(load(config_path(args)))
    if args.out:
        context.write(Path(args.out))
    emit(args, {"hash": context.hash, "out": args.out, "files": sorted(context.files)}, context.hash)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build_image
    from .config import load
    from .progress import printer

    built = build_image(load(config_path(args)), args.tag, args.no_cache, printer(args.json, args.quiet))
    if built.cached:
        message = f"{built.tag}: up to date (an image with context hash {built.context_hash[:12]} exists)"
    else:
        message = f"built {built.tag} ({built.image_id[:19]})"
    emit(args, {"tag": built.tag, "image_id": built.image_id, "context_hash": built.context_hash,
                "cached": built.cached, "event": "built"}, message)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .build import push_image
    from .config import load

    tag, digest = push_image(load(config_path(args)), args.tag)
    repository = tag.rpartition(":")[0]
    emit(args, {"tag": tag, "digest": digest, "reference": f"{repository}@{digest}"}, f"{repository}@{digest}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from .container import running_container
    from .test_command import cmd_test as run_test

    if not (args.image or args.url or args.local):
        # `conduit build && conduit test`: the image of the current context.
        from .build import default_tag
        from .config import load
        from .render import render

        project = load(config_path(args))
        args.image = default_tag(project, render(project).hash)
    return run_test(args, run_container=running_container)


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.target in ("kubernetes", "kserve"):
        from .deploy.kubernetes import cmd_deploy_kubernetes

        return cmd_deploy_kubernetes(args)
    from .config import load
    from .deploy import docker as docker_deploy

    project = load(config_path(args))
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    if args.rollback:
        running = docker_deploy.rollback(project, say)
    else:
        from .build import pushed_reference

        reference = args.image or pushed_reference(project)
        running = docker_deploy.deploy(project, reference, deploy_key(project, args.key_file), say)
    emit(args, asdict(running), f"{running.name}: {running.image} ready on port {running.port}")
    return 0


def deploy_key(project: Any, key_file: str | None) -> str:
    """The API key from the operator: a key file, or the variable named by server.api_key_env."""
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read the key file {key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get(project.config.server.api_key_env, "")
    if not key:
        raise UsageError("no API key to deploy with", f"set {project.config.server.api_key_env} or pass --key-file FILE")
    return key


def cmd_status(args: argparse.Namespace) -> int:
    from .config import load
    from .deploy.docker import status

    project = load(config_path(args))
    rows = status(project)
    host = project.config.deploy.docker.host or os.environ.get("DOCKER_HOST") or "the local Docker engine"
    lines = [f"on {host}:", f"{'NAME':32} {'STATE':9} {'READY':5} {'UPTIME':>8}  IMAGE"] + [
        f"{r.name:32} {r.state:9} {'yes' if r.ready else 'no':5} {int(r.uptime_s):>7}s  {r.image}" for r in rows
    ]
    emit(args, [asdict(r) for r in rows], "\n".join(lines) if rows else f"nothing of {project.name} runs on {host}")
    return 0


# -- the parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Build, test and ship model-serving containers.")
    add_common(parser, None)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str, predict_flags: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_common(sub, argparse.SUPPRESS, predict_flags)  # also accepted after the command
        sub.set_defaults(handler=handler)
        return sub

    sub = command("init", cmd_init, "write a working conduit.yaml and hooks skeleton")
    sub.add_argument("--type", default="sklearn_classifier", choices=MODEL_TYPES, help="model type")
    sub.add_argument("--force", action="store_true", help="overwrite existing files")
    sub.add_argument("dir", nargs="?", default=".", help="project folder (default: .)")

    command("validate", cmd_validate, "check conduit.yaml and the files it names")
    command("schema", cmd_schema, "print the JSON Schema of conduit.yaml")

    sub = command("render", cmd_render, "write the build context and print its content hash")
    sub.add_argument("-o", "--out", metavar="DIR", help="write the context here (default: only print the hash)")

    sub = command("build", cmd_build, "build the image through the Docker SDK, streaming progress")
    sub.add_argument("--tag", help="image tag (default: <image.repository or name>:<context hash[:12]>)")
    sub.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    sub.add_argument("-q", "--quiet", action="store_true", help="print only the result")

    sub = command("test", cmd_test, "contract-test the image (default), a URL, or a local server")
    add_test_arguments(sub)

    sub = command("push", cmd_push, "push the image to image.repository and print its digest")
    sub.add_argument("--tag", help="the image to push (default: the one built from the current context)")

    sub = command("deploy", cmd_deploy, "roll out: a Docker host (health-gated) or Kubernetes manifests")
    sub.add_argument("--target", required=True, choices=["docker", "kubernetes", "kserve"])
    sub.add_argument("--image", metavar="REF", help="repository@sha256:… (default: the pushed current build)")
    sub.add_argument("--rollback", action="store_true", help="docker: return to the previous version")
    sub.add_argument("--key-file", metavar="FILE", help="docker: read the API key from FILE (default: server.api_key_env)")
    sub.add_argument("--apply", action="store_true", help="kubernetes: kubectl apply the manifests")
    sub.add_argument("--out", metavar="DIR", help="kubernetes: write here instead of deploy.kubernetes.out")

    command("status", cmd_status, "what runs where: image digest, ready, uptime")

    sub = command("serve", cmd_serve, "run the model server in-process, no Docker")
    sub.add_argument("--port", type=int, help="port (default: server.port)")
    sub.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1; 0.0.0.0 for all)")

    sub = command("predict", cmd_predict, "send one request to a running server and print the answer", predict_flags=True)
    sub.add_argument("--url", help="server URL (default: http://127.0.0.1:<server.port>)")
    sub.add_argument("--json", dest="json_data", metavar="DATA", help="the data as JSON, or @file.json")
    sub.add_argument("--file", dest="files", action="append", default=[], metavar="F", help="a file to upload (repeat)")
    sub.add_argument("--key-env", help="variable holding the API key (default: server.api_key_env)")
    return parser


def add_common(parser: argparse.ArgumentParser, default: Any, predict_flags: bool = False) -> None:
    """-f/--file PATH and --json everywhere, except that `predict` uses --file and
    --json for the request (DESIGN §5): there the config is -f/--config."""
    config_flags = ("-f", "--config") if predict_flags else ("-f", "--file")
    parser.add_argument(*config_flags, dest="file", default=default, metavar="PATH", help="conduit.yaml (default: ./conduit.yaml)")
    if not predict_flags:
        parser.add_argument("--json", action="store_true", default=default, help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = bool(getattr(args, "json", False))
    try:
        return args.handler(args)
    except ConduitError as error:
        if args.debug:
            raise
        report(error, args.json)
        return error.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def report(error: ConduitError, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": False, "error": type(error).__name__, "problems": error.lines()}, indent=2))
    elif isinstance(error, ConfigError):
        for line in error.lines():  # already `file:line:col: key: text`, like a compiler's
            print(line, file=sys.stderr)
    else:
        for line in error.lines():
            print(f"error: {line}", file=sys.stderr)


def run() -> None:
    sys.exit(main())


__all__ = ["UsageError", "main", "run"]
