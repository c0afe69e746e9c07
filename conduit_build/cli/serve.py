"""`conduit serve [--port P]`: the same server in-process, no Docker. With --debug the
server puts exception details into its 500 bodies (local development only)."""

from __future__ import annotations

import argparse

from .output import note, project
from .parser import Commands, command, port


def run(args: argparse.Namespace) -> int:
    from conduit_runtime.process.server import serve
    from conduit_runtime.spec import ServerSpec

    loaded = project(args)
    spec = ServerSpec.from_dict(loaded.runtime_spec(), loaded.root)
    port = args.port or spec.port
    note(f"serving {loaded.name} on http://{args.host}:{port} (POST /predict; /ready once loaded)")
    serve(spec, host=args.host, port=port, debug=args.debug)
    return 0


def add(commands: Commands) -> None:
    sub = command(commands, "serve", run, "run the model server in-process, no Docker")
    sub.add_argument("--port", type=port, help="port (default: server.port)")
    sub.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1; 0.0.0.0 for all)")
