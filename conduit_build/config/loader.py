"""Load conduit.yaml: validate once, at the edge, into frozen typed objects.

Every problem becomes one line `conduit.yaml:LINE:COL: path.to.key: what is
wrong, and the fix`, and all of them are reported together (ConfigError).
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from . import schema
from .positions import Loc, Positions, YamlProblem, dotted, one_line, read
from .rules import Problem, deploy_problems
from .schema import DIRECTORY_TYPES, MODEL_TYPES, UNBATCHABLE, Config, Stage, TestCase

PRE_ARITIES = (1, 2)  # pre(data) | pre(data, files)
POST_ARITIES = (1, 2, 3)  # post(out) | post(out, data) | post(out, data, files)


@dataclass(frozen=True)
class Project:
    """A validated conduit.yaml and the folder it lives in."""

    config: Config
    path: Path  # conduit.yaml, absolute
    root: Path  # the project folder, absolute and resolved

    @cached_property
    def name(self) -> str:
        return self.config.name

    def runtime_spec(self) -> dict[str, Any]:
        """The resolved config the server runs from (conduit_runtime.spec)."""
        config = self.config
        warmup = None
        if config.tests:
            first = config.tests[0]
            if first.form is not None:
                warmup = {"name": first.name, "data": first.form.data, "files": first.form.files}
            elif first.v2 is not None:
                warmup = {"name": first.name, "v2": first.v2}
            else:
                warmup = {"name": first.name, "data": first.json_}
        return {
            "name": config.name,
            "gpu": config.hardware.gpu,
            "stages": [
                {"type": s.type, "file": s.file, "pre": s.hooks.pre, "post": s.hooks.post, "options": s.options,
                 **({"batch": s.batch.model_dump()} if s.batch is not None else {}),
                 **({"max_new_tokens": s.max_new_tokens} if s.type == "hf_pipeline" else {})}
                for s in config.models
            ],
            "server": config.server.model_dump(exclude_defaults=False, exclude={"workers"} if config.server.workers == 1 else None),
            "warmup": warmup,
        }


def load(path: str | Path, display: str | None = None) -> Project:
    path = Path(path)
    shown = display or str(path)
    if not path.is_file():
        raise ConfigError([f"{shown}:1:1: (file): no such file; run `conduit init` or pass -f PATH"])
    try:
        data, positions = read(path)
    except YamlProblem as problem:
        line, col = problem.position
        where = f" {dotted(problem.loc)}:" if problem.loc else ""
        raise ConfigError([f"{shown}:{line}:{col}:{where} {problem.message}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{shown}:1:1: (top level): expected a mapping of keys such as name: and models:"])
    root = path.resolve().parent
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # Report the files of the parts that are well formed too, so one run names every problem.
        shape = [describe(shown, positions, error) for error in exc.errors()]
        stages, requirements_file, tests = salvage(data)
        files = [*check_files(root, positions, stages, requirements_file, tests), *check_batching(positions, stages)]
        raise ConfigError(by_position([*shape, *located(shown, files)])) from None
    problems = by_position(located(shown, [
        *check_files(root, positions, config.models, config.requirements_file, config.tests),
        *check_batching(positions, config.models),
        *check_image_files(root, positions, config.image),
        *check_weights_mode(positions, config),
        *deploy_problems(config, positions),
    ]))
    if problems:
        raise ConfigError(problems)
    return Project(config=config, path=path.resolve(), root=root)


def located(shown: str, problems: list[Problem]) -> list[str]:
    return [f"{shown}:{line}:{col}: {dotted(loc)}: {text}" for loc, text, (line, col) in problems]


def salvage(data: dict[Any, Any]) -> tuple[list[Stage | None], str | None, list[TestCase | None]]:
    """The stages and tests that validate on their own (None where one does not)."""

    def each(items: Any, model: Any) -> list[Any]:
        found = []
        for item in items if isinstance(items, list) else []:
            try:
                found.append(model.model_validate(item))
            except ValidationError:
                found.append(None)
        return found

    requirements_file = data.get("requirements_file")
    return (each(data.get("models"), Stage), requirements_file if isinstance(requirements_file, str) else None,
            each(data.get("tests"), TestCase))


def by_position(lines: Any) -> list[str]:
    def key(line: str) -> tuple[int, int]:
        # the first `:LINE:COL: `, since the file name may hold colons too
        found = re.search(r":(\d+):(\d+): ", line)
        return (int(found[1]), int(found[2])) if found else (0, 0)

    return sorted(lines, key=key)


# -- shape errors from pydantic -------------------------------------------------


def describe(shown: str, positions: Positions, error: Any) -> str:
    loc = real_loc(error["loc"], positions)
    kind = error["type"]
    given = error.get("input")
    if loc and loc[-1] == "[key]":  # the key itself is wrong (env: {API_KEY: …}): point at it
        loc = loc[:-1]
        line, col = positions.of_key(loc)
        text = error["msg"].removeprefix("Value error, ")
        if kind == "string_type":
            text = f"key {given!r} is not a string; quote it, or remove it"
    elif kind == "invalid_key":
        line, col = positions.of_key(loc)
        text = f"key {given!r} is not a string; quote it, or remove it"
    elif kind == "extra_forbidden":
        key = loc[-1]
        line, col = positions.of_key(loc)
        text = f"unknown key {key!r}" + suggestion(str(key), known_keys(loc[:-1])) + "; remove it or fix the spelling"
    elif kind == "missing":
        line, col = positions.of_value(loc[:-1])
        text = f"missing required key {loc[-1]!r}; add it"
    else:
        line, col = positions.of_value(loc)
        text = error["msg"].removeprefix("Value error, ")
        if kind == "literal_error" and loc[-1] == "type" and isinstance(given, str):
            text = f"{given!r} is not a model type" + suggestion(given, MODEL_TYPES) + f"; one of: {', '.join(MODEL_TYPES)}"
        elif kind == "string_pattern_mismatch" and loc == ("name",):
            text = f"{given!r} is not a valid name; use lowercase letters, digits and dashes (like my-model), at most 63"
        elif kind == "too_short" and loc == ("models",):
            text = "list at least one model stage (type: and file:)"
        elif kind != "value_error":
            # pydantic says what it wanted; add what it got, without its class names
            text = re.sub(r" or instance of \w+", "", text)
            if given is None or isinstance(given, (str, int, float)):
                text += f"; got {given!r}"
    return f"{shown}:{line}:{col}: {dotted(loc)}: {text}"


def real_loc(loc: tuple[Any, ...], positions: Positions) -> Loc:
    """Drop pydantic's union and validator tags that are not keys of the file."""
    kept: list[Any] = []
    for part in loc:
        candidate = (*kept, part)
        if isinstance(part, int) or positions.has(candidate) or part == loc[-1]:
            kept.append("json" if part == "json_" else part)
    return tuple(kept)


def known_keys(loc: Loc) -> list[str]:
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return []
        model = inner_model(field.annotation)
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items() if name != "kind"]


def inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = inner_model(arg)
        if found is not None:
            return found
    origin = getattr(annotation, "__origin__", None)
    return inner_model(origin) if origin is not None and origin is not annotation else None


def suggestion(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- the files it names --------------------------------------------------------


def check_image_files(root: Path, positions: Positions, image: Any) -> list[Problem]:
    """The build's own inputs inside the project: a Dockerfile template, wheels, a CA bundle."""
    problems: list[Problem] = []
    for key, want in (("dockerfile", "file"), ("find_links", "dir"), ("ca_bundle", "file")):
        value = getattr(image, key)
        text = inside(root, value, want=want) if value else None
        if text:
            problems.append((("image", key), text, positions.of_value(("image", key))))
    return problems



def check_weights(root: Path, positions: Positions, models: Sequence[Stage | None], index: int) -> list[Problem]:
    """models[index].weights: files or folders inside the project, each once, none inside
    another weights path (a file would travel in two layers)."""
    stage = models[index]
    problems: list[Problem] = []
    if stage is None:
        return problems
    others: list[tuple[PurePosixPath, Loc]] = [(PurePosixPath(Path(other.file).as_posix()), ("models", number, "file"))
              for number, other in enumerate(models) if other is not None and other.type != "python"]
    others += [(PurePosixPath(Path(entry).as_posix()), ("models", number, "weights", position))
               for number, other in enumerate(models) if other is not None
               for position, entry in enumerate(other.weights)]
    seen: set[PurePosixPath] = set()
    for position, entry in enumerate(stage.weights):
        loc: Loc = ("models", index, "weights", position)
        path = PurePosixPath(Path(entry).as_posix()) if entry.strip() else None
        text = inside(root, entry, want="any")
        if text is None and path is not None and str(path) == ".":
            text = f"{entry!r} names the whole project; list the weights files or folders"
        elif text is None and path in seen:
            text = f"{entry!r} is listed twice; remove one"
        elif text is None and path is not None:
            # reported at the entry inside the other (or at the entry holding a model's file)
            overlap = next(((other, at) for other, at in others if other != path and (
                path.is_relative_to(other) or (other.is_relative_to(path) and at[-1] == "file"))), None)
            if overlap is not None:
                other, at = overlap
                outer, inner = (other, path) if path.is_relative_to(other) else (path, other)
                text = (f"{entry!r} overlaps {str(other)!r} ({dotted(at)}): {str(inner)!r} is inside {str(outer)!r}, "
                        f"and a file travels in one weights layer only; list {str(outer)!r} alone")
        if path is not None:
            seen.add(path)
        if text:
            problems.append((loc, text, positions.of_value(loc)))
    return problems


def check_weights_mode(positions: Positions, config: Config) -> list[Problem]:
    """image.weights: separate needs weights to separate."""
    if config.image.weights != "separate" or any(s.type != "python" or s.weights for s in config.models):
        return []
    loc: Loc = ("image", "weights")
    return [(loc, "separate, but no model has weights (a python model lists its files in models[i].weights: "
                  "[weights.bin]); list them, or use bundled", positions.of_value(loc))]


def check_batching(positions: Positions, models: Sequence[Stage | None]) -> list[Problem]:
    """`batch` only where the model type takes rows."""
    return [
        (("models", index, "batch"), f"{stage.type} cannot be batched: {UNBATCHABLE[stage.type]}; remove batch:",
         positions.of_key(("models", index, "batch")))
        for index, stage in enumerate(models)
        if stage is not None and stage.batch is not None and stage.type in UNBATCHABLE
    ]


def check_files(
    root: Path, positions: Positions, models: Sequence[Stage | None], requirements_file: str | None,
    tests: Sequence[TestCase | None],
) -> list[Problem]:
    problems: list[Problem] = []

    def bad(loc: Loc, text: str) -> None:
        problems.append((loc, text, positions.of_value(loc)))

    for index, stage in enumerate(models):
        if stage is None:
            continue
        loc: Loc = ("models", index, "file")
        if stage.type == "python":
            file_part, _, cls = stage.file.rpartition(":")
            if not file_part or not cls:
                bad(loc, f"{stage.file!r}: a python model is model_file:ClassName, like model.py:Model")
                continue
            text = inside(root, file_part, want="file")
            if text:
                bad(loc, text)
            else:
                text = check_definition(root / file_part, cls, kind="class")
                if text:
                    bad(loc, text)
        else:
            text = inside(root, stage.file, want="dir" if stage.type in DIRECTORY_TYPES else "file")
            if text:
                bad(loc, text)
        problems.extend(check_weights(root, positions, models, index))
        for hook, arities in (("pre", PRE_ARITIES), ("post", POST_ARITIES)):
            ref = getattr(stage.hooks, hook)
            if ref is None:
                continue
            file_part, _, function = ref.rpartition(":")
            hook_loc: Loc = ("models", index, "hooks", hook)
            text = inside(root, file_part, want="file") or check_definition(root / file_part, function, "function", hook, arities)
            if text:
                bad(hook_loc, text)
    if requirements_file:
        text = inside(root, requirements_file, want="file")
        if text:
            bad(("requirements_file",), text)
    for index, case in enumerate(tests):
        if case is None:
            continue
        if sum(part is not None for part in (case.json_, case.form, case.v2)) != 1:
            bad(("tests", index), "give exactly one of json: or form: (or v2:) for each test")
        for position, name in enumerate(case.form.files if case.form else []):
            text = inside(root, name, want="file")
            if text:
                bad(("tests", index, "form", "files", position), text)
    return problems


def inside(root: Path, relative: str, want: str) -> str | None:
    """None if `relative` names an existing file (or folder) inside the project."""
    if not relative.strip():
        return "the path is empty; name a file inside the project"
    try:
        return check_path(root, Path(relative), relative, want)
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, name too long, symlink loop
        return f"{relative!r} is not a usable path ({exc.__class__.__name__}: {one_line(str(exc))[:80]}); fix the path"


def check_path(root: Path, path: Path, relative: str, want: str) -> str | None:
    if path.is_absolute():
        return f"{relative!r} is absolute; give a path relative to conduit.yaml, inside the project"
    if ".." in path.parts:
        return f"{relative!r} leaves the project folder ('..'); move the file into the project"
    full = root / path
    resolved = full.resolve()
    if not resolved.is_relative_to(root):
        return f"{relative!r} is a link pointing outside the project; copy the file into the project"
    if not full.exists():
        near = difflib.get_close_matches(path.name, [p.name for p in full.parent.glob("*")] if full.parent.is_dir() else [], n=1)
        hint = f" (did you mean {str(path.with_name(near[0]))!r}?)" if near else ""
        return f"{relative!r} does not exist{hint}; create it or fix the path"
    if want == "dir" and not full.is_dir():
        return f"{relative!r} is a file; this model type loads a folder (the saved model directory)"
    if want == "file" and not full.is_file():
        return f"{relative!r} is a folder; name the file"
    return None


def check_definition(path: Path, name: str, kind: str, hook: str = "", arities: tuple[int, ...] = ()) -> str | None:
    """Find `name` in the file without running it; check a hook's arity."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        at = f" at line {exc.lineno}" if exc.lineno else ""
        return f"{path.name} has a syntax error{at}: {exc.msg}; fix the file"
    except UnicodeDecodeError:
        return f"{path.name} is not UTF-8 text"
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, or too deeply nested to parse
        return f"{path.name} cannot be read as Python ({exc.__class__.__name__}); fix the file"
    for node in tree.body:
        if kind == "class" and isinstance(node, ast.ClassDef) and node.name == name:
            return None
        if kind == "function" and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return check_arity(path.name, node, hook, arities)
        if defines(node, name):
            return None  # bound some other way (assignment, import): checked when loaded
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return f"{path.name} defines no {kind} {name!r}{suggestion(name, names)}; define it or fix the name"


def defines(node: ast.stmt, name: str) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names)
    return False


def check_arity(file: str, node: ast.FunctionDef | ast.AsyncFunctionDef, hook: str, arities: tuple[int, ...]) -> str | None:
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    keyword_only = [a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None]
    if keyword_only:  # the hook is called positionally: a required keyword-only argument never gets a value
        return f"{file}:{node.name} requires keyword-only {', '.join(keyword_only)}; give it a default or drop it"
    if args.vararg is not None or any(required <= n <= positional for n in arities):
        return None
    shapes = {"pre": "(data) or (data, files)", "post": "(out), (out, data) or (out, data, files)"}[hook]
    return f"{file}:{node.name} takes {positional} arguments; a {hook} hook takes {shapes}"


__all__ = ["Project", "load", "schema"]
