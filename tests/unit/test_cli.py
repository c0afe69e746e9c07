"""The CLI as a user runs it (a real process each time): validate, schema,
init for every model type, usage errors; exit status 0 ok, 1 failed, 2 bad
usage or bad config (DESIGN §5), and never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import conduit

from conduit_build.config.schema import MODEL_TYPES

MINIMAL = "name: demo\nmodels:\n  - type: sklearn\n    file: model.pkl\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "conduit.yaml").write_text(MINIMAL)
    (tmp_path / "model.pkl").write_bytes(b"pickle")
    return tmp_path


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr + result.stdout


# -- validate ----------------------------------------------------------------------


def test_validate_ok(project: Path) -> None:
    result = conduit("validate", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "conduit.yaml: ok (demo: sklearn)"


@pytest.mark.parametrize("where", ["before", "after"])
def test_validate_json(project: Path, where: str) -> None:
    args = ["--json", "validate"] if where == "before" else ["validate", "--json"]
    result = conduit(*args, cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "name": "demo", "models": ["sklearn"], "lock": {"present": False, "stale": []}}


@pytest.mark.parametrize("flag", ["-f", "--file"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_file_flag_before_and_after_the_command(project: Path, tmp_path_factory: pytest.TempPathFactory,
                                                flag: str, where: str) -> None:
    config = project / "conduit.yaml"
    elsewhere = tmp_path_factory.mktemp("cwd")  # no conduit.yaml here
    args = [flag, str(config), "validate"] if where == "before" else ["validate", flag, str(config)]
    result = conduit(*args, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{config}: ok (demo: sklearn)"


def test_file_flag_after_the_command_wins(project: Path) -> None:
    (project / "other.yaml").write_text(MINIMAL.replace("demo", "other"))
    result = conduit("-f", "missing.yaml", "validate", "-f", "other.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "(other: sklearn)" in result.stdout


def test_validate_bad_config(project: Path) -> None:
    (project / "conduit.yaml").write_text(MINIMAL + "server:\n  prot: 80\n")
    result = conduit("validate", cwd=project)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "conduit.yaml:6:3: server.prot: unknown key 'prot' (did you mean 'port'?); remove it or fix the spelling"
    ]


def test_validate_bad_config_json(project: Path) -> None:
    (project / "conduit.yaml").write_text(MINIMAL + "server:\n  prot: 80\n")
    result = conduit("validate", "--json", cwd=project)
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert body["ok"] is False and body["error"] == "ConfigError"
    assert body["problems"] == ["conduit.yaml:6:3: server.prot: unknown key 'prot' (did you mean 'port'?); "
                                "remove it or fix the spelling"]
    no_traceback(result)


def test_validate_without_a_config(tmp_path: Path) -> None:
    result = conduit("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "conduit.yaml:1:1: (file): no such file; run `conduit init` or pass -f PATH"
    result = conduit("validate", "-f", "nope/conduit.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nope/conduit.yaml:1:1: (file): no such file")


def test_config_errors_never_show_a_traceback_unless_debug(project: Path) -> None:
    (project / "conduit.yaml").write_text("name: [\n")
    result = conduit("validate", cwd=project)
    assert result.returncode == 2
    no_traceback(result)
    result = conduit("--debug", "validate", cwd=project)
    assert result.returncode != 0 and "ConfigError" in result.stderr


# -- schema ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = conduit("schema")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def schema_errors(schema: dict[str, Any], text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(yaml.safe_load(text))]


def test_schema_is_json_schema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "conduit.yaml"
    assert set(schema["required"]) == {"name", "models"}
    assert schema["additionalProperties"] is False


def test_schema_json_flag_is_accepted(schema: dict[str, Any]) -> None:
    result = conduit("schema", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == schema


@pytest.mark.parametrize("name", ["iris", "digits", "pipeline"])
def test_schema_accepts_the_examples(schema: dict[str, Any], examples: Path, name: str) -> None:
    assert schema_errors(schema, (examples / name / "conduit.yaml").read_text()) == []


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL,
        MINIMAL + "hardware: gpu\n",
        MINIMAL + "hardware: {type: a10g, count: 2}\n",
        MINIMAL + "env: {LOG_LEVEL: debug, WORKERS: 2, VERBOSE: true}\n",
        MINIMAL + 'python: "3.12"\ntests:\n  - {name: a, json: [[1, 2]], expect: {result: [0], tolerance: 0.1}}\n'
        "  - {name: b, form: {data: [null], files: []}}\n",
        MINIMAL + "deploy:\n  docker: {host: null, port: 8000, restart: unless-stopped}\n"
        "  kubernetes: {namespace: models, replicas: 2, out: deploy/}\n",
    ],
)
def test_schema_accepts_what_the_loader_accepts(schema: dict[str, Any], tmp_path: Path, text: str) -> None:
    from conduit_build.config import load

    (tmp_path / "model.pkl").write_bytes(b"pickle")
    (tmp_path / "conduit.yaml").write_text(text)
    load(tmp_path / "conduit.yaml")
    assert schema_errors(schema, text) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (MINIMAL + "modls: []\n", "'modls' was unexpected"),
        (MINIMAL + "server: {prot: 80}\n", "'prot' was unexpected"),
        (MINIMAL + "server: {port: abc}\n", "'abc' is not of type 'integer'"),
        (MINIMAL + "server: {max_concurrency: 0}\n", "0 is less than the minimum of 1"),
        (MINIMAL.replace("sklearn", "sklarn"), "'sklarn' is not one of"),
        ("name: demo\n", "'models' is a required property"),
        ("name: demo\nmodels: []\n", "[] should be non-empty"),
        (MINIMAL.replace("demo", "My Model"), "does not match"),
        (MINIMAL + "hardware: tpu\n", "'tpu' is not valid under any of the given schemas"),
        (MINIMAL + "python: 3.10\n", "3.1 is not of type 'string'"),
    ],
)
def test_schema_rejects_bad_configs(schema: dict[str, Any], text: str, words: str) -> None:
    errors = schema_errors(schema, text)
    assert any(words in error for error in errors), errors


# -- init --------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_init_every_type_validates(tmp_path: Path, model_type: str) -> None:
    directory = tmp_path / f"my-{model_type}"
    result = conduit("init", "--type", model_type, str(directory), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (directory / "conduit.yaml").is_file() and (directory / "hooks.py").is_file()
    assert f"wrote {directory / 'conduit.yaml'}" in result.stdout
    config = yaml.safe_load((directory / "conduit.yaml").read_text())
    assert config["models"][0]["type"] == model_type
    assert config["name"] == f"my-{model_type.replace('_', '-')}"
    result = conduit("validate", cwd=directory)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"conduit.yaml: ok (my-{model_type.replace('_', '-')}: {model_type})"


def test_init_json_and_default_type(tmp_path: Path) -> None:
    result = conduit("--json", "init", "proj", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)["written"]
    assert "proj/conduit.yaml" in written and "proj/model.pkl" in written
    assert yaml.safe_load((tmp_path / "proj" / "conduit.yaml").read_text())["models"][0]["type"] == "sklearn_classifier"
    assert conduit("validate", "-f", "proj/conduit.yaml", cwd=tmp_path).returncode == 0


def test_init_in_the_current_folder(tmp_path: Path) -> None:
    directory = tmp_path / "Here Now"
    directory.mkdir()
    result = conduit("init", "--type", "python", cwd=directory)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((directory / "conduit.yaml").read_text())["name"] == "here-now"
    assert conduit("validate", cwd=directory).returncode == 0


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert conduit("init", "--type", "python", "p", cwd=tmp_path).returncode == 0
    config = tmp_path / "p" / "conduit.yaml"
    config.write_text(config.read_text().replace("name: p", "name: mine"))
    (tmp_path / "p" / "hooks.py").write_text("# my own hooks\n")

    result = conduit("init", "--type", "python", "p", cwd=tmp_path)
    assert result.returncode == 2
    assert "exists already" in result.stderr and "--force" in result.stderr
    no_traceback(result)
    assert "name: mine" in config.read_text()
    assert (tmp_path / "p" / "hooks.py").read_text() == "# my own hooks\n"

    result = conduit("init", "--type", "python", "--force", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "name: p\n" in config.read_text()


def test_init_refuses_an_unknown_type(tmp_path: Path) -> None:
    result = conduit("init", "--type", "sklarn", "p", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'sklarn'" in result.stderr
    assert not (tmp_path / "p").exists()


# -- usage errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["validate", "--nope"],
        ["validate", "extra-argument"],
        ["-f"],
        ["validate", "-f"],
        ["serve", "--port", "abc"],
        ["init", "--type"],
        ["predict", "--file"],
    ],
    ids=lambda args: " ".join(args) or "(nothing)",
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = conduit(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "usage: conduit" in result.stderr
    no_traceback(result)


def test_help_exits_0() -> None:
    result = conduit("--help")
    assert result.returncode == 0
    for command in ("init", "validate", "schema", "serve", "predict"):
        assert command in result.stdout


# -- predict's flags: --file is an upload, --json the data, the config is -f/--config


def test_predict_config_flag_and_unreachable_server(project: Path) -> None:
    (project / "conduit.yaml").write_text(MINIMAL + "server: {port: 1}\n")
    for flag in ("-f", "--config"):
        result = conduit("predict", flag, "conduit.yaml", "--json", "[[1, 2]]", cwd=project)
        assert result.returncode == 1, result.stderr
        assert "cannot reach http://127.0.0.1:1/predict" in result.stderr
        no_traceback(result)


def test_predict_bad_config_is_exit_2(project: Path) -> None:
    (project / "conduit.yaml").write_text(MINIMAL + "server: {port: abc}\n")
    result = conduit("predict", "--json", "[1]", cwd=project)
    assert result.returncode == 2
    assert result.stderr.startswith("conduit.yaml:5:16: server.port: ")
    no_traceback(result)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--json", "[1"], "--json is not valid JSON"),
        (["--json", "@missing.json"], "cannot read missing.json"),
        (["--file", "missing.png"], "cannot read missing.png"),
        ([], "give --json DATA, --file F, or both"),
    ],
)
def test_predict_usage_problems_are_exit_2(project: Path, args: list[str], words: str) -> None:
    result = conduit("predict", "--url", "http://127.0.0.1:1", *args, cwd=project)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    no_traceback(result)


def test_python_m_and_the_console_script_agree(project: Path) -> None:
    script = shutil.which("conduit")
    assert script is not None, "the conduit console script is not on PATH (scripts/setup installs the package)"
    import subprocess

    result = subprocess.run([script, "validate"], cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout == conduit("validate", cwd=project).stdout
