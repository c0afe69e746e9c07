"""(a) The HTTP floor: bare Starlette + uvicorn that parses the request body the
way /predict must (JSON, or multipart reading the file part) and answers a
constant. Nothing a model server could do is cheaper than this.

    python bench/servers/floor.py PORT
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"result":[0]}'


async def predict(request: Request) -> Response:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            for upload in form.getlist("files"):
                await upload.read()
            json.loads(form.get("data") or "[]")
    else:
        json.loads(await request.body())
    return Response(ANSWER, media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/ready", ready)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=1, log_level="warning", access_log=False)
