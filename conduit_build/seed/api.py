"""The Python API: the seed's Conduit, for notebooks and scripts.

    from conduit import Conduit, model_type

    conduit = Conduit("digits", "KEY", [(model_type.SKLEARN, "model.pkl", {"pre": pre_process})])
    conduit.load("./")                        # model files relative to this folder; loaded in-process
    conduit.run(["a"], [image])               # → the server's envelope; files: paths, bytes, files, PIL images
    conduit.save()                            # → conduit.yaml (+ notebook_hooks.py) for `conduit build` in CI
    conduit.deploy()                          # validate → build → contract test → push → deploy

    Conduit.from_file("conduit.yaml").load().run([[5.1, 3.5, 1.4, 0.2]])   # a project on disk

Hooks are Python callables (or `file.py:function` references), dispatched by
arity as in the server. Errors are one line with the fix (ConduitError and its
subclasses; PredictionError for a prediction the server would refuse), raised
from the public method the user called, never with our internals' traceback.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from conduit_runtime.errors import ModelFailed, ServerError
from conduit_runtime.model.flow import Flow, Stage
from conduit_runtime.model.loaders import load_model
from conduit_runtime.model.service import Service
from conduit_runtime.model.userland import load_object, positional_arity
from conduit_runtime.spec import ServerSpec
from conduit_runtime.wire.codec import dumps
from conduit_runtime.wire.examples import warmup_of
from conduit_runtime.wire.predict import Request, as_rows, check_data, check_parameters, envelope

from ..config.loader import POST_ARITIES, PRE_ARITIES, Project, inside, load
from ..config.schema import DIRECTORY_TYPES, MODEL_TYPES
from ..errors import ConduitError, ContractError, UsageError
from .client import PredictionError, as_upload, file_list, model_api_request
from .project_writer import ProjectWriter
from .stages import Example, FlowStage

P = ParamSpec("P")
R = TypeVar("R")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# conduit.yaml keys a Conduit(...) may set as keyword arguments (name, models and hardware are its own).
OPTIONS = ("python", "requirements", "requirements_file", "system_packages", "env", "server", "image", "tests", "deploy")
EXAMPLE_LIMIT = 10 * 1024 * 1024  # the first run's files are kept as the contract example up to this size


class model_type(StrEnum):  # the seed's spelling
    """DESIGN §2's model types; the value is what conduit.yaml says."""

    SKLEARN = "sklearn"
    SKLEARN_CLASSIFIER = "sklearn_classifier"
    SKLEARN_PREPROCESSOR = "sklearn_preprocessor"
    XGBOOST_CLASSIFIER = "xgboost_classifier"
    XGBOOST_REGRESSOR = "xgboost_regressor"
    ONNX = "onnx"
    TORCH = "torch"
    SPACY = "spacy"
    HF_PIPELINE = "hf_pipeline"
    PYTHON = "python"
    PYTORCH = "torch"  # the original Conduit's names for two of them
    HUGGINGFACE_PIPELINE = "hf_pipeline"


class hardware(StrEnum):  # the seed's spelling
    """Where the model runs; a GPU of a kind is a dict: {"type": "a10g", "count": 1}."""

    CPU = "cpu"
    GPU = "gpu"


def one_line_errors(method: Callable[P, R]) -> Callable[P, R]:
    """A ConduitError leaves the public method as one line (message and hint), raised from
    here with no chained traceback; IPython shows just that line (`_render_traceback_`)."""

    @functools.wraps(method)
    def public(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except ConduitError as error:
            text = "; ".join(error.lines())
            error.args = (text,)
            shown = [f"{type(error).__name__}: {text}"]
            error._render_traceback_ = lambda: shown  # type: ignore[attr-defined]
            raise error.with_traceback(None) from None

    return public


@dataclass(frozen=True)
class Deployment:
    target: str
    image: str  # repository@sha256:… once pushed; the local tag after a dry run
    digest: str | None  # None after a dry run: nothing was pushed
    endpoint: str | None  # POST here (docker); None for kubernetes and dry runs
    manifests: str | None = None  # the folder of Kubernetes manifests


class Conduit:
    """A model flow for notebooks: load and run in-process, save as a project, deploy."""

    @one_line_errors
    def __init__(self, name: str, api_key: str | None = None, flow: Sequence[Any] = (),
                 hardware: str | dict[str, Any] = "cpu", **config: Any) -> None:
        if not isinstance(name, str) or not NAME.match(name):
            raise UsageError(f"{name!r} is not a valid model name",
                             "use lowercase letters, digits and dashes, at most 63, like 'my-model'")
        self.name = name
        self.api_key = api_key
        self.hardware = str(hardware) if isinstance(hardware, StrEnum) else hardware
        self.stages = [flow_stage(index, item) for index, item in enumerate(flow)]
        if not self.stages:
            raise UsageError("the flow is empty", "give a list of (model_type, file, {'pre': fn, 'post': fn}) tuples")
        unknown = sorted(set(config) - set(OPTIONS))
        if unknown:
            raise UsageError(f"Conduit() got unknown keyword {unknown[0]!r}", f"use one of: hardware, {', '.join(OPTIONS)}")
        self.config = config
        check_options(self.name, self.hardware, config)
        self.project: Project | None = None  # set by from_file and save
        self.root: Path | None = None
        self.example: Example | None = None
        self.from_project = False  # made by from_file: conduit.yaml is the source of truth
        self._predict: Callable[[Request], list[Any]] | None = None

    @classmethod
    @one_line_errors
    def from_file(cls, path: str | Path = "conduit.yaml") -> Conduit:
        """A project on disk: its conduit.yaml, hooks referenced there, its `tests:` warm-up."""
        project = load(path)
        config = project.config
        conduit = cls.__new__(cls)
        conduit.name, conduit.api_key, conduit.hardware = config.name, None, "gpu" if config.hardware.gpu else "cpu"
        conduit.stages = [FlowStage(s.type, s.file, s.hooks.pre, s.hooks.post, s.options) for s in config.models]
        conduit.config, conduit.project, conduit.root, conduit.example = {}, project, project.root, None
        conduit._predict, conduit.from_project = None, True
        return conduit

    # -- in-process ---------------------------------------------------------------------

    @one_line_errors
    def load(self, dir: str | Path | None = None) -> Conduit:  # the seed's name
        """Load every stage once; model files and `file.py:function` hooks are relative to `dir`."""
        if self.from_project:
            assert self.project is not None
            if dir is not None and Path(dir).resolve() != self.root:
                raise UsageError(f"this model is the project in {self.root}", "load() it without a folder")
            if self._predict is None:
                self._predict = service_of(self.project)  # the server's own start-up, warm-up included
            return self
        if dir is None:
            raise UsageError("load() needs the folder the model files are in", "conduit.load('./')")
        root = Path(dir).resolve()
        if not root.is_dir():
            raise UsageError(f"{dir} is not a folder", "give the folder the model files are in, like conduit.load('./')")
        flow = Flow([self.load_stage(root, index, stage) for index, stage in enumerate(self.stages)])
        self.root = root

        def predict(request: Request) -> list[Any]:
            return as_rows(flow.run(request.data, request.files, request.parameters))

        self._predict = predict
        tests = self.config.get("tests") or []
        if tests:
            self.warm_up(tests[0])
        return self

    def load_stage(self, root: Path, index: int, stage: FlowStage) -> Stage:
        label = f"flow[{index}] ({stage.type})"
        file_part = stage.file.rpartition(":")[0] if stage.type == "python" else stage.file
        problem = inside(root, file_part, want="dir" if stage.type in DIRECTORY_TYPES else "file")
        if problem:
            raise UsageError(f"{label}: {problem}", f"model files are relative to the folder given to load(), {root}")
        hooks = [hook_function(root, label, role, hook) for role, hook in (("pre", stage.pre), ("post", stage.post))]
        try:
            model = load_model(root, stage.type, stage.file, stage.options, self.gpu)
        except Exception as exc:
            missing = isinstance(exc, ImportError) and getattr(exc, "name", None)
            hint = f"pip install the library that provides {missing}" if missing else "check the file and the model type"
            raise ConduitError(f"{label}: cannot load {stage.file}: {type(exc).__name__}: {exc}", hint) from None
        return Stage.build(label, model, *hooks)

    @property
    def gpu(self) -> bool:
        return self.hardware != "cpu"

    def warm_up(self, case: dict[str, Any]) -> None:
        assert self.root is not None
        form = case.get("form")
        if form is not None:
            self.run(form.get("data") or [], [self.root / name for name in form.get("files", [])])
        else:
            self.run(case.get("json"))

    @one_line_errors
    def run(self, data: Any, files: Sequence[Any] | None = None, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """One prediction, in-process: the server's envelope. `files` may be paths, bytes,
        binary file objects or PIL images (sent in their own format)."""
        if self._predict is None:
            if not self.from_project:
                raise UsageError("the model is not loaded yet", "call conduit.load('./') first, with the folder of the model files")
            self.load()
        assert self._predict is not None
        started = time.perf_counter()
        uploads = [as_upload(item, index) for index, item in enumerate(file_list(files))]
        try:
            if isinstance(data, dict) and "data" in data:
                data, parameters = data["data"], data.get("parameters", parameters)
            request = Request(check_data(data), check_parameters(parameters), uploads)
            rows = self._predict(request)
            answer = json.loads(dumps(envelope(rows, str(uuid.uuid4()), round((time.perf_counter() - started) * 1000, 3))))
            if self.example is None:
                self.example = example_of(request)
        except ServerError as error:
            raise PredictionError(error.status, error.code, error.message) from None
        except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PredictionError(500, ModelFailed.code, f"the model raised {type(exc).__name__}") from None
        except (TypeError, OSError) as exc:  # not JSON, or an output file that cannot be read: a 500 there too
            raise PredictionError(500, ModelFailed.code, f"the result is not JSON: {exc}") from None
        finally:
            for upload in uploads:
                upload.close()  # files opened here from paths close; the caller's own stay open
        result: dict[str, Any] = answer
        return result

    # -- as a project ---------------------------------------------------------------------

    @one_line_errors
    def save(self, dir: str | Path | None = None) -> Path:
        """Write conduit.yaml (and notebook_hooks.py for hooks defined in a notebook) into `dir`
        (default: the folder given to load()), so `conduit build` builds the same model; the path."""
        if self.from_project:
            assert self.project is not None
            if dir is not None and Path(dir).resolve() != self.root:
                raise UsageError(f"this model is the project in {self.root}", "copy that folder to save it elsewhere")
            return self.project.path
        source = self.root or (Path(dir).resolve() if dir is not None else None)
        if source is None:
            raise UsageError("save() needs a folder", "conduit.save('./'), or load('./') first")
        target = Path(dir).resolve() if dir is not None else source
        writer = ProjectWriter(self.name, source, target, self.hardware, self.config, sys.version_info[:2])
        path = writer.write(self.stages, self.example)
        self.project = load(path)  # what `conduit validate` checks
        return path

    @one_line_errors
    def deploy(self, target: str = "docker", dry_run: bool = False) -> Deployment:
        """validate → build → contract test → push → deploy, as the CLI does them; `dry_run`
        stops before pushing. The API key is passed to the container at run time only."""
        if target not in ("docker", "kubernetes"):
            raise UsageError(f"target {target!r} is not one of docker, kubernetes", "conduit.deploy(target='docker')")
        key = self.api_key or os.environ.get("CONDUIT_API_KEY")
        if not key:
            raise UsageError("no API key to deploy with", "pass it as Conduit(name, api_key, flow) or set CONDUIT_API_KEY")
        project = self.project if self.from_project else load(self.save())
        assert project is not None
        return deploy_project(project, target, key, dry_run, say=print)


def flow_stage(index: int, item: Any) -> FlowStage:
    """`(type, file)`, `(type, file, hooks)` or `(type, file, hooks, options)`."""
    where = f"flow[{index}]"
    if not isinstance(item, (tuple, list)) or not 2 <= len(item) <= 4:
        raise UsageError(f"{where} is {item!r}", "each stage is (model_type, file, {'pre': fn, 'post': fn})")
    kind, file, hooks, options = (*item, {}, {})[:4]
    kind = str(kind) if isinstance(kind, str) else kind
    if kind not in MODEL_TYPES:
        raise UsageError(f"{where}: {kind!r} is not a model type", f"use model_type.X or one of: {', '.join(MODEL_TYPES)}")
    if not isinstance(file, (str, os.PathLike)) or not os.fspath(file):
        raise UsageError(f"{where}: the file is {file!r}", "give the model file relative to the folder given to load()")
    hooks = hooks or {}
    if not isinstance(hooks, dict) or set(hooks) - {"pre", "post"}:
        raise UsageError(f"{where}: hooks are {hooks!r}", "give a dict with 'pre' and/or 'post' functions")
    if not isinstance(options, dict):
        raise UsageError(f"{where}: options are {options!r}", "give the loader options as a dict, e.g. {'task': 'text-classification'}")
    for role, arities in (("pre", PRE_ARITIES), ("post", POST_ARITIES)):
        check_hook(f"{where} {role} hook", hooks.get(role), arities)
    return FlowStage(kind, Path(file).as_posix() if isinstance(file, os.PathLike) else file, hooks.get("pre"),
                     hooks.get("post"), options)


def check_hook(where: str, hook: Any, arities: tuple[int, ...]) -> None:
    if hook is None or (isinstance(hook, str) and ":" in hook):
        return
    if not callable(hook):
        raise UsageError(f"{where} is {hook!r}", "give a function, or a 'hooks.py:function' reference")
    try:
        arity = positional_arity(hook)
    except (TypeError, ValueError):
        return  # no signature to read (a builtin): called with the fewest arguments, as the server does
    if arity < min(arities):
        shapes = "(data) or (data, files)" if arities == PRE_ARITIES else "(out), (out, data) or (out, data, files)"
        raise UsageError(f"{where} takes {arity} arguments", f"a {where.split()[-2]} hook takes {shapes}")


def check_options(name: str, hardware_: Any, config: dict[str, Any]) -> None:
    """The keyword arguments validated as conduit.yaml would be, each problem as `key: text`."""
    from pydantic import ValidationError

    from ..config.schema import Config

    try:
        Config.model_validate({"name": name, "hardware": hardware_, "models": [{"type": "python", "file": "m.py:M"}],
                               **config})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"] if part not in ("function-after", "function-before"))
        raise UsageError(f"{key}: {error['msg'].removeprefix('Value error, ')}",
                         "the keyword arguments of Conduit() take what conduit.yaml takes (DESIGN §1)") from None


def hook_function(root: Path, label: str, role: str, hook: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
    if hook is None or callable(hook):
        return hook
    try:
        fn: Callable[..., Any] = load_object(root, hook)
    except Exception as exc:
        raise UsageError(f"{label} {role} hook {hook}: {type(exc).__name__}: {exc}", f"references are relative to {root}") from None
    return fn


def service_of(project: Project) -> Callable[[Request], list[Any]]:
    spec = ServerSpec.from_dict(project.runtime_spec(), project.root)
    service = Service(spec, warmup=warmup_of(spec.warmup, spec.project_dir))
    try:
        service.load()
    except ServerError as error:
        raise PredictionError(error.status, error.code, error.message) from None
    except Exception as exc:
        raise ConduitError(f"{project.name} did not load: {type(exc).__name__}: {exc}", "check the model files and hooks") from None

    def predict(request: Request) -> list[Any]:
        return as_rows(service.predict(request.data, request.files, request.parameters))

    return predict


def example_of(request: Request) -> Example | None:
    """The request as a contract example, if JSON carries its data and its files are small."""
    try:
        json.dumps([request.data, request.parameters])
    except (TypeError, ValueError):
        return None
    files = []
    for upload in request.files:
        if upload.closed:
            return None
        upload.seek(0)
        files.append((upload.name, upload.read(EXAMPLE_LIMIT + 1)))
    if sum(len(content) for _, content in files) > EXAMPLE_LIMIT:
        return None
    return Example(request.data, request.parameters, tuple(files))


def deploy_project(project: Project, target: str, key: str, dry_run: bool, say: Callable[[str], None]) -> Deployment:
    """The CLI's steps, in its order: build, contract-test the image, push, deploy."""
    from ..contract.run import contract_test
    from ..image.build import build_image, push_image

    built = build_image(project)
    say(f"built {built.tag}" + (" (up to date)" if built.cached else ""))
    report = contract_test(project, image=built.tag, repeat=3, say=say)
    if not report.ok:
        first = report.failures[0]
        raise ContractError(f"the image failed its contract test: {first.name}: {first.reason}",
                            f"`conduit test -f {project.path}` shows the whole report")
    say(f"contract test passed: {report.summary()}")
    if dry_run:
        return Deployment(target, built.tag, None, None)
    pushed = push_image(project, built.tag)
    say(f"pushed {pushed.reference}")
    if target == "kubernetes":
        from ..deploy.kubernetes import write_manifests

        written = write_manifests(project, pushed.reference, project.root / project.config.deploy.kubernetes.out)
        say(f"wrote the manifests to {written.out}")
        return Deployment(target, pushed.reference, pushed.digest, None, str(written.out))
    from ..deploy import docker as docker_deploy

    running = docker_deploy.deploy(project, pushed.reference, key, say)
    host = urlsplit(project.config.deploy.docker.host or os.environ.get("DOCKER_HOST") or "").hostname
    endpoint = f"http://{host or '127.0.0.1'}:{running.port}/predict"
    say(f"{running.name} is ready: POST {endpoint}")
    return Deployment(target, pushed.reference, pushed.digest, endpoint)


__all__ = ["Conduit", "Deployment", "PredictionError", "hardware", "model_api_request", "model_type"]
