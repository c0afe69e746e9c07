"""The resolved configuration the server runs from.

The build tool validates conduit.yaml and writes this as plain JSON
(`conduit.json` in the image); the runtime trusts it and only reads it, so it
needs neither pydantic nor YAML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StageSpec:
    type: str
    file: str  # relative to the project directory ("model.py:Class" for python)
    pre: str | None = None  # "hooks.py:function"
    post: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


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

    @classmethod
    def from_dict(cls, raw: dict[str, Any], project_dir: Path) -> ServerSpec:
        server = raw.get("server", {})
        warmup = raw.get("warmup")
        return cls(
            name=raw["name"],
            project_dir=project_dir,
            stages=tuple(StageSpec(**stage) for stage in raw["stages"]),
            port=server.get("port", 8000),
            api_key_env=server.get("api_key_env", "CONDUIT_API_KEY"),
            max_body_bytes=int(server.get("max_body_mb", 100) * 1024 * 1024),
            timeout_s=float(server.get("timeout_s", 180)),
            max_concurrency=server.get("max_concurrency", 4),
            max_queue=server.get("max_queue", 64),
            gpu=raw.get("gpu", False),
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
