"""What a request says about its webhook: `webhook` (or the original Conduit's
`webhook_endpoint`), a URL, and `webhook_events_filter`, a list of `start`,
`output`, `completed` (default: `completed`), as keys of a JSON object body or
as form fields (the filter as a JSON list or comma-separated).

A request that names a webhook is asynchronous (202), as if it sent
`Prefer: respond-async`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from ..errors import BadRequest
from ..http.body import Body

NAMES = ("webhook", "webhook_endpoint")
EVENTS = ("start", "output", "completed")
FILTER = "webhook_events_filter"
_OBJECT = re.compile(rb"[ \t\r\n]*\{")


def names_webhook(body: Body) -> bool:
    """Cheap enough for every request: a list body (the common case) is never searched."""
    if body.json is not None:
        first = body.json[:1]
        if first == b"[":  # a list: the common case, decided by one byte
            return False
        return (first == b"{" or _OBJECT.match(body.json) is not None) and b'"webhook' in body.json
    return any(name in body.fields for name in NAMES)


def webhook_options(body: Body) -> tuple[str | None, list[str]]:
    """The webhook URL (None: none) and the events to send, checked."""
    if body.json is not None:
        payload: Any = None
        if _OBJECT.match(body.json):
            try:
                payload = json.loads(body.json)
            except ValueError:
                payload = None  # the worker reports bad JSON, as for any request
        source = payload if isinstance(payload, dict) else {}
        events: Any = source.get(FILTER)
    else:
        source = body.fields
        events = body.fields.get(FILTER)
        if isinstance(events, str):
            events = parse_list(events)
    url = next((source[name] for name in NAMES if source.get(name) is not None), None)
    if url is None:
        return None, []
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise BadRequest("webhook must be an http:// or https:// URL", "bad_webhook")
    return url, check_events(events)


def parse_list(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise BadRequest(f"{FILTER} is not valid JSON", "bad_webhook") from None
    return [part.strip() for part in text.split(",") if part.strip()]


def check_events(events: Any) -> list[str]:
    if events is None:
        return ["completed"]
    if not isinstance(events, list) or not all(isinstance(e, str) and e in EVENTS for e in events):
        raise BadRequest(f"{FILTER} must be a list of {', '.join(EVENTS)}", "bad_webhook")
    return sorted(set(events), key=EVENTS.index)
