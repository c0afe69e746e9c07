"""One image per model type (DESIGN §2), built for real and contract-tested in a container
that runs as the non-root user on a read-only root filesystem with a tmpfs on /tmp.

Each project's model is made here (`conduit init --type T` trains it; the flow, the pickled
torch module and the expected results are made in this module), its `tests:` examples carry
the results the model library itself gives on this machine, and `conduit test --url` checks
the container answers them. Types of one library family share one requirements list, so their
images share the venv layer (built once); every image is built once per session, on first use.
torch comes from the CPU wheel in CONDUIT_TORCH_WHEELS (default /opt/wheels): PyTorch's CPU
index does not answer from the builds here.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, Built, build, conduit

pytestmark = pytest.mark.docker

WHEELS = Path(os.environ.get("CONDUIT_TORCH_WHEELS", "/opt/wheels"))
SETOSA, VERSICOLOR, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]
IRIS_ROWS = [SETOSA, VERSICOLOR, VIRGINICA]
TEXTS = ["i love this movie", "awful film"]
# Image names carry the worktree's folder name: engineers sharing one engine never collide.
PREFIX = re.sub(r"[^a-z0-9-]+", "-", ROOT.name.lower()).strip("-") or "conduit"

SKLEARN = ["scikit-learn==1.9.1"]
XGBOOST = ["xgboost-cpu==3.2.0", *SKLEARN]
TORCH = ["transformers==5.24.0", "torch==2.13.0"]  # torch, pickled torch and hf_pipeline share it

SPACY_HOOKS = '''def pre(data):
    return [str(text) for text in data]


def post(out, data):
    return [{"text": text, "sentences": [s.text for s in doc.sents], "tokens": [t.text for t in doc]}
            for doc, text in zip(out, data)]
'''


def init(directory: Path, model_type: str) -> None:
    """`conduit init --type T`: trains the small model of that type into the folder."""
    made = conduit("init", "--type", model_type, str(directory))
    assert made.returncode == 0, made.stdout + made.stderr
    (directory / "hooks.py").unlink()
    (directory / "conduit.yaml").unlink()


def write_config(directory: Path, model_type: str, models: list[dict[str, Any]], requirements: list[str],
                 data: Any, result: Any, tolerance: float | None = None) -> Path:
    expect: dict[str, Any] = {"result": result}
    if tolerance is not None:
        expect["tolerance"] = tolerance
    config = {
        "name": f"{PREFIX}-{model_type.replace('_', '-')}",
        "models": models,
        "requirements": requirements,
        "tests": [{"name": "example", "json": data, "expect": expect}],
    }
    path = directory / "conduit.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    return path


def load_pickle(path: Path) -> Any:
    with path.open("rb") as handle:
        return pickle.load(handle)


# -- one maker per project: the model, conduit.yaml, and its right answer -----------------------


def make_sklearn(d: Path) -> Path:
    init(d, "sklearn")
    expected = load_pickle(d / "model.pkl").predict(IRIS_ROWS).tolist()
    assert expected == [0, 1, 2]
    return write_config(d, "sklearn", [{"type": "sklearn", "file": "model.pkl"}], SKLEARN, IRIS_ROWS, expected)


def make_sklearn_classifier(d: Path) -> Path:
    init(d, "sklearn_classifier")
    expected = load_pickle(d / "model.pkl").predict_proba(IRIS_ROWS).tolist()
    return write_config(d, "sklearn_classifier", [{"type": "sklearn_classifier", "file": "model.pkl"}], SKLEARN,
                        IRIS_ROWS, expected, tolerance=1e-9)


def make_sklearn_preprocessor(d: Path) -> Path:
    """Two stages: the scaler's output is the input of a classifier trained on scaled rows."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    init(d, "sklearn_preprocessor")
    (d / "model.pkl").rename(d / "scaler.pkl")
    scaler = load_pickle(d / "scaler.pkl")
    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=500).fit(scaler.transform(features), labels)
    with (d / "classifier.pkl").open("wb") as handle:
        pickle.dump(classifier, handle)
    expected = classifier.predict(scaler.transform(IRIS_ROWS)).tolist()
    assert expected == [0, 1, 2]
    stages = [{"type": "sklearn_preprocessor", "file": "scaler.pkl"}, {"type": "sklearn", "file": "classifier.pkl"}]
    return write_config(d, "sklearn_preprocessor", stages, SKLEARN, IRIS_ROWS, expected)


def make_xgboost_classifier(d: Path) -> Path:
    from xgboost import XGBClassifier

    init(d, "xgboost_classifier")
    model = XGBClassifier()
    model.load_model(str(d / "model.json"))
    expected = model.predict_proba(IRIS_ROWS).tolist()
    return write_config(d, "xgboost_classifier", [{"type": "xgboost_classifier", "file": "model.json"}], XGBOOST,
                        IRIS_ROWS, expected, tolerance=1e-6)


def make_xgboost_regressor(d: Path) -> Path:
    from xgboost import XGBRegressor

    init(d, "xgboost_regressor")
    model = XGBRegressor()
    model.load_model(str(d / "model.json"))
    rows = [[0.03, 0.05, 0.06, 0.02], [-0.04, -0.04, -0.05, -0.03]]
    expected = model.predict(rows).tolist()
    assert expected[0] != expected[1]
    return write_config(d, "xgboost_regressor", [{"type": "xgboost_regressor", "file": "model.json"}], XGBOOST,
                        rows, expected, tolerance=1e-4)


def make_onnx(d: Path) -> Path:
    import numpy as np
    import onnxruntime

    init(d, "onnx")
    session = onnxruntime.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: np.asarray(IRIS_ROWS, dtype=np.float32)}
    expected = session.run(None, feeds)[0].tolist()
    assert expected == [0, 1, 2]
    return write_config(d, "onnx", [{"type": "onnx", "file": "model.onnx"}], ["onnxruntime==1.32.0"], IRIS_ROWS, expected)


def make_torch(d: Path) -> Path:
    """TorchScript (.pt), as `conduit init --type torch` trains it."""
    import torch

    init(d, "torch")
    with torch.inference_mode():
        expected = torch.jit.load(str(d / "model.pt"))(torch.tensor(IRIS_ROWS)).tolist()
    return write_config(d, "torch", [{"type": "torch", "file": "model.pt"}], TORCH, IRIS_ROWS, expected, tolerance=1e-5)


def make_torch_pickled(d: Path) -> Path:
    """A whole nn.Module pickled (.pkl), no TorchScript: torch's own classes only, so the image
    needs no code of the project to unpickle it."""
    import torch

    d.mkdir()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).eval()
    with (d / "model.pkl").open("wb") as handle:
        pickle.dump(net, handle)
    with torch.inference_mode():
        expected = net(torch.tensor(IRIS_ROWS)).tolist()
    return write_config(d, "torch_pickled", [{"type": "torch", "file": "model.pkl"}], TORCH, IRIS_ROWS, expected,
                        tolerance=1e-5)


def make_spacy(d: Path) -> Path:
    """A blank English pipeline with a sentencizer, saved to a folder; a post hook makes JSON."""
    init(d, "spacy")
    (d / "hooks.py").write_text(SPACY_HOOKS)
    text = "Conduit serves models. It builds images."
    expected = [{"text": text, "sentences": ["Conduit serves models.", "It builds images."],
                 "tokens": ["Conduit", "serves", "models", ".", "It", "builds", "images", "."]}]
    stage = {"type": "spacy", "file": "model", "hooks": {"pre": "hooks.py:pre", "post": "hooks.py:post"}}
    return write_config(d, "spacy", [stage], ["spacy==3.8.18"], [text], expected)


def make_hf_pipeline(d: Path) -> Path:
    """A tiny random BERT text classifier and its tokenizer, saved with save_pretrained (no hub)."""
    import transformers

    init(d, "hf_pipeline")
    pipe = transformers.pipeline("text-classification", model=str(d / "model"))
    expected = pipe(TEXTS)
    assert {row["label"] for row in expected} <= {"NEGATIVE", "POSITIVE"}
    stage = {"type": "hf_pipeline", "file": "model", "options": {"task": "text-classification"}}
    return write_config(d, "hf_pipeline", [stage], TORCH, TEXTS, expected, tolerance=1e-4)


MAKERS: dict[str, Callable[[Path], Path]] = {
    "sklearn": make_sklearn,
    "sklearn_classifier": make_sklearn_classifier,
    "sklearn_preprocessor": make_sklearn_preprocessor,
    "xgboost_classifier": make_xgboost_classifier,
    "xgboost_regressor": make_xgboost_regressor,
    "onnx": make_onnx,
    "torch": make_torch,
    "torch_pickled": make_torch_pickled,
    "spacy": make_spacy,
    "hf_pipeline": make_hf_pipeline,
}
NEEDS_TORCH = ("torch", "torch_pickled", "hf_pipeline")


@pytest.fixture(scope="session")
def type_images(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Built]]:
    """type_images(name) → the image of that project, made and built on first use, once a session."""
    root = tmp_path_factory.mktemp("type-images")
    built: dict[str, Built] = {}

    def image(name: str) -> Built:
        if name not in built:
            env = {}
            if name in NEEDS_TORCH:
                if not any(WHEELS.glob("torch-*+cpu-*.whl")):
                    pytest.fail(f"no CPU torch wheel in {WHEELS} (set CONDUIT_TORCH_WHEELS to a folder holding one)")
                env["CONDUIT_PIP_FIND_LINKS"] = str(WHEELS)
            built[name] = build(MAKERS[name](root / name), env=env)
        return built[name]

    yield image


def free_host_port(container: Any) -> int:
    container.reload()
    return int(container.ports["8000/tcp"][0]["HostPort"])


@pytest.fixture()
def read_only_container(engine: Any) -> Iterator[Callable[[Built], Any]]:
    """run(built) → a started container of the image: read-only root filesystem, a tmpfs on
    /tmp, the API key from the environment, port 8000 on a free port of 127.0.0.1."""
    started: list[Any] = []

    def run(built: Built) -> Any:
        container = engine.containers.run(
            built.tag, detach=True, read_only=True, tmpfs={"/tmp": "rw,size=256m"},
            environment={"CONDUIT_API_KEY": "types-key"}, ports={"8000/tcp": ("127.0.0.1", None)},
            name=f"{PREFIX}-{built.tag.split('/')[-1].replace(':', '-')}-{os.getpid()}-{len(started)}",
        )
        started.append(container)
        return container

    yield run
    for container in started:
        container.remove(force=True)


def wait_ready(container: Any, url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            break
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{container.name} never became ready:\n{container.logs().decode()[-4000:]}")


@pytest.mark.parametrize("name", list(MAKERS))
def test_model_type_image_passes_its_contract_read_only(type_images: Callable[[str], Built],
                                                        read_only_container: Callable[[Built], Any], name: str) -> None:
    """The image answers its example with the library's own result (`conduit test`), as uid
    10001, on a read-only root filesystem, and writes nothing outside the /tmp tmpfs."""
    built = type_images(name)
    container = read_only_container(built)
    url = f"http://127.0.0.1:{free_host_port(container)}"
    wait_ready(container, url)
    result = conduit("test", "-f", str(built.config), "--url", url, "--repeat", "2", env={"CONDUIT_API_KEY": "types-key"})
    assert result.returncode == 0, result.stdout + result.stderr + container.logs().decode()[-3000:]
    assert "0 failed" in result.stdout
    top = container.top(ps_args="-o pid,uid,args")
    server = [row for row in top["Processes"] if "main.py" in row[-1]]
    assert server and all(row[1] == "10001" for row in server), top
    assert container.exec_run(["sh", "-c", "touch /app/x /opt/venv/x 2>&1; touch /tmp/x"]).exit_code == 0
    assert not container.diff(), container.diff()  # /tmp is a tmpfs: never in the diff
    logs = container.logs().decode()
    assert "Traceback" not in logs and "Read-only file system" not in logs, logs[-3000:]


def test_torch_cpu_image_carries_no_cuda(engine: Any, type_images: Callable[[str], Built]) -> None:
    """The CPU torch image (torch + transformers) installed the +cpu wheel, no nvidia-* package,
    and stays under 1.5 GB."""
    built = type_images("torch")
    image = engine.images.get(built.tag)
    listing = engine.containers.run(built.tag, ["sh", "-c", "ls /opt/venv/lib/python3*/site-packages; cat /opt/venv/conduit.lock"],
                                    remove=True).decode()
    assert re.search(r"^torch==2\.13\.0\+cpu", listing, re.MULTILINE), listing[-2000:]
    assert not re.search(r"^nvidia", listing, re.MULTILINE | re.IGNORECASE)
    assert image.attrs["Size"] < 1.5e9, image.attrs["Size"]


def torch_project(directory: Path, requirement: str) -> Path:
    directory.mkdir()
    (directory / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (directory / "conduit.yaml").write_text(f"name: {PREFIX}-cpu-torch-guard\nmodels: [{{type: python, file: 'model.py:Model'}}]\n"
                                            f"requirements: [{requirement}]\n")
    return directory / "conduit.yaml"


def one_error_line(result: Any) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert errors[0] == result.stderr.rstrip("\n").splitlines()[-1]
    return errors[0]


def test_cpu_torch_without_its_wheel_fails_in_one_line(tmp_path: Path, engine: Any) -> None:
    """No find-links, and PyTorch's CPU index does not answer from the build: one line that says
    so and how to fix it, within seconds (nothing is downloaded)."""
    config = torch_project(tmp_path / "no-wheel", "torch==2.13.0")
    started = time.monotonic()
    result = conduit("build", "-f", str(config), env={"CONDUIT_PIP_FIND_LINKS": ""}, timeout=600)
    line = one_error_line(result)
    assert "CPU build of torch" in line and "image.find_links" in line and "conduit.lock" in line
    assert time.monotonic() - started < 300


def test_cpu_torch_resolved_to_cuda_fails_in_one_line(tmp_path: Path, engine: Any) -> None:
    """Unpinned torch with the +cpu wheel at hand: the resolver prefers PyPI's newer CUDA build,
    and the build stops at the resolved set (nvidia-* wheels) before downloading any of it."""
    config = torch_project(tmp_path / "unpinned", "torch")
    result = conduit("build", "-f", str(config), env={"CONDUIT_PIP_FIND_LINKS": str(WHEELS)}, timeout=600)
    line = one_error_line(result)
    assert "resolved CUDA wheels (nvidia-" in line and "a CPU image never carries CUDA" in line
