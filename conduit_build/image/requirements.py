"""requirements.txt of the image: the user's requirements for the target (CPU or
GPU wheels), then the runtime's locked pins."""

from __future__ import annotations

import re
from pathlib import Path

import conduit_runtime

from ..config import Project

RUNTIME_DIR = Path(conduit_runtime.__file__).resolve().parent
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
GPU_TORCH_INDEX = "https://download.pytorch.org/whl/cu126"
# CPU wheel → GPU wheel, for libraries that publish them under another name.
GPU_NAMES = {"onnxruntime": "onnxruntime-gpu", "xgboost-cpu": "xgboost"}
CPU_NAMES = {value: key for key, value in GPU_NAMES.items()}
# The async store's client, pinned: only images whose server.async_store is redis://… get it.
REDIS = "redis==5.2.1"


def runtime_extras(project: Project) -> list[str]:
    """Optional runtime dependencies the config asks for."""
    return [REDIS] if project.config.server.async_store.startswith("redis://") else []


def requirement_name(line: str) -> str:
    return re.split(r"[\s<>=!~;\[@]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def user_requirements(project: Project) -> list[str]:
    config = project.config
    lines = list(config.requirements)
    if config.requirements_file:
        text = (project.root / config.requirements_file).read_text()
        lines += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines


def requirements_text(requirements: list[str], gpu: bool, extras: list[str] | None = None) -> str:
    """The user's requirements for the target, then the runtime's locked pins (and its
    optional ones the config asks for)."""
    renames = GPU_NAMES if gpu else CPU_NAMES
    lines = []
    for line in requirements:
        name = requirement_name(line)
        lines.append(renames[name] + line.strip()[len(name):] if name in renames else line.strip())
    runtime = (RUNTIME_DIR / "requirements.txt").read_text()
    target = "GPU" if gpu else "CPU"
    runtime += "".join(f"{line}\n" for line in extras or ())
    return f"# {target} target: the model's requirements from conduit.yaml\n" + "\n".join(lines) + "\n" + runtime


def pip_args(requirements: list[str], gpu: bool) -> str:
    """torch comes from PyTorch's own index: CPU-only wheels, or CUDA ones for GPU targets."""
    torch_index = GPU_TORCH_INDEX if gpu else CPU_TORCH_INDEX
    return f"--extra-index-url {torch_index} " if any(requirement_name(r) == "torch" for r in requirements) else ""
