"""Calling a running model: `conduit predict`, and `model_api_request` for Python.

    from conduit import model_api_request
    model_api_request("http://127.0.0.1:8000/predict", ["a"], "KEY", files=["three.png"])
    # → {"result": [...], "run_id": "…", "run_time_ms": …, "prediction_ids": [...]}

Files are sent as the seed's curl sends them (a `data` JSON field, then one
`files` part each); they may be paths, bytes, binary file objects or PIL images.
"""

from __future__ import annotations

import base64
import io
import json
import mimetypes
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from ..errors import ConduitError, UsageError


class PredictionError(ConduitError):
    """A prediction was refused or failed: the server's status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def target(url: str | None, config_path: str) -> tuple[str, str]:
    """The /predict URL and the name of the variable holding the key."""
    port, key_env = 8000, "CONDUIT_API_KEY"
    if Path(config_path).is_file():
        from ..config import load

        server = load(config_path).config.server
        port, key_env = server.port, server.api_key_env
    return predict_url(url or f"http://127.0.0.1:{port}"), key_env


def predict_url(url: str) -> str:
    """A server's base URL or its /predict URL → the /predict URL."""
    return url if url.rstrip("/").endswith("/predict") else url.rstrip("/") + "/predict"


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


def save_outputs(answer: Any, folder: str | Path) -> Any:
    """Write every data URL in an answer's result to a file in `folder` (output-0.png, …)
    and put the file's path in its place; the rest of the answer is left as it is."""
    folder = Path(folder)
    count = 0

    def visit(value: Any) -> Any:
        nonlocal count
        if isinstance(value, str) and value.startswith("data:") and ";base64," in value:
            media_type, _, encoded = value[5:].partition(";base64,")
            try:
                content = base64.b64decode(encoded, validate=True)
            except ValueError:
                return value
            suffix = mimetypes.guess_extension(media_type) or ".bin"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"output-{count}{suffix}"
            count += 1
            path.write_bytes(content)
            return str(path)
        if isinstance(value, list):
            return [visit(item) for item in value]
        if isinstance(value, dict):
            return {key: visit(item) for key, item in value.items()}
        return value

    if isinstance(answer, dict) and "result" in answer:
        return {**answer, "result": visit(answer["result"])}
    return answer


# -- the Python client -----------------------------------------------------------------

SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "TIFF": ".tiff", "BMP": ".bmp"}


def image_file(item: Any, index: int) -> tuple[str, bytes, str] | None:
    """A PIL image as a file in its own format (PNG when it has none, or Pillow cannot
    write that one): (name, bytes, content type); None for anything else."""
    if not type(item).__module__.startswith("PIL.") or not hasattr(item, "save"):
        return None
    from PIL import Image

    kind = item.format or "PNG"
    buffer = io.BytesIO()
    try:
        item.save(buffer, format=kind)
    except (OSError, KeyError, ValueError):  # a read-only format (e.g. an .ico opened as such)
        kind, buffer = "PNG", io.BytesIO()
        item.save(buffer, format=kind)
    original = Path(getattr(item, "filename", "") or f"file{index}")
    suffix = original.suffix if Image.registered_extensions().get(original.suffix.lower()) == kind else \
        SUFFIXES.get(kind, f".{kind.lower()}")
    return f"{original.stem}{suffix}", buffer.getvalue(), Image.MIME.get(kind, "application/octet-stream")


def as_upload(item: Any, index: int) -> Any:
    """One of `files` as the server hands it to hooks (an UploadedFile): a path, bytes, a
    binary file object or a PIL image."""
    from conduit_runtime.files import UploadedFile
    from conduit_runtime.files import as_upload as runtime_upload

    image = image_file(item, index)
    if image is not None:
        name, data, content_type = image
        return UploadedFile(io.BytesIO(data), name, content_type)
    try:
        return runtime_upload(item, index)
    except TypeError:
        raise UsageError(f"files[{index}] is a {type(item).__name__}",
                         "give a path, bytes, a binary file object (open(..., 'rb')) or a PIL image") from None
    except OSError as exc:
        raise UsageError(f"files[{index}]: cannot read {exc.filename}: {exc.strerror}") from None


def file_list(files: Any) -> list[Any]:
    """`files` as a list: one path, bytes, file or image given alone is a list of one."""
    if files is None:
        return []
    one = isinstance(files, (str, bytes, bytearray, os.PathLike)) or hasattr(files, "read") or hasattr(files, "save")
    return [files] if one else list(files)


def model_api_request(endpoint: str, data: Any, api_key: str | None = None, files: Sequence[Any] | None = None,
                      timeout: float = 300) -> dict[str, Any]:
    """POST `data` (and `files`, as a form) to a model's /predict; the envelope it answers with.

    Raises PredictionError with the server's status, code and message when it refuses."""
    url = predict_url(endpoint)
    key = api_key if api_key is not None else os.environ.get("CONDUIT_API_KEY")
    headers = {"Authorization": key} if key else {}
    uploads = [as_upload(item, index) for index, item in enumerate(file_list(files))]
    try:
        if uploads:
            parts: list[tuple[str, Any]] = [("data", (None, json.dumps(data)))]
            parts += [("files", (upload.name, upload, upload.content_type)) for upload in uploads]
            response = httpx.post(url, files=parts, headers=headers, timeout=timeout)
        else:
            response = httpx.post(url, json=data, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConduitError(f"cannot reach {url}: {exc}", "is the model deployed and running there?") from None
    except TypeError as exc:  # data that JSON cannot carry
        raise UsageError(f"data cannot be sent as JSON: {exc}", "send lists, dicts, strings and numbers") from None
    finally:
        for upload in uploads:
            upload.close()
    try:
        body = response.json()
    except ValueError:
        raise PredictionError(response.status_code, "not_json", response.text[:200]) from None
    if response.status_code >= 400 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise PredictionError(response.status_code, str(error.get("code")), str(error.get("message")))
        raise PredictionError(response.status_code, "unexpected_answer", json.dumps(body)[:200])
    return body
