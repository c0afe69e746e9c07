"""uv, the installer of every image's Python packages: the host's (for `conduit lock`) and the
engine's helper image `conduit-uv:<version>` (for the builder stage).

The builder stage takes uv with `COPY --from=conduit-uv:<version>`, the way it takes its base
image: made once per engine, then present for every build, `--no-cache` ones included. Before,
each cold build installed uv with the base's pip (3 s on an idle machine, 10 s on a busy one).
The helper image is `FROM scratch` with the one static-enough binary at /uv, taken from the
host's uv wheel when the host is Linux x86-64 and its uv is the pinned version (the wheel is
manylinux: it runs on the images' Debian), else installed with pip inside the engine once.
The Dockerfile names only the version, so the context hash is the same on every host.
"""

from __future__ import annotations

import io
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from ..errors import UsageError

UV_VERSION = "0.13.9"  # pinned: the same uv resolves and installs the same way
UV_IMAGE = f"conduit-uv:{UV_VERSION}"


def uv_binary() -> str:
    """The host's uv (the `uv` Python package's, else the one on PATH)."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise UsageError("uv is not installed; `conduit lock` resolves with it", "pip install uv") from None
        return found


def host_uv_for_images() -> Path | None:
    """The host's uv binary when it can run in the images (Linux x86-64, the pinned version)."""
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        binary = uv_binary()
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (UsageError, OSError, subprocess.SubprocessError):
        return None
    if version.returncode != 0 or version.stdout.split()[:2] != ["uv", UV_VERSION]:
        return None
    return Path(binary)


def uv_image_context(base: str, binary: Path | None) -> IO[bytes]:
    """The build context of UV_IMAGE: the host's `binary` (host_uv_for_images()) when there is
    one, else a pip install from `base` inside the engine."""
    if binary is not None:
        dockerfile = "FROM scratch\nCOPY uv /uv\n"
    else:
        dockerfile = (f"FROM {base} AS get\nARG UV_INDEX_URL\nARG UV_EXTRA_INDEX_URL\n"
                      "RUN python3 -m venv --without-pip /opt/uv && PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 "
                      "PIP_INDEX_URL=${UV_INDEX_URL:-https://pypi.org/simple} PIP_EXTRA_INDEX_URL=$UV_EXTRA_INDEX_URL "
                      f"python3 -m pip --python /opt/uv/bin/python install --quiet uv=={UV_VERSION}\n"
                      "FROM scratch\nCOPY --from=get /opt/uv/bin/uv /uv\n")
    spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 (the caller closes it)
    with tarfile.open(fileobj=spool, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile.encode())
        archive.addfile(info, io.BytesIO(dockerfile.encode()))
        if binary is not None:
            info = tarfile.TarInfo("uv")
            info.size, info.mode = binary.stat().st_size, 0o755
            with binary.open("rb") as handle:
                archive.addfile(info, handle)
    spool.seek(0)
    return spool
