"""`pip install .` makes a real wheel: both packages, the templates and the runtime's lock."""

from __future__ import annotations

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
