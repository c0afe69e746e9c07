"""Where the templates live and how they render: StrictUndefined, no logic."""

from __future__ import annotations

from pathlib import Path

import jinja2

from .errors import ConduitError

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


def render(template: str, project_dir: Path | None = None, **context: object) -> str:
    """Render a template of ours, or the project's own file, which may
    `{% extends "conduit/Dockerfile.j2" %}` and override its blocks."""
    if project_dir is None:
        return environment.get_template(template).render(**context)
    loader = jinja2.ChoiceLoader([
        jinja2.PrefixLoader({"conduit": environment.loader}),  # type: ignore[dict-item]
        jinja2.FileSystemLoader(str(project_dir)),
    ])
    try:
        return environment.overlay(loader=loader).get_template(template).render(**context)
    except jinja2.TemplateError as exc:
        where = f"{getattr(exc, 'filename', None) or template}:{getattr(exc, 'lineno', None) or 1}"
        raise ConduitError(f"{where}: template error: {exc}", 'extend "conduit/Dockerfile.j2" and override its blocks') from None
