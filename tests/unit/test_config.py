"""conduit.yaml loading (DESIGN §1): every problem is one line
`conduit.yaml:LINE:COL: key.path: what is wrong, and the fix`, pointing at the
offending key (unknown keys) or value (everything else), all reported together
and sorted; through the CLI that is exit status 2 and never a traceback."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
from conftest import conduit
from pydantic import ValidationError

from conduit_build.config import Project, load
from conduit_build.errors import ConfigError

LINE = re.compile(r"^conduit\.yaml:(\d+):(\d+): (.+?): (.+)$")

HOOKS = '''\
def pre(data):
    return data


def pre_files(data, files):
    return data


def pre_optional(data, files=None, extra=None):
    return data


def post(out):
    return out


def post_data(out, data):
    return out


def post_files(out, data, files):
    return out


def anything(*args):
    return args[0]


def three(a, b, c):
    return a


def none():
    return 1


def four(out, data, files, extra):
    return out


def keyword_only(data, *, mode):
    return data


async def pre_async(data):
    return data


process = pre  # bound by assignment: checked when loaded, not here
'''

MODEL_PY = '''\
class Model:
    def predict(self, data):
        return data


class Other:
    pass
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding a file of every kind a config may name."""
    (tmp_path / "model.pkl").write_bytes(b"pickle")
    (tmp_path / "hooks.py").write_text(HOOKS)
    (tmp_path / "model.py").write_text(MODEL_PY)
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "config.json").write_text("{}")
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "three.png").write_bytes(b"\x89PNG")
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    return tmp_path


def at(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the n-th `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def problems(project: Path, text: str) -> list[str]:
    (project / "conduit.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(project / "conduit.yaml", "conduit.yaml")
    return raised.value.lines()


def parse(line: str) -> tuple[int, int, str, str]:
    found = LINE.match(line)
    assert found, f"not `conduit.yaml:LINE:COL: key: text`: {line!r}"
    return int(found[1]), int(found[2]), found[3], found[4]


MINIMAL = "name: demo\nmodels:\n  - type: sklearn\n    file: model.pkl\n"


def stage(extra: str = "", type_: str = "sklearn", file: str = "model.pkl") -> str:
    return f"name: demo\nmodels:\n  - type: {type_}\n    file: {file}\n{extra}"


# (id, conduit.yaml, [(where: the text the problem points at, its occurrence), key, words in the message])
CASES = [
    # -- YAML syntax
    ("tab-indent", "name: demo\nmodels:\n\t- type: sklearn\n", [(("\t", 1), "YAML syntax error", "tabs")]),
    ("bad-indent", "name: demo\nmodels:\n  - type: sklearn\n   file: model.pkl\n",
     [(("file", 1), "YAML syntax error", "indentation")]),
    ("bad-indent-mapping", "name: demo\nserver:\n  port: 8000\n max_queue: 3\n",
     [(("max_queue", 1), "YAML syntax error", "indentation")]),
    ("unclosed-bracket", "name: demo\nmodels: [{type: sklearn, file: model.pkl}\n",
     [(("[", 1), "YAML syntax error", "never closed; add the closing ']'")]),
    ("unclosed-brace", "name: demo\nmodels: [{type: sklearn, file: model.pkl]\n",
     [(("]", 1), "YAML syntax error", "inside a flow mapping that starts at line 2, column 10")]),
    ("unclosed-bracket-then-more", "name: demo\nmodels: [{type: sklearn, file: model.pkl}\nserver: {port: 1}\n",
     [(("server", 1), "YAML syntax error", "inside a flow sequence that starts at line 2, column 9")]),
    ("unclosed-quote", "name: 'demo\nmodels: []\n", [(("'", 1), "YAML syntax error", "closing quote")]),
    ("colon-in-value", "name: demo: x\nmodels: []\n", [((": x", 1), "YAML syntax error", "quote a value")]),
    ("undefined-alias", MINIMAL + "env: *nothing\n", [(("*nothing", 1), "YAML syntax error", "&anchor")]),
    ("duplicate-key", MINIMAL + "name: again\n", [(("name", 2), "name", "appears twice")]),
    ("duplicate-nested-key", stage("server:\n  port: 1\n  port: 2\n"), [(("port", 2), "server.port", "appears twice")]),
    # -- shape
    ("unknown-top", MINIMAL + "modls: []\n", [(("modls", 1), "modls", "unknown key 'modls' (did you mean 'models'?)")]),
    ("unknown-nested", stage("server:\n  prot: 80\n"), [(("prot", 1), "server.prot", "(did you mean 'port'?)")]),
    ("unknown-in-stage", stage("    hoks: {}\n"), [(("hoks", 1), "models[0].hoks", "(did you mean 'hooks'?)")]),
    ("unknown-deep", stage("deploy:\n  kubernetes: {replica: 3}\n"),
     [(("replica", 1), "deploy.kubernetes.replica", "(did you mean 'replicas'?)")]),
    ("unknown-no-suggestion", MINIMAL + "zzzz: 1\n", [(("zzzz", 1), "zzzz", "unknown key 'zzzz'; remove it")]),
    ("port-not-int", stage('server:\n  port: "abc"\n'), [(('"abc"', 1), "server.port", "valid integer")]),
    ("port-too-big", stage("server:\n  port: 70000\n"), [(("70000", 1), "server.port", "less than or equal to 65535")]),
    ("max-concurrency-zero", stage("server:\n  max_concurrency: 0\n"),
     [(("0", 1), "server.max_concurrency", "greater than or equal to 1")]),
    ("type-misspelled", stage(type_="sklarn"), [(("sklarn", 1), "models[0].type", "(did you mean 'sklearn'?); one of:")]),
    ("type-misspelled-xgb", stage(type_="xgboost_clasifier"),
     [(("xgboost_clasifier", 1), "models[0].type", "(did you mean 'xgboost_classifier'?)")]),
    ("python-unquoted", "name: demo\npython: 3.10\nmodels:\n  - type: sklearn\n    file: model.pkl\n",
     [(("3.10", 1), "python", 'quote the version, like python: "3.11"')]),
    ("python-not-version", "name: demo\npython: three\nmodels: [{type: sklearn, file: model.pkl}]\n",
     [(("three", 1), "python", "not a Python version")]),
    ("bad-name", "name: My Model\nmodels: [{type: sklearn, file: model.pkl}]\n",
     [(("My Model", 1), "name", "lowercase letters, digits and dashes")]),
    ("missing-models", "name: demo\n", [(("name", 1), "models", "missing required key 'models'; add it")]),
    ("empty-models", "name: demo\nmodels: []\n", [(("[]", 1), "models", "at least one model stage")]),
    ("missing-file-key", "name: demo\nmodels:\n  - type: sklearn\n",
     [(("type", 1), "models[0].file", "missing required key 'file'")]),
    ("bad-hardware", stage("hardware: tpu\n"), [(("tpu", 1), "hardware", "use cpu, gpu, or {type: a10g, count: 1}")]),
    ("hardware-kind", stage("hardware: {kind: cpu, type: a10g}\n"), [(("{kind", 1), "hardware", "unknown key 'kind'")]),
    ("gpu-count-zero", stage("hardware: {type: a10g, count: 0}\n"), [(("0}", 1), "hardware.count", "greater than or equal to 1; got 0")]),
    ("env-secret", stage("env:\n  LOG_LEVEL: debug\n  AWS_SECRET_KEY: x\n  DB_PASSWORD: y\n"), [
        (("AWS_SECRET_KEY", 1), "env.AWS_SECRET_KEY", "looks like a secret"),
        (("DB_PASSWORD", 1), "env.DB_PASSWORD", "pass it at run time instead"),
    ]),
    ("env-token", stage("env: {GITHUB_TOKEN: abc}\n"), [(("GITHUB_TOKEN", 1), "env.GITHUB_TOKEN", "looks like a secret")]),
    ("hook-not-a-ref", stage("    hooks: {pre: hooks.py}\n"),
     [(("hooks.py}", 1), "models[0].hooks.pre", "not module_file:function; write it like hooks.py:pre_process")]),
    ("int-key", MINIMAL + "1: one\n", [(("1: one", 1), "[1]", "is not a string")]),
    # -- the files it names
    ("model-file-missing", stage(file="modle.pkl"),
     [(("modle.pkl", 1), "models[0].file", "'modle.pkl' does not exist (did you mean 'model.pkl'?); create it")]),
    ("model-file-is-folder", stage(file="saved"), [(("saved", 1), "models[0].file", "is a folder; name the file")]),
    ("hook-file-missing", stage("    hooks: {pre: hoooks.py:pre}\n"),
     [(("hoooks.py:pre", 1), "models[0].hooks.pre", "'hoooks.py' does not exist (did you mean 'hooks.py'?)")]),
    ("hook-function-missing", stage("    hooks:\n      post: hooks.py:psot\n"),
     [(("hooks.py:psot", 1), "models[0].hooks.post", "defines no function 'psot' (did you mean 'post'?)")]),
    ("pre-three-args", stage("    hooks: {pre: hooks.py:three}\n"),
     [(("hooks.py:three", 1), "models[0].hooks.pre", "takes 3 arguments; a pre hook takes (data) or (data, files)")]),
    ("pre-no-args", stage("    hooks: {pre: hooks.py:none}\n"),
     [(("hooks.py:none", 1), "models[0].hooks.pre", "takes 0 arguments")]),
    ("post-four-args", stage("    hooks: {post: hooks.py:four}\n"),
     [(("hooks.py:four", 1), "models[0].hooks.post", "a post hook takes (out), (out, data) or (out, data, files)")]),
    ("post-no-args", stage("    hooks: {post: hooks.py:none}\n"),
     [(("hooks.py:none", 1), "models[0].hooks.post", "takes 0 arguments")]),
    ("keyword-only", stage("    hooks: {pre: hooks.py:keyword_only}\n"),
     [(("hooks.py:keyword_only", 1), "models[0].hooks.pre", "requires keyword-only mode")]),
    ("dotdot", stage(file="../model.pkl"), [(("../model.pkl", 1), "models[0].file", "leaves the project folder")]),
    ("dotdot-inner", stage(file="saved/../../model.pkl"),
     [(("saved/../../model.pkl", 1), "models[0].file", "leaves the project folder")]),
    ("absolute", stage(file="/etc/hostname"), [(("/etc/hostname", 1), "models[0].file", "is absolute; give a path relative")]),
    ("hook-outside", stage("    hooks: {pre: ../hooks.py:pre}\n"),
     [(("../hooks.py:pre", 1), "models[0].hooks.pre", "leaves the project folder")]),
    ("symlink-outside", stage(file="linked.pkl"),
     [(("linked.pkl", 1), "models[0].file", "is a link pointing outside the project")]),
    ("requirements-file-missing", stage("requirements_file: reqs.txt\n"),
     [(("reqs.txt", 1), "requirements_file", "does not exist")]),
    ("test-json-and-form", stage("tests:\n  - name: both\n    json: [1]\n    form: {data: [1]}\n"),
     [(("name: both", 1), "tests[0]", "give exactly one of json: or form:")]),
    ("test-neither", stage("tests:\n  - name: neither\n"), [(("name: neither", 1), "tests[0]", "exactly one of")]),
    ("form-file-missing", stage("tests:\n  - name: png\n    form: {data: [null], files: [samples/three.png, samples/tree.png]}\n"),
     [(("samples/tree.png", 1), "tests[0].form.files[1]", "does not exist (did you mean 'samples/three.png'?)")]),
    ("python-class-missing", stage(type_="python", file="model.py:Modle"),
     [(("model.py:Modle", 1), "models[0].file", "model.py defines no class 'Modle' (did you mean 'Model'?)")]),
    ("python-no-class", stage(type_="python", file="model.py"),
     [(("model.py", 1), "models[0].file", "a python model is model_file:ClassName, like model.py:Model")]),
    ("python-file-missing", stage(type_="python", file="mdl.py:Model"), [(("mdl.py:Model", 1), "models[0].file", "does not exist")]),
    ("spacy-needs-folder", stage(type_="spacy", file="model.pkl"),
     [(("model.pkl", 1), "models[0].file", "is a file; this model type loads a folder")]),
    ("hf-needs-folder", stage(type_="hf_pipeline", file="model.pkl"),
     [(("model.pkl", 1), "models[0].file", "is a file; this model type loads a folder")]),
    ("second-stage", stage("  - type: sklearn\n    file: nope.pkl\n"), [(("nope.pkl", 1), "models[1].file", "does not exist")]),
    # -- several at once: every one, sorted by position, shape and file problems together
    ("several", (
        "name: demo\n"
        "python: 3.10\n"
        "models:\n"
        "  - type: sklearn\n"
        "    file: missing.pkl\n"
        "    hooks: {pre: hooks.py:three}\n"
        "  - type: sklarn\n"
        "    file: model.pkl\n"
        "server:\n"
        "  prot: 80\n"
        "  max_concurrency: 0\n"
        "env: {API_KEY: x}\n"
        "tests:\n"
        "  - {name: t, form: {files: [gone.png]}}\n"
    ), [
        (("3.10", 1), "python", "quote the version"),
        (("missing.pkl", 1), "models[0].file", "does not exist"),
        (("hooks.py:three", 1), "models[0].hooks.pre", "takes 3 arguments"),
        (("sklarn", 1), "models[1].type", "did you mean 'sklearn'"),
        (("prot", 1), "server.prot", "did you mean 'port'"),
        (("0\nenv", 1), "server.max_concurrency", "greater than or equal to 1"),
        (("API_KEY", 1), "env.API_KEY", "looks like a secret"),
        (("gone.png", 1), "tests[0].form.files[0]", "does not exist"),
    ]),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(text, expected, id=name) for name, text, expected in CASES])
def test_problem_lines(project: Path, text: str, expected: list[tuple[tuple[str, int], str, str]]) -> None:
    (project / "linked.pkl").symlink_to("/etc/hostname")
    lines = problems(project, text)
    assert len(lines) == len(expected), "\n".join(lines)
    for line, ((needle, occurrence), key, words) in zip(lines, expected, strict=True):
        row, col, shown_key, message = parse(line)
        assert (row, col) == at(text, needle, occurrence), f"{line}\nshould point at {needle!r}"
        assert shown_key == key, line
        assert words in message, line


def test_problem_lines_through_the_cli(project: Path) -> None:
    """The same lines on stderr, exit status 2, no traceback, for every case above.
    (One process per case would take a minute; the CLI is the same code, so a
    few representative ones suffice, plus `--json`.)"""
    (project / "linked.pkl").symlink_to("/etc/hostname")
    chosen = {"tab-indent", "unclosed-bracket", "duplicate-key", "unknown-nested", "port-not-int",
              "type-misspelled", "pre-three-args", "symlink-outside", "python-class-missing", "several"}
    for name, text, _ in CASES:
        if name not in chosen:
            continue
        expected = problems(project, text)
        result = conduit("validate", "-f", "conduit.yaml", cwd=project)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stdout == "", name
        assert "Traceback" not in result.stderr, name
        assert result.stderr.splitlines() == expected, name


def test_all_cases_report_through_the_cli_with_json(project: Path) -> None:
    (project / "conduit.yaml").write_text(CASES[-1][1])
    expected = problems(project, CASES[-1][1])
    result = conduit("--json", "validate", cwd=project)
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert body == {"ok": False, "error": "ConfigError", "problems": expected}
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"name: demo\nmodels: \xff\xfe\n", id="not-utf8"),
        pytest.param(b"name: demo\x00\nmodels: []\n", id="nul-byte"),
        pytest.param(b"name: demo\nmodels: " + b"[" * 5000 + b"]" * 5000 + b"\n", id="nested-too-deep"),
        pytest.param(b"name: demo\nmodels: &a [*a]\n", id="recursive-alias"),
        pytest.param(b"", id="empty"),
        pytest.param(b"# only a comment\n", id="only-comment"),
        pytest.param(b"- a\n- b\n", id="a-list"),
        pytest.param(b"just text\n", id="a-string"),
        pytest.param(b'name: demo\nmodels: [{type: sklearn, file: "a\\0b"}]\n', id="nul-in-path"),
        pytest.param(b"name: demo\nmodels: [{type: sklearn, file: " + b"x" * 5000 + b"}]\n", id="path-too-long"),
        pytest.param(b"name: demo\nmodels: [{type: sklearn, file: loop}]\n", id="symlink-loop"),
        pytest.param(b"name: demo\nmodels: [{type: sklearn, file: ''}]\n", id="empty-path"),
        pytest.param(b'name: demo\nmodels: [{type: sklearn, file: model.pkl}]\n"a\\nb": 1\n', id="newline-in-key"),
    ],
)
def test_odd_files_are_config_errors_not_crashes(project: Path, text: bytes) -> None:
    (project / "loop").symlink_to(project / "loop")
    (project / "conduit.yaml").write_bytes(text)
    with pytest.raises(ConfigError) as raised:
        load(project / "conduit.yaml", "conduit.yaml")
    for line in raised.value.lines():
        parse(line)


@pytest.mark.parametrize("text", [b"name: demo\nmodels: \xff\n", b"a: " + b"{" * 5000, b"name: demo\nmodels: [{type: sklearn, file: loop}]\n"])
def test_odd_files_through_the_cli(project: Path, text: bytes) -> None:
    (project / "loop").symlink_to(project / "loop")
    (project / "conduit.yaml").write_bytes(text)
    result = conduit("validate", cwd=project)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    parse(result.stderr.splitlines()[0])


def test_positions_of_specific_odd_files(project: Path) -> None:
    assert parse(problems(project, "name: demo\nmodels: [a,\x07]\n")[0])[:2] == (2, 12)
    (project / "conduit.yaml").write_bytes(b"name: demo\nmodels: \xff\n")
    with pytest.raises(ConfigError) as raised:
        load(project / "conduit.yaml", "conduit.yaml")
    assert parse(raised.value.lines()[0])[:2] == (2, 9)
    assert "UTF-8" in raised.value.lines()[0]
    assert problems(project, "")[0] == "conduit.yaml:1:1: (top level): expected a mapping of keys such as name: and models:"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path / "conduit.yaml", "conduit.yaml")
    assert raised.value.lines() == ["conduit.yaml:1:1: (file): no such file; run `conduit init` or pass -f PATH"]
    result = conduit("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_display_name_defaults_to_the_path(project: Path) -> None:
    (project / "conduit.yaml").write_text("name: demo\n")
    with pytest.raises(ConfigError) as raised:
        load(project / "conduit.yaml")
    assert raised.value.lines()[0].startswith(f"{project / 'conduit.yaml'}:1:1: models: ")


def test_file_name_with_colons_still_sorts(project: Path) -> None:
    (project / "conduit.yaml").write_text("name: demo\npython: 3.10\nmodels: [{type: sklarn, file: x}]\n")
    with pytest.raises(ConfigError) as raised:
        load(project / "conduit.yaml", "C:10:20:conduit.yaml")
    assert [line.split(": ")[1] for line in raised.value.lines()] == ["python", "models[0].type"]


# -- what passes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "hooks",
    [
        "{pre: hooks.py:pre, post: hooks.py:post}",
        "{pre: hooks.py:pre_files, post: hooks.py:post_data}",
        "{pre: hooks.py:pre_optional, post: hooks.py:post_files}",
        "{pre: hooks.py:anything, post: hooks.py:anything}",
        "{pre: hooks.py:pre_async}",
        "{pre: hooks.py:process}",
        "{post: hooks.py:pre_optional}",
    ],
)
def test_accepted_hooks(project: Path, hooks: str) -> None:
    (project / "conduit.yaml").write_text(stage(f"    hooks: {hooks}\n"))
    load(project / "conduit.yaml")


def test_folders_and_links_inside(project: Path) -> None:
    (project / "inner.pkl").symlink_to(project / "model.pkl")
    (project / "conduit.yaml").write_text(
        "name: demo\nmodels:\n"
        "  - {type: spacy, file: saved}\n  - {type: hf_pipeline, file: saved/, options: {task: ner}}\n"
        "  - {type: sklearn, file: inner.pkl}\n  - {type: python, file: 'model.py:Other'}\n"
        "  - {type: sklearn, file: ./samples/../model.pkl}\n"
    )
    with pytest.raises(ConfigError) as raised:  # '..' is refused even when it stays inside
        load(project / "conduit.yaml")
    assert len(raised.value.lines()) == 1 and "models[4].file" in raised.value.lines()[0]
    (project / "conduit.yaml").write_text((project / "conduit.yaml").read_text().replace("./samples/../", "./"))
    config = load(project / "conduit.yaml").config
    assert [s.type for s in config.models] == ["spacy", "hf_pipeline", "sklearn", "python"] + ["sklearn"]
    assert config.models[1].options == {"task": "ner"}


def test_minimal_config_gets_the_defaults_of_design_section_1(project: Path) -> None:
    (project / "conduit.yaml").write_text(MINIMAL)
    loaded = load(project / "conduit.yaml")
    assert isinstance(loaded, Project)
    assert loaded.path == (project / "conduit.yaml").resolve()
    assert loaded.root == project.resolve()
    config = loaded.config
    assert (config.name, config.python, config.hardware.kind, config.hardware.gpu) == ("demo", "3.11", "cpu", False)
    assert (config.requirements, config.requirements_file, config.system_packages, config.env, config.tests) == (
        [], None, [], {}, []
    )
    stage_ = config.models[0]
    assert (stage_.type, stage_.file, stage_.hooks.pre, stage_.hooks.post, stage_.options) == (
        "sklearn", "model.pkl", None, None, {}
    )
    assert config.server.model_dump() == {
        "port": 8000, "api_key_env": "CONDUIT_API_KEY", "max_body_mb": 100, "timeout_s": 180,
        "max_concurrency": 4, "max_queue": 64, "workers": 1,
        "async_timeout_s": 3600, "async_max_queue": 1000, "async_ttl_s": 3600, "async_max_results": 10000,
        "async_store": "memory", "webhook_secret_env": "CONDUIT_WEBHOOK_SECRET", "docs": True,
        "wedge_restart_s": None,  # 3 x timeout_s, resolved by the runtime
        "drain_delay_s": 5, "max_buffered_mb": 1024,
        "webhook_allowed_hosts": [], "async_max_attempts": 3,
    }
    assert (config.image.repository, config.image.base) == (None, "python:3.11-slim")
    docker, kubernetes = config.deploy.docker, config.deploy.kubernetes
    assert (docker.host, docker.port, docker.restart) == (None, 8000, "unless-stopped")
    assert (kubernetes.namespace, kubernetes.replicas, kubernetes.out) == ("models", 2, "deploy/")


def test_loaded_objects_are_frozen(project: Path) -> None:
    (project / "conduit.yaml").write_text(MINIMAL)
    loaded = load(project / "conduit.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.root = Path("/")  # type: ignore[misc]
    with pytest.raises(ValidationError):
        loaded.config.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        loaded.config.server.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        loaded.config.models[0].file = "x"  # type: ignore[misc]


def test_everything_of_design_section_1(project: Path) -> None:
    """The annotated example of DESIGN §1, with the files it names."""
    (project / "hooks.py").write_text("def pre_process(data, files):\n    return data\n\n\n"
                                      "def post_process(out, data):\n    return out\n")
    text = '''\
name: digits
python: "3.11"
hardware: {type: a10g, count: 1}
models:
  - type: sklearn_classifier
    file: model.pkl
    hooks:
      pre: hooks.py:pre_process
      post: hooks.py:post_process
    options: {}
requirements: [scikit-learn==1.5.2, pillow]
system_packages: [libgomp1]
env: {LOG_LEVEL: debug, WORKERS: 2, VERBOSE: true, RATIO: 0.5}
server:
  port: 8000
  api_key_env: CONDUIT_API_KEY
  max_body_mb: 100
  timeout_s: 180
  max_concurrency: 4
  max_queue: 64
image:
  repository: localhost:5000/digits
  base: python:3.11-slim
tests:
  - name: iris-json
    json: [[5.1, 3.5, 1.4, 0.2]]
    expect: {result: [0], tolerance: 0.01}
  - name: digit-png
    form: {data: [null], files: [samples/three.png]}
deploy:
  docker: {host: null, port: 8000, restart: unless-stopped}
  kubernetes: {namespace: models, replicas: 2, out: deploy/}
'''
    (project / "conduit.yaml").write_text(text)
    config = load(project / "conduit.yaml").config
    assert config.hardware.gpu and config.hardware.type == "a10g" and config.hardware.count == 1
    assert config.env == {"LOG_LEVEL": "debug", "WORKERS": "2", "VERBOSE": "true", "RATIO": "0.5"}
    assert config.tests[0].json_ == [[5.1, 3.5, 1.4, 0.2]] and config.tests[0].expect.tolerance == 0.01
    assert config.tests[1].form.files == ["samples/three.png"]
    spec = load(project / "conduit.yaml").runtime_spec()
    assert spec["warmup"] == {"name": "iris-json", "data": [[5.1, 3.5, 1.4, 0.2]]}
    assert spec["gpu"] is True
    assert spec["stages"][0]["pre"] == "hooks.py:pre_process"


@pytest.mark.parametrize(("value", "gpu"), [("cpu", False), ("gpu", True), ("{type: a10g}", True), ("{count: 2}", True)])
def test_hardware_forms(project: Path, value: str, gpu: bool) -> None:
    (project / "conduit.yaml").write_text(stage(f"hardware: {value}\n"))
    assert load(project / "conduit.yaml").config.hardware.gpu is gpu


@pytest.mark.parametrize("name", ["iris", "digits", "pipeline"])
def test_examples_load(examples: Path, name: str) -> None:
    config = load(examples / name / "conduit.yaml").config
    assert config.models
    assert config.tests, "every example carries contract tests"
    result = conduit("validate", "-f", str(examples / name / "conduit.yaml"))
    assert result.returncode == 0, result.stderr


def test_relative_paths_resolve_from_the_config_not_the_cwd(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "conduit.yaml").write_text(MINIMAL)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert load(os.path.relpath(project / "conduit.yaml")).root == project.resolve()
