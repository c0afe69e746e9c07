"""GET /docs in a real headless Chromium (Debian's `chromium`, driven by Playwright): the page
loads offline from the server alone, the API key is entered once through "Authorize", and
"Try it out" works for a multipart upload (the digits example's PNG → 3) and for a JSON body
(iris → 0). `server.docs: false` turns the page off."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, start_server
from playwright.sync_api import Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (scripts/setup installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def digits(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(examples / "digits" / "conduit.yaml", tmp_path_factory.mktemp("docs-digits"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def iris(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(examples / "iris" / "conduit.yaml", tmp_path_factory.mktemp("docs-iris"))
    yield server
    server.stop()


def open_docs(browser: Any, server: Server) -> tuple[Page, list[str]]:
    """The page, authorized once with the key; and every URL it requested."""
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/docs")
    page.click("button.authorize")
    page.fill(".modal-ux input", API_KEY)
    page.click(".modal-ux .auth-btn-wrapper button.authorize")
    page.click(".modal-ux button.btn-done")
    return page, requested


def execute(page: Page) -> tuple[str, dict[str, Any]]:
    """Press Execute on POST /predict; the status and the JSON body the page shows."""
    operation = page.locator("#operations-default-predict")
    operation.locator("button.execute").click()
    shown = operation.locator(".live-responses-table .response-col_description .microlight").first
    shown.wait_for(timeout=30_000)
    status = operation.locator(".live-responses-table .response .response-col_status").first.inner_text()
    return status.strip(), json.loads(shown.inner_text())


def predict_operation(page: Page, content_type: str) -> Any:
    operation = page.locator("#operations-default-predict")
    operation.locator(".opblock-summary").click()
    operation.locator(".opblock-section-request-body select").select_option(content_type)
    return operation


def test_a_png_uploaded_through_the_page_comes_back_as_its_digit(browser: Any, digits: Server, examples: Path) -> None:
    page, requested = open_docs(browser, digits)
    operation = predict_operation(page, "multipart/form-data")
    operation.locator("tr[data-property-name=files] input[type=file]").set_input_files(
        str(examples / "digits" / "samples" / "three.png"))
    status, answer = execute(page)
    assert status == "200", answer
    assert answer["result"] == [3]
    # Offline: the page, its script and style, the description and the call, all from the server.
    assert requested and all(url.startswith(digits.url + "/") for url in requested), requested
    assert any(url.endswith("/docs/swagger-ui-bundle.js") for url in requested)
    page.close()


def test_a_json_body_through_the_page(browser: Any, iris: Server) -> None:
    page, _ = open_docs(browser, iris)
    operation = predict_operation(page, "application/json")
    operation.locator(".opblock-section-request-body textarea").fill("[[5.1, 3.5, 1.4, 0.2]]")
    status, answer = execute(page)
    assert status == "200", answer
    assert answer["result"] == [0]
    page.close()


def test_without_the_key_the_page_shows_the_401(browser: Any, iris: Server) -> None:
    page = browser.new_page()
    page.goto(iris.url + "/docs")
    operation = predict_operation(page, "application/json")
    operation.locator(".opblock-section-request-body textarea").fill("[[5.1, 3.5, 1.4, 0.2]]")
    status, answer = execute(page)
    assert status == "401" and answer["error"]["code"] == "unauthorized"
    page.close()


def test_json_fields_sent_as_parts_with_a_filename_are_fields(digits: Server, examples: Path) -> None:
    """Swagger UI sends a JSON form field as a Blob part (a filename, application/json): it is the
    field, not a file for the model."""
    png = (examples / "digits" / "samples" / "three.png").read_bytes()
    answer = httpx.post(digits.url + "/predict", headers=digits.headers, timeout=30, files=[
        ("data", ("blob", b"[null]", "application/json")),
        ("parameters", ("blob", b"{}", "application/json")),
        ("files", ("three.png", png, "image/png")),
    ])
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == [3]
    bad = httpx.post(digits.url + "/predict", headers=digits.headers, timeout=30, files=[
        ("data", ("blob", b"\xff\xfe", "application/json")), ("files", ("three.png", png, "image/png"))])
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_form"


def test_docs_false_turns_the_page_off(tmp_path: Path, examples: Path) -> None:
    config = tmp_path / "conduit.yaml"
    config.write_text((examples / "iris" / "conduit.yaml").read_text().replace(
        "server:\n", "server:\n  docs: false\n", 1))
    (tmp_path / "model.pkl").write_bytes((examples / "iris" / "model.pkl").read_bytes())
    server = start_server(config, tmp_path)
    try:
        page = httpx.get(server.url + "/docs", timeout=10)
        assert page.status_code == 404 and page.json()["error"]["code"] == "not_found"
        assert httpx.get(server.url + "/docs/swagger-ui-bundle.js", timeout=10).status_code == 404
        assert httpx.get(server.url + "/openapi.json", timeout=10).status_code == 200
    finally:
        server.stop()
