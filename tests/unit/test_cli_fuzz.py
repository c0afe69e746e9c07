"""Every failure of every command is one `error: …` line (or a config's file:line:col
lines) with exit 1 or 2, never a traceback, unless --debug, which works anywhere on
the command line. A hypothesis test drives the CLI with random arguments and
broken configs; main() runs in-process so that hundreds of runs stay cheap."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from conftest import conduit, start_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conduit_build.cli import main

MINIMAL = "name: demo\nmodels:\n  - type: python\n    file: model.py:Model\n"
CONFIGS = {
    "valid": MINIMAL,
    "syntax": "name: [\n",
    "unknown-key": MINIMAL + "server: {prot: 80}\n",
    "bad-types": MINIMAL + "server: {port: abc, max_body_mb: -1}\nhardware: tpu\n",
    "missing-file": MINIMAL.replace("model.py", "gone.py"),
    "not-a-mapping": "- just\n- a list\n",
    "empty": "",
    "binary": "\udcff\x00\x01name: demo\n",
    "kubernetes": MINIMAL + "deploy: {kubernetes: {replicas: 3, max_replicas: 2, api_key_secret: Bad_Name}}\n",
    "docker-host": MINIMAL + "deploy: {docker: {host: 'ftp://nowhere'}}\nimage: {repository: 'Not A Repo'}\n",
}
# Commands that never need the engine or a long-running server, with the flags they take.
COMMANDS: dict[str, list[str]] = {
    "validate": [],
    "schema": [],
    "render": ["-o"],
    "init": ["--type", "--force"],
    "predict": ["--url", "--json", "--file", "--key-env"],
    "deploy": ["--target", "--image", "--out", "--rollback", "--key-file", "--weights"],
}
VALUES = st.sampled_from(["", "x", "-", "--", "0", "-1", "99999999", "python", "kubernetes", "kserve", "docker",
                          "[1]", "@nope.json", "{", "localhost:5000/demo@sha256:" + "a" * 64, "../..", "\x00", "é",
                          "localhost:5000/demo-weights@sha256:" + "c" * 64])
MAIN_LINE = re.compile(r"^(error: |usage: conduit|.*:\d+:\d+: )")  # or a config problem: PATH:LINE:COL:


def run_main(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(cwd):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    config = draw(st.sampled_from(sorted(CONFIGS)))
    command = draw(st.sampled_from(sorted(COMMANDS)))
    flags = draw(st.lists(st.sampled_from(COMMANDS[command] + ["--json", "-f", "--bogus"]), max_size=4))
    words: list[str] = []
    for flag in flags:
        words.append(flag)
        if flag not in ("--json", "--force", "--rollback", "--bogus") and draw(st.booleans()):
            words.append(draw(VALUES))
    if command == "predict" and "--url" not in words:
        words += ["--url", "http://127.0.0.1:1"]  # nothing listens there
    if command == "init" and "--type" not in words:
        words += ["--type", "python"]  # no training run: cheap
    if command == "deploy" and draw(st.booleans()):
        words += ["--target", draw(st.sampled_from(["kubernetes", "kserve"])), "--image",
                  "localhost:5000/demo@sha256:" + "b" * 64]
    return config, [*draw(st.sampled_from([[], ["--json"]])), command, *words]


@given(command_lines())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_command_lines_never_show_a_traceback(tmp_path: Path, case: tuple[str, list[str]]) -> None:
    config, argv = case
    if "deploy" in argv and "--target" in argv and argv[argv.index("--target") + 1:][:1] == ["docker"]:
        argv = [word if word != "docker" else "kserve" for word in argv]  # the engine is the docker tests' part
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (tmp_path / "conduit.yaml").write_text(CONFIGS[config], errors="surrogateescape")
    status, out, err = run_main(argv, tmp_path)
    assert "Traceback" not in out + err
    assert status in (0, 1, 2), (argv, status, err)
    if status != 0 and err.strip():
        assert MAIN_LINE.match(err.splitlines()[0]), err


def test_an_unexpected_failure_is_one_line_and_debug_shows_where(tmp_path: Path) -> None:
    """Writing the context under a file: an OSError, which no ConduitError describes."""
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (tmp_path / "conduit.yaml").write_text(MINIMAL)
    (tmp_path / "a-file").write_text("")
    result = conduit("render", "-o", "a-file/ctx", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert re.fullmatch(r"error: a-file: \w.*", line), line  # the path, and what the system said
    for argv in (["--debug", "render", "-o", "a-file/ctx"], ["render", "-o", "a-file/ctx", "--debug"]):
        debug = conduit(*argv, cwd=tmp_path)
        assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
        assert debug.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_debug_is_accepted_anywhere(tmp_path: Path, where: str) -> None:
    (tmp_path / "conduit.yaml").write_text("name: [\n")
    argv = {"first": ["--debug", "validate", "--json"], "middle": ["validate", "--debug", "--json"],
            "last": ["validate", "--json", "--debug"]}[where]
    result = conduit(*argv, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr and "ConfigError" in result.stderr


def test_serve_debug_puts_the_details_into_500_bodies(tmp_path: Path) -> None:
    """`conduit serve --debug` hands debug=True to the runtime; without it a 500 says nothing inside."""
    import httpx

    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n"
                                       "        raise RuntimeError('boom-detail-1234')\n")
    (tmp_path / "conduit.yaml").write_text(MINIMAL)
    servers = [start_server(tmp_path / "conduit.yaml", tmp_path, key=None, extra=extra) for extra in ((), ("--debug",))]
    try:
        bodies = [httpx.post(s.url + "/predict", json=[1], timeout=10) for s in servers]
    finally:
        for server in servers:
            server.stop()
    assert [b.status_code for b in bodies] == [500, 500]
    assert "boom-detail-1234" not in bodies[0].text and "boom-detail-1234" in bodies[1].text
