"""Readiness, told once for every probe that asks (/ready, /v2/health/ready and a V2
model's /ready): the model is loaded and warmed up, not draining, not wedged. With
several worker processes (server.workers) the pod is ready while at least one worker
is, whichever worker answers the probe: a worker that died is restarted after a
back-off (process/supervisor.py), and meanwhile the others serve. Liveness (/live):
the process is of use, unless a wedge lasted server.wedge_restart_s (a restart is
then the only way out: a thread cannot be stopped)."""

from __future__ import annotations

import time

from ..errors import STARTUP_FAILED, NotReady
from ..model.service import DRAINING, Service
from .admission import Admission
from .peers import Peers

WEDGED = "every model thread (or a batched stage's call) runs past its requests' deadline (server.timeout_s)"


def readiness(service: Service, admission: Admission, peers: Peers | None) -> NotReady | None:
    """None when ready; else why not, as a client may read it (the log says the rest)."""
    if service.draining:  # at once on SIGTERM, while predictions are still admitted (server.drain_delay_s)
        return NotReady(DRAINING)
    if not service.ready and (peers is None or not peers.any_ready()):
        # A start-up that failed will not get better: the code says so (deploy and
        # `conduit test` stop waiting at once), the message never says why (the log does).
        return NotReady(service.problem, STARTUP_FAILED if service.failed else None)
    if wedged(service, admission):
        return NotReady(WEDGED, "wedged")
    return None


def liveness(service: Service, admission: Admission) -> NotReady | None:
    """None while the process is of use; a wedge that lasted server.wedge_restart_s: restart it."""
    if not wedged(service, admission):
        return None
    since = admission.wedged_since
    lasted = time.monotonic() - since if since is not None else 0.0
    if lasted < service.spec.wedge_restart_s:
        return None
    return NotReady(f"wedged for {lasted:.0f} s (server.wedge_restart_s = {service.spec.wedge_restart_s:g}): "
                    "restart the server", "wedged")


def wedged(service: Service, admission: Admission) -> bool:
    """Every model thread, or a batched stage's call, runs past its requests' deadline."""
    flow = service.flow
    now = admission.threads_wedged or (flow is not None and any(batcher.overdue for batcher in flow.batchers))
    admission.note_wedge(now)
    return now
