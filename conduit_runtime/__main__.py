"""`python -m conduit_runtime conduit.json [--host H] [--port P]`: the image's entry point."""

import argparse

from .server import serve
from .spec import ServerSpec

parser = argparse.ArgumentParser(prog="python -m conduit_runtime")
parser.add_argument("spec", help="the resolved conduit.json written by the build tool")
parser.add_argument("--host", default="0.0.0.0")
parser.add_argument("--port", type=int)
args = parser.parse_args()
serve(ServerSpec.from_file(args.spec), args.host, args.port)
