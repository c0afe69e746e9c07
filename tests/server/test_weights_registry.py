"""The runtime's registry client against registries that ask for credentials (weights/registry.py):
the Bearer-token flow of a `WWW-Authenticate: Bearer realm=…` challenge, and Basic; blobs
redirected elsewhere. A small gate in front of the real registry (127.0.0.1:5000) asks; real
sockets throughout."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from weights_artifact import REGISTRY, make_artifact, push

from conduit_runtime.weights import WeightsError
from conduit_runtime.weights.startup import fetch_into

USER, SECRET, TOKEN = "reader", "s3cret-pass", "token-123"
BASIC = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()


class Gate(ThreadingHTTPServer):
    scheme = "bearer"
    seen: list[tuple[str, str]]  # (path, Authorization) of each request


class Handler(BaseHTTPRequestHandler):
    server: Gate

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        authorization = self.headers.get("Authorization", "")
        self.server.seen.append((self.path, authorization))
        if self.path.startswith("/token"):
            ok = authorization == BASIC and "scope=repository%3A" in self.path and "service=gate" in self.path
            self.answer(200 if ok else 401, b'{"token": "%s"}' % TOKEN.encode() if ok else b"{}")
            return
        if authorization != (f"Bearer {TOKEN}" if self.server.scheme == "bearer" else BASIC):
            port = self.server.server_address[1]
            challenge = (f'Bearer realm="http://127.0.0.1:{port}/token",service="gate",scope="repository:x:pull"'
                         if self.server.scheme == "bearer" else 'Basic realm="gate"')
            self.answer(401, b"{}", {"WWW-Authenticate": challenge})
            return
        if "/blobs/" in self.path:  # where object storage would serve it, another origin
            self.answer(307, headers={"Location": f"http://{REGISTRY}{self.path}"})
            return
        real = httpx.get(f"http://{REGISTRY}{self.path}", headers={"Accept": self.headers.get("Accept", "")})
        self.answer(real.status_code, real.content, {"Content-Type": real.headers.get("content-type", "")})


@pytest.fixture(params=["bearer", "basic"])
def gate(request: pytest.FixtureRequest) -> Iterator[Gate]:
    server = Gate(("127.0.0.1", 0), Handler)
    server.scheme, server.seen = request.param, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pin() -> str:
    return push(make_artifact({"weights.bin": b"w" * 100_000, "tokenizer": {"vocab.txt": b"a\nb\n"}}))


def test_credentials_open_the_gate(gate: Gate, pin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("CONDUIT_REGISTRY_PASSWORD", SECRET)
    gated = pin.replace(REGISTRY, f"127.0.0.1:{gate.server_address[1]}")
    fetched = fetch_into(tmp_path / "tree", {"CONDUIT_WEIGHTS": gated})
    assert (tmp_path / "tree" / "models" / "tokenizer" / "vocab.txt").read_bytes() == b"a\nb\n"
    assert fetched.bytes == 100_004
    asked = [path for path, _ in gate.seen]
    assert any("/manifests/sha256:" in path for path in asked) and any("/blobs/" in path for path in asked)
    if gate.scheme == "bearer":
        assert sum(path.startswith("/token") for path in asked) == 1  # one token for the whole pull


def test_without_credentials_one_line_says_which(gate: Gate, pin: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONDUIT_REGISTRY_USERNAME", raising=False)
    monkeypatch.setenv("CONDUIT_REGISTRY_PASSWORD", SECRET)  # a password alone is not sent
    gated = pin.replace(REGISTRY, f"127.0.0.1:{gate.server_address[1]}")
    with pytest.raises(WeightsError) as caught:
        fetch_into(tmp_path / "tree", {"CONDUIT_WEIGHTS": gated})
    assert "CONDUIT_REGISTRY_USERNAME" in caught.value.message and SECRET not in caught.value.message
    assert caught.value.artifact == gated
