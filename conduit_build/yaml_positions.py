"""YAML with memory: the data plus where every key and value sits in the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Loc = tuple[int | str, ...]
Position = tuple[int, int]  # 1-based line, column


class YamlProblem(Exception):
    def __init__(self, position: Position, message: str, loc: Loc | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.message = message
        self.loc = loc


class Positions:
    """Where each path of the document starts: keys and values separately."""

    def __init__(self) -> None:
        self.keys: dict[Loc, Position] = {}
        self.values: dict[Loc, Position] = {}

    def of_key(self, loc: Loc) -> Position:
        return self.keys.get(loc) or self.of_value(loc)

    def of_value(self, loc: Loc) -> Position:
        while loc not in self.values and loc:
            loc = loc[:-1]
        return self.values.get(loc, (1, 1))

    def has(self, loc: Loc) -> bool:
        return loc in self.values


def start(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def read(path: Path) -> tuple[Any, Positions]:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlProblem(position, f"YAML syntax error: {exc.problem or exc.context}; {syntax_hint(exc)}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem((1, 1), f"YAML error: {exc}") from None
    positions = Positions()
    if root is not None:
        walk(root, (), positions)
    return data, positions


def syntax_hint(exc: yaml.MarkedYAMLError) -> str:
    problem = str(exc.problem or "")
    if "\\t" in problem or "\t" in problem:
        return "indent with spaces, not tabs"
    if "mapping values" in problem:
        return "check the indentation, or quote a value that contains ': '"
    if "found undefined alias" in problem:
        return "define the &anchor before using *alias"
    return "check the indentation and quoting near this point"


def walk(node: yaml.Node, loc: Loc, positions: Positions) -> None:
    positions.values[loc] = start(node)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise YamlProblem(start(key_node), f"key {key!r} appears twice; keep one", loc + (key,))
            seen.add(key)
            positions.keys[loc + (key,)] = start(key_node)
            walk(value_node, loc + (key,), positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            walk(item, loc + (index,), positions)


def dotted(loc: Loc) -> str:
    """('models', 0, 'file') → models[0].file"""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
