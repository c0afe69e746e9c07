"""Images built for real through the Docker SDK, run as containers, contract-tested."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Built, build, conduit

from conduit_build.config import load
from conduit_build.image.context import render

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("name", ["iris", "pipeline", "digits"])
def test_examples_pass_their_contract_in_a_container(images: dict[str, Built], name: str, tmp_path: Path) -> None:
    built = images[name]
    junit = tmp_path / "junit.xml"
    result = conduit("test", "-f", str(built.config), "--image", built.tag, "--junit", str(junit), "--repeat", "5",
                     env={"CONDUIT_API_KEY": "contract-key"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout
    assert 'failures="0"' in junit.read_text()


def test_default_test_target_is_the_built_image(images: dict[str, Built]) -> None:
    """`conduit build && conduit test`: with no flag, test runs the image of the current context."""
    result = conduit("test", "-f", str(images["iris"].config), "--repeat", "1", env={"CONDUIT_API_KEY": "k"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert images["iris"].tag in result.stdout + result.stderr


def test_image_is_labelled_slim_and_non_root(engine: Any, images: dict[str, Built]) -> None:
    built = images["iris"]
    image = engine.images.get(built.tag)
    config = image.attrs["Config"]
    assert config["User"] == "10001"
    assert "8000/tcp" in config["ExposedPorts"]
    assert "/live" in " ".join(config["Healthcheck"]["Test"])  # unhealthy = wedged past wedge_restart_s
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "iris"
    assert labels["conduit.context-hash"] == built.context_hash == render(load(built.config)).hash
    assert yaml.safe_load(labels["conduit.config"])["name"] == "iris"
    assert built.tag.endswith(":" + built.context_hash[:12])
    # Build tools and pip stay in the builder stage.
    listing = engine.containers.run(built.tag, ["sh", "-c", "ls /opt/venv/bin; command -v gcc || true"], remove=True)
    assert b"pip" not in listing and b"gcc" not in listing


def test_noop_rebuild_returns_at_once(images: dict[str, Built]) -> None:
    result = conduit("build", "-f", str(images["iris"].config))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert "[1/" not in result.stderr  # no build step ran


def copy_example(examples: Path, name: str, target: Path) -> Path:
    shutil.copytree(examples / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target / "conduit.yaml"


def build_events(config: Path) -> list[dict[str, Any]]:
    result = conduit("build", "-f", str(config), "--json", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_hook_edit_rebuilds_only_the_last_layers(images: dict[str, Built], examples: Path, tmp_path: Path) -> None:
    config = copy_example(examples, "digits", tmp_path / "digits")
    build_events(config)
    hooks = config.parent / "hooks.py"
    hooks.write_text(hooks.read_text() + f"\n# a comment: the hooks changed ({uuid.uuid4()})\n")
    events = build_events(config)
    steps = [e for e in events if e["kind"] == "step"]
    cached_after = {e["step"] for e in events if e["kind"] == "output" and "Using cache" in e["text"]}
    model_step = next(e["step"] for e in steps if e["text"].startswith("COPY model/"))
    code_step = next(e["step"] for e in steps if e["text"].startswith("COPY code/"))
    assert model_step in cached_after  # model files and everything before: from cache
    # FROM and the ARG before the first FROM (the uv helper's id) commit no layer: no cache to use
    assert all(e["step"] in cached_after for e in steps if e["step"] < model_step and not e["text"].startswith(("FROM", "ARG CONDUIT_UV_IMAGE")))
    assert code_step not in cached_after


def test_failing_build_step_exits_1_with_its_log(engine: Any, examples: Path, tmp_path: Path) -> None:
    config = copy_example(examples, "iris", tmp_path / "iris")
    config.write_text(config.read_text().replace("requirements: [scikit-learn==1.9.1]",
                                                 "requirements: [scikit-learn==1.9.1, conduit-no-such-package==9.9.9]"))
    result = conduit("build", "-f", str(config), timeout=1800)
    assert result.returncode == 1
    assert "failed" in result.stderr and "uv pip compile" in result.stderr
    assert "conduit-no-such-package" in result.stderr
    assert "Traceback" not in result.stderr


def broken_project(examples: Path, target: Path, breakage: str) -> Path:
    config = copy_example(examples, "iris", target)
    if breakage == "model":
        (target / "model.pkl").write_bytes(b"this is not a pickle")
    else:
        (target / "hooks.py").write_text("def pre(data):\n    raise RuntimeError('the hook is broken')\n")
        config.write_text(config.read_text().replace("    file: model.pkl            # made by make_model.py",
                                                     "    file: model.pkl\n    hooks: {pre: hooks.py:pre}"))
    return config


@pytest.mark.parametrize("breakage", ["model", "hook"])
def test_broken_image_fails_its_contract_with_the_reason(images: dict[str, Built], examples: Path, tmp_path: Path, breakage: str) -> None:
    config = broken_project(examples, tmp_path / breakage, breakage)
    built = build(config)
    result = conduit("test", "-f", str(config), "--image", built.tag, "--ready-timeout", "60", "--repeat", "1",
                     env={"CONDUIT_API_KEY": "k"})
    assert result.returncode == 1
    output = result.stdout + result.stderr
    reason = "start-up failed" if breakage == "model" else "the hook is broken"
    assert reason in output
    # no traceback of conduit's own; the server's log (the report's "| " lines) may carry one for the model
    ours = [line for line in result.stdout.splitlines() if not line.startswith("        | ")]
    assert "Traceback" not in "\n".join(ours) and "Traceback" not in result.stderr


def test_pip_settings_stay_out_of_the_final_image(engine: Any, examples: Path, tmp_path: Path) -> None:
    """Index URLs, find-links and the CA bundle are used in the builder stage only."""
    config = copy_example(examples, "iris", tmp_path / "iris")
    links = config.parent / "wheels"
    links.mkdir()
    (links / "README.txt").write_text("no wheels here\n")
    env = {
        "CONDUIT_PIP_EXTRA_INDEX_URL": "file:///nonexistent/s3cr3t-token/simple",
        "CONDUIT_PIP_FIND_LINKS": "wheels",
        "CONDUIT_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    }
    built = build(config, env=env)
    image = engine.images.get(built.tag)
    history = json.dumps(engine.api.history(image.id))
    assert "s3cr3t" not in history and "conduit-build" not in history and "PIP_" not in history
    assert "s3cr3t" not in json.dumps(image.attrs)
    assert not any(v.startswith("PIP_") for v in image.attrs["Config"]["Env"])
    found = engine.containers.run(built.tag, ["sh", "-c", "ls -d /etc/conduit-build /tmp/requirements.txt 2>&1 || true"], remove=True)
    assert b"No such file" in found and b"ca-bundle" not in found


def test_gpu_containers_ask_for_hardware_count_gpus(engine: Any, images: dict[str, Built]) -> None:
    """Without a GPU here, inspect the request: hardware.count GPUs through a device request."""
    from conduit_build.image import engine as docker_engine

    for count in (1, 2):
        container = docker_engine.create(engine, images["iris"].tag, {}, 8000, gpus=count)
        try:
            requests = container.attrs["HostConfig"]["DeviceRequests"]
            assert requests[0]["Count"] == count and requests[0]["Capabilities"] == [["gpu"]]
        finally:
            docker_engine.remove(container)
    cpu = docker_engine.create(engine, images["iris"].tag, {}, 8000, gpus=0)
    try:
        assert not cpu.attrs["HostConfig"].get("DeviceRequests")
    finally:
        docker_engine.remove(cpu)


BLOCKS_WHEN_ASKED = """import pathlib
import time


class Model:
    def predict(self, data):
        if data == ["block"]:  # until the test has pressed Ctrl-C and the container is gone
            pathlib.Path("/tmp/blocked").touch()
            while True:
                time.sleep(0.1)
        return data
"""


def test_ctrl_c_removes_the_container(engine: Any, tmp_path: Path) -> None:
    """Ctrl-C while a prediction is in flight: the test waits for the model to say it is blocked
    (a file inside the container), not for time to pass."""
    import os
    import signal
    import subprocess
    import sys
    import time

    project = tmp_path / "blocking"
    project.mkdir()
    (project / "model.py").write_text(BLOCKS_WHEN_ASKED)
    (project / "conduit.yaml").write_text("name: blocking\nmodels: [{type: python, file: 'model.py:Model'}]\n"
                                          "tests: [{name: warm, json: [1]}, {name: block, json: [block]}]\n")
    tag = build(project / "conduit.yaml").tag
    before = {c.id for c in engine.containers.list(all=True, filters={"ancestor": tag})}
    # Its output goes to files, not pipes nobody reads until the end: a full pipe would block
    # `conduit test` on a write and look like a hang after Ctrl-C.
    out_path, err_path = tmp_path / "test.out", tmp_path / "test.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "conduit_build", "test", "-f", str(project / "conduit.yaml"),
                                    "--image", tag, "--repeat", "1"], stdout=out, stderr=err,
                                   env={**os.environ, "CONDUIT_API_KEY": "k"})
    try:
        blocked = False
        while not blocked and process.poll() is None:
            for container in engine.containers.list(filters={"ancestor": tag}):
                if container.id not in before and container.exec_run(["test", "-f", "/tmp/blocked"]).exit_code == 0:
                    blocked = True
            time.sleep(0.1)
        assert blocked, f"conduit test ended before the model blocked: {err_path.read_text()[-3000:]}"
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"conduit test still ran 60 s after Ctrl-C; its output:\n"
                                 f"{out_path.read_text()[-2000:]}\n{err_path.read_text()[-3000:]}") from None
    finally:
        process.kill()
    assert process.returncode == 130
    assert {c.id for c in engine.containers.list(all=True, filters={"ancestor": tag})} - before == set()
    assert "Traceback" not in err_path.read_text()


def passes_its_contract(project: Path, files: dict[str, str | bytes]) -> None:
    """Write a project, build it, and run `conduit test` against its image."""
    project.mkdir()
    for name, content in files.items():
        (project / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    built = build(project / "conduit.yaml")
    result = conduit("test", "-f", str(project / "conduit.yaml"), "--image", built.tag, "--repeat", "1",
                     env={"CONDUIT_API_KEY": "k"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_model_without_model_files_or_other_code(engine: Any, examples: Path, tmp_path: Path) -> None:
    """A python model has no model/ folder; a pickled model may come without any .py file."""
    passes_its_contract(tmp_path / "python-model", {
        "model.py": "class Model:\n    def predict(self, data):\n        return [sum(row) for row in data]\n",
        "conduit.yaml": "name: sum-rows\nmodels: [{type: python, file: 'model.py:Model'}]\n"
                        "tests: [{name: one, json: [[1, 2]], expect: {result: [3]}}]\n",
    })
    passes_its_contract(tmp_path / "pickled", {
        "model.pkl": (examples / "iris" / "model.pkl").read_bytes(),
        "conduit.yaml": "name: bare-iris\nmodels: [{type: sklearn, file: model.pkl}]\nrequirements: [scikit-learn==1.9.1]\n"
                        "tests: [{name: setosa, json: [[5.1, 3.5, 1.4, 0.2]], expect: {result: [0]}}]\n",
    })
