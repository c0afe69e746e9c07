"""Where the templates live and how they render: StrictUndefined, no logic."""

from __future__ import annotations

from pathlib import Path

import jinja2

# In a source checkout `templates/` sits beside the package; in a wheel it is
# installed as conduit_build/templates (see pyproject.toml).
_HERE = Path(__file__).resolve().parent
TEMPLATES = next(p for p in (_HERE / "templates", _HERE.parent / "templates") if p.is_dir())

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(template: str, **context: object) -> str:
    return environment.get_template(template).render(**context)
