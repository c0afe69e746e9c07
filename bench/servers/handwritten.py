"""(b) What a competent engineer writes by hand to serve one sklearn model:
Starlette + uvicorn, the model loaded once, an API key checked, the CPU work
(Pillow preprocessing and the sklearn call) in Starlette's thread pool so the
event loop keeps accepting requests.

    python bench/servers/handwritten.py iris|digits MODEL.pkl PORT
    (the API key comes from CONDUIT_API_KEY)
"""

from __future__ import annotations

import hmac
import io
import json
import os
import pickle
import sys

import numpy as np
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KIND, MODEL_PATH, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
KEY = os.environ.get("CONDUIT_API_KEY", "").encode()
with open(MODEL_PATH, "rb") as handle:
    MODEL = pickle.load(handle)  # our own model file


def unauthorized(request: Request) -> Response | None:
    if KEY and not hmac.compare_digest(request.headers.get("authorization", "").encode(), KEY):
        return JSONResponse({"error": "unauthorized"}, 401)
    return None


def predict_rows(rows: list[list[float]]) -> list[int]:
    return MODEL.predict(np.asarray(rows, dtype=np.float64)).tolist()


def predict_pngs(images: list[bytes]) -> list[int]:
    rows = []
    for data in images:
        image = Image.open(io.BytesIO(data)).convert("L").resize((8, 8), Image.BILINEAR)
        rows.append(np.asarray(image, dtype=np.float64).ravel() * 16 / 255)
    return [int(label) for label in MODEL.predict(np.stack(rows))]


async def predict_iris(request: Request) -> Response:
    if (denied := unauthorized(request)) is not None:
        return denied
    try:
        rows = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"error": "bad JSON"}, 400)
    return JSONResponse({"result": await run_in_threadpool(predict_rows, rows)})


async def predict_digits(request: Request) -> Response:
    if (denied := unauthorized(request)) is not None:
        return denied
    async with request.form() as form:
        images = [await upload.read() for upload in form.getlist("files")]
    if not images:
        return JSONResponse({"error": "send PNG file parts named 'files'"}, 400)
    return JSONResponse({"result": await run_in_threadpool(predict_pngs, images)})


async def ready(request: Request) -> Response:
    return JSONResponse({"status": "ready"})


app = Starlette(
    routes=[
        Route("/predict", predict_iris if KIND == "iris" else predict_digits, methods=["POST"]),
        Route("/ready", ready),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, workers=1, log_level="warning", access_log=False)
