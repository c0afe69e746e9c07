"""Where pip and uv look in the builder stage (and `conduit lock`): conduit.yaml `image:` or CONDUIT_* variables.
These may carry credentials, so they reach the build as build arguments, never a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config import Project


@dataclass(frozen=True)
class PipSettings:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: Path | None = None
    ca_bundle: Path | None = None

    @classmethod
    def of(cls, project: Project, environ: dict[str, str] | None = None) -> PipSettings:
        env = os.environ if environ is None else environ
        image = project.config.image
        extra = env.get("CONDUIT_PIP_EXTRA_INDEX_URL", "").split() or image.extra_index_urls
        links = env.get("CONDUIT_PIP_FIND_LINKS") or image.find_links
        bundle = env.get("CONDUIT_CA_BUNDLE") or image.ca_bundle
        return cls(
            index_url=env.get("CONDUIT_PIP_INDEX_URL") or image.index_url,
            extra_index_urls=tuple(extra),
            find_links=(project.root / links) if links else None,
            ca_bundle=(project.root / bundle) if bundle else None,
        )

    def build_args(self) -> dict[str, str]:
        """Passed to the builder stage as ARGs, which the runtime stage never declares (uv reads them)."""
        args = {}
        if self.index_url:
            args["UV_INDEX_URL"] = self.index_url
        if self.extra_index_urls:
            args["UV_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        return args
