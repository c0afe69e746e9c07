"""Bad values on the command line are one line and exit 2, for every command's numeric flags,
references and choices: ports outside 1–65535, negative numbers of times, durations that are not a finite number of
seconds above 0, weights references not pinned by digest, unknown choices (`--target nope`). The table is the parser itself, so a flag
added later is held to the same rule."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import conduit

from conduit_build.cli import build_parser, main
from conduit_build.cli.parser import CHECKED_TYPES, port, repeats, seconds, weights_reference

BAD = {
    port: ["0", "-1", "65536", "99999", "80.5", "abc", ""],
    repeats: ["-1", "1.5", "abc"],
    seconds: ["0", "-1", "nan", "inf", "-inf", "abc"],
    weights_reference: ["localhost:5000/demo-weights:latest", "demo-weights@sha256:" + "a" * 64,
                        "localhost:5000/demo-weights@sha256:" + "A" * 64, ""],
}


def flags() -> Iterator[tuple[str, argparse.Action]]:
    """(command, action) for every option of every command."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.option_strings:
                yield name, action


def cases() -> Iterator[tuple[str, str, str]]:
    for name, action in flags():
        if action.type in BAD:
            for value in BAD[action.type]:
                yield name, action.option_strings[-1], value
        elif action.choices is not None and action.nargs is None:
            yield name, action.option_strings[-1], "nope"


def test_numeric_flags_use_the_checked_types() -> None:
    """No flag takes a bare int or float, which would let 0, -1 or 99999 through."""
    loose = [f"conduit {name} {action.option_strings[-1]}" for name, action in flags()
             if action.type is not None and action.type is not str and action.type not in CHECKED_TYPES]
    assert not loose, f"use cli.parser's port, repeats, seconds or weights_reference for: {', '.join(loose)}"
    checked = {(name, flag) for name, flag, _ in cases()}
    assert {("serve", "--port"), ("test", "--repeat"), ("test", "--ready-timeout"), ("deploy", "--target"),
            ("deploy", "--weights")} <= checked


@pytest.mark.parametrize(("command", "flag", "value"), list(cases()), ids=lambda v: v or "(empty)")
def test_a_bad_value_is_one_line_and_exit_2(command: str, flag: str, value: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    status = main([command, f"{flag}={value}"])
    captured = capsys.readouterr()
    assert status == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: argument ") and flag in lines[0], captured.err
    assert f"(usage: conduit {command} --help)" in lines[0]
    assert captured.out == ""


def test_good_values_pass() -> None:
    assert port("1") == 1 and port("65535") == 65535
    assert repeats("0") == 0 and repeats("3") == 3 and seconds("0.5") == 0.5
    pin = "localhost:5000/demo-weights@sha256:" + "0123456789abcdef" * 4
    assert weights_reference(pin) == pin


def test_serve_refuses_a_port_it_cannot_bind_before_saying_it_serves(tmp_path: Path) -> None:
    """uvicorn takes 99999 modulo 65536: the CLI refuses it before anything starts."""
    result = conduit("serve", "--port", "99999", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "error: argument --port: 99999 is not a port: give 1 to 65535 (usage: conduit serve --help)\n"
    assert "serving" not in result.stdout + result.stderr
