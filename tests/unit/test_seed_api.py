"""The seed's Python API in-process: Conduit(name, key, flow).load(dir).run(data, files),
.save(dir), model_api_request, and the one-line errors a notebook user sees.

Real parts: the seed's digits model (a scikit-learn Pipeline trained in a child
process, tests/seed_digits.py), real files and PIL images, `__main__` hooks from
a real child process, and a real `conduit serve` for model_api_request.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, ROOT, conduit
from PIL import Image
from seed_digits import make_digits

from conduit import Conduit, ConduitError, PredictionError, hardware, model_api_request, model_type
from conduit_build.config.schema import MODEL_TYPES


def pre_process(data: Any, files: Any) -> Any:
    """The seed's hook, as its documentation wrote it."""
    labelled = {d: Image.open(f) for d, f in zip(data, files, strict=False)}
    return labelled


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits.pkl (the Pipeline), three.png, seven.png, three.jpg, seven.jpg."""
    return make_digits(tmp_path_factory.mktemp("seed-digits"))


@pytest.fixture(scope="module")
def seed(digits: Path) -> Conduit:
    conduit = Conduit("digits", "KEY", [(model_type.SKLEARN, "digits.pkl", {"pre": pre_process})])
    return conduit.load(digits)


def error_of(call: Any) -> ConduitError:
    with pytest.raises(ConduitError) as caught:
        call()
    return caught.value


# -- constructor, load, run ---------------------------------------------------------------


def test_model_type_names_every_design_type() -> None:
    """model_type.X for each DESIGN §2 type, its value the YAML spelling; the seed's PYTORCH too."""
    assert {member.value for member in model_type} == set(MODEL_TYPES)
    assert model_type.HF_PIPELINE == "hf_pipeline" and model_type.PYTORCH is model_type.TORCH
    assert hardware.CPU == "cpu" and hardware.GPU == "gpu"


def test_the_seed_snippet_runs_with_every_kind_of_file(seed: Conduit, digits: Path) -> None:
    """Paths, bytes, an open binary file, and PIL images (PNG and JPEG): the seed's pre_process
    opens each with Image.open and the model names the digits."""
    with (digits / "seven.png").open("rb") as handle:
        files = [
            digits / "three.png",
            (digits / "seven.jpg").read_bytes(),
            handle,
            Image.open(digits / "three.jpg"),
            Image.open(digits / "seven.png"),
            str(digits / "three.jpg"),
        ]
        answer = seed.run(["a", "b", "c", "d", "e", "f"], files)
        assert not handle.closed
    assert answer["result"] == [3, 7, 7, 3, 7, 3]
    assert set(answer) == {"result", "run_id", "run_time_ms", "prediction_ids"}


def test_pil_images_travel_in_their_own_format(tmp_path: Path, digits: Path) -> None:
    """A JPEG stays a JPEG (name, content type, bytes Pillow reads as JPEG); an image made in
    memory has no format and goes as PNG."""
    (tmp_path / "model.py").write_text("class Formats:\n    def predict(self, data):\n        return data\n")

    def look(data: Any, files: Any) -> Any:
        return [[f.name, f.content_type, Image.open(f).format] for f in files]

    conduit = Conduit("formats", None, [("python", "model.py:Formats", {"pre": look})]).load(tmp_path)
    made = Image.new("RGB", (4, 4), "red")
    result = conduit.run([None, None], [Image.open(digits / "three.jpg"), made])["result"]
    assert result == [["three.jpg", "image/jpeg", "JPEG"], ["file1.png", "image/png", "PNG"]]


def test_hooks_are_called_by_arity(tmp_path: Path) -> None:
    """pre(data) / pre(data, files); post(out) / post(out, data) / post(out, data, files), as the server."""
    (tmp_path / "model.py").write_text("class Same:\n    def predict(self, data):\n        return data\n")
    flows = {
        "pre1-post1": ({"pre": lambda data: [d * 2 for d in data], "post": lambda out: [o + 1 for o in out]}, [3]),
        "pre2-post2": ({"pre": lambda data, files: [len(files)] * len(data), "post": lambda out, data: out + data}, [0, 1]),
        "post3": ({"post": lambda out, data, files: [[o, d, len(files)] for o, d in zip(out, data, strict=True)]},
                  [[1, 1, 0]]),
    }
    for name, (hooks, expected) in flows.items():
        conduit = Conduit(name, None, [(model_type.PYTHON, "model.py:Same", hooks)]).load(tmp_path)
        assert conduit.run([1])["result"] == expected, name


def test_a_two_stage_flow_with_a_reference_hook(tmp_path: Path, digits: Path) -> None:
    """Stages run in order; a hook may also be a `file.py:function` reference in the folder."""
    (tmp_path / "digits.pkl").write_bytes((digits / "digits.pkl").read_bytes())
    (tmp_path / "words.py").write_text("class Words:\n    def predict(self, data):\n"
                                       "        return [['zero one two three four five six seven eight nine'.split()[d]]"
                                       " for d in data]\n")
    (tmp_path / "hooks.py").write_text("def flat(out):\n    return [w for row in out for w in row]\n")
    conduit = Conduit("two", None, [(model_type.SKLEARN, "digits.pkl", {"pre": pre_process}),
                                    (model_type.PYTHON, "words.py:Words", {"post": "hooks.py:flat"})]).load(tmp_path)
    assert conduit.run(["x"], [digits / "seven.png"])["result"] == ["seven"]


def test_one_file_alone_and_the_warm_up(tmp_path: Path, digits: Path) -> None:
    """A file given alone (not in a list) is one file; load() warms up with the first tests: example."""
    (tmp_path / "model.py").write_text("class Calls:\n    calls = 0\n\n    def predict(self, data, files):\n"
                                       "        type(self).calls += 1\n        return [[type(self).calls, len(files)]]\n")
    model = Conduit("calls", None, [(model_type.PYTHON, "model.py:Calls")], tests=[{"name": "warm", "json": [1]}])
    model.load(tmp_path)
    assert model.run([None], digits / "three.png")["result"] == [[2, 1]]  # the warm-up was call 1


def test_a_refused_input_is_a_prediction_error(seed: Conduit) -> None:
    """What the server answers with 422 is a PredictionError with that status and code."""
    error = error_of(lambda: seed.run(["a"], [b"not an image"]))
    assert isinstance(error, PredictionError)
    assert (error.status, error.code) == (422, "invalid_input")
    assert "pre hook rejected the input" in str(error)


# -- errors a notebook user sees -----------------------------------------------------------


@pytest.mark.parametrize(("make", "says"), [
    (lambda: Conduit("My Model", None, [("sklearn", "m.pkl")]), "'My Model' is not a valid model name (use lowercase"),
    (lambda: Conduit("m", None, [("sklern", "m.pkl")]), "flow[0]: 'sklern' is not a model type (use model_type.X"),
    (lambda: Conduit("m", None, []), "the flow is empty"),
    (lambda: Conduit("m", None, [("sklearn",)]), "flow[0] is ('sklearn',) (each stage is"),
    (lambda: Conduit("m", None, [("sklearn", "m.pkl", {"pre": lambda: 1})]), "flow[0] pre hook takes 0 arguments"),
    (lambda: Conduit("m", None, [("sklearn", "m.pkl", {"before": print})]), "flow[0]: hooks are"),
    (lambda: Conduit("m", None, [("sklearn", "m.pkl")], replicas=2), "unknown keyword 'replicas'"),
    (lambda: Conduit("m", None, [("sklearn", "m.pkl")], server={"port": 0}), "server.port: Input should be greater"),
    (lambda: Conduit("m", None, [("sklearn", "m.pkl")], hardware="tpu"), "hardware:"),
])
def test_constructor_errors_are_one_line_with_the_fix(make: Any, says: str) -> None:
    error = error_of(make)
    assert says in str(error)
    assert "\n" not in str(error)


def test_errors_carry_no_traceback_of_our_internals(digits: Path) -> None:
    """Raised from the method called, with no chained exception, and IPython shows one line."""
    conduit = Conduit("m", None, [("sklearn", "digit.pkl")])
    error = error_of(lambda: conduit.load(digits))
    assert str(error).startswith("flow[0] (sklearn): 'digit.pkl' does not exist (did you mean 'digits.pkl'?)")
    assert error.__cause__ is None and error.__suppress_context__
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert frames[-1] == "public"  # the wrapper of the public method; nothing deeper
    assert error._render_traceback_() == [f"UsageError: {error}"]  # type: ignore[attr-defined]


def test_run_before_load_and_a_model_that_does_not_load(tmp_path: Path) -> None:
    model = Conduit("m", None, [("sklearn", "model.pkl")])
    assert "call conduit.load('./') first" in str(error_of(lambda: model.run([[1]])))
    (tmp_path / "model.pkl").write_bytes(b"not a pickle")
    assert "flow[0] (sklearn): cannot load model.pkl: " in str(error_of(lambda: model.load(tmp_path)))


# -- save -----------------------------------------------------------------------------------


def test_save_references_module_hooks_and_validates(tmp_path: Path, digits: Path) -> None:
    """A hook from a module file is `file.py:function` (its file copied along); requirements are
    pinned to what runs here; the first run is the contract example; `conduit validate` passes
    and the saved project answers like the notebook."""
    model = Conduit("digits", None, [(model_type.SKLEARN, "digits.pkl", {"pre": pre_process})]).load(digits)
    assert model.run(["a"], [Image.open(digits / "seven.png")])["result"] == [7]
    path = model.save(tmp_path / "project")
    text = path.read_text()
    assert "pre: test_seed_api.py:pre_process" in text
    assert (tmp_path / "project" / "test_seed_api.py").is_file() and (tmp_path / "project" / "digits.pkl").is_file()
    assert not (tmp_path / "project" / "notebook_hooks.py").exists()
    import numpy
    import PIL
    import sklearn

    for pin in (f"scikit-learn=={sklearn.__version__}", f"pillow=={PIL.__version__}", f"numpy=={numpy.__version__}"):
        assert f"- {pin}" in text.lower()
    assert "files:\n    - samples/seven.png" in text
    assert conduit("validate", "-f", str(path)).returncode == 0
    assert Conduit.from_file(path).load().run(["b"], [digits / "three.png"])["result"] == [3]


NOTEBOOK = """
from conduit import Conduit, model_type
from PIL import Image

THRESHOLD = 3

def pre_process(data, files):
    return {d: Image.open(f) for d, f in zip(data, files)}

conduit = Conduit("notebook", None, [(model_type.SKLEARN, "digits.pkl",
                                      {"pre": pre_process, "post": lambda out: [int(x) > THRESHOLD for x in out]})])
conduit.load("./")
conduit.save()
"""


@pytest.fixture
def notebook_project(tmp_path: Path, digits: Path) -> Path:
    """A project saved by a script whose hooks live in `__main__` (one a lambda)."""
    (tmp_path / "digits.pkl").write_bytes((digits / "digits.pkl").read_bytes())
    (tmp_path / "notebook.py").write_text(NOTEBOOK)
    ran = subprocess.run([sys.executable, "notebook.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert ran.returncode == 0, ran.stderr
    return tmp_path


def test_notebook_hooks_are_pickled_and_load_again(notebook_project: Path, digits: Path) -> None:
    """`__main__` hooks go into notebook_hooks.py (the lambda under its stage's name, with the
    global it reads); conduit.yaml names them; cloudpickle is required; they answer here."""
    text = (notebook_project / "conduit.yaml").read_text()
    assert "pre: notebook_hooks.py:pre_process" in text and "post: notebook_hooks.py:stage0_post" in text
    assert "- cloudpickle==" in text
    assert conduit("validate", "-f", str(notebook_project / "conduit.yaml")).returncode == 0
    saved = Conduit.from_file(notebook_project / "conduit.yaml").load()
    assert saved.run(["a", "b"], [digits / "three.png", digits / "seven.png"])["result"] == [False, True]


def test_pickled_hooks_refuse_another_python_with_the_fix(notebook_project: Path) -> None:
    """Loaded by another Python minor version, notebook_hooks.py stops with how to fix it."""
    hooks = notebook_project / "notebook_hooks.py"
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    other = "3.9" if here != "3.9" else "3.10"
    text = hooks.read_text().replace(f"PICKLED_BY = {sys.version_info[:2]}", f"PICKLED_BY = ({other.replace('.', ', ')})")
    hooks.write_text(text.replace(f"Python {here}", f"Python {other}").replace(f'\\"{here}\\"', f'\\"{other}\\"'))
    error = error_of(lambda: Conduit.from_file(notebook_project / "conduit.yaml").load())
    assert f"notebook_hooks.py holds hooks pickled by Python {other}, which only that Python can load, " \
           f"and this is Python {here}" in str(error)
    assert f"run Conduit.save() again under Python {here}" in str(error)
    assert "\n" not in str(error)


def test_save_keeps_files_it_did_not_write(tmp_path: Path, digits: Path) -> None:
    (tmp_path / "conduit.yaml").write_text("name: mine\n")
    model = Conduit("digits", None, [(model_type.SKLEARN, "digits.pkl")]).load(digits)
    assert "was not written by Conduit.save()" in str(error_of(lambda: model.save(tmp_path)))
    assert (tmp_path / "conduit.yaml").read_text() == "name: mine\n"


def test_deploy_needs_a_key_and_a_known_target(digits: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """api_key falls back to CONDUIT_API_KEY; without either, deploy says how to give one."""
    monkeypatch.delenv("CONDUIT_API_KEY", raising=False)
    model = Conduit("digits", None, [(model_type.SKLEARN, "digits.pkl")]).load(digits)
    assert "set CONDUIT_API_KEY" in str(error_of(model.deploy))
    assert "'ftp' is not one of docker, kubernetes" in str(error_of(lambda: model.deploy(target="ftp")))


# -- model_api_request ------------------------------------------------------------------------


def test_model_api_request_sends_files_as_a_form(serve: Any, tmp_path: Path, digits: Path) -> None:
    """Against a real `conduit serve` of a saved project: files as a path and a PIL image, or
    none (a JSON body); a wrong key is a PredictionError with the server's 401."""
    (tmp_path / "model.py").write_text("class Count:\n    def predict(self, data, files):\n"
                                       "        return [[d, len(files)] for d in data]\n")
    model = Conduit("count", None, [(model_type.PYTHON, "model.py:Count")]).load(tmp_path)
    model.run(["warm"])
    server = serve(model.save())
    url = server.url + "/predict"
    answer = model_api_request(url, ["a"], API_KEY, files=[digits / "three.png", Image.open(digits / "seven.jpg")])
    assert answer["result"] == [["a", 2]]
    assert model_api_request(server.url, ["b", "c"], API_KEY)["result"] == [["b", 0], ["c", 0]]
    with pytest.raises(PredictionError) as caught:
        model_api_request(url, ["a"], "wrong", files=[io.BytesIO(b"x")])
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert json.loads(json.dumps(answer)) == answer
