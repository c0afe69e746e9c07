"""Batching's pure parts (conduit_runtime/model/batch.py) with the real libraries:
inputs concatenated along the first axis and outputs cut back per request, for
numpy arrays, scipy sparse matrices, pandas frames, torch tensors and lists; and
a Batcher driven on a real event loop (no server) by concurrent requests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch

from conduit_runtime.errors import InputRejected
from conduit_runtime.model.batch import Batcher, Item, concatenate, rows_of, split
from conduit_runtime.model.calls import Call


def items(*rows: int) -> list[Item]:
    return [Item(None, n, [], {}, None) for n in rows]  # type: ignore[arg-type]


def test_lists_concatenate_and_split_in_order() -> None:
    xs = [[[1, 1]], [[2, 2], [2, 3]], [[3, 3]]]
    assert concatenate(xs) == [[1, 1], [2, 2], [2, 3], [3, 3]]
    assert split(["a", "b", "c", "d"], items(1, 2, 1)) == [["a"], ["b", "c"], ["d"]]


def test_numpy() -> None:
    xs = [np.ones((1, 4)), np.zeros((3, 4)), np.full((2, 4), 7.0)]
    joined = concatenate(xs)
    assert joined.shape == (6, 4)
    parts = split(joined * 2, items(1, 3, 2))
    assert [p.shape for p in parts] == [(1, 4), (3, 4), (2, 4)]
    assert (parts[2] == 14).all()
    with pytest.raises(ValueError):
        concatenate([np.ones((1, 4)), np.ones((1, 3))])  # other widths: each request then runs alone


def test_scipy_sparse() -> None:
    xs = [scipy.sparse.csr_matrix(np.eye(3)[:1]), scipy.sparse.csr_matrix(np.eye(3)[1:])]
    joined = concatenate(xs)
    assert scipy.sparse.issparse(joined) and joined.shape == (3, 3) and joined.format == "csr"
    parts = split(scipy.sparse.coo_matrix(joined.toarray()), items(1, 2))
    assert (parts[1].toarray() == np.eye(3)[1:]).all()


def test_pandas_frames() -> None:
    xs = [pd.DataFrame({"a": [1], "b": [2]}), pd.DataFrame({"a": [3, 5], "b": [4, 6]}, index=[7, 8])]
    joined = concatenate(xs)
    assert list(joined["a"]) == [1, 3, 5] and list(joined.index) == [0, 1, 2]
    parts = split(joined["b"], items(1, 2))
    assert list(parts[0]) == [2] and list(parts[1]) == [4, 6]


def test_torch_tensors() -> None:
    xs = [torch.ones(2, 3), torch.zeros(1, 3)]
    joined = concatenate(xs)
    assert tuple(joined.shape) == (3, 3) and rows_of(joined) == 3
    parts = split(joined.sum(dim=1), items(2, 1))
    assert parts[0].tolist() == [3.0, 3.0] and parts[1].tolist() == [0.0]


def test_what_has_no_rows_or_does_not_go_together() -> None:
    assert rows_of({"input": [1]}) is None and rows_of(3.0) is None and rows_of(np.float32(1)) is None
    with pytest.raises(TypeError):
        concatenate([[1], np.ones((1, 1))])
    with pytest.raises(TypeError):
        concatenate([{"a": 1}, {"a": 2}])
    with pytest.raises(ValueError):
        split([1, 2], items(1, 2))  # an output that is not one row per input row


class Model:
    """Counts rows per call; a row "bad" is refused (ValueError → 422)."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()

    def __call__(self, x: Any, files: list[Any], parameters: dict[str, Any]) -> Any:
        self.calls.append(len(x))
        if x == ["first"]:
            self.gate.wait(5)  # holds the stage while the others queue
        if "bad" in x:
            raise ValueError("bad row")
        return [f"{row}!" for row in x]


def test_batcher_batches_what_waits_and_finds_the_culprit() -> None:
    model = Model()
    observed: list[tuple[int, bool]] = []
    batcher = Batcher(Call(model, "models[0] (python) model"), max_size=8, max_wait_ms=0,
                      observe=lambda rows, failed: observed.append((rows, failed)))

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(batcher.call_async(["first"], [], {}))
        await asyncio.sleep(0.1)
        rest = [asyncio.ensure_future(batcher.call_async(rows, [], {}))
                for rows in (["a"], ["b", "c"], ["bad"], ["d"], ["e", "f", "g", "h", "i"])]
        await asyncio.sleep(0.05)
        model.gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    try:
        answers = asyncio.run(scenario())
    finally:
        batcher.close()
    assert answers[0] == ["first!"]
    assert answers[1] == ["a!"] and answers[2] == ["b!", "c!"] and answers[4] == ["d!"]
    assert isinstance(answers[3], InputRejected)
    assert answers[5] == ["e!", "f!", "g!", "h!", "i!"]  # 5 more rows did not fit in 8: the next call
    # first alone; a, b c, bad, d as one call of 5 rows, which failed; bisected: a + b c (3 rows),
    # bad + d (2 rows, failed again), bad alone, d alone; then e-i.
    assert model.calls == [1, 5, 3, 2, 1, 1, 5]
    assert [rows for rows, failed in observed if not failed] == model.calls
    assert [rows for rows, failed in observed if failed] == [5, 2]


def test_batcher_with_max_wait_waits_for_more() -> None:
    model = Model()
    batcher = Batcher(Call(model, "models[0] (python) model"), max_size=4, max_wait_ms=300)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(batcher.call_async(["a"], [], {}))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.call_async(["b", "c", "d"], [], {}))  # fills it: goes at once
        return await asyncio.gather(first, second)

    try:
        loop_started = asyncio.run(scenario())
    finally:
        batcher.close()
    assert loop_started == [["a!"], ["b!", "c!", "d!"]]
    assert model.calls == [4]


def test_an_idle_stage_runs_in_the_callers_thread_and_hands_over_what_queued() -> None:
    model = Model()
    batcher = Batcher(Call(model, "models[0] (python) model"), max_size=8, max_wait_ms=0)

    async def scenario() -> tuple[Any, Any, Any]:
        loop = asyncio.get_running_loop()
        batcher.loop = loop  # as after the server's first queued request
        # A worker thread finds the stage idle and calls the model itself: no hop.
        alone = loop.run_in_executor(None, batcher.try_now, ["first"], [], {})
        await asyncio.sleep(0.1)
        # Meanwhile the stage is busy: another worker thread is told to queue ...
        assert batcher.try_now(["x"], [], {}) == (False, None)
        # ... and queued requests go as one call once the first call ends.
        queued = asyncio.gather(batcher.call_async(["a"], [], {}), batcher.call_async(["b"], [], {}))
        await asyncio.sleep(0.05)
        model.gate.set()
        return await alone, await queued, batcher.busy

    try:
        ran, queued, busy = asyncio.run(scenario())
    finally:
        batcher.close()
    assert ran == (True, ["first!"])
    assert queued == [["a!"], ["b!"]]
    assert model.calls == [1, 2] and busy is False
