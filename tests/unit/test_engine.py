"""The engine module's own vocabulary, without an engine: references as the Docker SDK
parses them, and .dockerignore patterns as Docker applies them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conduit_build.image.engine import Reference, split_reference, unignored


@pytest.mark.parametrize(("reference", "expected"), [
    ("iris", Reference("iris")),
    ("iris:abc123", Reference("iris", tag="abc123")),
    ("localhost:5000/iris", Reference("localhost:5000/iris")),
    ("localhost:5000/iris:abc123", Reference("localhost:5000/iris", tag="abc123")),
    ("localhost:5000/team/iris@sha256:" + "a" * 64, Reference("localhost:5000/team/iris", digest="sha256:" + "a" * 64)),
])
def test_references_are_split_by_the_sdk(reference: str, expected: Reference) -> None:
    assert split_reference(reference) == expected


def test_dockerignore_patterns_as_docker_applies_them(tmp_path: Path) -> None:
    for name in ("a.md", "docs/b.md", "docs/keep.md", "src/c.py", "src/deep/d.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    files = {p for p in unignored(tmp_path, ["**/*.md", "!docs/keep.md"]) if (tmp_path / p).is_file()}
    assert files == {"docs/keep.md", "src/c.py"}
