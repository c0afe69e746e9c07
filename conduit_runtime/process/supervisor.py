"""Several worker processes on one port (`server.workers` > 1).

The supervisor binds the port once and starts that many worker processes
(worker.py) that accept on the same socket, each with its own model. A worker
that dies is logged, its metric files are marked dead, and another is started in
its place after a back-off: 1 s, doubling at each death in a row up to 30 s, back
to 1 s once a worker has stayed up for 60 s (a model whose load kills its process
would otherwise restart many times a second, forever). Meanwhile the other workers
serve, and /ready stays 200 while one of them is ready. SIGTERM (or Ctrl-C) is
passed on to every worker, each drains, and the supervisor exits 0 once they all
have. What the workers share (readiness, metrics) lives in a private temporary
folder (http/peers.py, http/metrics.py).
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

from ..http.peers import DIR_ENV, forget
from ..log import log
from ..spec import ServerSpec

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STEADY_S = 60.0  # a worker up this long ran fine: the next death starts the back-off over


class Supervisor:
    """Several worker processes on one port (server.workers)."""

    def __init__(self, spec: ServerSpec, host: str, port: int, debug: bool, count: int) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.debug = debug
        self.count = count
        self.stopping = False
        self.slots = [Slot(index) for index in range(count)]

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
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), DIR_ENV: str(ready)}
        command = [sys.executable, "-m", "conduit_runtime.process.worker", str(spec_file), str(listener.fileno()),
                   *(["--debug"] if self.debug else [])]

        def start(slot: Slot, load_first: bool = False) -> None:
            # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which
            # passes one signal on (a worker that got both would quit without draining).
            try:
                slot.process = subprocess.Popen([*command, *(["--load-first"] if load_first else [])],
                                                env={**env, **self.gpu_env(slot.index)},
                                                pass_fds=(listener.fileno(),), start_new_session=True)
            except OSError as exc:  # out of processes or memory: a death like any other
                log({"event": "worker_start_failed", "time": time.time(), "error": f"{type(exc).__name__}: {exc}"})
                slot.died(time.monotonic())
                return
            slot.started = time.monotonic()
            log({"event": "worker_started", "time": time.time(), "pid": slot.process.pid})

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        log({"event": "workers", "count": self.count, "port": self.port, "folder": str(folder)})
        for slot in self.slots:  # the listener stays open: restarts need it
            start(slot)
        deadline: float | None = None
        while True:
            now = time.monotonic()
            if self.stopping:
                if deadline is None:
                    deadline = now + self.spec.drain_delay_s + self.spec.timeout_s + 15
                    # Again, for a worker started as the signal came (one that has it already ignores this).
                    self.pass_on(signal.SIGTERM)
                if all(slot.process is None or slot.process.poll() is not None for slot in self.slots):
                    break
                if now > deadline:  # a worker stuck past its own drain deadline
                    self.pass_on(signal.SIGKILL)
            else:
                for slot in self.slots:
                    worker = slot.process
                    if worker is not None and worker.poll() is not None:
                        self.forget(worker.pid, metrics, ready)
                        wait_s = slot.died(now)
                        log({"event": "worker_died", "time": time.time(), "pid": worker.pid,
                             "exit_status": worker.returncode, "restart_in_s": wait_s,
                             "message": f"a worker process ended; starting another in {wait_s:g} s"})
                    elif worker is None and now >= slot.restart_at:
                        start(slot, load_first=True)
            time.sleep(0.1)
        log({"event": "workers_stopped", "count": self.count})

    def gpu_env(self, index: int) -> dict[str, str]:
        """With a GPU, each worker sees one GPU of its own (validate allows no more workers than
        hardware.count); else every worker would load its model onto the first."""
        if not self.spec.gpu:
            return {}
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible is not None else [str(number) for number in range(self.count)]
        return {"CUDA_VISIBLE_DEVICES": devices[index % len(devices)]}

    @staticmethod
    def forget(pid: int, metrics: Path, ready: Path) -> None:
        from prometheus_client import multiprocess

        forget(ready, pid)
        multiprocess.mark_process_dead(pid, str(metrics))  # its live gauges no longer count

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = not self.stopping
        self.stopping = True
        # The first signal drains every worker (SIGTERM after server.drain_delay_s, Ctrl-C
        # at once); a second Ctrl-C makes them quit at once.
        if first or signum == signal.SIGINT:
            self.pass_on(signum)

    def pass_on(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)


class Slot:
    """One of the workers: its process, or when the next one starts (the back-off)."""

    def __init__(self, index: int) -> None:
        self.index = index  # which GPU it gets, with a GPU
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.delay_s = FIRST_DELAY_S
        self.restart_at = 0.0

    def died(self, now: float) -> float:
        """Its process ended (or could not start): the seconds until the next one starts."""
        if self.process is not None and now - self.started >= STEADY_S:
            self.delay_s = FIRST_DELAY_S
        wait_s = self.delay_s
        self.delay_s = min(self.delay_s * 2, MAX_DELAY_S)
        self.process = None
        self.restart_at = now + wait_s
        return wait_s
