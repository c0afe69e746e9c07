"""The build context: deterministic, complete, secret-free; CPU and GPU targets."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import conduit

from conduit_build.config import load
from conduit_build.image.context import BuildContext, render
from conduit_build.image.pip import PipSettings

GOLDEN = Path(__file__).parent / "golden"


def copy_project(source: Path, target: Path, reverse: bool = False) -> Path:
    """Copy a project file by file, in a chosen order, with fresh mtimes."""
    files = sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in reversed(files) if reverse else files:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        if reverse:
            os.utime(destination, (1_000_000, 1_000_000))
    return target / "conduit.yaml"


def tar_bytes(context: BuildContext) -> bytes:
    with context.tar() as spooled:
        return spooled.read()


def test_same_inputs_same_bytes_and_hash(examples: Path, tmp_path: Path) -> None:
    """Creation order and mtimes change nothing: not the files, not the hash, not the tar."""
    first = render(load(copy_project(examples / "digits", tmp_path / "a")), PipSettings())
    second = render(load(copy_project(examples / "digits", tmp_path / "b", reverse=True)), PipSettings())
    assert first.hash == second.hash
    assert tar_bytes(first) == tar_bytes(second)
    first.write(tmp_path / "out-a")
    second.write(tmp_path / "out-b")
    for path in first.files:
        assert (tmp_path / "out-a" / path).read_bytes() == (tmp_path / "out-b" / path).read_bytes()


def test_hook_edit_changes_only_code(examples: Path, tmp_path: Path) -> None:
    """Editing a hook changes the hash but no generated file: only the code/ layer rebuilds."""
    config = copy_project(examples / "digits", tmp_path / "p")
    before = render(load(config), PipSettings())
    hooks = tmp_path / "p" / "hooks.py"
    hooks.write_text(hooks.read_text() + "\n# edited\n")
    after = render(load(config), PipSettings())
    assert before.hash != after.hash
    generated = [path for path, source in before.files.items() if isinstance(source, bytes)]
    assert generated and all(before.files[path] == after.files[path] for path in generated)


def test_context_layout(examples: Path) -> None:
    context = render(load(examples / "digits" / "conduit.yaml"), PipSettings())
    files = set(context.files)
    assert {"Dockerfile", ".dockerignore", "requirements.txt", "conduit.json", "main.py"} <= files
    assert "model/model.pkl" in files
    assert "code/hooks.py" in files and "code/samples/three.png" in files
    assert "conduit_runtime/http/app.py" in files and "conduit_runtime/requirements.txt" in files
    assert not any("__pycache__" in path for path in files)
    with context.tar() as spooled, tarfile.open(fileobj=spooled) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == sorted(files)
    assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}


def test_layer_order_and_image_hygiene(examples: Path) -> None:
    dockerfile = render(load(examples / "iris" / "conduit.yaml"), PipSettings()).files["Dockerfile"].decode()
    final_stage = dockerfile.split("\nFROM python:3.11-slim\n", 1)[1]
    order = [final_stage.index(line) for line in (
        "useradd", "COPY --from=builder /opt/venv", "COPY --from=builder /opt/conduit",
        "COPY model/", "COPY code/", "COPY conduit.json",
    )]
    assert order == sorted(order)
    assert "USER 10001" in final_stage and "HEALTHCHECK" in final_stage and "EXPOSE 8000" in final_stage
    assert "org.opencontainers.image.title" in final_stage
    assert "PIP_" not in final_stage  # index settings stay in the builder stage


def test_golden_iris_dockerfile(examples: Path) -> None:
    """The rendered Dockerfile is reviewed in diffs: regenerate on purpose with CONDUIT_REGENERATE=1."""
    dockerfile = render(load(examples / "iris" / "conduit.yaml"), PipSettings()).files["Dockerfile"]
    golden = GOLDEN / "iris.Dockerfile"
    if os.environ.get("CONDUIT_REGENERATE"):
        golden.write_bytes(dockerfile)
    assert dockerfile == golden.read_bytes()


def test_secrets_never_enter_the_context(examples: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    secret_url = "https://user:s3cr3t@pypi.example.com/simple"
    pip = PipSettings(index_url=secret_url, extra_index_urls=("https://extra.example.com/simple",), find_links=wheels, ca_bundle=ca)
    context = render(load(examples / "iris" / "conduit.yaml"), pip)
    extra = "https://extra.example.com/simple"
    assert context.build_args == {"UV_INDEX_URL": secret_url, "UV_EXTRA_INDEX_URL": extra}  # uv installs everything
    assert b"s3cr3t" not in tar_bytes(context)
    assert "s3cr3t" not in str(context.labels())
    assert "build/ca-bundle.crt" in context.files and "build/find-links/demo-1.0-py3-none-any.whl" in context.files
    dockerfile = context.files["Dockerfile"].decode()
    builder, final = dockerfile.split("\nFROM python:3.11-slim\n", 1)
    assert "ARG UV_INDEX_URL" in builder and "ARG UV_EXTRA_INDEX_URL" in builder  # declared as given, never valued
    assert "SSL_CERT_FILE" in builder and "UV_FIND_LINKS" in builder
    assert "build/" not in final and "conduit-build" not in final


def test_pip_settings_from_environment(examples: Path) -> None:
    project = load(examples / "iris" / "conduit.yaml")
    pip = PipSettings.of(project, {"CONDUIT_PIP_INDEX_URL": "https://i.example/simple", "CONDUIT_PIP_EXTRA_INDEX_URL": "https://a/simple https://b/simple"})
    assert pip.index_url == "https://i.example/simple"
    assert pip.extra_index_urls == ("https://a/simple", "https://b/simple")
    assert PipSettings.of(project, {}) == PipSettings()


@pytest.mark.parametrize("gpu", [False, True])
def test_cpu_and_gpu_wheels(tmp_path: Path, gpu: bool) -> None:
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    hardware = "{type: a10g, count: 1}" if gpu else "cpu"
    (tmp_path / "conduit.yaml").write_text(
        f"name: wheels\nhardware: {hardware}\nmodels: [{{type: python, file: 'model.py:Model'}}]\n"
        "requirements: [onnxruntime==1.32.0, torch==2.13.0, xgboost-cpu==3.2.0]\n"
    )
    context = render(load(tmp_path / "conduit.yaml"), PipSettings())
    requirements = context.files["requirements.txt"].decode().splitlines()
    dockerfile = context.files["Dockerfile"].decode()
    if gpu:
        assert "onnxruntime-gpu==1.32.0" in requirements and "xgboost==3.2.0" in requirements
        assert "download.pytorch.org/whl/cu" in dockerfile
        assert 'NVIDIA_VISIBLE_DEVICES="all"' in dockerfile and "NVIDIA_DRIVER_CAPABILITIES" in dockerfile
    else:
        assert "onnxruntime==1.32.0" in requirements and "xgboost-cpu==3.2.0" in requirements
        assert "download.pytorch.org/whl/cpu" in dockerfile
        assert "NVIDIA" not in dockerfile


def test_render_command_prints_hash_and_writes_dir(examples: Path, tmp_path: Path) -> None:
    result = conduit("render", "-f", str(examples / "iris" / "conduit.yaml"), "-o", str(tmp_path / "ctx"))
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert (tmp_path / "ctx" / "Dockerfile").is_file()
    again = conduit("render", "-f", str(examples / "iris" / "conduit.yaml"))
    assert again.stdout.strip() == digest


def test_a_project_template_overrides_blocks(examples: Path, tmp_path: Path) -> None:
    config = copy_project(examples / "iris", tmp_path / "own")
    (tmp_path / "own" / "Dockerfile.j2").write_text(
        '{% extends "conduit/Dockerfile.j2" %}\n'
        "{% block code %}{{ super() }}\nRUN echo custom > /app/custom.txt\n{%- endblock code %}\n"
    )
    config.write_text(config.read_text().replace("image:\n", "image:\n  dockerfile: Dockerfile.j2\n"))
    dockerfile = render(load(config), PipSettings()).files["Dockerfile"].decode()
    assert "COPY code/ /app/\nRUN echo custom > /app/custom.txt\nCOPY conduit.json" in dockerfile
    (tmp_path / "own" / "Dockerfile.j2").write_text('{% extends "conduit/Dockerfile.j2" %}{% block code %}{{ oops.x }}{% endblock %}')
    result = conduit("render", "-f", str(config))
    assert result.returncode == 1 and "Dockerfile.j2:1: template error" in result.stderr and "Traceback" not in result.stderr


# -- which project files go in (the way Docker and Cog users expect) ----------------------


def a_project(root: Path) -> Path:
    """A python model that reads a data file, with everything a real project folder collects."""
    files = {
        "conduit.yaml": "name: selected\nmodels: [{type: python, file: 'model.py:Model'}]\n"
                        "requirements_file: requirements.txt\n",
        "model.py": "class Model:\n    def predict(self, data):\n        return data\n",
        "labels.json": '["cat", "dog"]\n',
        "data/vocab.txt": "a\nb\n",
        "requirements.txt": "--extra-index-url https://user:t0ken@example.com/simple\n",
        "notes.md": "ignored by the user's .dockerignore\n",
        "scratch/big.bin": "ignored by .conduitignore\n",
        ".dockerignore": "# comments and blank lines are fine\n\n*.md\n",
        ".conduitignore": "scratch/\n",
        ".env": "API_TOKEN=t0ken\n",
        ".git/config": "[core]\n",
        ".venv/pyvenv.cfg": "home = /usr\n",
        "myenv/pyvenv.cfg": "home = /usr\n",
        "myenv/lib/site.py": "",
        "__pycache__/model.cpython-311.pyc": "",
        "deploy/deployment.yaml": "kind: Deployment\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "conduit.yaml"


def test_the_whole_project_minus_ignored_and_generated_files(tmp_path: Path) -> None:
    context = render(load(a_project(tmp_path / "p")), PipSettings())
    code = sorted(path.removeprefix("code/") for path in context.files if path.startswith("code/"))
    assert code == ["data/vocab.txt", "labels.json", "model.py"]
    assert b"t0ken" not in tar_bytes(context).replace(context.files["requirements.txt"], b"")  # builder stage only


def test_a_negated_pattern_brings_a_default_back(tmp_path: Path) -> None:
    config = a_project(tmp_path / "p")
    (tmp_path / "p" / ".env.example").write_text("API_TOKEN=\n")
    (tmp_path / "p" / ".conduitignore").write_text("scratch/\n!.env.example\n")
    files = render(load(config), PipSettings()).files
    assert "code/.env.example" in files and "code/.env" not in files


def test_render_twice_into_the_project_gives_the_same_hash(tmp_path: Path) -> None:
    config = a_project(tmp_path / "p")
    first = conduit("render", "-f", str(config), "-o", str(tmp_path / "p" / "ctx"))
    assert first.returncode == 0, first.stderr
    second = conduit("render", "-f", str(config), "-o", str(tmp_path / "p" / "ctx"))
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    assert (tmp_path / "p" / "ctx" / "code" / "labels.json").is_file()
    assert not (tmp_path / "p" / "ctx" / "code" / "ctx").exists()


def test_render_never_replaces_a_folder_it_did_not_write(tmp_path: Path) -> None:
    config = a_project(tmp_path / "p")
    result = conduit("render", "-f", str(config), "-o", str(tmp_path / "p"))
    assert result.returncode == 2 and "not a folder `conduit render -o` wrote" in result.stderr
    assert (tmp_path / "p" / "model.py").is_file()


def test_the_config_label_is_an_allow_list(tmp_path: Path) -> None:
    config = a_project(tmp_path / "p")
    config.write_text(config.read_text() + "requirements: ['pkg @ https://user:t0ken1@example.com/pkg.whl']\n"
                      "image:\n  index_url: https://user:t0ken2@example.com/simple\n"
                      "  extra_index_urls: [https://user:t0ken3@example.com/simple]\n"
                      "deploy: {docker: {host: 'ssh://user:t0ken4@example.com'}}\n")
    label = render(load(config), PipSettings.of(load(config), {})).labels()["conduit.config"]
    assert "t0ken" not in label
    assert yaml.safe_load(label)["name"] == "selected" and yaml.safe_load(label)["image"]["base"] == "python:3.11-slim"


@pytest.mark.parametrize(("extra", "base"), [
    ("", "python:3.11-slim"),
    ('python: "3.12"\n', "python:3.12-slim"),
    ('python: "3.12"\nimage: {base: "registry.example.com/py:3.12"}\n', "registry.example.com/py:3.12"),
])
def test_python_picks_the_base_image(tmp_path: Path, extra: str, base: str) -> None:
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (tmp_path / "conduit.yaml").write_text("name: py\nmodels: [{type: python, file: 'model.py:Model'}]\n" + extra)
    dockerfile = render(load(tmp_path / "conduit.yaml"), PipSettings()).files["Dockerfile"].decode()
    assert dockerfile.count(f"FROM {base}") == 2  # builder and runtime stage
