"""`conduit test`: bring a server up (a container of the image by default, `conduit serve`
with local=True, or take the one at a URL), run the contract suite against it, and stop
it again; the Report says whether it passed."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

from ..config import Project
from ..errors import ContractError, UsageError
from .report import Report, startup_failure
from .servers import local_server, running_at, running_container
from .suite import run_contract


def contract_test(project: Project, *, image: str | None = None, url: str | None = None, local: bool = False,
                  junit: str | Path | None = None, ready_timeout_s: float = 120, repeat: int = 20,
                  say: Callable[[str], None] = lambda text: None) -> Report:
    """Test one target: `url`, `local`, `image`, or by default the image of the current context."""
    if sum(bool(x) for x in (image, url, local)) > 1:
        raise UsageError("test one target: give at most one of image, url and local")
    if repeat < 0:
        raise UsageError("--repeat must be 0 or more")
    key = api_key(project, generate=not url, say=say)
    server: Callable[[], AbstractContextManager[str]]
    if url:
        label = url
        server = partial(running_at, url, ready_timeout_s)
    elif local:
        label = "conduit serve (local)"
        server = partial(local_server, project, key, ready_timeout_s)
    else:
        if not image:  # `conduit build && conduit test`: the image of the current context
            from ..image.build import default_tag

            image = default_tag(project)
        label = f"image {image}"
        server = partial(running_container, image, project, key, ready_timeout_s)
    if not url:
        say(f"starting {label} for {project.name} …")
    report = against(project, server, label, key, repeat)
    if junit:
        report.to_junit(junit)
    return report


def against(project: Project, server: Callable[[], AbstractContextManager[str]], label: str, key: str | None,
            repeat: int) -> Report:
    try:
        with server() as base_url:
            return run_contract(project, base_url, key, repeat=repeat)
    except ContractError as never_ready:
        return startup_failure(project.name, label, never_ready.message)


def api_key(project: Project, generate: bool, say: Callable[[str], None]) -> str | None:
    """The key from server.api_key_env; a random one when we start the server ourselves."""
    name = project.config.server.api_key_env
    key = os.environ.get(name) or None
    if key is None and generate:
        say(f"{name} is not set: using a random API key for this test run")
        key = secrets.token_urlsafe(24)
    return key


