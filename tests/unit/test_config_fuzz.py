"""Property: whatever conduit.yaml holds, `load` returns a Project or raises a
ConfigError of one-line `conduit.yaml:LINE:COL: …` problems sorted by position;
never any other exception (which the CLI would show as a traceback)."""

from __future__ import annotations

import copy
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conduit_build.config import Project, load
from conduit_build.config.schema import MODEL_TYPES
from conduit_build.errors import ConfigError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINE = re.compile(r"^conduit\.yaml:(\d+):(\d+): ")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with something for every kind of path the config can name."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "model.pkl").write_bytes(b"not really a pickle")
    (root / "hooks.py").write_text("def pre(data, files=None):\n    return data\n\n\ndef post(out, data):\n    return out\n\n\n"
                                   "def four(out, data, files, extra):\n    return out\n")
    (root / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (root / "broken.py").write_text("def (:\n")
    (root / "model").mkdir()
    (root / "samples").mkdir()
    (root / "samples" / "a.png").write_bytes(b"\x89PNG")
    (root / "outside.pkl").symlink_to("/etc/hostname")
    (root / "loop").symlink_to(root / "loop")
    return root


def check(project: Path, text: str | bytes) -> None:
    path = project / "conduit.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    try:
        result = load(path, "conduit.yaml")
    except ConfigError as error:
        lines = error.lines()
        assert lines, "a ConfigError names at least one problem"
        positions = []
        for line in lines:
            assert "\n" not in line and "\r" not in line, f"a problem spans lines: {line!r}"
            found = LINE.match(line)
            assert found, f"not file:line:col: {line!r}"
            row, col = int(found[1]), int(found[2])
            assert row >= 1 and col >= 1
            positions.append((row, col))
        assert positions == sorted(positions), lines
    else:
        assert isinstance(result, Project)


# -- random text -------------------------------------------------------------------

TOKENS = [
    "name", "models", "type", "file", "hooks", "pre", "post", "options", "server", "port", "env", "tests",
    "json", "form", "files", "data", "expect", "result", "hardware", "python", "image", "deploy", "gpu",
    ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "'", '"', "#", "&a", "*a", "!!str", "!!binary", "!!set",
    "<<: *a", "---", "...", "?", "|", ">", "%YAML 1.1", "\t", " ", "  ", "    ", "\n", "\r\n", "\\", "\x00",
    "3.10", "0", "-1", "1e9", "null", "~", "true", "yes", "on", "0x1F", "2024-01-01", ".nan", "é", "\u2028",
    "model.pkl", "hooks.py:pre", "model.py:Model", "../x", "/etc/passwd", "sklearn", "hf_pipeline", "API_KEY",
]


@SETTINGS
@given(st.text(max_size=300))
def test_any_text(project: Path, text: str) -> None:
    check(project, text)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_yaml_like_text(project: Path, text: str) -> None:
    check(project, text)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes(project: Path, data: bytes) -> None:
    check(project, data)


# -- random documents --------------------------------------------------------------

KEYS = [*TOKENS[:23], "requirements", "requirements_file", "system_packages", "api_key_env", "max_body_mb",
        "timeout_s", "max_concurrency", "max_queue", "repository", "base", "tolerance", "docker", "kubernetes",
        "prot", "modles", "nmae", "count", "LOG_LEVEL", "AWS_SECRET", "TOKEN"]
PATHS = ["model.pkl", "model", "samples/a.png", "hooks.py:pre", "hooks.py:post", "hooks.py:nope", "hooks.py:four", "broken.py:f",
         "model.py:Model", "model.py:Nope", "model.py", "missing.pkl", "../model.pkl", "/etc/hostname", "outside.pkl",
         "loop", "", ".", "a\x00b", "x" * 300, "samples", "C:/x.py:f"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.sampled_from([*KEYS, *PATHS, *MODEL_TYPES, "3.11", "3.10", "cpu", "gpu", "8000"]),
    st.text(max_size=20),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(string.printable, max_size=10), st.integers(-5, 5), st.booleans())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


VALID_STAGES = [
    {"type": "sklearn", "file": "model.pkl"},
    {"type": "hf_pipeline", "file": "model", "options": {"task": "text-classification"}},
    {"type": "python", "file": "model.py:Model", "hooks": {"pre": "hooks.py:pre", "post": "hooks.py:post"}},
]
VALID_TESTS = [{"name": "row", "json": [[1.0, 2.0]], "expect": {"result": [0]}},
               {"name": "png", "form": {"data": [None], "files": ["samples/a.png"]}}]
valid_configs = st.fixed_dictionaries(
    {"name": st.just("fuzz"), "models": st.lists(st.sampled_from(VALID_STAGES), min_size=1, max_size=3)},
    optional={
        "python": st.just("3.12"), "hardware": st.sampled_from(["cpu", "gpu", {"type": "a10g", "count": 2}]),
        "env": st.just({"LOG_LEVEL": "debug", "WORKERS": 2}), "server": st.just({"port": 9000, "max_queue": 0}),
        "tests": st.lists(st.sampled_from(VALID_TESTS), max_size=2), "deploy": st.just({"kubernetes": {"replicas": 3}}),
    },
)


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the document, containers included."""
    found = [prefix]
    items = document.items() if isinstance(document, dict) else enumerate(document) if isinstance(document, list) else []
    for key, value in items:
        found += paths(value, (*prefix, key))
    return found


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config with a few values replaced, keys removed or keys added."""
    document = copy.deepcopy(draw(valid_configs))  # never mutate the shared examples
    for _ in range(draw(st.integers(1, 3))):
        if not document:
            break
        path = draw(st.sampled_from(paths(document)[1:]))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(st.one_of(st.sampled_from(PATHS), documents))
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(keys)] = draw(scalars)
    return document


@SETTINGS
@given(documents, st.booleans())
def test_any_document(project: Path, document: Any, flow: bool) -> None:
    check(project, yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True))


@SETTINGS
@given(st.one_of(valid_configs, mutated_configs()), st.booleans())
def test_config_like_document(project: Path, document: dict[str, Any], flow: bool) -> None:
    check(project, yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True, sort_keys=False))
