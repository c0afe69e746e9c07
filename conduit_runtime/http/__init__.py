"""HTTP: the ASGI app (app.py), its routes, readiness (readiness.py), /metrics,
/openapi.json, and POST /predict in stages, each bounded and inside server.timeout_s:

    admit      admission.py  a running slot or a queue place before the body is read; else 429 at once
    read       body.py       the body streamed and limited; file parts spooled to disk
    parse      job.py        JSON or form fields → data, parameters, files   ┐ in a worker thread,
    run        job.py        the flow (async hooks and models on the loop)   │ off the event loop
    serialize  job.py        the envelope as JSON bytes                      ┘
    send       endpoint.py   one JSON answer, one log line, one metrics sample (events.py: SSE)

The Open Inference Protocol's infer (infer.py) runs the same stages; its probes and
metadata are v2_routes.py. Async predictions live a layer up (jobs/), handed in by
the process that assembles the server (async_work.py names what is needed of them).
"""
