"""scripts/engine takes debootstrap's Debian mirror from the machine's own apt sources."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT


def mirror(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`scripts/engine --mirror` with apt pointed at these sources only (through APT_CONFIG)."""
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    for name, text in files.items():
        (tmp_path / name if name == "sources.list" else parts / name).write_text(text)
    (tmp_path / "apt.conf").write_text(f'Dir::Etc::sourcelist "{tmp_path}/sources.list";\n'
                                       f'Dir::Etc::sourceparts "{parts}";\n')
    return subprocess.run([str(ROOT / "scripts" / "engine"), "--mirror"], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "APT_CONFIG": str(tmp_path / "apt.conf")})


@pytest.mark.parametrize(("files", "expected"), [
    ({"debian.sources": "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
                        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
                        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main"},
     "http://mirror.example/debian"),
    ({"sources.list": "# a comment\ndeb-src http://src.example/debian trixie main\n"
                      "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian trixie main\n",
      "cloud.list": "deb https://packages.example/apt cloud-sdk main\n"},
     "http://list.example/debian"),
    ({"vendor.list": "deb https://packages.example/apt cloud-sdk main\n",
      "z.sources": "Types: deb\nURIs: http://last.example/debian\nSuites: stable\nEnabled: yes\n"},
     "http://last.example/debian"),
])
def test_the_mirror_comes_from_the_apt_sources(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    result = mirror(tmp_path, files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_no_debian_source_is_one_line_exit_1(tmp_path: Path) -> None:
    result = mirror(tmp_path, {"vendor.list": "deb https://packages.example/apt cloud-sdk main\n"})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == "engine: no Debian mirror in the apt sources"


def test_the_script_names_no_mirror_of_its_own() -> None:
    assert "deb.debian.org" not in (ROOT / "scripts" / "engine").read_text()
