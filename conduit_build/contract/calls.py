"""How the suite talks to a server: each example as JSON and as a form, an httpx
client with the key, and readings of answers (envelopes, error bodies, expectations).
A check that finds a problem raises CheckFailed (or CheckSkipped) with one line."""

from __future__ import annotations

import json
import mimetypes
import re
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx

from ..config.schema import TestCase

HEX32 = re.compile(r"^[0-9a-f]{32}$")


class CheckFailed(Exception):
    def __init__(self, reason: str, details: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class CheckSkipped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Variant:
    """One example sent one way: as a JSON body or as a multipart form."""

    example: str
    kind: Literal["json", "form", "v2"]
    body: Any = None  # the JSON body (json)
    fields: dict[str, str] = field(default_factory=dict)  # form fields, already JSON text (form)
    files: tuple[Path, ...] = ()  # file parts in order (form)
    skip_reason: str = ""
    stream: bool = False  # asks for Server-Sent Events (`stream: true`)

    @property
    def name(self) -> str:
        return f"example {self.example} ({self.kind}{', events' if self.stream else ''})"


def split_data(value: Any) -> tuple[Any, Any]:
    """(data, parameters) of an example: a `{data, parameters}` object or the bare data."""
    if isinstance(value, dict) and "data" in value:
        return value["data"], value.get("parameters")
    return value, None


def as_fields(data: Any, parameters: Any) -> dict[str, str]:
    fields = {} if data is None else {"data": json.dumps(data)}
    if parameters is not None:
        fields["parameters"] = json.dumps(parameters)
    return fields


def variants(case: TestCase, root: Path) -> list[Variant]:
    """Every example as JSON and as multipart, where the other form can say the same;
    an Open Inference Protocol request as itself; each asking for events when the example says
    `stream: true`."""
    if case.v2 is not None:
        return [Variant(case.name, "v2", body=case.v2)]
    made = _variants(case, root)
    return [replace(variant, stream=True) for variant in made] if case.stream else made


def _variants(case: TestCase, root: Path) -> list[Variant]:
    if case.form is None:
        return [
            Variant(case.name, "json", body=case.json_),
            Variant(case.name, "form", fields=as_fields(*split_data(case.json_))),
        ]
    data, parameters = split_data(case.form.data)
    form = Variant(case.name, "form", fields=as_fields(data, parameters), files=tuple(root / f for f in case.form.files))
    if case.form.files:
        return [form, Variant(case.name, "json", skip_reason="the example uploads files, which JSON cannot carry")]
    body = {"data": data if data is not None else [], **({"parameters": parameters} if parameters is not None else {})}
    return [form, Variant(case.name, "json", body=body)]


class Client:
    """httpx with the base URL, the key and a request timeout."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float, model: str = "") -> None:
        self.api_key = api_key
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.infer_path = f"/v2/models/{model}/infer"  # V2 examples

    def auth(self) -> dict[str, str]:
        return {"Authorization": self.api_key} if self.api_key else {}

    def send(self, variant: Variant, headers: dict[str, str] | None = None, with_key: bool = True) -> httpx.Response:
        headers = {**(self.auth() if with_key else {}), **(headers or {})}
        if variant.kind == "json":
            return self.http.post("/predict", json=variant.body, headers=headers)
        if variant.kind == "v2":
            return self.http.post(self.infer_path, json=variant.body, headers=headers)
        # (None, text) parts are plain fields: httpx then always sends multipart, even without files
        parts: list[tuple[str, Any]] = [(name, (None, text)) for name, text in variant.fields.items()]
        with_files = [(p, p.open("rb")) for p in variant.files]
        try:
            parts += [("files", (p.name, handle, guess_type(p))) for p, handle in with_files]
            return self.http.post("/predict", files=parts, headers=headers)
        finally:
            for _, handle in with_files:
                handle.close()

    def close(self) -> None:
        self.http.close()


def guess_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CheckFailed(f"{response.status_code} with a body that is not JSON", response.text[:2000]) from None


def error_of(response: httpx.Response) -> dict[str, Any] | None:
    """The `{"code", "message"}` of an error envelope, or None when the body is something else."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    ok = isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
    return error if ok else None


def describe(response: httpx.Response) -> str:
    """`500 model_error: <message>` for an error envelope, else the status and the start of the body."""
    error = error_of(response)
    if error is not None:
        return f"{response.status_code} {error['code']}: {error['message']}"
    return f"{response.status_code}: {response.text[:200]!r}"


def expect_status(response: httpx.Response, status: int, hint: str = "") -> None:
    if response.status_code != status:
        # the whole body as details only where the one-line reason could not say it all
        details = "" if error_of(response) is not None else response.text[:2000]
        raise CheckFailed(f"expected {status}, got {describe(response)}" + (f" ({hint})" if hint else ""), details)


def expect_error(response: httpx.Response, status: int) -> str:
    """The status and the error envelope `{"error": {"code", "message"}, "run_id"}`; its code."""
    expect_status(response, status)
    error = error_of(response)
    if error is None:
        raise CheckFailed(f"{status} without an error envelope {{error: {{code, message}}}}", response.text[:2000])
    run_id = response.json().get("run_id")
    if not is_uuid(run_id):
        raise CheckFailed(f"{status} error envelope without a UUID run_id: {run_id!r}")
    return str(error["code"])


def is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and uuid.UUID(value) is not None
    except ValueError:
        return False


# -- envelope and expectation -------------------------------------------------------------


def envelope_problem(body: Any) -> str | None:
    """What is wrong with a 200 envelope, or None."""
    if not isinstance(body, dict):
        return f"the body is a {type(body).__name__}, not an object"
    result, ids, run_time = body.get("result"), body.get("prediction_ids"), body.get("run_time_ms")
    if not isinstance(result, list):
        return f"result is a {type(result).__name__}, not a list"
    if not is_uuid(body.get("run_id")):
        return f"run_id {body.get('run_id')!r} is not a UUID"
    if isinstance(run_time, bool) or not isinstance(run_time, (int, float)) or not run_time >= 0:
        return f"run_time_ms {run_time!r} is not a number ≥ 0"
    if not isinstance(ids, list) or len(ids) != len(result):
        return f"prediction_ids should be a list of {len(result)} (one per result row), got {ids!r}"[:300]
    bad = [i for i in ids if not isinstance(i, str) or not HEX32.match(i)]
    if bad:
        return f"prediction id {bad[0]!r} is not 32 lowercase hex digits"
    if len(set(ids)) != len(ids):
        return "prediction_ids are not unique"
    return None


def v2_answer_problem(body: Any, model: str) -> str | None:
    """What is wrong with an Open Inference Protocol infer answer, or None."""
    if not isinstance(body, dict):
        return f"the body is a {type(body).__name__}, not an object"
    if body.get("model_name") != model:
        return f"model_name {body.get('model_name')!r}, expected {model!r}"
    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        return "no outputs[]"
    for output in outputs:
        if not isinstance(output, dict) or not {"name", "datatype", "shape"} <= set(output):
            return f"an output without name, datatype and shape: {output!r}"[:300]
    parameters = body.get("parameters") or {}
    if not is_uuid(parameters.get("run_id")):
        return f"parameters.run_id {parameters.get('run_id')!r} is not a UUID"
    ids = str(parameters.get("prediction_ids", "")).split(",")
    if not all(HEX32.match(i) for i in ids):
        return f"parameters.prediction_ids {parameters.get('prediction_ids')!r} are not 32-hex ids"
    return None


def mismatch(actual: Any, expected: Any, tolerance: float | None, where: str = "result") -> str | None:
    """The first difference between two JSON values, or None. Numbers may differ by `tolerance`."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if actual is expected else f"{where}: got {actual!r}, expected {expected!r}"
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        close = abs(actual - expected) <= tolerance if tolerance is not None else actual == expected
        within = f" (tolerance {tolerance})" if tolerance is not None else ""
        return None if close else f"{where}: got {actual!r}, expected {expected!r}{within}"
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return f"{where}: got {len(actual)} items, expected {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            problem = mismatch(a, e, tolerance, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(actual) != set(expected):
            return f"{where}: keys {sorted(actual)} ≠ expected {sorted(expected)}"
        for key in expected:
            problem = mismatch(actual[key], expected[key], tolerance, f"{where}.{key}")
            if problem:
                return problem
        return None
    return None if actual == expected else f"{where}: got {actual!r}, expected {expected!r}"

