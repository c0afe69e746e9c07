"""Readiness, told once for every probe that asks (/ready, /v2/health/ready and a V2
model's /ready): the model is loaded and warmed up, not draining, not wedged, and
every worker process of the server (server.workers) is ready too."""

from __future__ import annotations

from ..errors import STARTUP_FAILED, NotReady
from ..model.service import Service
from .admission import Admission
from .peers import Peers

WEDGED = "every prediction slot is held by a call running past server.timeout_s"


def readiness(service: Service, admission: Admission, peers: Peers | None) -> NotReady | None:
    """None when ready; else why not, as a client may read it (the log says the rest)."""
    if not service.ready:
        # A start-up that failed will not get better: the code says so (deploy and
        # `conduit test` stop waiting at once), the message never says why (the log does).
        return NotReady(service.problem, STARTUP_FAILED if service.failed else None)
    if admission.wedged:
        return NotReady(WEDGED)
    if peers is not None and not peers.all_ready():
        return NotReady(peers.problem())
    return None
