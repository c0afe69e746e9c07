"""The piecewise JSON parser of large bodies reads exactly what json.loads reads, and
refuses exactly what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduit_runtime.wire import codec as protocol

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=30,
)


@pytest.fixture(autouse=True)
def always_piecewise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "PIECEWISE", 0)


@given(JSON, st.sampled_from([None, 0, 2]), st.sampled_from([", ", ",", " ,\n"]))
def test_reads_what_json_loads_reads(value: Any, indent: int | None, comma: str) -> None:
    text = json.dumps(value, indent=indent, separators=(comma, ": "))
    assert protocol.loads(text) == json.loads(text)
    assert protocol.loads(text.encode()) == json.loads(text)


def accepts(loads: Any, text: str) -> bool:
    try:
        loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@given(st.text(alphabet='[]{}",: 01a\n', max_size=30))
def test_refuses_what_json_loads_refuses(text: str) -> None:
    assert accepts(protocol.loads, text) == accepts(json.loads, text)


@pytest.mark.parametrize("text", ["[1] trailing", "[1,]", '{"data": [1]} {}', "{'data': [1]}", "[1 2]", "",
                                  "[" * 100_000 + "]" * 100_000])
def test_known_bad_bodies_are_refused(text: str) -> None:
    assert not accepts(protocol.loads, text)
