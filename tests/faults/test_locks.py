"""One concurrency rule, where calls happen (issue 19), against `conduit serve` over real
sockets (and the Python API), with python models written at test time.

Each model counts the calls of its stage running at once in its own process and writes
the highest count to a file, which the test reads.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from conftest import Server, wait_for
from httpx_sse import connect_sse

# Counts the calls of a stage running at once; the peak goes to a file beside the model.
PEAK = '''
import threading
from pathlib import Path

class Peak:
    def __init__(self, path):
        self.path = Path(path)
        self.mutex = threading.Lock()
        self.active = 0
        self.peak = 0

    def enter(self):
        with self.mutex:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.path.write_text(str(self.peak))

    def exit(self):
        with self.mutex:
            self.active -= 1
'''

GENERATOR = PEAK + '''
import time

PEAK = Peak(Path(__file__).parent / "peak")

class Chunks:
    """Not thread-safe (no thread_safe attribute): its chunks are the model running."""

    def predict(self, data):
        PEAK.enter()
        try:
            for index in range(5):
                time.sleep(0.05)
                yield f"chunk{index} "
        finally:
            PEAK.exit()
'''


def project(root: Path, files: dict[str, str], config: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "conduit.yaml").write_text(config)
    return root / "conduit.yaml"


def peak(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


def test_four_streams_of_a_generator_that_is_not_thread_safe_never_overlap(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: the stage lock used to cover creating the generator only, so the
    four streams' chunks were made in four threads at once (peak 4)."""
    config = project(tmp_path / "gen", {"model.py": GENERATOR}, """
name: gen-lock
models:
  - type: python
    file: model.py:Chunks
server: {max_concurrency: 4, timeout_s: 20}
tests:
  - name: one
    json: ["go"]
""")
    server: Server = serve(config)

    def stream() -> list[str]:
        with httpx.Client(timeout=60) as client, connect_sse(
            client, "POST", server.url + "/predict", json=["go"], headers=dict(server.headers)
        ) as source:
            return [event.event for event in source.iter_sse()]

    with ThreadPoolExecutor(4) as pool:
        events = list(pool.map(lambda _: stream(), range(4)))
    for names in events:
        assert names == ["output"] * 5 + ["completed"], names
    assert peak(config.parent / "peak") == 1, "two streams of the stage ran at once"
    # A client that leaves after the first chunk closes its generator, which frees the stage:
    # the next stream runs to its end (a lock left held would stall it until its timeout).
    with httpx.Client(timeout=60) as client, connect_sse(
        client, "POST", server.url + "/predict", json=["go"], headers=dict(server.headers)
    ) as source:
        assert next(source.iter_sse()).event == "output"
    assert stream() == ["output"] * 5 + ["completed"]


HOOKS = PEAK + '''
import time

LOCKED = Peak(Path(__file__).parent / "peak-locked")
FREE = Peak(Path(__file__).parent / "peak-free")

def locked_pre(data):
    """No thread_safe attribute: runs under the stage's lock, never beside its model or itself."""
    LOCKED.enter()
    try:
        time.sleep(0.1)
        return data
    finally:
        LOCKED.exit()

def free_pre(data):
    """Marked thread_safe: waits (bounded) for a second call of itself, which only comes if it is not locked."""
    FREE.enter()
    try:
        deadline = time.monotonic() + 5
        while FREE.active < 2 and FREE.peak < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return data
    finally:
        FREE.exit()

free_pre.thread_safe = True

class Plain:
    """Not thread-safe: shares the lock with locked_pre."""

    def predict(self, data):
        LOCKED.enter()
        try:
            time.sleep(0.05)
            return data
        finally:
            LOCKED.exit()

class Free:
    thread_safe = True

    def predict(self, data):
        return data
'''


def test_a_hook_shares_its_stage_lock_unless_it_is_marked_thread_safe(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: hooks were never locked, so four requests ran locked_pre at once
    (and beside its stage's model)."""
    config = project(tmp_path / "hooks", {"hooks.py": HOOKS}, """
name: hook-lock
models:
  - type: python
    file: hooks.py:Plain
    hooks: {pre: hooks.py:locked_pre}
  - type: python
    file: hooks.py:Free
    hooks: {pre: hooks.py:free_pre}
server: {max_concurrency: 4, timeout_s: 60}
""")
    server: Server = serve(config)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda row: httpx.post(server.url + "/predict", json=[row], headers=server.headers,
                                                       timeout=60), range(4)))
    assert [answer.status_code for answer in answers] == [200] * 4, [answer.text for answer in answers]
    assert [answer.json()["result"] for answer in answers] == [[0], [1], [2], [3]]
    assert peak(config.parent / "peak-locked") == 1, "a hook without thread_safe ran beside another call of its stage"
    assert peak(config.parent / "peak-free") >= 2, "a hook marked thread_safe was locked all the same"


SLOW = '''
import time
from pathlib import Path

HERE = Path(__file__).parent

class Slow:
    def predict(self, data):
        if data == ["slow"]:
            time.sleep(2.5)  # past timeout_s: the request gets its 504 while this runs
            (HERE / "model-done").touch()
        return data

def post(out, data):
    if data == ["slow"]:
        (HERE / "post-ran").touch()
    return out
'''


def test_no_post_hook_runs_after_its_request_got_504(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: a request answered 504 still ran every later step of its flow (the
    post hook wrote its marker once the slow model returned)."""
    config = project(tmp_path / "slow", {"model.py": SLOW}, """
name: post-after-504
models:
  - type: python
    file: model.py:Slow
    hooks: {post: model.py:post}
server: {timeout_s: 1}
tests:
  - name: fast
    json: ["fast"]
""")
    here = config.parent
    server: Server = serve(config)
    answer = httpx.post(server.url + "/predict", json=["slow"], headers=server.headers, timeout=30)
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["code"] == "timeout"
    wait_for(lambda: (here / "model-done").exists(), timeout=10, what="the slow model to return")
    time.sleep(0.5)  # the post hook would run right after the model, in the same worker thread
    assert not (here / "post-ran").exists(), "the post hook ran after its request's 504"
    # The stage still serves: nothing was left locked or half-done.
    answer = httpx.post(server.url + "/predict", json=["fast"], headers=server.headers, timeout=30)
    assert answer.status_code == 200 and answer.json()["result"] == ["fast"]


ASYNC_BATCHED = '''
import asyncio
from pathlib import Path

CALLS = Path(__file__).parent / "calls"

class Doubler:
    async def predict(self, data):
        await asyncio.sleep(0)
        with CALLS.open("a") as log:
            log.write(f"{len(data)}\\n")
        return [row * 2 for row in data]
'''


def test_a_batched_async_model_is_awaited_in_the_python_api_and_its_warm_up(tmp_path: Path) -> None:
    """Breaks on purpose: the warm-up and the Python API called a batched `async def` model
    without awaiting it (an un-awaited coroutine; the warm-up never ran the model)."""
    from conduit import Conduit

    config = project(tmp_path / "async", {"model.py": ASYNC_BATCHED}, """
name: async-batched
models:
  - type: python
    file: model.py:Doubler
    batch: {max_size: 8}
tests:
  - name: warm
    json: [1, 2]
    expect: {result: [2, 4]}
""")
    calls = config.parent / "calls"
    model = Conduit.from_file(config).load()
    assert calls.exists() and calls.read_text().split() == ["2"], "the warm-up never called the model"
    answer = model.run([3, 4, 5])
    assert answer["result"] == [6, 8, 10]
    assert calls.read_text().split() == ["2", "3"]
    assert json.loads(json.dumps(answer))  # a plain envelope, no coroutine in it
