"""conduit push against a real registry on 127.0.0.1:5000, and pulls back by digest."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Built, conduit

pytestmark = pytest.mark.docker


def test_push_prints_digest_and_pull_by_digest_works(engine: Any, images: dict[str, Built]) -> None:
    built = images["iris"]
    result = conduit("push", "-f", str(built.config))
    assert result.returncode == 0, result.stderr
    reference = result.stdout.strip()
    assert re.fullmatch(r"localhost:5000/iris@sha256:[0-9a-f]{64}", reference), reference
    pulled = engine.images.pull(reference)
    assert pulled.id == engine.images.get(built.tag).id


def test_push_to_unreachable_registry_is_one_line_exit_1(engine: Any, images: dict[str, Built]) -> None:
    image = engine.images.get(images["iris"].tag)
    image.tag("127.0.0.1:5999/iris", "unreachable")
    result = conduit("push", "-f", str(images["iris"].config), "--tag", "127.0.0.1:5999/iris:unreachable")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: push") and "Traceback" not in result.stderr


def test_push_before_build_says_build_first(tmp_path: Any, images: dict[str, Built]) -> None:
    result = conduit("push", "-f", str(images["iris"].config), "--tag", "localhost:5000/iris:never-built")
    assert result.returncode == 1
    assert "conduit build" in result.stderr


def test_push_a_tag_without_version_to_a_registry_with_a_port(engine: Any, images: dict[str, Built]) -> None:
    """`localhost:5000/iris-latest` has no tag: the colon is the registry's port (the SDK's own parsing)."""
    engine.images.get(images["iris"].tag).tag("localhost:5000/iris-latest")
    result = conduit("push", "-f", str(images["iris"].config), "--tag", "localhost:5000/iris-latest")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"localhost:5000/iris-latest@sha256:[0-9a-f]{64}", result.stdout.strip()), result.stdout
