"""`conduit predict [--json DATA] [--file F]... [-o DIR]`: one request to a running server; files in
the result (data URLs) are written into DIR with -o."""

from __future__ import annotations

import argparse
import json

from .output import config_path
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..seed.client import predict, save_outputs  # httpx: only for this command (`conduit serve` starts faster)

    status, body = predict(args.url, config_path(args), args.json_data, args.files, args.key_env)
    if args.output and status < 400:
        body = save_outputs(body, args.output)
    print(json.dumps(body, indent=2) if isinstance(body, (dict, list)) else body)
    return 0 if status < 400 else 1


def add(commands: Commands) -> None:
    sub = command(commands, "predict", run, "send one request to a running server and print the answer", predict_flags=True)
    sub.add_argument("--url", help="server URL (default: http://127.0.0.1:<server.port>)")
    sub.add_argument("--json", dest="json_data", metavar="DATA", help="the data as JSON, or @file.json")
    sub.add_argument("--file", dest="files", action="append", default=[], metavar="F", help="a file to upload (repeat)")
    sub.add_argument("-o", "--output", metavar="DIR", help="write files in the result (data URLs) into DIR")
    sub.add_argument("--key-env", help="variable holding the API key (default: server.api_key_env)")
