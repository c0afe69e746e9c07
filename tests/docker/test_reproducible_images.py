"""Content reproducibility (issue 10): two `--no-cache` builds of one project with conduit.lock
give images with the same files (paths, types, modes, owners, contents, link targets; read from
`docker export`, timestamps ignored) and the same installed set.

The image digests are reported, not asserted: the test lists every layer whose digest differs
between the two builds, with the instruction that made it and why (from `docker save`: which
files differ in content, and how many only in mtime), and what differs in the image config.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from conftest import build, conduit
from test_locked_builds import installed, locked_set

pytestmark = pytest.mark.docker

Entry = tuple[str, int, int, int, str, str]  # type, mode, uid, gid, sha256 of the contents, link target


def entries(stream: IO[bytes]) -> dict[str, tuple[Entry, int]]:
    """path → (everything but the timestamp, mtime) of a tar read as a stream."""
    found: dict[str, tuple[Entry, int]] = {}
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            content = ""
            if member.isfile():
                handle = archive.extractfile(member)
                content = hashlib.file_digest(handle, "sha256").hexdigest() if handle else ""
            entry = (member.type.decode(), member.mode, member.uid, member.gid, content, member.linkname)
            found[member.name.rstrip("/")] = (entry, int(member.mtime))
    return found


class Chunks:
    """The SDK's chunk iterator as a readable stream, for tarfile's stream mode."""

    def __init__(self, chunks: Any) -> None:
        self.chunks, self.buffer = iter(chunks), b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        data, self.buffer = (self.buffer, b"") if size < 0 else (self.buffer[:size], self.buffer[size:])
        return data


def exported_files(engine: Any, tag: str) -> dict[str, Entry]:
    """The image's file system as `docker export` gives it, timestamps left out."""
    container = engine.containers.create(tag, command=["true"])
    try:
        return {path: entry for path, (entry, _) in entries(Chunks(container.export())).items()}  # type: ignore[arg-type]
    finally:
        container.remove(force=True)


@dataclass
class Layer:
    diff_id: str
    created_by: str
    files: dict[str, tuple[Entry, int]]


def saved_layers(engine: Any, tag: str) -> tuple[dict[str, Any], list[Layer]]:
    """The image config and its layers, each with the instruction that made it, from `docker save`."""
    with tempfile.TemporaryFile() as spool:
        for chunk in engine.images.get(tag).save():
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool) as archive:
            def member(name: str) -> IO[bytes]:
                handle = archive.extractfile(name)
                assert handle is not None, name
                return handle

            manifest = json.load(member("manifest.json"))[0]
            config = json.load(member(manifest["Config"]))
            made_layers = [step.get("created_by", "") for step in config["history"] if not step.get("empty_layer")]
            layers = [Layer(diff_id, created_by, entries(member(path)))
                      for diff_id, created_by, path in zip(config["rootfs"]["diff_ids"], made_layers, manifest["Layers"], strict=True)]
    return config, layers


def why_layers_differ(first: list[Layer], second: list[Layer]) -> list[str]:
    """One line per layer whose digest differs: its instruction, then what differs in it."""
    lines = []
    for index, (one, two) in enumerate(zip(first, second, strict=True)):
        if one.diff_id == two.diff_id:
            continue
        paths = one.files.keys() | two.files.keys()
        content = sorted(p for p in paths if (one.files.get(p) or (None,))[0] != (two.files.get(p) or (None,))[0])
        mtimes = sorted(p for p in paths if p in one.files and p in two.files and p not in content
                        and one.files[p][1] != two.files[p][1])
        what = []
        if content:
            what.append(f"{len(content)} paths differ in content or metadata ({', '.join(content[:5])})")
        if mtimes:
            what.append(f"{len(mtimes)} paths differ only in mtime ({', '.join(mtimes[:5])})")
        lines.append(f"layer {index} `{one.created_by.replace('/bin/sh -c ', '')[:90]}`: {'; '.join(what) or 'tar headers only'}")
    return lines


WHY = {"created": "the build's time", "history": "each step's time", "container": "the id of the last step's container",
       "config.Image": "the parent image id, itself a digest of the above", "rootfs": "the layers above",
       "container_config": "the last step's container"}


def config_differences(first: dict[str, Any], second: dict[str, Any], prefix: str = "") -> list[str]:
    """The image config's keys (one level into `config`) whose values differ, and why."""
    lines = []
    for key in sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k)):
        if key == "config" and isinstance(first.get(key), dict) and isinstance(second.get(key), dict):
            lines += config_differences(first[key], second[key], "config.")
        else:
            lines.append(f"config `{prefix}{key}`: {WHY.get(prefix + key, 'differs')}")
    return lines


def test_two_no_cache_builds_with_a_lock_have_the_same_files(engine: Any, examples: Path, tmp_path: Path,
                                                           record_property: Any) -> None:
    project = tmp_path / "iris"
    shutil.copytree(examples / "iris", project, ignore=shutil.ignore_patterns("__pycache__", "conduit.lock"))
    config = project / "conduit.yaml"
    name = f"repro-{uuid.uuid4().hex[:8]}"
    config.write_text(config.read_text().replace("name: iris", f"name: {name}")
                      .replace("localhost:5000/iris", f"localhost:5000/{name}"))
    locked = conduit("lock", "-f", str(config))
    assert locked.returncode == 0, locked.stderr
    tags = [f"{name}:first", f"{name}:second"]
    try:
        for tag in tags:
            build(config, "--no-cache", "--locked", "--tag", tag)
        ids = [engine.images.get(tag).id for tag in tags]
        files = [exported_files(engine, tag) for tag in tags]
        differing = sorted(p for p in files[0].keys() | files[1].keys() if files[0].get(p) != files[1].get(p))
        saved = [saved_layers(engine, tag) for tag in tags]
        report = [f"image ids: {ids[0][:19]} and {ids[1][:19]} ({'equal' if ids[0] == ids[1] else 'different'})",
                  *why_layers_differ(saved[0][1], saved[1][1]), *config_differences(saved[0][0], saved[1][0])]
        print("\n".join(["reproducibility of two --no-cache builds with conduit.lock:", *report]))
        record_property("reproducibility", "\n".join(report))  # in the JUnit report too
        assert differing == [], f"{len(differing)} paths differ between the two images: {differing[:20]}"
        assert len(files[0]) > 1000  # a whole file system was compared, not an empty export
        lock = locked_set(project / "conduit.lock")
        assert installed(engine, tags[0]) == installed(engine, tags[1]) == lock
    finally:
        for image in engine.images.list(name):
            engine.images.remove(image.id, force=True)
