"""POST /predict's stages held to their bounds, over real sockets, as a user and an
attacker would try them (issue 7): admission before the body is read, bounded memory,
CPU work off the event loop, one call at a time for models that are not thread-safe,
async hooks and models, internals kept from clients, draining on SIGTERM, and /ready
when every slot is held by calls past their time."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import API_KEY, Server, in_background, metric, read_answer, start_server, wait_for

MODEL = '''
import hashlib
import threading
import time
from pathlib import Path


def sha256(upload):
    digest = hashlib.sha256()
    for block in iter(lambda: upload.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


class Model:
    """Sleeps, hashes uploads, counts how many calls run at once, or makes big results."""

    THREAD_SAFE_ATTRIBUTE

    def __init__(self):
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    def load(self, project_dir):
        self.ran = Path(project_dir) / "ran.txt"

    def predict(self, data, files):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            if files:
                return [{"name": f.name, "sha256": sha256(f)} for f in files]
            options = data[0] if data and isinstance(data[0], dict) else {}
            if "record" in options:
                with self.ran.open("a") as ran:
                    ran.write(options["record"] + "\\n")
            time.sleep(options.get("sleep", 0))
            if "rows" in options:
                return [[i, i + 0.5, "row"] for i in range(options["rows"])]
            if options.get("most"):
                return [self.most]
            if options.get("crash"):
                raise RuntimeError("secret-internal-detail at /srv/model/weights.bin")
            return [len(data)]
        finally:
            with self.lock:
                self.now -= 1
'''

ASYNC_MODEL = '''
import asyncio
import threading


class Model:
    async def predict(self, data):
        rows = data["rows"] if isinstance(data, dict) else data  # the pre hook's output, or the data
        await asyncio.sleep(rows[0].get("sleep", 0) if rows and isinstance(rows[0], dict) else 0)
        return [{"thread": threading.current_thread().name, "data": data}]
'''

ASYNC_HOOKS = '''
import asyncio
import threading


async def pre(data, files):
    await asyncio.sleep(0.01)
    return {"pre_thread": threading.current_thread().name, "rows": data}


async def post(out, data):
    await asyncio.sleep(0.01)
    return [{**row, "post_thread": threading.current_thread().name, "n": len(data)} for row in out]
'''

def project(root: Path, name: str, model: str, server: str = "", tests: str = "json: [1]",
            hooks: tuple[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(model)
    hook_yaml = ""
    if hooks:
        (root / "hooks.py").write_text(hooks[0])
        hook_yaml = f"    hooks: {hooks[1]}\n"
    (root / "conduit.yaml").write_text(
        f"name: {name}\nmodels:\n  - type: python\n    file: model.py:Model\n{hook_yaml}"
        f"server:\n{server or '  port: 8000'}\ntests:\n  - name: warm\n    {tests}\n"
    )
    return root / "conduit.yaml"


def locked_model(thread_safe: bool | None) -> str:
    attribute = "" if thread_safe is None else f"thread_safe = {thread_safe}"
    return MODEL.replace("THREAD_SAFE_ATTRIBUTE", attribute)


SERVERS = {
    # name: (model source, server block, hooks)
    "tight": (locked_model(True), "  max_concurrency: 1\n  max_queue: 1\n  max_body_mb: 64\n  timeout_s: 60\n", None),
    "uploads": (locked_model(True), "  max_concurrency: 2\n  max_queue: 2\n  max_body_mb: 64\n  timeout_s: 60\n", None),
    "big": (locked_model(True), "  max_body_mb: 64\n  timeout_s: 120\n", None),
    "default": (locked_model(None), "  max_concurrency: 4\n", None),
    "threadsafe": (locked_model(True), "  max_concurrency: 4\n", None),
    "wedge": (locked_model(True), "  max_concurrency: 1\n  max_queue: 2\n  timeout_s: 1\n", None),
    "async": (ASYNC_MODEL, "  max_concurrency: 8\n", (ASYNC_HOOKS, "{pre: hooks.py:pre, post: hooks.py:post}")),
}


@pytest.fixture(scope="module")
def servers(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Server]:
    def start(name: str) -> Server:
        model, server, hooks = SERVERS[name]
        config = project(tmp_path_factory.mktemp(name), name, model, server, hooks=hooks)
        started: Server = serve(config, timeout=180)
        started.root = config.parent  # type: ignore[attr-defined]
        return started

    with ThreadPoolExecutor(len(SERVERS)) as pool:
        return dict(zip(SERVERS, pool.map(start, SERVERS), strict=True))


def post(server: Server, **kwargs: Any) -> httpx.Response:
    headers = {**server.headers, **kwargs.pop("headers", {})}
    return httpx.post(server.url + "/predict", headers=headers, timeout=60, **kwargs)








def connect(server: Server) -> socket.socket:
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=30)


def head(server: Server, length: int, content_type: str = "application/json", extra: str = "") -> bytes:
    return (f"POST /predict HTTP/1.1\r\nHost: {urlsplit(server.url).netloc}\r\nAuthorization: {API_KEY}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


class HealthWatch:
    """Polls /health on its own connection every 20 ms and keeps each answer's time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.times: list[float] = []
        self.started = self.elapsed = 0.0
        self.failures: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopped.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(self.server.url + "/health").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.times.append(time.perf_counter() - started)
                if status != 200:
                    self.failures.append(f"status {status}")
                time.sleep(0.02)

    def __enter__(self) -> HealthWatch:
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.elapsed = time.perf_counter() - self.started
        self.stopped.set()
        self.thread.join()

    def assert_responsive(self) -> None:
        """The event loop was never blocked by the watched work. Work done on the loop shows as
        one probe that waits for all of it: the largest part of the operation's time (seconds).
        So no probe may take a third of the operation, nor a liveness probe's timeout (1 s in
        Kubernetes) when the operation is short; and the typical probe is fast (under 100 ms). Both bounds are
        relative or generous because these tests share two cores with their clients and, in
        parallel runs, with other tests and image builds: a probe can lose the CPU for a moment."""
        assert not self.failures, self.failures[:5]
        assert len(self.times) >= 5, "too few probes to tell"
        # The typical probe: tens of ms (24 uploading clients on two cores pushed it to 51 ms in
        # CI with nothing blocking); a loop slowed by work on every chunk shows as hundreds.
        assert statistics.median(self.times) < 0.1, sorted(self.times)[-5:]
        bound = max(0.9, self.elapsed / 3)
        assert max(self.times) < bound, f"a /health probe took {max(self.times):.3f} s of {self.elapsed:.1f} s"


def peak_rss_mib(server: Server) -> float:
    """The server process's peak resident memory so far (VmHWM)."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


# -- 1. admission before reading ------------------------------------------------------------


def test_429_at_once_before_the_body_is_read(servers: dict[str, Server]) -> None:
    """max_concurrency 1, max_queue 1: with the slot running and the queue place held by
    a client still sending its body, a third request declaring 50 MB is refused 429 from
    its headers alone, with Connection: close, and the connection then closes."""
    tight = servers["tight"]
    running, running_out = in_background(lambda: post(tight, json=[{"sleep": 2}]))
    wait_for(lambda: metric(tight, "conduit_predictions_running") == 1, what="the slot to be taken")
    holder = connect(tight)
    holder.sendall(head(tight, 1000) + b"[1,")  # admitted: its body is still coming
    wait_for(lambda: metric(tight, "conduit_predictions_queued") == 1, what="the queue place to be taken")

    refused = connect(tight)
    started = time.monotonic()
    refused.sendall(head(tight, 50 * 1024 * 1024))
    status, fields, body = read_answer(refused)
    assert status == 429 and json.loads(body)["error"]["code"] == "overloaded"
    assert time.monotonic() - started < 1
    assert fields.get("connection") == "close"
    refused.settimeout(5)
    assert refused.recv(1) == b"", "the server closes the connection after a 429"
    refused.close()

    holder.close()  # the client went away: its place is free again
    running.join()
    assert running_out[0].status_code == 200
    wait_for(lambda: metric(tight, "conduit_predictions_queued") == 0, what="the place to be freed")
    assert post(tight, json=[1, 2]).json()["result"] == [2]


def test_a_slow_upload_keeps_health_fast(servers: dict[str, Server]) -> None:
    """A form trickling in over ~2 s (64 KiB every 30 ms) is read while /health keeps
    answering (typically within 50 ms, never past a liveness probe's 1 s); the upload
    arrives whole."""
    server = servers["uploads"]
    content = os.urandom(4 * 1024 * 1024)
    boundary = "trickle"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="slow.bin"\r\n\r\n'.encode()
            + content + f"\r\n--{boundary}--\r\n".encode())
    with HealthWatch(server) as watch, connect(server) as sock:
        sock.sendall(head(server, len(body), f"multipart/form-data; boundary={boundary}"))
        for start in range(0, len(body), 65536):
            sock.sendall(body[start:start + 65536])
            time.sleep(0.03)
        status, _, answer = read_answer(sock)
    assert status == 200, answer
    assert json.loads(answer)["result"] == [{"name": "slow.bin", "sha256": hashlib.sha256(content).hexdigest()}]
    watch.assert_responsive()


def upload(server: Server, content: bytes, name: str) -> tuple[int, bytes]:
    """A form upload sent as curl sends it: the body goes out while the server has not
    answered; an early answer (429) stops the sending."""
    boundary = "b0undary"
    top = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    sock = connect(server)
    with sock:
        sock.sendall(head(server, len(top) + len(content) + len(tail), f"multipart/form-data; boundary={boundary}"))
        sock.setblocking(False)
        pending = [top, *(content[i:i + 262144] for i in range(0, len(content), 262144)), tail]
        while pending:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                break
            if writable:
                try:
                    sent = sock.send(pending[0])
                except (BrokenPipeError, ConnectionResetError):
                    break
                pending[0] = pending[0][sent:]
                if not pending[0]:
                    pending.pop(0)
        sock.setblocking(True)
        status, _, answer = read_answer(sock)
        return status, answer


def test_many_large_uploads_keep_memory_bounded(servers: dict[str, Server]) -> None:
    """24 clients upload 24 MB each at once to max_concurrency 2 + max_queue 2: at most 4
    are admitted at a time and the others are refused 429 without their body being read;
    every admitted upload arrives whole; the server's peak RSS grows by far less than one
    upload (parts spool to disk), and /health answers within 50 ms throughout."""
    server = servers["uploads"]
    contents = [os.urandom(1024) * (24 * 1024) for _ in range(24)]  # 24 MiB each
    assert upload(server, contents[0], "warm.bin")[0] == 200  # the first upload's one-time costs
    before = peak_rss_mib(server)
    with HealthWatch(server) as watch, ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda i: upload(server, contents[i], f"u{i}.bin"), range(24)))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 4, statuses
    for i, (status, answer) in enumerate(answers):
        if status == 200:
            assert json.loads(answer)["result"][0]["sha256"] == hashlib.sha256(contents[i]).hexdigest()
        else:
            assert json.loads(answer)["error"]["code"] == "overloaded"
    grown = peak_rss_mib(server) - before
    assert grown < 24, f"peak RSS grew by {grown:.1f} MiB for 24 uploads of 24 MiB"
    watch.assert_responsive()


def test_a_client_that_leaves_while_queued_is_never_run(servers: dict[str, Server]) -> None:
    """max_concurrency 1: a request queued behind a slow one whose client disconnects is
    dropped from the queue; the model never sees it."""
    tight = servers["tight"]
    running, out = in_background(lambda: post(tight, json=[{"sleep": 1.5, "record": "first"}]))
    wait_for(lambda: metric(tight, "conduit_predictions_running") == 1, what="the slow prediction to run")
    body = json.dumps([{"record": "left-early"}]).encode()
    with connect(tight) as sock:
        sock.sendall(head(tight, len(body)) + body)
        wait_for(lambda: metric(tight, "conduit_predictions_queued") == 1, what="the request to queue")
    running.join()
    assert out[0].status_code == 200
    wait_for(lambda: metric(tight, "conduit_predictions_queued") == 0, what="the queue to empty")
    assert post(tight, json=[{"record": "after"}]).status_code == 200
    recorded = (tight.root / "ran.txt").read_text().split()  # type: ignore[attr-defined]
    assert recorded == ["first", "after"], recorded


# -- 2 and 3. CPU work off the event loop, the body held once ------------------------------------


def test_a_40_mb_json_body_is_parsed_off_the_event_loop(servers: dict[str, Server]) -> None:
    """1,500,000 rows of JSON (about 40 MB): parsed in a worker, a list item at a time,
    while /health keeps answering well within a liveness probe's timeout."""
    server = servers["big"]
    body = b"[" + b",".join(b"[1.25,2.5,3.75,%d]" % i for i in range(1_500_000)) + b"]"
    assert len(body) > 30_000_000
    with HealthWatch(server) as watch:
        response = post(server, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == [1_500_000]
    watch.assert_responsive()


def test_a_million_row_result_is_serialized_off_the_event_loop(servers: dict[str, Server]) -> None:
    """A result of 1,000,000 rows: envelope, prediction ids and JSON made in the worker."""
    server = servers["big"]
    with HealthWatch(server) as watch:
        response = post(server, json=[{"rows": 1_000_000}])
    assert response.status_code == 200
    answer = response.json()
    assert len(answer["result"]) == len(answer["prediction_ids"]) == 1_000_000
    assert answer["result"][999_999] == [999_999, 999_999.5, "row"]
    # What remains is CPython freeing and collecting the million-row result, which holds
    # the GIL (it was 3.1 s with everything on the loop).
    watch.assert_responsive()


# -- 4. thread safety -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "most"), [("default", 1), ("threadsafe", 4)])
def test_python_models_run_one_at_a_time_unless_thread_safe(servers: dict[str, Server], name: str, most: int) -> None:
    """Eight 0.3 s calls against max_concurrency 4: a python model without `thread_safe = True`
    is called one at a time (a per-stage lock), one that says so four at a time."""
    server = servers[name]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(server, json=[{"sleep": 0.3}]), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert post(server, json=[{"most": True}]).json()["result"] == [most]


# -- 5. nothing internal reaches a client ------------------------------------------------------


def test_500_body_is_fixed_and_the_log_line_has_the_traceback(servers: dict[str, Server]) -> None:
    server = servers["threadsafe"]
    response = post(server, json=[{"crash": True}])
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "model_error"
    for internal in ("secret", "/srv/model", "RuntimeError", "Traceback", "model.py"):
        assert internal not in response.text
    lines = [json.loads(line) for line in server.logs().splitlines() if body["run_id"] in line]
    assert len(lines) == 1
    assert lines[0]["exception"] == "RuntimeError"
    assert "secret-internal-detail" in lines[0]["exception_message"]
    assert 'model.py", line' in lines[0]["traceback"]


def test_debug_shows_the_detail_in_500_bodies(tmp_path: Path) -> None:
    """`conduit serve --debug`, for local development: the 500 body says what failed."""
    config = project(tmp_path, "debug", locked_model(True))
    server = start_server(config, tmp_path, extra=("--debug",))
    try:
        response = post(server, json=[{"crash": True}])
        assert response.status_code == 500
        assert "RuntimeError: secret-internal-detail" in response.json()["error"]["detail"]
    finally:
        server.stop()


# -- 7. async def hooks and models --------------------------------------------------------------


def test_async_hooks_and_predict_are_awaited_on_the_event_loop(servers: dict[str, Server]) -> None:
    """`async def` pre, predict and post run on the server's event loop (no worker thread),
    and 8 of them sleeping 0.5 s run side by side."""
    server = servers["async"]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: post(server, json=[{"sleep": 0.5, "i": i}]), range(8)))
    took = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 8, answers[0].text
    for i, answer in enumerate(answers):
        row = answer.json()["result"][0]
        assert row["thread"] == row["post_thread"] == "MainThread", row
        assert row["data"]["pre_thread"] == "MainThread"
        assert row["data"]["rows"] == [{"sleep": 0.5, "i": i}] and row["n"] == 1
    assert took < 3, f"8 async predictions of 0.5 s took {took:.1f} s"


def test_an_async_model_times_out_and_is_cancelled(tmp_path: Path, serve: Any) -> None:
    config = project(tmp_path, "async-timeout", ASYNC_MODEL, "  timeout_s: 1\n")
    server = serve(config)
    response = post(server, json=[{"sleep": 30}])
    assert response.status_code == 504
    assert httpx.get(server.url + "/ready", timeout=5).status_code == 200, "a cancelled coroutine holds no slot"


# -- 8. shutdown drains ---------------------------------------------------------------------


def test_sigterm_lets_a_running_prediction_finish(tmp_path: Path) -> None:
    """SIGTERM during a 3 s prediction, with no admission delay (server.drain_delay_s: 0; the
    delay has tests/faults/test_rollout.py): /ready turns 503 at once and new predictions get
    503, the running one still answers 200, and then the process exits 0."""
    config = project(tmp_path, "drain", locked_model(True), "  drain_delay_s: 0\n")
    server = start_server(config, tmp_path)
    try:
        running, out = in_background(lambda: post(server, json=[{"sleep": 3}]))
        wait_for(lambda: metric(server, "conduit_predictions_running") == 1, what="the prediction to run")
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining" in server.logs(), what="the drain to begin")
        ready = httpx.get(server.url + "/ready", timeout=5)
        assert ready.status_code == 503 and "shutting down" in ready.json()["error"]["message"]
        refused = post(server, json=[1])
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
        running.join()
        assert out[0].status_code == 200 and out[0].json()["result"] == [1]
        assert server.process.wait(15) == 0
    finally:
        server.stop()


# -- 9. a wedged model -------------------------------------------------------------------------


def test_ready_is_503_while_every_slot_is_held_past_timeout(servers: dict[str, Server]) -> None:
    """timeout_s 1, max_concurrency 1: a 3 s call is answered 504 after 1 s but holds its
    slot until it ends; meanwhile /ready is 503 and the log says why; then 200 again."""
    server = servers["wedge"]
    assert post(server, json=[{"sleep": 3}]).status_code == 504
    ready = httpx.get(server.url + "/ready", timeout=5)
    assert ready.status_code == 503 and "timeout_s" in ready.json()["error"]["message"]
    assert '"event":"wedged"' in server.logs()
    wait_for(lambda: httpx.get(server.url + "/ready", timeout=5).status_code == 200, what="the slot to free")
    assert '"event":"unwedged"' in server.logs()
    assert post(server, json=[1, 2]).json()["result"] == [2]
