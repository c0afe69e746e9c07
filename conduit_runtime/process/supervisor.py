"""Several worker processes on one port (`server.workers` > 1).

The supervisor binds the port once and starts that many worker processes
(worker.py) that accept on the same socket, each with its own model. A worker
that dies is logged and started again; SIGTERM (or Ctrl-C) is passed on to every
worker, each drains, and the supervisor exits 0 once they all have. What the
workers share (readiness, metrics) lives in a private temporary folder
(http/peers.py, http/metrics.py).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import uvicorn

from ..http.peers import COUNT_ENV, DIR_ENV, forget
from ..log import log
from ..spec import ServerSpec


class Supervisor:
    """Several worker processes on one port (server.workers)."""

    def __init__(self, spec: ServerSpec, host: str, port: int, debug: bool, count: int) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.debug = debug
        self.count = count
        self.stopping = False
        self.workers: list[subprocess.Popen[bytes]] = []

    def run(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="conduit-workers-"))
        try:
            self.supervise(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def supervise(self, folder: Path) -> None:
        metrics, ready = folder / "metrics", folder / "ready"
        metrics.mkdir()
        ready.mkdir()
        spec_file = folder / "spec.pickle"
        spec_file.write_bytes(pickle.dumps(self.spec))
        listener = uvicorn.Config("conduit_runtime.process.worker", host=self.host, port=self.port,
                                  log_level="warning").bind_socket()  # only binds: the workers serve
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), DIR_ENV: str(ready), COUNT_ENV: str(self.count)}
        command = [sys.executable, "-m", "conduit_runtime.process.worker", str(spec_file), str(listener.fileno()),
                   *(["--debug"] if self.debug else [])]

        def start(load_first: bool = False) -> subprocess.Popen[bytes]:
            # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which
            # passes one SIGTERM on (a worker that got both would quit without draining).
            worker = subprocess.Popen([*command, *(["--load-first"] if load_first else [])], env=env,
                                      pass_fds=(listener.fileno(),), start_new_session=True)
            log({"event": "worker_started", "pid": worker.pid})
            return worker

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        log({"event": "workers", "count": self.count, "port": self.port, "folder": str(folder)})
        self.workers = [start() for _ in range(self.count)]  # the listener stays open: restarts need it
        deadline: float | None = None
        while True:
            if self.stopping:
                if deadline is None:
                    deadline = time.monotonic() + self.spec.timeout_s + 15
                if all(worker.poll() is not None for worker in self.workers):
                    break
                if time.monotonic() > deadline:  # a worker stuck past its own drain deadline
                    for worker in self.workers:
                        with contextlib.suppress(ProcessLookupError):
                            worker.kill()
            else:
                for index, worker in enumerate(self.workers):
                    if worker.poll() is None:
                        continue
                    log({"event": "worker_died", "pid": worker.pid, "exit_status": worker.returncode,
                         "message": "a worker process ended; starting another"})
                    self.forget(worker.pid, metrics, ready)
                    try:
                        self.workers[index] = start(load_first=True)
                    except OSError as exc:  # out of processes or memory: try again on the next round
                        log({"event": "worker_start_failed", "error": f"{type(exc).__name__}: {exc}"})
                        time.sleep(1)
            time.sleep(0.1)
        log({"event": "workers_stopped", "count": self.count})

    @staticmethod
    def forget(pid: int, metrics: Path, ready: Path) -> None:
        from prometheus_client import multiprocess

        forget(ready, pid)
        multiprocess.mark_process_dead(pid, str(metrics))  # its live gauges no longer count

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = not self.stopping
        self.stopping = True
        # The first signal drains every worker; a second Ctrl-C makes them quit at once.
        passed = signal.SIGTERM if first else signum
        if first or signum == signal.SIGINT:
            for worker in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    worker.send_signal(passed)
