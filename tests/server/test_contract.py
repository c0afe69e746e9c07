"""`conduit test`'s contract suite against real servers over real sockets:
it passes on the examples, and fails, with a reason, where a server breaks the contract."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import conduit

from conduit_build.cli import main
from conduit_build.config import load
from conduit_build.contract import Report, mismatch, run_contract
from conduit_build.contract import run as contract_run
from conduit_build.contract.servers import free_port, local_server
from conduit_build.errors import ContractError

KEY = "contract-key-0123456789"
AUTH_CHECKS = ("401 without a key", "401 with a wrong key", "200 with 'Bearer <key>'")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """`conduit test ARGV --json` through the CLI's own entry point, in this process."""
    status = main(["test", *argv, "--json"])
    return status, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def junit_suite(path: Path) -> ET.Element:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return suite


def iris_project(folder: Path, examples: Path, tests: str, model_type: str = "sklearn", hooks: str = "") -> Path:
    """An iris project in `folder`, with the given tests: block and optional post hook."""
    shutil.copy(examples / "iris" / "model.pkl", folder / "model.pkl")
    hook_lines = "\n    hooks: {post: hooks.py:post_process}" if hooks else ""
    if hooks:
        (folder / "hooks.py").write_text(textwrap.dedent(hooks))
    config = folder / "conduit.yaml"
    config.write_text(
        "name: contract-probe\n"
        f"models:\n  - type: {model_type}\n    file: model.pkl{hook_lines}\n"
        "server: {max_body_mb: 1}\n"
        f"tests:\n{textwrap.indent(textwrap.dedent(tests).strip(), '  ')}\n"
    )
    return config


# -- the examples pass ------------------------------------------------------------------------


def container_via_local_server(image: str, project: Any, key: str | None, ready_timeout_s: float = 120) -> Any:
    """Stands in for the container runner behind --image: a real server all the same
    (tests/docker runs the real containers). The image asked for, and a key, reach it."""
    assert image == "conduit/pipeline:test"
    assert key
    return local_server(project, key, ready_timeout_s)


@pytest.mark.parametrize(("example", "mode", "key"), [
    ("iris", "cli", KEY),  # `conduit test --local` as a user runs it
    ("digits", "--local", None),  # the variable unset: a random key, so auth is still checked
    ("pipeline", "--image", KEY),  # through the container runner, stood in for by a local server
])
def test_examples_pass(example: str, mode: str, key: str | None, examples: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if key:
        monkeypatch.setenv("CONDUIT_API_KEY", key)
    else:
        monkeypatch.delenv("CONDUIT_API_KEY", raising=False)
    junit = tmp_path / "junit.xml"
    argv = ["-f", str(examples / example / "conduit.yaml"), "--junit", str(junit), "--repeat", "5"]
    if mode == "cli":
        finished = conduit("test", *argv, "--local", "--json")
        status, report = finished.returncode, json.loads(finished.stdout)
    else:
        if mode == "--image":
            monkeypatch.setattr(contract_run, "running_container", container_via_local_server)
        argv += [mode, "conduit/pipeline:test"] if mode == "--image" else [mode]
        status, report = run_json(capsys, *argv)

    failed = [f"{c['name']}: {c['reason']}" for c in report["checks"] if c["status"] == "fail"]
    assert (status, failed) == (0, [])
    checks = by_name(report)
    assert all(checks[name]["status"] == "pass" for name in AUTH_CHECKS)
    assert checks["400 for malformed JSON"]["reason"] == "400 bad_json"
    assert checks["400 for a malformed form"]["reason"] == "400 bad_form"
    assert checks["415 for text/plain"]["status"] == "pass"
    assert [c["status"] for name, c in checks.items() if name.startswith("413 over")] == ["pass", "pass"]
    assert report["latency_ms"]["requests"] > 0
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    suite = junit_suite(junit)
    assert (suite.get("failures"), suite.get("tests")) == ("0", str(len(report["checks"])))

    # every example as JSON and as a form; uploads have no JSON spelling: skipped, and said why
    for case in load(examples / example / "conduit.yaml").config.tests:
        assert checks[f"example {case.name} (form)"]["status"] == "pass"
        as_json = checks[f"example {case.name} (json)"]
        expected = ("skip", "the example uploads files, which JSON cannot carry") if example == "digits" else ("pass",)
        assert (as_json["status"], as_json["reason"])[: len(expected)] == expected


def test_image_mode_needs_the_docker_engine(examples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = f"unix://{tmp_path / 'no-engine.sock'}"
    monkeypatch.setenv("DOCKER_HOST", nowhere)
    monkeypatch.setenv("CONDUIT_API_KEY", KEY)
    status = main(["test", "-f", str(examples / "iris" / "conduit.yaml"), "--image", "iris:test"])
    out, err = capsys.readouterr()
    assert status == 1 and out == ""  # one clear error, no report and no traceback
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"error: connect to {nowhere}: cannot reach the Docker engine (")
    assert errors[0].endswith("(start it (scripts/engine does) or set DOCKER_HOST)")


# -- failures, each with its reason -------------------------------------------------------------


WRONG_EXPECTATIONS = """
- name: setosa-close
  json: [[5.1, 3.5, 1.4, 0.2]]
  expect: {result: [[0.98, 0.02, 0.0]], tolerance: 0.01}
- name: virginica-exact
  json: {data: [[6.7, 3.0, 5.2, 2.3]]}
  expect: {result: [[0.0, 0.08, 0.92]]}
- name: virginica-tight
  json: [[6.7, 3.0, 5.2, 2.3]]
  expect: {result: [[0.0, 0.08, 0.92]], tolerance: 0.0001}
"""


def test_a_wrong_expectation_fails_with_the_difference(examples: Path, tmp_path: Path, serve: Any,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = iris_project(tmp_path, examples, WRONG_EXPECTATIONS, model_type="sklearn_classifier")
    server = serve(config, key=KEY)
    monkeypatch.setenv("CONDUIT_API_KEY", KEY)
    junit = tmp_path / "junit.xml"
    status, report = run_json(capsys, "-f", str(config), "--url", server.url, "--junit", str(junit), "--repeat", "2")

    assert status == 1 and report["ok"] is False
    failed = {c["name"]: c["reason"] for c in report["checks"] if c["status"] == "fail"}
    assert set(failed) == {f"example {name} ({kind})" for name in ("virginica-exact", "virginica-tight")
                           for kind in ("json", "form")}
    assert failed["example virginica-exact (json)"].startswith("result[0][0]: got 5.5")
    assert failed["example virginica-exact (json)"].endswith(", expected 0.0")
    tight = failed["example virginica-tight (form)"]  # [0][0] is within 0.0001 of 0.0; [0][2] is not
    assert tight.startswith("result[0][2]: got 0.9198") and tight.endswith(", expected 0.92 (tolerance 0.0001)")
    assert by_name(report)["example setosa-close (form)"]["status"] == "pass"  # within its tolerance

    suite = junit_suite(junit)
    failures = suite.findall("testcase/failure")
    assert suite.get("failures") == "4" and len(failures) == 4
    assert {f.get("message") for f in failures} == set(failed.values())


BROKEN_HOOK = """
    def post_process(out, data):
        if data[0][0] > 6:
            raise RuntimeError("the label table is missing")
        return out
"""


def test_a_hook_that_raises_fails_with_the_500(examples: Path, tmp_path: Path, serve: Any) -> None:
    tests = """
    - name: setosa
      json: [[5.1, 3.5, 1.4, 0.2]]
    - name: virginica
      json: [[6.7, 3.0, 5.2, 2.3]]
    """
    config = iris_project(tmp_path, examples, tests, hooks=BROKEN_HOOK)
    server = serve(config, key=KEY)
    report = run_contract(load(config), server.url, KEY, repeat=2)

    failed = {r.name: r for r in report.failures}
    assert set(failed) == {"example virginica (json)", "example virginica (form)"}
    # the 500's message is fixed: nothing internal (the exception's text) reaches a client
    fixed = "expected 200, got 500 model_error: the prediction failed; the server's log has the details under this run_id"
    for result in failed.values():
        assert result.reason == fixed
        assert "the label table is missing" not in result.reason + result.details
        assert "RuntimeError" not in result.reason + result.details
    rendered = report.render()
    assert "FAIL  example virginica (json)" in rendered and "the label table is missing" not in rendered
    assert rendered.endswith("FAILED: 16 passed, 2 failed, 0 skipped")
    junit = tmp_path / "junit.xml"
    report.to_junit(junit)
    assert junit_suite(junit).get("failures") == "2"
    assert "the label table is missing" not in junit.read_text()
    # the server's log has it, under the run_id of a failed request
    logged = [json.loads(line) for line in server.logs().splitlines()
              if line.startswith("{") and "the label table is missing" in line]
    assert logged and all(isinstance(entry.get("run_id"), str) and entry["run_id"] for entry in logged)


STARTUP_FAILED_READY = "503: start-up failed; the server's log says why"  # /ready's fixed words: nothing internal


@pytest.fixture(scope="module")
def never_ready(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float]:
    """A local server whose hook fails the warm-up: the ContractError's message, and the seconds it took."""
    folder = tmp_path_factory.mktemp("never-ready")
    always_broken = "def post_process(out):\n    raise RuntimeError('no labels at all')\n"
    config = iris_project(folder, examples, "- name: setosa\n  json: [[5.1, 3.5, 1.4, 0.2]]", hooks=always_broken)
    started = time.monotonic()
    with pytest.raises(ContractError) as raised, local_server(load(config), KEY, ready_timeout_s=60):
        pytest.fail("the server must not get ready")
    return raised.value.message, time.monotonic() - started


def test_a_server_that_never_gets_ready_is_reported_with_its_log(never_ready: tuple[str, float]) -> None:
    message, _ = never_ready
    first, _, log = message.partition("\n")
    assert first == f"the server will not get ready ({STARTUP_FAILED_READY}); its log ends with:"
    assert '"event":"load_failed"' in log and "RuntimeError: no labels at all" in log  # the log says why


def test_a_server_whose_start_up_failed_is_given_up_on_at_once(never_ready: tuple[str, float]) -> None:
    """/ready answers a failed start-up with the code startup_failed: no waiting for the timeout."""
    _, seconds = never_ready
    assert seconds < 30  # not the 60 s ready timeout


def test_a_url_that_never_gets_ready_is_one_failure(examples: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "junit.xml"
    nothing_there = f"http://127.0.0.1:{free_port()}"
    status = main(["test", "-f", str(examples / "iris" / "conduit.yaml"), "--url", nothing_there,
                   "--junit", str(junit), "--ready-timeout", "0.5"])
    assert status == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  FAIL  server gets ready  the server was not ready within 0.5 s (last /ready: no answer (ConnectError))",
        "FAILED: 0 passed, 1 failed, 0 skipped",
    ]
    assert junit_suite(junit).get("failures") == "1"


@pytest.fixture(scope="module")
def keyless_iris(examples: Path, serve: Any) -> str:
    """The iris example served without an API key; its URL."""
    return str(serve(examples / "iris" / "conduit.yaml", key=None).url)


def test_without_a_key_the_auth_checks_are_skipped(examples: Path, keyless_iris: str) -> None:
    project = load(examples / "iris" / "conduit.yaml")
    report = run_contract(project, keyless_iris, None, repeat=1)
    assert report.ok, report.render()
    for result in report.results:
        if result.name in AUTH_CHECKS:
            assert (result.status, result.reason) == ("skip", "no API key given (set CONDUIT_API_KEY to check auth)")


def test_a_key_the_server_does_not_ask_for_fails_the_auth_checks(examples: Path, keyless_iris: str) -> None:
    report = run_contract(load(examples / "iris" / "conduit.yaml"), keyless_iris, KEY, repeat=0)
    failed = {r.name: r.reason for r in report.failures}
    assert set(failed) == {"401 without a key", "401 with a wrong key"}
    assert failed["401 without a key"].startswith("expected 401, got 200")


# -- the server's lifetime ---------------------------------------------------------------


def test_the_local_server_is_stopped_on_ctrl_c(examples: Path) -> None:
    seen = ""
    with pytest.raises(KeyboardInterrupt), local_server(load(examples / "iris" / "conduit.yaml"), KEY) as url:
        seen = url
        assert httpx.get(url + "/ready").status_code == 200
        raise KeyboardInterrupt
    with pytest.raises(httpx.ConnectError):
        httpx.get(seen + "/health")


# -- comparing results -----------------------------------------------------------------------


def test_mismatch_compares_exactly_or_within_the_tolerance() -> None:
    assert mismatch([0, 2], [0, 2], None) is None
    assert mismatch([0.5], [0.52], 0.05) is None
    assert mismatch([0.5], [0.52], None) == "result[0]: got 0.5, expected 0.52"
    assert mismatch([[1, 2]], [[1, 2, 3]], None) == "result[0]: got 2 items, expected 3"
    assert mismatch([True], [1], None) == "result[0]: got True, expected 1"  # a bool is not a number here
    assert mismatch([{"label": "cat"}], [{"label": "dog"}], 0.1) == "result[0].label: got 'cat', expected 'dog'"


def test_report_counts() -> None:
    report = Report("p", "http://x")
    assert report.ok and report.p50_ms is None and report.summary() == "ok: 0 passed, 0 failed, 0 skipped"
