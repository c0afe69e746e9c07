"""`conduit predict`: one request to a running server, the way a user would send it."""

from __future__ import annotations

import json
import mimetypes
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from .errors import ConduitError, UsageError


def target(url: str | None, config_path: str) -> tuple[str, str]:
    """The /predict URL and the name of the variable holding the key."""
    port, key_env = 8000, "CONDUIT_API_KEY"
    if Path(config_path).is_file():
        from .config import load

        server = load(config_path).config.server
        port, key_env = server.port, server.api_key_env
    url = url or f"http://127.0.0.1:{port}"
    if not url.rstrip("/").endswith("/predict"):
        url = url.rstrip("/") + "/predict"
    return url, key_env


def read_data(text: str | None) -> Any:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--json is not valid JSON: {exc}", "quote it for the shell: --json '[[5.1, 3.5, 1.4, 0.2]]'") from None


def predict(url: str | None, config_path: str, data_text: str | None, files: list[str], key_env: str | None) -> tuple[int, Any]:
    url, default_env = target(url, config_path)
    key = os.environ.get(key_env or default_env, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = read_data(data_text)
    with ExitStack() as stack:
        try:
            if files:
                parts = [
                    ("files", (Path(name).name, stack.enter_context(open(name, "rb")), mimetypes.guess_type(name)[0] or "application/octet-stream"))
                    for name in files
                ]
                form = {"data": json.dumps(data if data is not None else [])}
                response = httpx.post(url, data=form, files=parts, headers=headers, timeout=300)
            else:
                if data is None:
                    raise UsageError("give --json DATA, --file F, or both")
                response = httpx.post(url, json=data, headers=headers, timeout=300)
        except OSError as exc:
            raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
        except httpx.HTTPError as exc:
            raise ConduitError(f"cannot reach {url}: {exc}", "is `conduit serve` (or the container) running?") from None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text
