"""uv, the installer of every image's Python packages: the host's (for `conduit lock`) and the
engine's helper image `conduit-uv:<version>` (for the builder stage).

The builder stage takes uv from the helper image, the way it takes its base image: made once per
engine, then present for every build, `--no-cache` ones included. Before, each cold build
installed uv with the base's pip (3 s on an idle machine, 10 s on a busy one). The helper image
is `FROM scratch` with the one static-enough binary at /uv, taken from the host's uv wheel when
the host is Linux x86-64 and its uv is the pinned version (the wheel is manylinux: it runs on the
images' Debian), else installed inside the engine with pip, by the hash of the pinned wheel.

The helper is trusted by the id the build recorded when it made it, never by its tag: anyone who
can tag an image on a shared engine would otherwise run code in every build's install step. The
ids are kept in a file of the user's cache folder (UV_RECORD), not on the engine, where labels
and tags are anyone's to write; an image id is a digest of the image's content, so no other image
can carry a recorded one. The Dockerfile names the helper by a build argument (UV_IMAGE_ARG,
whose default is the tag, for `docker build` of a rendered context), so the context hash is the
same on every host and engine.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import UsageError

UV_VERSION = "0.13.9"  # pinned: the same uv resolves and installs the same way
UV_IMAGE = f"conduit-uv:{UV_VERSION}"
UV_IMAGE_ARG = "CONDUIT_UV_IMAGE"  # the build argument that names the helper image by its id
# The wheels of UV_VERSION that pip may install, by `uname -m` of the image, with PyPI's sha256
# of each file: pip installs uv with --require-hashes, so an index or mirror that serves any
# other file fails the build. A new UV_VERSION needs new rows (test_uv_helper checks the names).
UV_WHEELS: dict[str, tuple[str, str]] = {
    "x86_64": ("uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
               "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"),
    "aarch64": ("uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
                "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe"),
}
UV_RECORD = "uv-images.txt"  # in the user's cache folder: `<helper tag> <image id>` per line
UV_RECORD_KEEP = 16  # ids kept (one per engine the user builds on; the newest win)


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


def pip_install_uv(venv: str) -> str:
    """Shell commands for a RUN (one per line) that install UV_VERSION into a new venv at `venv`
    with the image's pip, from the one wheel of UV_WHEELS for the machine they run on, checked by
    its hash; any other machine stops the build with one line."""
    cases = " ".join(f"{machine}) uv_hash={sha256};;" for machine, (_, sha256) in UV_WHEELS.items())
    return " \\\n && ".join([
        f'case "$(uname -m)" in {cases} *) echo "conduit: no pinned uv wheel for $(uname -m)" >&2; exit 1;; esac',
        f'python3 -m venv --without-pip {venv} && echo "uv=={UV_VERSION} --hash=sha256:$uv_hash" > {venv}/uv.txt',
        f"python3 -m pip --python {venv}/bin/python install --quiet --require-hashes --only-binary=:all: -r {venv}/uv.txt",
    ])


def uv_image_context(base: str, binary: Path | None) -> IO[bytes]:
    """The build context of UV_IMAGE: the host's `binary` (host_uv_for_images()) when there is
    one, else a pip install by hash from `base` inside the engine."""
    if binary is not None:
        dockerfile = "FROM scratch\nCOPY uv /uv\n"
    else:
        dockerfile = (f"FROM {base} AS get\nARG UV_INDEX_URL\nARG UV_EXTRA_INDEX_URL\n"
                      "RUN export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore "
                      "PIP_INDEX_URL=${UV_INDEX_URL:-https://pypi.org/simple} PIP_EXTRA_INDEX_URL=$UV_EXTRA_INDEX_URL \\\n"
                      f" && {pip_install_uv('/opt/uv')}\n"
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


def uv_record_path() -> Path:
    """The file of helper image ids this user's builds made (XDG_CACHE_HOME, else ~/.cache):
    writable by the user alone, unlike anything on a shared engine. Losing it costs one remake
    of the helper image, never trust."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "conduit" / UV_RECORD


def recorded_uv_images() -> list[str]:
    """The ids of UV_IMAGE this user's builds made, oldest first (none when there is no record)."""
    try:
        lines = uv_record_path().read_text().splitlines()
    except OSError:  # none, or unreadable: nothing is trusted, the helper is made again
        return []
    return [fields[1] for fields in (line.split() for line in lines)
            if len(fields) == 2 and fields[0] == UV_IMAGE and fields[1].startswith("sha256:")]


def record_uv_image(image_id: str) -> None:
    """Add `image_id` to the record as the newest, keeping the last UV_RECORD_KEEP lines; written
    beside it and renamed, so a reader never sees half a file (two builds recording at once may
    lose one line: a remake later, never a wrong id)."""
    path = uv_record_path()
    lines = [line for line in path.read_text().splitlines() if line.split() != [UV_IMAGE, image_id]] if path.is_file() else []
    lines = [*lines, f"{UV_IMAGE} {image_id}"][-UV_RECORD_KEEP:]
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging.write_text("".join(line + "\n" for line in lines))
        staging.replace(path)
    except OSError as error:
        raise UsageError(f"cannot record the uv helper image in {path}: {error.strerror or error}",
                         "set XDG_CACHE_HOME to a folder you can write") from error


def trusted_uv_image(tagged: str | None, exists: Callable[[str], bool]) -> str | None:
    """The helper image a build may copy uv from: the one tagged UV_IMAGE (id `tagged`) when its id
    is recorded, else the newest recorded id the engine `exists` has; None when there is none (the
    helper is to be made). An unrecorded image under the tag is never the answer."""
    recorded = recorded_uv_images()
    if tagged is not None and tagged in recorded:
        return tagged
    return next((image for image in reversed(recorded) if exists(image)), None)
