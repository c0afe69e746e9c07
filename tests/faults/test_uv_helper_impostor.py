"""The builder's own installer pinned (issue 19): an image that someone else tagged as the uv helper
(`conduit-uv:<version>`, as anyone who can reach a shared engine may) never runs in a build's
install step. Real engine, a real `conduit build` of a tiny python model (the two-stage layout,
whose builder copies uv from the helper image)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from conftest import conduit

from conduit_build.image.build import ensure_uv_image
from conduit_build.image.engine import client as engine_client
from conduit_build.image.uv import UV_IMAGE, host_uv_for_images, recorded_uv_images

pytestmark = pytest.mark.docker

MARKER = b"\n# conduit test: the uv helper impostor\n"
# Shows, in the image, which uv ran in the builder stage: its sha256 lands in the venv that the
# runtime stage copies.
TEMPLATE = ('{% extends "conduit/Dockerfile.j2" %}\n'
            "{% block builder %}{{ super() }}\nRUN sha256sum /opt/uv/bin/uv > /opt/venv/uv.sha256\n{%- endblock builder %}\n")


def impostor_context(genuine: bytes) -> io.BytesIO:
    """An image that is not the helper conduit made: the real uv with bytes appended (an ELF file
    runs with trailing bytes, so builds by others sharing the engine while it holds the tag still
    work) and a marker file. Which one ran shows by the binary's sha256."""
    spool = io.BytesIO()
    files = {"Dockerfile": (b"FROM scratch\nCOPY uv /uv\nCOPY impostor /impostor\n", 0o644),
             "uv": (genuine + MARKER, 0o755), "impostor": (MARKER, 0o644)}
    with tarfile.open(fileobj=spool, mode="w") as archive:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    spool.seek(0)
    return spool


@pytest.fixture
def impostor(engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    """The impostor's id and the genuine uv binary, with a cache folder of this test's own (no
    helper recorded yet; the `conduit` it runs inherits it). Afterwards the helper tag is back
    where it was, and the images this test made (impostor, helpers recorded in its cache folder)
    are removed; images of others never."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    binary = host_uv_for_images()
    assert binary is not None, "the test machine is Linux x86-64 with the pinned uv installed (pyproject)"
    genuine = binary.read_bytes()
    try:
        original: str | None = engine.images.get(UV_IMAGE).id
    except docker.errors.ImageNotFound:
        original = None
    made = engine.images.build(fileobj=impostor_context(genuine), custom_context=True, rm=True,
                               labels={"conduit.test": "uv-impostor"})[0]
    try:
        yield made.id, genuine
    finally:
        if original is not None:
            engine.images.get(original).tag(*UV_IMAGE.split(":"))
        # both are FROM scratch: their parent layers are this test's too, and go with them
        engine.images.remove(made.id, force=True)
        for remade in recorded_uv_images():
            if original is not None and remade != original:  # else the remade helper keeps the tag
                with contextlib.suppress(docker.errors.APIError):  # in use by a build beside this one: left
                    engine.images.remove(remade)


def test_an_image_tagged_as_the_uv_helper_never_runs_in_a_build(engine: Any, impostor: tuple[str, bytes],
                                                                 tmp_path: Path) -> None:
    """Breaks on purpose: an unknown image is tagged conduit-uv:<version>. Before, the builder
    stage copied uv from whatever carried the tag (`COPY --from=conduit-uv:<version>`): the build
    ran the impostor's /uv, and the venv's uv.sha256 below was the impostor's. Now the build
    names the helper by an id it recorded; with none recorded (a fresh cache folder) it makes the
    helper again rather than use the tagged one, then records it; a later build with the record
    moves the tag back without making anything."""
    impostor_id, genuine = impostor
    engine.images.get(impostor_id).tag(*UV_IMAGE.split(":"))
    project = tmp_path / "tiny"
    project.mkdir()
    (project / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (project / "Dockerfile.j2").write_text(TEMPLATE)
    (project / "conduit.yaml").write_text('name: uv-impostor-probe\npython: "3.11"\n'
                                         'models: [{type: python, file: "model.py:Model"}]\nimage: {dockerfile: Dockerfile.j2}\n')
    result = conduit("build", "-f", str(project / "conduit.yaml"), "--json", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    tag = json.loads(result.stdout)["tag"]
    try:
        assert "an image these builds did not make: not used" in result.stderr
        ran = engine.containers.run(tag, ["cat", "/opt/venv/uv.sha256"], remove=True).decode().split()[0]
        assert ran == hashlib.sha256(genuine).hexdigest(), "the builder ran another uv than the genuine one"
        assert ran != hashlib.sha256(genuine + MARKER).hexdigest()
    finally:
        engine.images.remove(tag, noprune=True)  # its parent layers may be cache that other builds share

    remade = recorded_uv_images()
    assert len(remade) == 1 and remade[0] != impostor_id
    assert engine.images.get(UV_IMAGE).id == remade[0]
    # the impostor takes the tag again: the recorded helper is used, and gets the tag back
    engine.images.get(impostor_id).tag(*UV_IMAGE.split(":"))
    notes: list[str] = []
    used = ensure_uv_image(engine_client(), "python:3.11-slim", {}, lambda event: notes.append(event.text))
    assert used == remade[0] and recorded_uv_images() == remade  # nothing made
    assert engine.images.get(UV_IMAGE).id == remade[0]
    assert notes == [f"{UV_IMAGE} is {impostor_id[:19]}…, an image these builds did not make: not used"]
