"""Readiness, told once for every probe that asks (/ready, /v2/health/ready and a V2
model's /ready): the model is loaded and warmed up, not draining, not wedged. With
several worker processes (server.workers) the pod is ready while at least one worker
is, whichever worker answers the probe: a worker that died is restarted after a
back-off (process/supervisor.py), and meanwhile the others serve."""

from __future__ import annotations

from ..errors import STARTUP_FAILED, NotReady
from ..model.service import DRAINING, Service
from .admission import Admission
from .peers import Peers

WEDGED = "every prediction slot is held by a call running past server.timeout_s"


def readiness(service: Service, admission: Admission, peers: Peers | None) -> NotReady | None:
    """None when ready; else why not, as a client may read it (the log says the rest)."""
    if service.draining:  # at once on SIGTERM, while predictions are still admitted (server.drain_delay_s)
        return NotReady(DRAINING)
    if not service.ready and (peers is None or not peers.any_ready()):
        # A start-up that failed will not get better: the code says so (deploy and
        # `conduit test` stop waiting at once), the message never says why (the log does).
        return NotReady(service.problem, STARTUP_FAILED if service.failed else None)
    if admission.wedged:
        return NotReady(WEDGED)
    return None
