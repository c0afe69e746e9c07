"""`server.async_store: redis://…`: two `conduit serve` processes sharing one real
redis-server (Debian's, started here on a free port in a temp dir): either answers
GET and cancel for a prediction the other accepted, and a prediction accepted by a
process that is killed while it runs is finished by the other."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, redis_server, start_server, wait_for

MODEL = '''
import time
from pathlib import Path


class Model:
    def load(self, project_dir):
        self.dir = Path(project_dir)

    def predict(self, data, files):
        seconds, tag = data
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (self.dir / "stop").exists():
            time.sleep(0.01)
        with (self.dir / "ran").open("a") as ran:
            ran.write(tag + "\\n")
        return [[tag, len(files[0].read()) if files else 0]]
'''


@pytest.fixture()
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of its own, in a temp dir, on a free port; stopped afterwards."""
    with redis_server(tmp_path / "redis") as url:
        yield url


def project(root: Path, redis_url: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(MODEL)
    (root / "conduit.yaml").write_text(
        "name: shared\nmodels:\n  - type: python\n    file: model.py:Model\n"
        f"server:\n  max_concurrency: 1\n  async_store: {json.dumps(redis_url)}\n")
    return root / "conduit.yaml"


def submit(server: Server, data: Any, **kwargs: Any) -> dict[str, Any]:
    answer = httpx.post(server.url + "/predict", json=data, timeout=10,
                        headers={"Authorization": API_KEY, "Prefer": "respond-async"}, **kwargs)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def status(server: Server, id_: str) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/predictions/{id_}", headers={"Authorization": API_KEY}, timeout=5).json())


def test_either_process_answers_and_cancels_for_the_other(tmp_path: Path, redis_url: str) -> None:
    config = project(tmp_path / "proj", redis_url)
    a = start_server(config, tmp_path)
    b = None
    try:
        held = submit(a, [60, "held"])
        wait_for(lambda: status(a, held["id"])["status"] == "processing", 10, "a to run it")
        b = start_server(config, tmp_path)
        assert status(b, held["id"])["status"] == "processing"
        # canceled through b, stopped in a (its heartbeat sees it), and a's slot comes back
        canceled = httpx.post(f"{b.url}{held['urls']['cancel']}", headers={"Authorization": API_KEY}).json()
        assert canceled["status"] == "canceled"
        wait_for(lambda: status(a, held["id"])["status"] == "canceled", 5)
        (tmp_path / "proj" / "stop").write_text("")
        time.sleep(0.5)
        (tmp_path / "proj" / "stop").unlink()
        # work accepted by either runs on either, and reads the same from both
        ids = [submit(server, [0.2, f"w{i}"])["id"] for i, server in enumerate((a, b, a, b))]
        upload = httpx.post(a.url + "/predict", headers={"Authorization": API_KEY, "Prefer": "respond-async"},
                            files={"files": ("f.bin", b"y" * 5000)}, data={"data": json.dumps([0, "file"])}).json()
        for id_ in [*ids, upload["id"]]:
            wait_for(lambda id_=id_: status(b, id_)["status"] == "succeeded", 20, f"{id_} to succeed")
            assert status(a, id_) == status(b, id_)
        assert status(a, upload["id"])["result"] == [["file", 5000]]
        assert [status(b, i)["result"][0][0] for i in ids] == ["w0", "w1", "w2", "w3"]
        # cancel while queued (both slots held), through the process that did not accept it
        blockers = [submit(a, [60, f"block{i}"]) for i in range(2)]
        for blocker in blockers:
            wait_for(lambda blocker=blocker: status(a, blocker["id"])["status"] == "processing", 10)
        queued = submit(a, [0, "never"])
        assert httpx.post(f"{b.url}{queued['urls']['cancel']}", headers={"Authorization": API_KEY}
                          ).json()["status"] == "canceled"
        (tmp_path / "proj" / "stop").write_text("")
        for blocker in blockers:
            wait_for(lambda blocker=blocker: status(b, blocker["id"])["status"] == "succeeded", 10)
        time.sleep(1.0)
        assert "never" not in (tmp_path / "proj" / "ran").read_text().split()
        assert status(a, queued["id"])["status"] == "canceled"
        assert httpx.get(f"{a.url}/predictions/{'f' * 32}", headers={"Authorization": API_KEY}).status_code == 404
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_work_of_a_killed_process_is_finished_by_the_other(tmp_path: Path, redis_url: str) -> None:
    config = project(tmp_path / "proj", redis_url)
    a = start_server(config, tmp_path)
    b = None
    try:
        running = submit(a, [120, "survivor"])  # runs until the stop file appears
        queued = submit(a, [0.1, "queued"])
        wait_for(lambda: status(a, running["id"])["status"] == "processing", 10, "a to run it")
        b = start_server(config, tmp_path)
        a.process.send_signal(signal.SIGKILL)  # no shutdown: its lease just stops being renewed
        a.process.wait(10)
        wait_for(lambda: status(b, queued["id"])["status"] == "succeeded", 30, "b to run the queued one")
        time.sleep(6)  # past the killed process's lease: b has taken the running one up again
        (tmp_path / "proj" / "stop").write_text("")
        wait_for(lambda: status(b, running["id"])["status"] == "succeeded", 30, "b to finish the running one")
        assert status(b, running["id"])["result"] == [["survivor", 0]]
        assert status(b, queued["id"])["result"] == [["queued", 0]]
        assert running["run_id"] in b.logs()  # run by b, under the same run_id
        ran = (tmp_path / "proj" / "ran").read_text().split()
        assert sorted(ran) == ["queued", "survivor"]  # each ran to its end once (the killed run never ended)
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_a_graceful_stop_hands_running_work_to_the_other_at_once(tmp_path: Path, redis_url: str) -> None:
    import redis

    config = project(tmp_path / "proj", redis_url)
    # The work goes back as the process exits: at once here (no drain_delay_s, nothing else to drain).
    config.write_text(config.read_text() + "  drain_delay_s: 0\n")
    store = redis.Redis.from_url(redis_url)
    a = start_server(config, tmp_path)
    b = None
    try:
        running = submit(a, [120, "handed"])
        wait_for(lambda: status(a, running["id"])["status"] == "processing", 10, "a to run it")
        lease = f"conduit:shared:lease:{running['id']}"
        holder = store.get(lease)
        assert holder
        b = start_server(config, tmp_path)
        a.process.terminate()  # its call goes on in its thread; the work goes back to the queue at once
        wait_for(lambda: store.get(lease) not in (None, holder), 4, "b to take it up well within a lease (5 s)")
        assert status(b, running["id"])["status"] == "processing"
        (tmp_path / "proj" / "stop").write_text("")
        wait_for(lambda: status(b, running["id"])["status"] == "succeeded", 30, "b to finish it")
        assert status(b, running["id"])["result"] == [["handed", 0]]
        assert a.process.wait(15) == 0
    finally:
        a.stop()
        if b is not None:
            b.stop()
