"""`pip install .` makes a real wheel: both packages, the templates and the runtime's lock."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_wheel_carries_templates_and_runtime(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(tmp_path.glob("conduit_build-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"conduit/__init__.py", "conduit_build/cli/__init__.py", "conduit_runtime/http/app.py", "conduit_runtime/requirements.txt"} <= names
    assert {"conduit_build/templates/Dockerfile.j2", "conduit_build/templates/init/conduit.yaml.j2",
            "conduit_build/templates/init/train/sklearn.py"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "conduit = conduit_build.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_runtime_imports_nothing_from_the_build_side() -> None:
    """The runtime goes into images alone: no conduit_build, docker, jinja2, pydantic or yaml."""
    code = (
        "import sys, conduit_runtime.http.app, conduit_runtime.process.server\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('conduit_build', 'docker', 'jinja2', 'pydantic', 'yaml')]\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_optional_dependencies_are_imported_only_where_used(tmp_path: Path) -> None:
    """A server without a webhook secret, a Redis store or a V2 request imports neither the webhook
    client (httpcore, standardwebhooks), nor redis, nor numpy; with a secret, the webhook client comes in."""
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    code = (
        "import sys, pathlib\n"
        "from conduit_runtime.jobs.predictions import Predictions\n"
        "from conduit_runtime.process.server import draining_server\n"
        "from conduit_runtime.spec import ServerSpec\n"
        "raw = {'name': 'm', 'stages': [{'type': 'python', 'file': 'model.py:Model'}], 'server': {}}\n"
        "draining_server(ServerSpec.from_dict(raw, pathlib.Path(sys.argv[1])), '127.0.0.1', 0, False)\n"
        "print(sorted(m for m in ('httpcore', 'httpx', 'standardwebhooks', 'redis', 'numpy') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CONDUIT_WEBHOOK_SECRET"}
    plain = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                           cwd=ROOT, env=env)
    assert plain.stdout.strip() == "[]", plain.stdout + plain.stderr
    secret = {**env, "CONDUIT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"0" * 24).decode()}
    signed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                            cwd=ROOT, env=secret)
    assert signed.stdout.strip() == "['httpcore', 'standardwebhooks']", signed.stdout + signed.stderr
