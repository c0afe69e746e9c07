"""`async: true` examples of `conduit test`: submit with `Prefer: respond-async`, expect
202 and its shape, poll `GET /predictions/{id}` until the prediction ended, and hand back
the prediction object, which then is checked like a synchronous answer."""

from __future__ import annotations

import time
from typing import Any

from .calls import HEX32, CheckFailed, Client, Variant, body_of, expect_status, is_uuid

ENDED = ("succeeded", "failed", "canceled")
POLL_S = 0.2


def submit_and_poll(client: Client, variant: Variant, timeout_s: float) -> tuple[dict[str, Any], str]:
    """The ended prediction object and its text; CheckFailed when the server strays from the contract."""
    accepted = client.send(variant, {"Prefer": "respond-async"})
    expect_status(accepted, 202, "an async example is submitted with 'Prefer: respond-async'")
    body = body_of(accepted)
    if not (isinstance(body, dict) and body.get("status") == "starting" and is_uuid(body.get("run_id"))
            and isinstance(body.get("id"), str) and HEX32.match(body["id"])
            and isinstance(body.get("urls"), dict) and isinstance(body["urls"].get("get"), str)):
        raise CheckFailed("202 without {id, status: starting, run_id, urls: {get, cancel}}", accepted.text[:2000])
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.http.get(body["urls"]["get"], headers=client.auth())
        expect_status(answer, 200, f"GET {body['urls']['get']}")
        prediction = body_of(answer)
        if prediction.get("status") in ENDED:
            break
        if time.monotonic() > deadline:
            raise CheckFailed(f"still {prediction.get('status')!r} after {timeout_s:g} s of polling")
        time.sleep(POLL_S)
    if prediction["status"] != "succeeded" or prediction.get("run_id") != body["run_id"]:
        error = prediction.get("error") or {}
        raise CheckFailed(f"the prediction {prediction['status']}: {error.get('code')}: {error.get('message')}"
                          if error else f"the prediction {prediction['status']}", answer.text[:2000])
    return prediction, answer.text

