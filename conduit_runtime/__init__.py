"""Conduit's model server: the runtime that goes into every image, and its public face
for user code (`cancelled`, `InputRejected`, `UploadedFile`).

Layers, each importing only those below it (tests/unit/test_layers.py holds them):

    process/   the server processes: draining server, worker supervisor, worker entry
    jobs/      async predictions, their stores (memory, Redis) and webhooks
    http/      the ASGI app, routes, readiness, metrics, OpenAPI, the endpoints' stages
    wire/      the /predict JSON and form protocol, V2 tensors, file outputs
    model/     flows, stages, calls and locks, batching, user code, loaders
    (leaves)   errors, log, spec, cancellation, files: the public face and what all share

At start-up the server imports Starlette, uvicorn, python-multipart and
prometheus-client; httpcore and standardwebhooks only once a webhook secret is set,
redis only with `server.async_store: redis://…`, the model libraries in their
loaders. Nothing from the build tool, Docker, Jinja or pydantic.
"""

from .cancellation import cancelled
from .errors import InputRejected
from .files import UploadedFile

__all__ = ["InputRejected", "UploadedFile", "cancelled"]
