"""The engine's uv helper image (conduit_build/image/uv.py): its build context from the host's uv."""

from __future__ import annotations

import platform
import subprocess
import sys
import tarfile

import pytest

from conduit_build.image.uv import UV_IMAGE, UV_VERSION, host_uv_for_images, uv_image_context


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.machine() != "x86_64",
                    reason="the host's uv runs in the images only on Linux x86-64; elsewhere pip installs it in the engine")
def test_the_helper_image_holds_the_hosts_pinned_uv_alone() -> None:
    binary = host_uv_for_images()
    assert binary is not None, "the test environment installs uv==" + UV_VERSION
    assert subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.startswith(f"uv {UV_VERSION}")
    with uv_image_context("python:3.11-slim", binary) as spool, tarfile.open(fileobj=spool) as archive:
        members = {member.name: member for member in archive.getmembers()}
        dockerfile = archive.extractfile("Dockerfile")
        assert dockerfile is not None and dockerfile.read() == b"FROM scratch\nCOPY uv /uv\n"
    assert sorted(members) == ["Dockerfile", "uv"]
    assert members["uv"].mode == 0o755 and members["uv"].size == binary.stat().st_size
    assert f"conduit-uv:{UV_VERSION}" == UV_IMAGE


def test_without_a_usable_host_uv_pip_installs_the_pinned_uv_in_the_engine() -> None:
    """A macOS or ARM host (no binary that runs in the images): the helper image is made inside
    the engine, through the same indexes."""
    with uv_image_context("python:3.12-slim", None) as spool, tarfile.open(fileobj=spool) as archive:
        assert archive.getnames() == ["Dockerfile"]
        handle = archive.extractfile("Dockerfile")
        assert handle is not None
        dockerfile = handle.read().decode()
    assert dockerfile.startswith("FROM python:3.12-slim AS get\nARG UV_INDEX_URL\nARG UV_EXTRA_INDEX_URL\n")
    assert f"install --quiet uv=={UV_VERSION}" in dockerfile and dockerfile.endswith("FROM scratch\nCOPY --from=get /opt/uv/bin/uv /uv\n")
