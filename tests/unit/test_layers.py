"""The packages' layers hold: every import points down a layer (or stays in its own), and no
module imports itself back through others. Read with `ast`, importing nothing; every import
counts, also one inside a function or under TYPE_CHECKING (a lazy import that breaks a cycle
at run time is still a cycle to a reader).

    conduit_runtime   leaves → weights → model → wire → http → jobs → process
    conduit_build     leaves → config → image → contract → deploy → seed → cli
    conduit           the public face over the build tool

Across packages: the runtime goes into images alone and imports neither of the others; the
build tool may import the runtime (it runs flows in-process), never the public face.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# Each package's layers, lowest first: a layer is a list of module-name prefixes.
LAYERS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "conduit_runtime": [
        ("leaves", ("conduit_runtime", "conduit_runtime.errors", "conduit_runtime.log", "conduit_runtime.spec",
                    "conduit_runtime.cancellation", "conduit_runtime.files")),
        # The weights of an image built with `image.weights: separate`, fetched before a model loads.
        ("weights", ("conduit_runtime.weights",)),
        ("model", ("conduit_runtime.model",)),
        ("wire", ("conduit_runtime.wire",)),
        ("http", ("conduit_runtime.http",)),
        ("jobs", ("conduit_runtime.jobs",)),
        ("process", ("conduit_runtime.process",)),
    ],
    "conduit_build": [
        ("leaves", ("conduit_build.errors", "conduit_build.templates")),
        ("config", ("conduit_build.config",)),
        ("image", ("conduit_build.image",)),
        ("contract", ("conduit_build.contract",)),
        ("deploy", ("conduit_build.deploy",)),
        ("seed", ("conduit_build.seed",)),
        # The package's face (a lazy `Conduit`), its `-m` entry and the commands sit on top.
        ("cli", ("conduit_build.cli", "conduit_build", "conduit_build.__main__")),
    ],
    "conduit": [("face", ("conduit",))],
}
# What each package may import of the others.
ALLOWED = {"conduit_runtime": set(), "conduit_build": {"conduit_runtime"},
           "conduit": {"conduit_build", "conduit_runtime"}}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    where: str  # file:line


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(root: Path, packages: list[str]) -> dict[str, Path]:
    return {module_name(path, root): path for package in packages for path in sorted((root / package).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str], root: Path) -> list[Import]:
    """Every import of one of `known` in the file, as module names (`from pkg import mod` is
    the module pkg.mod when there is one, else pkg)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names]
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        for target in targets:
            while target and target not in known and "." in target:  # `import a.b.c` of a function's module
                target = target.rpartition(".")[0]
            if target in known and target != name:
                found.append(Import(name, target, where))
    return found


def layer_of(module: str) -> tuple[str, int, str]:
    """(package, layer index, layer name): the longest matching prefix wins."""
    package = module.split(".")[0]
    best = (-1, -1, "")
    for index, (layer, prefixes) in enumerate(LAYERS[package]):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index, layer)
    assert best[1] >= 0, f"{module} is in no layer of {package}: add it to LAYERS"
    return package, best[1], best[2]


def upward(imports: list[Import]) -> list[str]:
    problems = []
    for imp in imports:
        (source_pkg, source_index, source_layer) = layer_of(imp.source)
        (target_pkg, target_index, target_layer) = layer_of(imp.target)
        if source_pkg != target_pkg:
            if target_pkg not in ALLOWED[source_pkg]:
                problems.append(f"{imp.where}: {imp.source} imports {imp.target}: {source_pkg} may not import {target_pkg}")
        elif target_index > source_index:
            problems.append(f"{imp.where}: {imp.source} ({source_layer}) imports {imp.target} ({target_layer}), "
                            "a layer above it")
    return problems


def cycles(imports: list[Import]) -> list[str]:
    """Each cycle of imports once, as the chain of modules with where each import is."""
    edges: dict[str, list[Import]] = {}
    for imp in imports:
        edges.setdefault(imp.source, []).append(imp)
    found: list[str] = []
    seen_cycles: set[frozenset[str]] = set()
    done: set[str] = set()

    def visit(module: str, path: list[Import], on_path: list[str]) -> None:
        for imp in edges.get(module, []):
            if imp.target in on_path:
                chain = path[on_path.index(imp.target):] + [imp]
                key = frozenset(step.source for step in chain)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    found.append(" → ".join(f"{step.source} ({step.where})" for step in chain) + f" → {imp.target}")
            elif imp.target not in done:
                visit(imp.target, [*path, imp], [*on_path, imp.target])
        done.add(module)

    for module in sorted(edges):
        if module not in done:
            visit(module, [], [module])
    return found


def check(root: Path, packages: list[str]) -> list[str]:
    modules = modules_of(root, packages)
    known = set(modules)
    imports = [imp for name, path in modules.items() for imp in imports_of(name, path, known, root)]
    return upward(imports) + [f"import cycle: {cycle}" for cycle in cycles(imports)]


def test_every_import_points_down_and_none_goes_round() -> None:
    problems = check(ROOT, ["conduit_runtime", "conduit_build", "conduit"])
    assert not problems, "\n".join(problems)


def test_every_module_has_a_layer() -> None:
    for name in modules_of(ROOT, ["conduit_runtime", "conduit_build", "conduit"]):
        layer_of(name)


def test_the_check_names_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The checker itself fails where it should: a model module importing http, and a cycle."""
    runtime = tmp_path / "conduit_runtime"
    for folder in ("model", "http"):
        (runtime / folder).mkdir(parents=True)
        (runtime / folder / "__init__.py").write_text("")
    (runtime / "__init__.py").write_text("")
    (runtime / "model" / "flow.py").write_text("def f():\n    from ..http.app import create_app\n")
    (runtime / "http" / "app.py").write_text("from ..model import flow\n")
    (runtime / "model" / "a.py").write_text("from . import b\n")
    (runtime / "model" / "b.py").write_text("from .a import x\n")
    problems = check(tmp_path, ["conduit_runtime"])
    assert any("conduit_runtime/model/flow.py:2: conduit_runtime.model.flow (model) imports "
               "conduit_runtime.http.app (http), a layer above it" in p for p in problems), problems
    assert any(p.startswith("import cycle: conduit_runtime.model.a") and "conduit_runtime.model.b" in p
               for p in problems), problems
    assert any("import cycle" in p and "conduit_runtime.http.app" in p for p in problems), problems
