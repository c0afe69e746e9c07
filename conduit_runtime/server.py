"""Run the app under uvicorn: the same call in a container and in `conduit serve`."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .spec import ServerSpec


def serve(spec: ServerSpec, host: str = "0.0.0.0", port: int | None = None) -> None:
    app = create_app(spec)
    uvicorn.run(
        app,
        host=host,
        port=port or spec.port,
        log_level="warning",
        access_log=False,  # one JSON line per prediction is logged by the app itself
        server_header=False,
        timeout_graceful_shutdown=10,
    )
