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


def pip_args(requirements: list[str], gpu: bool, find_links: Path | None = None) -> str:
    """torch comes from PyTorch's own index: CPU-only wheels, or CUDA ones for GPU targets, unless
    the find-links folder holds a torch wheel for the target (then the index is not asked at all:
    where it does not answer, asking it fails the whole resolution)."""
    if not any(requirement_name(r) == "torch" for r in requirements) or has_torch_wheel(find_links, gpu):
        return ""
    return f"--extra-index-url {GPU_TORCH_INDEX if gpu else CPU_TORCH_INDEX} "


def has_torch_wheel(find_links: Path | None, gpu: bool) -> bool:
    """A torch wheel for the target among the find-links: `+cpu` ones for CPU targets, others for GPU."""
    if find_links is None or not find_links.is_dir():
        return False
    return any(("+cpu" in wheel.name) != gpu for wheel in find_links.glob("torch-*.whl"))


# How a CPU target gets the CPU build of torch, when it could not.
CPU_TORCH_FIX = ("give the build PyTorch's CPU wheels: an index that has them (image.extra_index_urls or "
                 "CONDUIT_PIP_EXTRA_INDEX_URL), a folder holding the torch +cpu wheel (image.find_links or "
                 "CONDUIT_PIP_FIND_LINKS, with torch pinned ==X.Y.Z), or a conduit.lock that pins it")


def cpu_torch_unavailable(log: str, resolved: str = "") -> str | None:
    """What a CPU target's failed resolution means, in one line, when the CPU build of torch was
    not to be had: its index did not answer (uv's log says it could not fetch from it), or CUDA
    wheels were resolved instead (torch from PyPI pulls nvidia-* wheels: the Dockerfile's guard
    line in the log, or nvidia-* pins in `resolved`). Either way before anything is downloaded."""
    guard = re.search(r"^conduit: CUDA wheels resolved for a cpu target:(.*)$", log, re.MULTILINE)
    cuda = guard.group(1).split() if guard else re.findall(r"^(nvidia-[a-z0-9-]+)==", resolved, re.MULTILINE)
    if guard or cuda:
        return (f"a cpu target resolved CUDA wheels ({', '.join(cuda[:3])}…): the CPU build of torch "
                "could not be had, and a CPU image never carries CUDA")
    if re.search(r"Failed to fetch:?\s*`?" + re.escape(CPU_TORCH_INDEX), log):
        return f"PyTorch's CPU wheel index ({CPU_TORCH_INDEX}) did not answer: the CPU build of torch cannot be had"
    return None
