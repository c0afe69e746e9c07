"""The contract suite behind `conduit test` (DESIGN §3), run over real HTTP.

A suite is a list of small named checks. Each check sends one or a few
requests and either returns a one-line reason for passing, or raises
`CheckFailed` / `CheckSkipped` with a one-line reason. `run_contract` runs
them all (a failure never stops the others) and times the examples for a
p50/p95 latency into a `Report` (report.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from ..config import Project
from ..config.schema import TestCase
from .calls import (
    CheckFailed,
    CheckSkipped,
    Client,
    Variant,
    body_of,
    describe,
    envelope_problem,
    expect_error,
    expect_status,
    mismatch,
    v2_answer_problem,
    variants,
)
from .polling import submit_and_poll
from .report import CheckResult, Report, Status
from .streams import ACCEPT_EVENTS, joined_problem, read_stream

# One Prometheus sample line: name{labels} value [timestamp]
PROMETHEUS_SAMPLE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*(\{.*\})?\s+\S+(\s+-?\d+)?$")
CHUNK = b"\0" * (1 << 20)


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
        """A request the server accepts, for checks about something else (auth, ids):
        a /predict one, whose errors those checks read."""
        for variant in self.passed_variants:
            if variant.kind != "v2":
                return variant
        if self.passed_variants:
            raise CheckSkipped("only V2 examples passed; this check sends a /predict request (add a json: example)")
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
        chunks: list[object] = []
        if case.async_:  # submit, poll, then check the prediction object as an answer
            body, text = submit_and_poll(suite.client, variant, suite.project.config.server.async_timeout_s)
        else:
            response = suite.client.send(variant, ACCEPT_EVENTS if variant.stream else None)
            expect_status(response, 200, f"is {suite.key_env} the server's key?" if response.status_code == 401 else "")
            if variant.stream:
                body, chunks = read_stream(response)
            else:
                body = body_of(response)
            text = response.text
        if variant.kind == "v2":
            problem = v2_answer_problem(body, suite.project.name)
            if problem:
                raise CheckFailed(f"V2 answer: {problem}", text[:2000])
            result = body["outputs"][0].get("data")  # the first output, as JSON sent it
            rows = len(body["parameters"]["prediction_ids"].split(","))
        else:
            problem = envelope_problem(body) or (joined_problem(body["result"], chunks) if variant.stream else None)
            if problem:
                raise CheckFailed(f"envelope: {problem}", text[:2000])
            result = body["result"]
            rows = len(result)
        if case.expect is not None:
            difference = mismatch(result, case.expect.result, case.expect.tolerance)
            if difference:
                raise CheckFailed(difference, text[:2000])
        if not case.async_:
            suite.passed_variants.append(variant)
        expected = "as expected" if case.expect is not None else "no expectation given"
        answered = "202, then succeeded" if case.async_ else "200"
        streamed = f", {len(chunks)} output event{'' if len(chunks) == 1 else 's'} + completed" if variant.stream else ""
        return f"{answered}{streamed}, {rows} row{'' if rows == 1 else 's'}, {expected}"

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
    client = Client(base_url, api_key or None, timeout_s, project.name)
    suite = Suite(client, project)
    named = checks(project, repeat, report.latency_ms)
    if not project.config.tests:
        named.insert(2, ("examples", no_examples))
    try:
        report.results = [run_check(name, check, suite) for name, check in named]
    finally:
        client.close()
    return report


