"""Run the app under uvicorn: the same call in a container and in `conduit serve`.

Shutdown drains: on SIGTERM (or Ctrl-C) /ready and new predictions answer 503
at once, the listening socket stays open so that clients get that answer rather
than a refused connection, predictions already admitted finish (up to
server.timeout_s), and then the process exits 0. A second Ctrl-C quits at once.

With `server.workers` > 1 this process is a supervisor: it binds the port once
and starts that many worker processes (worker.py) that accept on the same socket,
each with its own model. A worker that dies is logged and started again; SIGTERM
(or Ctrl-C) is passed on to every worker, each drains, and the supervisor exits 0
once they all have. What the workers share (readiness, metrics) lives in a
private temporary folder (workers.py, metrics.py).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import uvicorn

from .app import ConduitApp, create_app, load_quietly
from .log import log
from .spec import ServerSpec
from .workers import COUNT_ENV, DIR_ENV, forget


def serve(spec: ServerSpec, host: str = "0.0.0.0", port: int | None = None, debug: bool = False) -> None:
    workers = spec.worker_count
    if workers > 1:
        Supervisor(spec, host, port or spec.port, debug, workers).run()
        return
    draining_server(spec, host, port or spec.port, debug).run()


def draining_server(spec: ServerSpec, host: str, port: int, debug: bool) -> DrainingServer:
    app = create_app(spec, debug=debug)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # one JSON line per prediction is logged by the app itself
        server_header=False,
        # A safety net against connection floods, well above what admission takes: those
        # past admission get our 429 at once, not uvicorn's plain-text 503. An idle or
        # refused connection costs little (uvicorn stops reading a body past 64 KiB).
        limit_concurrency=10 * (spec.running_slots + spec.max_queue) + 100,
        timeout_graceful_shutdown=5,  # what is left once the app has drained: idle connections
    )
    return DrainingServer(config, app, drain_s=spec.timeout_s + 1)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: ConduitApp, drain_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_s = drain_s
        self.deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded as a captured signal: uvicorn would raise it again after shutdown,
        # and the process would end by the signal instead of exiting 0.
        if self.deadline is None:
            self.deadline = time.monotonic() + self.drain_s
            self.app.drain()
        elif sig == signal.SIGINT:
            self.should_exit = self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.deadline is not None and (self.app.drained or time.monotonic() > self.deadline):
            self.should_exit = True
        return await super().on_tick(counter)


class Supervisor:
    """Several worker processes on one port (server.workers)."""

    def __init__(self, spec: ServerSpec, host: str, port: int, debug: bool, count: int) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.debug = debug
        self.count = count
        self.stopping = False
        self.signals = 0
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
        listener = uvicorn.Config("conduit_runtime.worker", host=self.host, port=self.port,
                                  log_level="warning").bind_socket()  # only binds: the workers serve
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), DIR_ENV: str(ready), COUNT_ENV: str(self.count)}
        command = [sys.executable, "-m", "conduit_runtime.worker", str(spec_file), str(listener.fileno()),
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
        self.signals += 1
        first = not self.stopping
        self.stopping = True
        # The first signal drains every worker; a second Ctrl-C makes them quit at once.
        passed = signal.SIGTERM if first else signum
        if first or signum == signal.SIGINT:
            for worker in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    worker.send_signal(passed)


def serve_worker(spec: ServerSpec, fd: int, debug: bool, load_first: bool) -> None:
    """One worker: the app on the supervisor's listening socket. One that replaces a
    worker that died loads its model first: accepting while it loads, it would answer
    503 to predictions the other workers could take (the first ones accept at once, so
    that /health answers during start-up)."""
    listener = socket.socket(fileno=fd)
    server = draining_server(spec, "", 0, debug)
    watch_parent(os.getppid())
    if load_first:
        load_quietly(server.app.service, server.app.peers)
    server.run(sockets=[listener])


def watch_parent(parent: int) -> None:
    """A worker whose supervisor is gone (killed) drains and exits, rather than serve orphaned."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="conduit-parent", daemon=True).start()
