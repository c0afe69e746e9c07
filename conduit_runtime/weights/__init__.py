"""The model weights of an image built with `image.weights: separate` (issue 21; the format is in
the docstring of conduit_build/image/weights.py): an OCI artifact pinned by digest, fetched at start before any model loads.

    reference.py  CONDUIT_WEIGHTS=<registry>/<repository>@sha256:<hex>, parsed
    tree.py       a weights tree (conduit-weights.json + models/<path>): verified, and a layer
                  extracted into one safely
    registry.py   the registry client (httpcore): auth, manifest by digest, blobs streamed
    pull.py       an artifact pulled by digest into a folder, every blob checked on the way
    startup.py    what the server does at start: the tree of CONDUIT_WEIGHTS_DIR, or of the
                  cache, or pulled into the cache; verified; the active link pointed at it
    __main__.py   `python -m conduit_runtime.weights fetch --into DIR` (an init container)

Nothing here is imported by an image built with `bundled`, and httpcore only when a pull is needed:
a warm cache starts without the network and without the client.

Every failure is a WeightsError: one message naming the artifact and, where there is one, the
file; the server logs it as one `startup_failed` line (model/service.py), never a traceback.
"""

from __future__ import annotations

from typing import Any

# The environment the runtime reads.
WEIGHTS_ENV = "CONDUIT_WEIGHTS"  # <registry>/<repository>@sha256:<hex>: pull by digest
DIR_ENV = "CONDUIT_WEIGHTS_DIR"  # a mounted tree, used as is (read-only); wins over CONDUIT_WEIGHTS
CACHE_ENV = "CONDUIT_WEIGHTS_CACHE"  # where pulled trees are kept
ACTIVE_ENV = "CONDUIT_WEIGHTS_ACTIVE"  # the link the image's /app/P point through (tests set their own)
DEFAULT_CACHE = "/tmp/conduit-weights"
DEFAULT_ACTIVE = "/tmp/conduit-weights-active"


class WeightsError(Exception):
    """The weights cannot be had or do not match their pin: start-up fails for good."""

    def __init__(self, message: str, artifact: str = "", file: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.artifact = artifact
        self.file = file

    def record(self) -> dict[str, Any]:
        """The fields of its one log line."""
        return {"error": self.message, "artifact": self.artifact, **({"file": self.file} if self.file else {})}
