"""The contract suite behind `conduit test` (DESIGN §3), run over real HTTP.

A suite is a list of small named checks. Each check sends one or a few
requests and either returns a one-line reason for passing, or raises
`CheckFailed` / `CheckSkipped` with a one-line reason. `run_contract` runs
them all (a failure never stops the others) and times the examples for a
p50/p95 latency; the `Report` renders for people, as JSON and as JUnit XML.
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from .config import Project
from .schema import TestCase

Status = Literal["pass", "fail", "skip"]
HEX32 = re.compile(r"^[0-9a-f]{32}$")
# One Prometheus sample line: name{labels} value [timestamp]
PROMETHEUS_SAMPLE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*(\{.*\})?\s+\S+(\s+-?\d+)?$")
CHUNK = b"\0" * (1 << 20)


class CheckFailed(Exception):
    def __init__(self, reason: str, details: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class CheckSkipped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the report -----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str  # one line
    seconds: float = 0.0
    details: str = ""  # optional longer text: a response body, a log tail


def percentile(samples: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Report:
    project: str
    target: str
    results: list[CheckResult] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)  # successful timed /predict calls

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def p50_ms(self) -> float | None:
        return round(percentile(self.latency_ms, 0.50), 3) if self.latency_ms else None

    @property
    def p95_ms(self) -> float | None:
        return round(percentile(self.latency_ms, 0.95), 3) if self.latency_ms else None

    def summary(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return f"{verdict}: {self.count('pass')} passed, {self.count('fail')} failed, {self.count('skip')} skipped"

    def render(self) -> str:
        width = max((len(r.name) for r in self.results), default=0)
        lines = [f"contract test of {self.project} at {self.target}"]
        for result in self.results:
            lines.append(f"  {result.status.upper():4}  {result.name:<{width}}  {result.reason}")
            if result.details and result.status == "fail":
                lines.extend(f"        | {line}" for line in result.details.splitlines())
        if self.latency_ms:
            lines.append(f"latency: p50 {self.p50_ms} ms, p95 {self.p95_ms} ms over {len(self.latency_ms)} requests")
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "project": self.project,
            "target": self.target,
            "passed": self.count("pass"),
            "failed": self.count("fail"),
            "skipped": self.count("skip"),
            "checks": [
                {"name": r.name, "status": r.status, "reason": r.reason, "seconds": round(r.seconds, 4),
                 **({"details": r.details} if r.details else {})}
                for r in self.results
            ],
            "latency_ms": {"p50": self.p50_ms, "p95": self.p95_ms, "requests": len(self.latency_ms)},
        }

    def to_junit(self, path: str | Path) -> None:
        suite = ET.Element("testsuite", {
            "name": f"conduit contract: {self.project}",
            "tests": str(len(self.results)),
            "failures": str(self.count("fail")),
            "errors": "0",
            "skipped": str(self.count("skip")),
            "time": f"{sum(r.seconds for r in self.results):.3f}",
        })
        properties = ET.SubElement(suite, "properties")
        for name, value in (("target", self.target), ("latency_p50_ms", self.p50_ms), ("latency_p95_ms", self.p95_ms)):
            ET.SubElement(properties, "property", {"name": name, "value": "" if value is None else str(value)})
        for result in self.results:
            case = ET.SubElement(suite, "testcase", {
                "classname": f"conduit.contract.{self.project}", "name": result.name, "time": f"{result.seconds:.3f}",
            })
            if result.status == "fail":
                ET.SubElement(case, "failure", {"message": result.reason}).text = result.details or result.reason
            elif result.status == "skip":
                ET.SubElement(case, "skipped", {"message": result.reason})
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def startup_failure(project: Project, target: str, message: str) -> Report:
    """The report when the server never got ready: one failed check, the log as details."""
    first, _, rest = message.partition("\n")
    return Report(project.name, target, [CheckResult("server gets ready", "fail", first, details=rest.strip())])


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One example sent one way: as a JSON body or as a multipart form."""

    example: str
    kind: Literal["json", "form"]
    body: Any = None  # the JSON body (json)
    fields: dict[str, str] = field(default_factory=dict)  # form fields, already JSON text (form)
    files: tuple[Path, ...] = ()  # file parts in order (form)
    skip_reason: str = ""

    @property
    def name(self) -> str:
        return f"example {self.example} ({self.kind})"


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
    """Every example as JSON and as multipart, where the other form can say the same."""
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

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float) -> None:
        self.api_key = api_key
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def auth(self) -> dict[str, str]:
        return {"Authorization": self.api_key} if self.api_key else {}

    def send(self, variant: Variant, headers: dict[str, str] | None = None, with_key: bool = True) -> httpx.Response:
        headers = {**(self.auth() if with_key else {}), **(headers or {})}
        if variant.kind == "json":
            return self.http.post("/predict", json=variant.body, headers=headers)
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


# -- the checks ---------------------------------------------------------------------------


@dataclass
class Suite:
    """What every check needs: the client, the project, and the examples that worked."""

    client: Client
    project: Project
    passed_variants: list[Variant] = field(default_factory=list)

    @property
    def key_env(self) -> str:
        return self.project.config.server.api_key_env

    def require_key(self) -> str:
        if not self.client.api_key:
            raise CheckSkipped(f"no API key given (set {self.key_env} to check auth)")
        return self.client.api_key

    def a_request(self) -> Variant:
        """A request the server accepts, for checks about something else (auth, ids)."""
        if self.passed_variants:
            return self.passed_variants[0]
        raise CheckSkipped("no example passed, so there is no request known to succeed")


Check = Callable[[Suite], str]


def check_health(suite: Suite) -> str:
    expect_status(suite.client.http.get("/health"), 200)
    return "200"


def check_ready(suite: Suite) -> str:
    expect_status(suite.client.http.get("/ready"), 200)
    return "200"


def check_openapi(suite: Suite) -> str:
    response = suite.client.http.get("/openapi.json")
    expect_status(response, 200)
    document = body_of(response)
    if not isinstance(document, dict) or "openapi" not in document:
        raise CheckFailed("not an OpenAPI document (no 'openapi' key)")
    if "/predict" not in (document.get("paths") or {}):
        raise CheckFailed("the document has no /predict path")
    return f"OpenAPI {document['openapi']} with /predict"


def check_metrics(suite: Suite) -> str:
    response = suite.client.http.get("/metrics")
    expect_status(response, 200)
    if not response.headers.get("content-type", "").startswith("text/plain"):
        raise CheckFailed(f"content type {response.headers.get('content-type')!r}, expected text/plain (Prometheus)")
    lines = [line for line in response.text.splitlines() if line.strip()]
    samples = [line for line in lines if not line.startswith("#")]
    bad = [line for line in samples if not PROMETHEUS_SAMPLE.match(line)]
    if bad:
        raise CheckFailed(f"not Prometheus text format: {bad[0][:120]!r}")
    if not samples:
        raise CheckFailed("no samples")
    return f"Prometheus text, {len(samples)} samples"


def example_check(variant: Variant, case: TestCase) -> Check:
    def check(suite: Suite) -> str:
        if variant.skip_reason:
            raise CheckSkipped(variant.skip_reason)
        response = suite.client.send(variant)
        expect_status(response, 200, f"is {suite.key_env} the server's key?" if response.status_code == 401 else "")
        body = body_of(response)
        problem = envelope_problem(body)
        if problem:
            raise CheckFailed(f"envelope: {problem}", response.text[:2000])
        if case.expect is not None:
            difference = mismatch(body["result"], case.expect.result, case.expect.tolerance)
            if difference:
                raise CheckFailed(difference, response.text[:2000])
        suite.passed_variants.append(variant)
        expected = "as expected" if case.expect is not None else "no expectation given"
        rows = len(body["result"])
        return f"200, {rows} row{'' if rows == 1 else 's'}, {expected}"

    return check


def check_request_id(suite: Suite) -> str:
    variant = suite.a_request()
    response = suite.client.send(variant, {"X-Request-ID": "conduit-test-request-id"})
    expect_status(response, 200)
    echoed = response.headers.get("x-request-id")
    if echoed != "conduit-test-request-id":
        raise CheckFailed(f"X-Request-ID not echoed: sent 'conduit-test-request-id', got {echoed!r}")
    return "echoed"


def check_no_key(suite: Suite) -> str:
    suite.require_key()
    response = suite.client.send(suite.a_request(), with_key=False)
    return f"401 {expect_error(response, 401)}"


def check_wrong_key(suite: Suite) -> str:
    key = suite.require_key()
    response = suite.client.send(suite.a_request(), {"Authorization": f"Bearer not-{key}"})
    return f"401 {expect_error(response, 401)}"


def check_bearer_key(suite: Suite) -> str:
    key = suite.require_key()
    response = suite.client.send(suite.a_request(), {"Authorization": f"Bearer {key}"})
    expect_status(response, 200)
    return "200"


def check_malformed_json(suite: Suite) -> str:
    response = suite.client.http.post(
        "/predict", content=b'{"data": [[1, 2', headers={**suite.client.auth(), "Content-Type": "application/json"}
    )
    return f"400 {expect_error(response, 400)}"


def check_malformed_form(suite: Suite) -> str:
    # A part that never reaches the closing boundary: a body cut short.
    body = b'--conduitboundary\r\nContent-Disposition: form-data; name="data"\r\n\r\n[1]\r\n'
    headers = {**suite.client.auth(), "Content-Type": "multipart/form-data; boundary=conduitboundary"}
    response = suite.client.http.post("/predict", content=body, headers=headers)
    return f"400 {expect_error(response, 400)}"


def check_media_type(suite: Suite) -> str:
    headers = {**suite.client.auth(), "Content-Type": "text/plain"}
    response = suite.client.http.post("/predict", content=b"5.1 3.5 1.4 0.2", headers=headers)
    return f"415 {expect_error(response, 415)}"


def zeros(size: int) -> Iterator[bytes]:
    """`size` bytes, a chunk at a time: never the whole body in memory."""
    left = size
    while left > 0:
        chunk = CHUNK[: min(len(CHUNK), left)]
        left -= len(chunk)
        yield chunk


def oversized_check(declared: bool) -> Check:
    """A body one byte over max_body_mb, with its Content-Length declared, or streamed
    chunked so the server must count while it reads. The server may answer 413 and
    close before the body is sent; httpx then still reads that answer."""

    def check(suite: Suite) -> str:
        size = int(suite.project.config.server.max_body_mb * 1024 * 1024) + 1
        headers = {**suite.client.auth(), "Content-Type": "application/json"}
        if declared:
            headers["Content-Length"] = str(size)
        try:
            response = suite.client.http.post("/predict", content=zeros(size), headers=headers)
        except httpx.TransportError as exc:
            raise CheckFailed(f"the connection broke without an answer: {type(exc).__name__}: {exc}") from None
        return f"413 {expect_error(response, 413)} for {size} bytes"

    return check


def check_latency(suite: Suite, repeat: int, samples: list[float]) -> str:
    """Each passing example once to warm up, then `repeat` timed calls; every call must pass."""
    if not suite.passed_variants or repeat < 1:
        raise CheckSkipped("no example passed" if repeat >= 1 else "no repeats asked for")
    failed: list[str] = []
    for variant in suite.passed_variants:
        suite.client.send(variant)
        for _ in range(repeat):
            started = time.perf_counter()
            response = suite.client.send(variant)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                samples.append(elapsed_ms)
            else:
                failed.append(f"{variant.name}: {describe(response)}")
    total = repeat * len(suite.passed_variants)
    if failed:
        raise CheckFailed(f"{len(failed)} of {total} repeated requests failed; first: {failed[0]}", "\n".join(failed))
    return f"{total} timed requests after a warm-up, all 200"


def checks(project: Project, repeat: int, samples: list[float]) -> list[tuple[str, Check]]:
    """The suite, in order: examples first, since later checks reuse a request that passed."""
    named: list[tuple[str, Check]] = [("GET /health", check_health), ("GET /ready", check_ready)]
    for case in project.config.tests:
        named += [(variant.name, example_check(variant, case)) for variant in variants(case, project.root)]
    limit = project.config.server.max_body_mb
    named += [
        ("X-Request-ID echoed", check_request_id),
        ("401 without a key", check_no_key),
        ("401 with a wrong key", check_wrong_key),
        ("200 with 'Bearer <key>'", check_bearer_key),
        ("400 for malformed JSON", check_malformed_json),
        ("400 for a malformed form", check_malformed_form),
        (f"413 over {limit:g} MB (Content-Length)", oversized_check(declared=True)),
        (f"413 over {limit:g} MB (chunked)", oversized_check(declared=False)),
        ("415 for text/plain", check_media_type),
        ("GET /openapi.json", check_openapi),
        ("GET /metrics", check_metrics),
        ("latency", lambda suite: check_latency(suite, repeat, samples)),
    ]
    return named


def no_examples(suite: Suite) -> str:
    raise CheckFailed("conduit.yaml has no tests: examples; add at least one under tests:")


def run_check(name: str, check: Check, suite: Suite) -> CheckResult:
    started = time.perf_counter()
    status: Status
    try:
        reason, status, details = check(suite), "pass", ""
    except CheckFailed as failed:
        reason, status, details = failed.reason, "fail", failed.details
    except CheckSkipped as skipped:
        reason, status, details = skipped.reason, "skip", ""
    except httpx.HTTPError as exc:  # the server is gone, or did not answer in time
        reason, status, details = f"no answer: {type(exc).__name__}: {exc}", "fail", ""
    return CheckResult(name, status, reason, time.perf_counter() - started, details)


def run_contract(project: Project, base_url: str, api_key: str | None, *, repeat: int = 20) -> Report:
    """Run the whole suite against a server that is already up; never raises for a failed check."""
    report = Report(project.name, base_url)
    timeout_s = project.config.server.timeout_s + 10  # the server answers 504 by then
    client = Client(base_url, api_key or None, timeout_s)
    suite = Suite(client, project)
    named = checks(project, repeat, report.latency_ms)
    if not project.config.tests:
        named.insert(2, ("examples", no_examples))
    try:
        report.results = [run_check(name, check, suite) for name, check in named]
    finally:
        client.close()
    return report


__all__ = ["CheckResult", "Report", "run_contract", "startup_failure"]
