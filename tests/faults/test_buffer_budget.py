"""Memory bounded in bytes: every request body held in memory shares server.max_buffered_mb.

Clients send `Expect: 100-continue`, as curl does for large bodies: a body the
server admits is asked for (100 Continue), one it refuses is answered at once
from the headers, before a byte of it is sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from conftest import API_KEY, read_answer, start_server

MODEL = '''
import time


class Model:
    def predict(self, data):
        time.sleep(1.0)  # slow: the bodies admitted stay in memory meanwhile
        return [len(data[0])]
'''
BODY = json.dumps(["x" * (3 * 1024 * 1024)]).encode()  # 3 MiB: two fit in 8 MiB, three do not
CLIENTS = 24


def project(root: Path) -> Path:
    (root / "model.py").write_text(MODEL)
    (root / "conduit.yaml").write_text(
        "name: budget\nmodels:\n  - type: python\n    file: model.py:Model\n"
        "server:\n  max_concurrency: 8\n  max_queue: 64\n  max_body_mb: 20\n  max_buffered_mb: 8\n  timeout_s: 60\n"
        "tests:\n  - name: warm\n    json: [\"x\"]\n")
    return root / "conduit.yaml"


def post(url: str) -> tuple[int, dict[str, object]]:
    """POST /predict with Expect: 100-continue; the body is sent only when the server asks for it."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: " + API_KEY.encode() + b"\r\nExpect: 100-continue\r\n"
                     b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(1)  # byte by byte: nothing of the final answer is read here
            assert piece, head
            head += piece
        if head.startswith(b"HTTP/1.1 100"):
            sock.sendall(BODY)
            status, _, content = read_answer(sock)
        else:
            rest = head.partition(b"\r\n\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in
                      (line.partition(b":") for line in rest[0].split(b"\r\n")[1:])}
            content = rest[2]
            while len(content) < int(fields[b"content-length"]):
                content += sock.recv(65536)
            status = int(head.split()[1])
        return status, json.loads(content)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_bodies_past_the_budget_get_429_and_memory_stays_bounded(tmp_path: Path) -> None:
    """24 clients send 3 MiB JSON bodies at once to a slow model with max_buffered_mb 8 (and
    room for all of them in max_concurrency + max_queue): those that fit are answered 200,
    the others 429 overloaded saying the buffer budget is full, and the server's RSS grows
    by well under the 72 MiB they add up to. Before issue 19 all 24 were admitted and held
    (no max_buffered_mb key existed; memory was bounded by count only)."""
    server = start_server(project(tmp_path), tmp_path)
    try:
        pid = server.process.pid
        before = rss_kb(pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_kb(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        answers: list[tuple[int, dict[str, object]]] = []
        clients = [threading.Thread(target=lambda: answers.append(post(server.url)), daemon=True)
                   for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
        done.set()
        sampler.join(5)
        statuses = sorted(status for status, _ in answers)
        assert len(answers) == CLIENTS and set(statuses) == {200, 429}, statuses
        assert statuses.count(200) >= 2 and statuses.count(429) >= CLIENTS // 2, statuses
        for status, content in answers:
            if status == 200:
                assert content["result"] == [3 * 1024 * 1024]
            else:
                error = content["error"]
                assert isinstance(error, dict) and error["code"] == "overloaded"
                assert "buffer budget is full" in error["message"] and "max_buffered_mb" in error["message"]
        grown_mb = (peak[0] - before) / 1024
        assert grown_mb < 40, f"RSS grew {grown_mb:.0f} MB for bodies of 3 MiB under a budget of 8 MiB"
    finally:
        server.stop()
