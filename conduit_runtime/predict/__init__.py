"""POST /predict, in stages, each bounded and inside server.timeout_s:

    admit      admission.py  a running slot or a queue place before the body is read; else 429 at once
    read       body.py       the body streamed and limited; file parts spooled to disk
    parse      job.py        JSON or form fields → data, parameters, files   ┐ in a worker thread,
    run        job.py        the flow (async hooks and models on the loop)   │ off the event loop
    serialize  job.py        the envelope as JSON bytes                      ┘
    send       endpoint.py   one JSON answer, one log line, one metrics sample
"""

from .endpoint import PredictEndpoint

__all__ = ["PredictEndpoint"]
