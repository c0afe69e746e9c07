"""Pure logic of flows: hook arity dispatch, stages, coercion, errors, files
rewound, user code imported once, and model files read whatever wrote them."""

from __future__ import annotations

import functools
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conduit_runtime.errors import BadRequest, InputRejected, ModelFailed
from conduit_runtime.files import UploadedFile
from conduit_runtime.model.calls import bind_post, bind_pre
from conduit_runtime.model.flow import Flow, Stage
from conduit_runtime.model.loaders.model import Model, identity, read_pickle
from conduit_runtime.model.loaders.tabular import to_table
from conduit_runtime.model.userland import load_object, positional_arity

FILES = ["f"]


def upload(content: bytes, name: str = "a.bin") -> UploadedFile:
    return UploadedFile(io.BytesIO(content), name, "application/octet-stream")


# -- arity ---------------------------------------------------------------------


def test_positional_arity_counts_positional_parameters() -> None:
    """Defaults count, keyword-only and **kwargs do not, *args is 'any number'."""

    def one(a): ...
    def two_with_default(a, b=None): ...
    def keyword_only(a, *, files=None): ...
    def kwargs(a, **extra): ...
    def star(*args): ...

    class Hook:
        def __call__(self, out, data): ...

        def method(self, out, data, files): ...

    assert positional_arity(one) == 1
    assert positional_arity(two_with_default) == 2
    assert positional_arity(keyword_only) == 1
    assert positional_arity(kwargs) == 1
    assert positional_arity(star) >= 3
    assert positional_arity(Hook()) == 2  # a callable object: self is not counted
    assert positional_arity(Hook().method) == 3  # a bound method neither
    assert positional_arity(functools.partial(lambda tag, out: out, "x")) == 1
    assert positional_arity(lambda out, data, files: out) == 3


def test_pre_hook_dispatch_by_arity() -> None:
    """pre(data) gets the data; pre(data, files) also the files; *args takes both."""
    assert bind_pre(lambda data: ("one", data), "pre")("D", FILES) == ("one", "D")
    assert bind_pre(lambda data, files: ("two", data, files), "pre")("D", FILES) == ("two", "D", FILES)
    assert bind_pre(lambda *args: args, "pre")("D", FILES) == ("D", FILES)


def test_post_hook_dispatch_by_arity() -> None:
    """post(out), post(out, data), post(out, data, files) each get what they ask for."""
    assert bind_post(lambda out: (out,), "post")("O", "D", FILES) == ("O",)
    assert bind_post(lambda out, data: (out, data), "post")("O", "D", FILES) == ("O", "D")
    assert bind_post(lambda out, data, files: (out, data, files), "post")("O", "D", FILES) == ("O", "D", FILES)
    assert bind_post(lambda out, data=None, files=None: (out, data, files), "post")("O", "D", FILES) == ("O", "D", FILES)
    assert bind_post(lambda *args: args, "post")("O", "D", FILES) == ("O", "D", FILES)


def test_post_hook_with_keyword_only_files_gets_only_what_is_positional() -> None:
    """A keyword-only parameter is not filled positionally (its default stays)."""

    def post(out, data, *, files="default"):
        return (out, data, files)

    assert bind_post(post, "post")("O", "D", FILES) == ("O", "D", "default")


# -- stages and flows ------------------------------------------------------------


def model(call: Any, coerce: Any = identity) -> Model:
    return Model(call=lambda x, files, params: call(x), coerce=coerce)


def test_stage_coerces_only_without_a_pre_hook() -> None:
    """Without pre the model's coercion runs; with pre the hook's output is taken as is."""
    coerce_marks = model(lambda x: x, coerce=lambda data: ("coerced", data))
    assert Flow([Stage.build("s", coerce_marks, None, None)]).run("D", [], {}) == ("coerced", "D")
    hooked = Stage.build("s", coerce_marks, lambda data: ("pre", data), None)
    assert Flow([hooked]).run("D", [], {}) == ("pre", "D")


def test_stage_post_hook_gets_the_stage_input_as_data() -> None:
    """post(out, data) receives the data this stage was given, before its pre hook."""
    stage = Stage.build("s", model(lambda x: x * 10), lambda data: data + 1, lambda out, data: (out, data))
    assert Flow([stage]).run(1, [], {}) == (20, 1)


def test_parameters_reach_the_model() -> None:
    """Request parameters are handed to the model call."""
    stage = Stage.build("s", Model(call=lambda x, files, params: (x, params), coerce=identity), None, None)
    assert Flow([stage]).run("D", [], {"top_k": 2}) == ("D", {"top_k": 2})


def test_flow_chains_stages() -> None:
    """Each stage's output is the next one's input."""
    double = Stage.build("a", model(lambda x: [v * 2 for v in x]), None, None)
    total = Stage.build("b", model(sum), None, lambda out: {"total": out})
    assert Flow([double, total]).run([1, 2, 3], [], {}) == {"total": 12}


def test_every_hook_and_model_sees_files_from_their_start() -> None:
    """Files are rewound before each pre hook, model call and post hook, in every stage."""
    positions: list[tuple[str, int]] = []

    def reader(where: str) -> Any:
        def read(files: list[Any]) -> None:
            positions.append((where, files[0].tell()))
            files[0].read()

        return read

    pre, call, post = reader("pre"), reader("model"), reader("post")
    stage = Stage.build(
        "s",
        Model(call=lambda x, files, params: call(files), coerce=identity),
        lambda data, files: pre(files),
        lambda out, data, files: post(files),
    )
    Flow([stage, stage]).run([], [upload(b"abcdef")], {})
    assert positions == [("pre", 0), ("model", 0), ("post", 0)] * 2


def test_a_hook_closing_a_file_does_not_break_the_flow() -> None:
    """A closed file is skipped when rewinding; the flow goes on."""
    stage = Stage.build("s", model(lambda x: "ok"), lambda data, files: files[0].close(), None)
    assert Flow([stage, stage]).run([], [upload(b"x")], {}) == "ok"


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [(ValueError("no"), 422, InputRejected), (KeyError("k"), 422, InputRejected), (RuntimeError("boom"), 500, ModelFailed)],
)
def test_user_errors_become_422_or_500_naming_the_place(error: Exception, status: int, kind: type) -> None:
    """ValueError/KeyError from a hook is a 422, anything else a 500; the message (the log's detail
    for a 500) names the stage and place."""

    def raise_it(*_: Any) -> Any:
        raise error

    for stage, place in (
        (Stage.build("models[1] (sklearn)", model(lambda x: x), raise_it, None), "pre hook"),
        (Stage.build("models[1] (sklearn)", model(raise_it), None, None), "model"),
        (Stage.build("models[1] (sklearn)", model(lambda x: x), None, raise_it), "post hook"),
    ):
        with pytest.raises(kind) as caught:
            Flow([stage]).run([1], [], {})
        assert caught.value.status == status
        # A 422 tells the client what was wrong with its input; a 500 tells only the log.
        told = caught.value.message if status == 422 else caught.value.detail
        assert told.startswith(f"models[1] (sklearn) {place}")
        if status == 500:
            assert "boom" not in caught.value.message


def test_server_errors_from_hooks_pass_through() -> None:
    """A hook raising the server's own error keeps its status and code."""

    def refuse(data: Any) -> Any:
        raise BadRequest("send four features", "bad_shape")

    with pytest.raises(BadRequest) as caught:
        Flow([Stage.build("s", model(lambda x: x), refuse, None)]).run([], [], {})
    assert (caught.value.status, caught.value.code) == (400, "bad_shape")


# -- coercion ---------------------------------------------------------------------


def test_to_table_makes_rows_2d() -> None:
    """Rows stay 2-D; one bare numeric row is a table of one; strings stay a 1-D column."""
    assert to_table([[1, 2], [3, 4]]).shape == (2, 2)
    assert to_table([1.0, 2.0, 3.0]).shape == (1, 3)
    assert to_table(["good film", "bad"]).shape == (2,)


def test_to_table_refuses_ragged_and_3d_data() -> None:
    """Ragged rows and 3-D data are the client's 400 bad_shape."""
    for data in ([[1, 2], [3]], [[[1], [2]]]):
        with pytest.raises(BadRequest) as caught:
            to_table(data)
        assert caught.value.code == "bad_shape"


def test_to_table_keeps_sparse_matrices() -> None:
    """A sparse matrix from an earlier stage (a TfidfVectorizer's) passes unchanged."""
    import scipy.sparse

    matrix = scipy.sparse.csr_matrix(np.eye(3))
    assert to_table(matrix) is matrix


def test_to_table_keeps_data_frames() -> None:
    """A DataFrame from an earlier stage (set_output(transform="pandas")) passes unchanged."""
    import pandas
    frame = pandas.DataFrame({"sepal_length": [5.1], "species": ["setosa"]})
    assert to_table(frame) is frame  # column names survive for a ColumnTransformer


# -- model files and user code ------------------------------------------------------------


def test_read_pickle_reads_plain_and_joblib_files(tmp_path: Path) -> None:
    """.pkl from pickle, .pkl from joblib.dump (plain and compressed), and .joblib all load."""
    import joblib

    value = {"weights": np.arange(6.0).reshape(2, 3), "name": "m"}
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(value))
    joblib.dump(value, tmp_path / "joblib.pkl")
    joblib.dump(value, tmp_path / "compressed.pkl", compress=3)
    joblib.dump(value, tmp_path / "model.joblib")
    for name in ("plain.pkl", "joblib.pkl", "compressed.pkl", "model.joblib"):
        loaded = read_pickle(tmp_path / name)
        assert loaded["name"] == "m"
        assert np.array_equal(loaded["weights"], value["weights"])


def test_read_pickle_still_fails_on_garbage(tmp_path: Path) -> None:
    """A file that is neither pickle nor joblib raises (the server then reports not ready)."""
    (tmp_path / "bad.pkl").write_bytes(b"this is not a pickle")
    with pytest.raises(Exception):  # noqa: B017 - whichever reader gives up last
        read_pickle(tmp_path / "bad.pkl")


def test_load_object_imports_a_file_once_and_its_neighbours(tmp_path: Path) -> None:
    """hooks.py:fn imports hooks.py once (shared state) and can import files beside it."""
    (tmp_path / "labels_for_flow_test.py").write_text("NAMES = ('a', 'b')\n")
    (tmp_path / "hooks.py").write_text(
        "from labels_for_flow_test import NAMES\ncalls = []\n"
        "def pre(data):\n    calls.append(data)\n    return [NAMES[i] for i in data]\n"
        "def post(out):\n    return (out, len(calls))\n"
    )
    pre = load_object(tmp_path, "hooks.py:pre")
    post = load_object(tmp_path, "hooks.py:post")
    assert pre([1, 0]) == ["b", "a"]
    assert post("x") == ("x", 1)  # the same module: pre's call is seen
    with pytest.raises(ImportError, match="no attribute 'missing'"):
        load_object(tmp_path, "hooks.py:missing")


def test_load_object_imports_again_once_the_file_changed(tmp_path: Path) -> None:
    """A notebook that edits hooks.py and loads anew gets the edited hook; an unchanged file is not re-run."""
    hooks = tmp_path / "hooks.py"
    hooks.write_text("def post(out):\n    return 'first'\n")
    first = load_object(tmp_path, "hooks.py:post")
    assert load_object(tmp_path, "hooks.py:post") is first
    hooks.write_text("def post(out):\n    return 'second, edited'\n")
    assert load_object(tmp_path, "hooks.py:post")("x") == "second, edited"


def test_load_object_reports_a_missing_file(tmp_path: Path) -> None:
    """A hook file that is not there is an ImportError naming it."""
    with pytest.raises(ImportError, match=r"nothere\.py"):
        load_object(tmp_path, "nothere.py:fn")
