"""CONDUIT_WEIGHTS: `<registry>/<repository>@sha256:<hex>`, a weights artifact pinned by digest."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from . import WEIGHTS_ENV, WeightsError

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")  # plain http, as Docker does
PLAIN_HTTP_ENV = "CONDUIT_REGISTRY_PLAIN_HTTP"


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port], as written
    repository: str
    digest: str  # sha256:<hex>

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    @property
    def base_url(self) -> str:
        """The registry's API root: http for a loopback host or CONDUIT_REGISTRY_PLAIN_HTTP=1, else https."""
        host = self.registry.rpartition(":")[0] if not self.registry.endswith("]") and ":" in self.registry \
            else self.registry
        plain = host in LOOPBACK or os.environ.get(PLAIN_HTTP_ENV, "") == "1"
        server = "registry-1.docker.io" if self.registry == "docker.io" else self.registry
        return f"{'http' if plain else 'https'}://{server}/v2/{self.repository}"


def parse_reference(text: str) -> Reference:
    name, at, digest = text.strip().partition("@")
    registry, slash, repository = name.partition("/")
    repository = re.sub(r":[\w][\w.-]*$", "", repository)  # a tag beside the digest says nothing more
    if registry == "docker.io" and "/" not in repository:
        repository = f"library/{repository}"
    if not (at and DIGEST.fullmatch(digest) and slash and REPOSITORY.fullmatch(repository) and registry):
        raise WeightsError(f"{WEIGHTS_ENV}={text!r} is not <registry>/<repository>@sha256:<64 hex digits>",
                           artifact=text)
    return Reference(registry, repository, digest)
