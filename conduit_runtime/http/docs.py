"""GET /docs: Swagger UI over /openapi.json, to try the model from a browser (as BentoML, Cog,
KServe and LitServe offer). The page and its two assets come from the packaged copy of
swagger-ui-dist that `swagger-ui-bundle-v2` ships (pinned in requirements.txt): no CDN, since
images run offline. The API key is entered once, through "Authorize" (the apiKey security
scheme of /openapi.json), and kept across reloads. Off with `server.docs: false`.

Every URL on the page is relative (`docs/…`, `openapi.json`), so the page also works behind
a proxy that serves the model under a path prefix.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import NotFound
from ..log import log
from .responses import error_response

PACKAGE = "swagger_ui_bundle"
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} · Conduit</title>
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png">
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      tryItOutEnabled: true,
    }});
  </script>
</body>
</html>
"""


@cache
def assets() -> Path:
    """The folder of swagger-ui-dist's files (imported at the first page, not at start-up)."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def docs_routes(title: str) -> list[BaseRoute]:
    """/docs and its assets; none, with a warning, where the package is not installed."""
    if importlib.util.find_spec(PACKAGE) is None:
        log({"event": "warning", "message": f"/docs is off: {PACKAGE} is not installed (pip install swagger-ui-bundle-v2)"})
        return []
    page = PAGE.format(title=title).encode()

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return error_response(NotFound(f"no route {request.url.path}; the page is GET /docs"))
        return FileResponse(assets() / name, media_type=ASSETS[name],
                            headers={"cache-control": "public, max-age=86400"})

    return [Route("/docs", docs, methods=["GET"]), Route("/docs/{name}", asset, methods=["GET"])]
