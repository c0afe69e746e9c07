"""conduit.lock's format: header, digests, staleness; and how the build context uses a lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import conduit

from conduit_build.config import load
from conduit_build.errors import ConduitError
from conduit_build.image.context import INSTALLED_LABEL, render
from conduit_build.image.lockfile import LockFile, lock_inputs, staleness
from conduit_build.image.pip import PipSettings

A, B, C = ("a" * 64, "b" * 64, "c" * 64)
BODY = f"""\
numpy==2.4.6 \\
    --hash=sha256:{A} \\
    --hash=sha256:{B}
    # via scikit-learn
Scikit_Learn==1.9.1 \\
    --hash=sha256:{C}
    # via -r requirements.txt
"""


def project(tmp_path: Path, python: str = "3.11", hardware: str = "cpu", requirements: str = "[scikit-learn==1.9.1]",
            image: str = "{}") -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (tmp_path / "conduit.yaml").write_text(
        f'name: locked\npython: "{python}"\nhardware: {hardware}\nmodels: [{{type: python, file: "model.py:Model"}}]\n'
        f"requirements: {requirements}\nimage: {image}\n")
    return tmp_path / "conduit.yaml"


def lock_for(config: Path, body: str = BODY, environ: dict[str, str] | None = None) -> LockFile:
    loaded = load(config)
    return LockFile.of(lock_inputs(loaded, PipSettings.of(loaded, environ or {})), body)


def test_header_records_the_target_and_reads_back(tmp_path: Path) -> None:
    lock = lock_for(project(tmp_path))
    text = lock.text()
    assert "# target-python: 3.11\n" in text and "# target-hardware: cpu\n" in text
    assert "# target-platform: x86_64-manylinux_2_36\n" in text and "# inputs-digest: sha256:" in text
    again = LockFile.parse(text)
    assert again == lock
    assert [(p.name, p.version, p.hashes) for p in again.pins()] == [
        ("numpy", "2.4.6", (f"sha256:{A}", f"sha256:{B}")), ("scikit-learn", "1.9.1", (f"sha256:{C}",))]


def test_installed_digest_ignores_order_and_comments(tmp_path: Path) -> None:
    config = project(tmp_path)
    reordered = f"scikit-learn==1.9.1 --hash=sha256:{C}\nnumpy==2.4.6 \\\n    --hash=sha256:{B} \\\n    --hash=sha256:{A}\n"
    assert lock_for(config).installed_digest() == lock_for(config, reordered).installed_digest()
    other = BODY.replace(f"sha256:{C}", f"sha256:{A}")
    assert lock_for(config).installed_digest() != lock_for(config, other).installed_digest()


def test_a_lock_without_header_or_hashes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConduitError, match="not a lock written by `conduit lock`"):
        LockFile.parse(BODY)
    unhashed = lock_for(project(tmp_path)).text().replace(f"numpy==2.4.6 \\\n    --hash=sha256:{A} \\\n    --hash=sha256:{B}\n",
                                                           "numpy==2.4.6\n")
    with pytest.raises(ConduitError, match="numpy without --hash"):
        LockFile.parse(unhashed)


@pytest.mark.parametrize(("change", "reason"), [
    ({"python": "3.12"}, "python is 3.12 in conduit.yaml, the lock is for 3.11"),
    ({"hardware": "gpu"}, "hardware is gpu in conduit.yaml, the lock is for cpu"),
    ({"requirements": "[scikit-learn==1.9.1, pillow]"}, "the requirements changed since the lock was written"),
    ({"image": "{index_url: 'https://mirror.example/simple'}"}, "the package indexes or find-links changed"),
])
def test_staleness_names_what_changed(tmp_path: Path, change: dict[str, str], reason: str) -> None:
    lock = lock_for(project(tmp_path / "before"))
    changed = load(project(tmp_path / "after", **change))
    reasons = staleness(lock, lock_inputs(changed, PipSettings.of(changed, {})))
    assert len(reasons) == 1 and reasons[0].startswith(reason), reasons


def test_a_current_lock_is_not_stale_and_comments_do_not_count(tmp_path: Path) -> None:
    config = project(tmp_path, requirements="[scikit-learn==1.9.1]")
    lock = lock_for(config)
    assert staleness(lock, lock_inputs(load(config), PipSettings())) == []
    commented = load(project(tmp_path, requirements="[' scikit-learn==1.9.1 ']"))
    assert staleness(lock, lock_inputs(commented, PipSettings())) == []


def test_index_credentials_never_reach_the_lock_or_change_it(tmp_path: Path) -> None:
    config = project(tmp_path)
    with_token = lock_for(config, environ={"CONDUIT_PIP_INDEX_URL": "https://user:s3cr3t@pypi.example/simple"})
    other_token = lock_for(config, environ={"CONDUIT_PIP_INDEX_URL": "https://user:other@pypi.example/simple"})
    assert "s3cr3t" not in with_token.text()
    assert with_token.fields == other_token.fields  # the same index, whoever logs in
    assert with_token.fields != lock_for(config).fields  # another index than PyPI's


def test_the_context_installs_the_lock_as_is(tmp_path: Path) -> None:
    config = project(tmp_path)
    lock = lock_for(config)
    (tmp_path / "conduit.lock").write_text(lock.text())
    context = render(load(config), PipSettings())
    assert context.files["conduit.lock"] == lock.text().encode()
    assert "requirements.txt" not in context.files and "code/conduit.lock" not in context.files
    assert context.labels()[INSTALLED_LABEL] == lock.installed_digest()
    builder = context.files["Dockerfile"].decode().split("\nFROM ", 2)[1]
    assert "uv pip sync --require-hashes /opt/venv/conduit.lock" in builder and "pip compile" not in builder
    edited = lock.text().replace("1.9.1", "1.9.0")
    (tmp_path / "conduit.lock").write_text(edited)
    assert render(load(config), PipSettings()).hash != context.hash  # the lock is part of the context hash


def test_a_lock_without_index_settings_installs_in_one_stage_leaving_no_tools(tmp_path: Path) -> None:
    """One stage (no venv copied between stages): uv and the caches exist during one RUN only."""
    config = project(tmp_path)
    (tmp_path / "conduit.lock").write_text(lock_for(config).text())
    dockerfile = render(load(config), PipSettings()).files["Dockerfile"].decode()
    assert dockerfile.count("\nFROM ") == 1 and "AS builder" not in dockerfile and "--from=" not in dockerfile
    install = next(line for line in dockerfile.split("\nRUN ") if "uv pip sync" in line)
    assert "install --quiet --require-hashes" in install and "rm -rf /tmp/uv /root/.cache" in install
    assert install.index("uv pip sync") < install.index("rm -rf /tmp/uv") < install.index("compileall")
    assert "ARG " not in dockerfile and "ENV UV_" not in dockerfile


def test_index_settings_keep_the_builder_stage_and_uv_in_it(tmp_path: Path) -> None:
    """With an index URL (maybe with a token) the build arguments reach only the builder stage,
    whose history the image never carries; uv comes from the engine's helper image."""
    config = project(tmp_path)
    (tmp_path / "conduit.lock").write_text(lock_for(config).text())
    pip = PipSettings(index_url="https://user:s3cr3t@pypi.example.com/simple")
    context = render(load(config), pip)
    builder, final = context.files["Dockerfile"].decode().split("\nFROM python:3.11-slim\n", 1)
    assert "ARG UV_INDEX_URL" in builder and "ARG UV_EXTRA_INDEX_URL" not in builder
    assert "COPY --from=uv /uv" in builder and "uv" not in final.replace("uvicorn", "")
    assert "ARG" not in final and "COPY --from=builder /opt/venv /opt/venv" in final
    assert "s3cr3t" not in context.files["Dockerfile"].decode()


def test_without_a_lock_the_builder_resolves_and_keeps_what_it_got(tmp_path: Path) -> None:
    config = project(tmp_path)
    context = render(load(config), PipSettings())
    assert INSTALLED_LABEL not in context.labels()  # known only after the build
    assert context.files["lock-header.txt"] == lock_inputs(load(config), PipSettings()).header().encode()
    builder = context.files["Dockerfile"].decode().split("\nFROM ", 3)[2]  # after the uv stage
    assert "uv pip compile --quiet --generate-hashes" in builder and "> /opt/venv/conduit.lock" in builder


def test_validate_warns_about_a_stale_lock_with_the_fix(tmp_path: Path) -> None:
    config = project(tmp_path)
    (tmp_path / "conduit.lock").write_text(lock_for(config).text())
    fresh = conduit("validate", "-f", str(config))
    assert fresh.returncode == 0 and "stale" not in fresh.stderr
    project(tmp_path, python="3.12")
    stale = conduit("validate", "-f", str(config))
    assert stale.returncode == 0, stale.stderr
    assert stale.stderr.strip() == ("warning: conduit.lock is stale: python is 3.12 in conduit.yaml, the lock is for "
                                    "3.11 (run `conduit lock` and commit it)")


def test_build_locked_refuses_a_missing_or_stale_lock_before_any_engine(tmp_path: Path) -> None:
    config = project(tmp_path)
    missing = conduit("build", "--locked", "-f", str(config), env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: --locked: there is no ") and "run `conduit lock`" in missing.stderr
    (tmp_path / "conduit.lock").write_text(lock_for(config).text())
    project(tmp_path, hardware="gpu")
    stale = conduit("build", "--locked", "-f", str(config), env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert stale.returncode == 2
    assert stale.stderr.splitlines() == [
        f"error: --locked: {tmp_path / 'conduit.lock'} is stale: hardware is gpu in conduit.yaml, the lock is for cpu "
        "(run `conduit lock` and commit conduit.lock)"]
