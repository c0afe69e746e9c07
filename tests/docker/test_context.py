"""What goes into an image: the project as Docker users expect it (a python model that
reads a data file answers in the image), no credential anywhere in it, and a build
context that never sits in the build tool's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, build, conduit

pytestmark = pytest.mark.docker

READS_A_DATA_FILE = """import json
from pathlib import Path


class Model:
    def load(self, project_dir):
        self.labels = json.loads((Path(project_dir) / "data" / "labels.json").read_text())

    def predict(self, data):
        return [self.labels[int(row)] for row in data]
"""


def write(project: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return project / "conduit.yaml"


def test_a_python_model_that_reads_a_data_file_answers_in_the_image(engine: Any, tmp_path: Path) -> None:
    config = write(tmp_path / "labels", {
        "model.py": READS_A_DATA_FILE,
        "data/labels.json": '["cat", "dog"]\n',
        "conduit.yaml": "name: labels\nmodels: [{type: python, file: 'model.py:Model'}]\n"
                        "tests: [{name: dog, json: [1, 0], expect: {result: [dog, cat]}}]\n",
    })
    built = build(config)
    result = conduit("test", "-f", str(config), "--image", built.tag, "--repeat", "1", env={"CONDUIT_API_KEY": "k"})
    assert result.returncode == 0, result.stdout + result.stderr


# -- no credential in any layer, label, history entry or env ------------------------------------


def credentials() -> dict[str, str]:
    """One distinct credential per place that can carry one."""
    places = ["index-url", "extra-index-urls", "requirement", "requirements-file", "docker-host", "env-index-url",
              "env-extra-index-url", "registry-user", "registry-password", "api-key", "dotenv", "ignored-file"]
    return {place: f"CONDUITCRED{index:02d}x{place.replace('-', '')}" for index, place in enumerate(places)}


def found_in_save(engine: Any, image_id: str, needles: list[str]) -> set[str]:
    """The needles found anywhere in `docker save` of the image (every layer, its config, its history)."""
    found: set[str] = set()
    encoded = [needle.encode() for needle in needles]
    overlap = max(len(n) for n in encoded)
    previous = b""
    for chunk in engine.api.get_image(image_id, chunk_size=1 << 20):
        window = previous + chunk
        found |= {needle.decode() for needle in encoded if needle in window}
        previous = window[-overlap:]
    return found


def test_no_credential_reaches_the_image(engine: Any, tmp_path: Path) -> None:
    cred = credentials()
    never = '; python_version < "3"'  # a requirement pip skips: it is never fetched
    config = write(tmp_path / "secrets", {
        "model.py": READS_A_DATA_FILE,
        "data/labels.json": '["cat", "dog"]\n',
        "requirements.txt": f"--extra-index-url file:///nonexistent/{cred['requirements-file']}/simple\n",
        ".env": f"TOKEN={cred['dotenv']}\n",
        "private/notes.txt": cred["ignored-file"],
        ".dockerignore": "private/\n",
        "conduit.yaml": f"""name: secrets
models: [{{type: python, file: 'model.py:Model'}}]
requirements: ['nothing @ https://user:{cred['requirement']}@example.com/nothing.whl{never}']
requirements_file: requirements.txt
image:
  index_url: https://user:{cred['index-url']}@example.com/simple
  extra_index_urls: [file:///nonexistent/{cred['extra-index-urls']}/simple]
deploy: {{docker: {{host: 'ssh://user:{cred['docker-host']}@example.com'}}}}
tests: [{{name: dog, json: [1], expect: {{result: [dog]}}}}]
""",
    })
    env = {
        # the variables win over the config: this index is the one that must work
        "CONDUIT_PIP_INDEX_URL": f"https://conduit:{cred['env-index-url']}@pypi.org/simple",
        "CONDUIT_PIP_EXTRA_INDEX_URL": f"file:///nonexistent/{cred['env-extra-index-url']}/simple",
        "CONDUIT_REGISTRY_USERNAME": cred["registry-user"],
        "CONDUIT_REGISTRY_PASSWORD": cred["registry-password"],
        "CONDUIT_API_KEY": cred["api-key"],
    }
    built = build(config, env=env)
    image = engine.images.get(built.tag)
    try:
        seen = json.dumps(image.attrs) + json.dumps(engine.api.history(image.id))
        assert [place for place, value in cred.items() if value in seen] == []
        assert found_in_save(engine, image.id, list(cred.values())) == set()
        assert "name: secrets" in image.labels["conduit.config"]  # the label is there, without them
        listing = engine.containers.run(built.tag, ["sh", "-c", "ls -A /app"], remove=True).decode().split()
        assert sorted(listing) == ["conduit.json", "data", "model.py"]
    finally:
        engine.images.remove(image.id, force=True)


# -- the context is spooled to a file, not built in memory --------------------------------------


def peak_rss_mb(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `conduit …` in a child of a fresh interpreter, which reports that child's peak RSS alone."""
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stderr.write(r.stderr); sys.stdout.write(r.stdout); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "conduit_build", *args],
                            capture_output=True, text=True, timeout=1800, check=False, cwd=ROOT, env=os.environ)
    return int(result.stderr.strip().splitlines()[-1]) / 1024, result


def test_a_big_model_builds_in_little_memory(engine: Any, tmp_path: Path) -> None:
    """A 600 MB file in the project (bench/build.py --big-model measures 2 GB): the tool stays under 300 MB."""
    config = write(tmp_path / "big", {
        "model.py": "class Model:\n    def predict(self, data):\n        return data\n",
        "conduit.yaml": "name: big\nmodels: [{type: python, file: 'model.py:Model'}]\n",
    })
    with (tmp_path / "big" / "weights.bin").open("wb") as handle:
        for _ in range(600):
            handle.write(os.urandom(1 << 20))
    rss_mb, result = peak_rss_mb("build", "-f", str(config), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    image = engine.images.get(json.loads(result.stdout)["tag"])
    try:
        assert image.attrs["Size"] > 600 * (1 << 20)  # the file is in the image
        assert rss_mb < 300, f"peak RSS {rss_mb:.0f} MB"
    finally:
        engine.images.remove(image.id, force=True)
