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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(offset_position(exc.object.decode("utf-8", "replace"), exc.start),
                          "(file): not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise YamlProblem((1, 1), f"(file): cannot read it ({exc.strerror}); check its permissions") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(*syntax_problem(exc)) from None
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        # not a MarkedYAMLError: its str() spans two lines and its position is a character index
        raise YamlProblem(offset_position(text, exc.position),
                          f"YAML syntax error: character U+{code:04X} is not allowed in YAML; remove it") from None
    except yaml.YAMLError as exc:
        raise YamlProblem((1, 1), f"YAML syntax error: {one_line(str(exc))}") from None
    except RecursionError:
        raise YamlProblem((1, 1), "YAML syntax error: nested too deeply for a config file; flatten it") from None
    positions = Positions()
    if root is not None:
        walk(root, (), positions, set())
    return data, positions


def offset_position(text: str, offset: int) -> Position:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def one_line(text: str) -> str:
    return " ".join(text.split())


# An opener never closed is reported where it opens, not at the end of the file.
UNCLOSED = {"a flow sequence": "add the closing ']'", "a flow mapping": "add the closing '}'",
            "a quoted scalar": "add the closing quote"}


def syntax_problem(exc: yaml.MarkedYAMLError) -> tuple[Position, str]:
    problem, context = one_line(str(exc.problem or "")), str(exc.context or "")
    opened = context.removeprefix("while parsing ").removeprefix("while scanning ")
    mark = exc.problem_mark or exc.context_mark
    position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if exc.context_mark and opened in UNCLOSED:
        where = (exc.context_mark.line + 1, exc.context_mark.column + 1)
        if "end of stream" in problem or "<stream end>" in problem:
            return where, f"YAML syntax error: {opened} starts here and is never closed; {UNCLOSED[opened]}"
        if problem.startswith("expected ',' or"):
            opener = f"{opened} that starts at line {where[0]}, column {where[1]}"
            return position, f"YAML syntax error: {problem}, inside {opener}; {UNCLOSED[opened]} or a ','"
    return position, f"YAML syntax error: {problem or one_line(context)}; {syntax_hint(exc)}"


def syntax_hint(exc: yaml.MarkedYAMLError) -> str:
    problem = str(exc.problem or "")
    if "\\t" in problem or "\t" in problem:
        return "indent with spaces, not tabs"
    if "mapping values" in problem:
        return "check the indentation, or quote a value that contains ': '"
    if "found undefined alias" in problem:
        return "define the &anchor before using *alias"
    return "check the indentation and quoting near this point"


def walk(node: yaml.Node, loc: Loc, positions: Positions, seen_nodes: set[int]) -> None:
    positions.values[loc] = start(node)
    # An alias is the anchored node again: walking it twice would loop on a
    # recursive anchor and blow up on nested aliases; its first walk is enough.
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_of(key_node)
            if key in seen:
                raise YamlProblem(start(key_node), f"key {key!r} appears twice; keep one", loc + (key,))
            seen.add(key)
            positions.keys[loc + (key,)] = start(key_node)
            walk(value_node, loc + (key,), positions, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            walk(item, loc + (index,), positions, seen_nodes)


def key_of(node: yaml.Node) -> Any:
    """The key as the loaded data has it (1, True, None…), so it matches pydantic's loc."""
    if not isinstance(node, yaml.ScalarNode):
        return (node.tag, id(node))  # unhashable as data (safe_load refused it already)
    try:
        key = yaml.SafeLoader("").construct_object(node)
        hash(key)
    except (yaml.YAMLError, TypeError, ValueError):
        return node.value
    return key


def dotted(loc: Loc) -> str:
    """('models', 0, 'file') → models[0].file"""
    text = ""
    for part in loc:
        if not isinstance(part, str) or not part.isprintable() or not part:
            part = part if isinstance(part, int) and not isinstance(part, bool) else repr(part)  # one line, whatever the key
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
