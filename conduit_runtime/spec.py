"""The resolved configuration the server runs from.

The build tool validates conduit.yaml and writes this as plain JSON
(`conduit.json` in the image); the runtime trusts it and only reads it, so it
needs neither pydantic nor YAML.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BatchSpec:
    """models[i].batch: requests waiting for the stage share one call of up to max_size rows."""

    max_size: int = 64
    max_wait_ms: float = 0.0


@dataclass(frozen=True)
class StageSpec:
    type: str
    file: str  # relative to the project directory ("model.py:Class" for python)
    pre: str | None = None  # "hooks.py:function"
    post: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    batch: BatchSpec | None = None
    max_new_tokens: int = 512  # hf_pipeline: the cap on a request's max_new_tokens

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StageSpec:
        batch = raw.get("batch")
        return cls(**{**raw, "batch": BatchSpec(**batch) if batch else None})


@dataclass(frozen=True)
class WeightsSpec:
    """`weights` of an image built with `image.weights: separate`: the model files are not in
    the image; each path P (project-relative) is a link to the active weights tree, which the
    runtime fetches, verifies and points at before any model loads (conduit_runtime/weights/)."""

    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Example:
    """One `tests:` case; the first one is the warm-up call."""

    name: str
    data: Any
    files: tuple[str, ...] = ()
    v2: dict[str, Any] | None = None  # an Open Inference Protocol infer request instead of data


@dataclass(frozen=True)
class ServerSpec:
    name: str
    project_dir: Path
    stages: tuple[StageSpec, ...]
    port: int = 8000
    api_key_env: str = "CONDUIT_API_KEY"
    max_body_bytes: int = 100 * 1024 * 1024
    timeout_s: float = 180.0
    max_concurrency: int = 4
    max_queue: int = 64
    gpu: bool = False
    warmup: Example | None = None
    workers: int | str = 1  # processes sharing the port; "auto": one per usable CPU
    wedge_restart_s: float = 540.0  # a wedge this long turns /live 503; from_dict: 3 x timeout_s unless set

    @property
    def worker_count(self) -> int:
        return usable_cpus() if self.workers == "auto" else int(self.workers)

    @property
    def running_slots(self) -> int:
        """Requests that may be past admission's queue at once. With a batched stage a
        request waiting for its batch holds one, so each of the max_concurrency calls may
        carry a full batch of one-row requests: max_concurrency x the largest max_size."""
        sizes = [stage.batch.max_size for stage in self.stages if stage.batch is not None]
        return self.max_concurrency * max(sizes) if sizes else self.max_concurrency
    # Async predictions (predict/predictions.py)
    async_timeout_s: float = 3600.0
    async_max_queue: int = 1000
    async_ttl_s: float = 3600.0
    async_max_results: int = 10000
    async_store: str = "memory"  # or redis://HOST:PORT/DB
    webhook_secret_env: str = "CONDUIT_WEBHOOK_SECRET"
    docs: bool = True  # GET /docs: Swagger UI (http/docs.py)
    drain_delay_s: float = 5.0  # after SIGTERM: admitted still, while /ready is 503
    max_buffered_bytes: int = 1024 * 1024 * 1024  # request bodies in memory at once, all requests together
    webhook_allowed_hosts: tuple[str, ...] = ()  # host names or CIDRs a webhook may reach though not public
    async_max_attempts: int = 3  # model starts of a prediction whose holder died (Redis store)
    weights: WeightsSpec | None = None  # None: bundled, the weights are in the image

    @classmethod
    def from_dict(cls, raw: dict[str, Any], project_dir: Path) -> ServerSpec:
        server = raw.get("server", {})
        warmup = raw.get("warmup")
        weights = raw.get("weights") or {}
        return cls(
            name=raw["name"],
            project_dir=project_dir,
            stages=tuple(StageSpec.from_dict(stage) for stage in raw["stages"]),
            port=server.get("port", 8000),
            api_key_env=server.get("api_key_env", "CONDUIT_API_KEY"),
            max_body_bytes=int(server.get("max_body_mb", 100) * 1024 * 1024),
            timeout_s=float(server.get("timeout_s", 180)),
            max_concurrency=server.get("max_concurrency", 4),
            max_queue=server.get("max_queue", 64),
            gpu=raw.get("gpu", False),
            workers=server.get("workers", 1),
            wedge_restart_s=float(server.get("wedge_restart_s") or 3 * float(server.get("timeout_s", 180))),
            async_timeout_s=float(server.get("async_timeout_s", 3600)),
            async_max_queue=server.get("async_max_queue", 1000),
            async_ttl_s=float(server.get("async_ttl_s", 3600)),
            async_max_results=server.get("async_max_results", 10000),
            async_store=server.get("async_store", "memory"),
            webhook_secret_env=server.get("webhook_secret_env", "CONDUIT_WEBHOOK_SECRET"),
            docs=server.get("docs", True),
            drain_delay_s=float(server.get("drain_delay_s", 5)),
            max_buffered_bytes=int(server.get("max_buffered_mb", 1024) * 1024 * 1024),
            webhook_allowed_hosts=tuple(server.get("webhook_allowed_hosts", ())),
            async_max_attempts=server.get("async_max_attempts", 3),
            weights=WeightsSpec(tuple(weights.get("paths", ()))) if weights.get("mode") == "separate" else None,
            warmup=Example(
                name=warmup["name"],
                data=warmup.get("data"),
                files=tuple(warmup.get("files", ())),
                v2=warmup.get("v2"),
            )
            if warmup
            else None,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ServerSpec:
        path = Path(path)
        raw = json.loads(path.read_text())
        return cls.from_dict(raw, Path(raw.get("project_dir") or path.parent).resolve())


def usable_cpus() -> int:
    """The CPUs this process may use: those it may run on, fewer under a cgroup CPU quota
    (a container's --cpus, a pod's limits.cpu), which the affinity mask does not show."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return max(1, cpus)
    if quota != "max" and int(period) > 0:
        cpus = min(cpus, math.ceil(int(quota) / int(period)))
    return max(1, cpus)
