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
from ..http.body import UNPARSED, Body
from ..wire.predict import parse_body

NAMES = ("webhook", "webhook_endpoint")
EVENTS = ("start", "output", "completed")
FILTER = "webhook_events_filter"
_OBJECT = re.compile(rb"[ \t\r\n]*\{")


def may_name_webhook(body: Body) -> bool:
    """Cheap enough for every request: a list body (the common case) is decided by one
    byte; only an object that holds the word is parsed (names_webhook) to look at its keys."""
    if body.json is not None:
        first = body.json[:1]
        if first == b"[":
            return False
        return (first == b"{" or _OBJECT.match(body.json) is not None) and b'"webhook' in body.json
    return any(name in body.fields for name in NAMES)


def top_level(body: Body) -> Any:
    """A form's fields, or a JSON object body's members (parsed here, once: the value is kept
    on the body for the worker); {} for anything else, bad JSON too (the worker reports it)."""
    if body.json is None:
        return body.fields
    if body.payload is UNPARSED and _OBJECT.match(body.json):
        try:
            body.payload = parse_body(body.json)
        except BadRequest:
            return {}
    return body.payload if isinstance(body.payload, dict) else {}


def names_webhook(body: Body) -> bool:
    """The body names a webhook at its top level (in a worker thread: it may parse the body)."""
    return webhook_url(top_level(body)) is not None


def webhook_url(source: Any) -> Any:
    return next((source[name] for name in NAMES if source.get(name) is not None), None)


def webhook_options(body: Body) -> tuple[str | None, list[str]]:
    """The webhook URL (None: none) and the events to send, checked."""
    source = top_level(body)
    events: Any = source.get(FILTER)
    if body.json is None and isinstance(events, str):
        events = parse_list(events)
    url = webhook_url(source)
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
