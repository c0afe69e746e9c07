"""Pushing the weights artifact (weights.py) through the OCI distribution API, with httpx.

    HEAD /v2/<name>/blobs/<digest>              the registry has it: nothing sent
    POST /v2/<name>/blobs/uploads/  → Location  then PUT <Location>&digest=… with the blob, streamed
    PUT  /v2/<name>/manifests/<tag>             our manifest bytes, as they are (their sha256 is the digest)

Why not oras-py (the `oras` package): its `put_upload` reads a whole blob into memory (a 2 GB
file must never be), and `upload_manifest` sends `json=manifest`, re-serialized by requests, so
the pushed manifest would not have our bytes and the digest CONDUIT_WEIGHTS pins would not exist.

Registries the way Docker reaches them: http for 127.0.0.1, localhost and [::1], https
otherwise (CONDUIT_REGISTRY_PLAIN_HTTP=1 forces http); credentials CONDUIT_REGISTRY_USERNAME /
CONDUIT_REGISTRY_PASSWORD, sent as basic auth or traded for a token when the registry answers
`WWW-Authenticate: Bearer realm=…,service=…,scope=…`. Credentials never appear in an error.
Every httpx error becomes a RegistryError here (`registry_errors`), one line.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..errors import RegistryError
from .weights import CHUNK, MANIFEST_TYPE, Blob, WeightsArtifact, blob_path

DOCKER_HUB = "registry-1.docker.io"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
MANIFEST_ACCEPT = f"{MANIFEST_TYPE}, application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class Repository:
    registry: str  # host[:port], as the reference names it (docker.io for none)
    name: str  # the path inside the registry

    @classmethod
    def parse(cls, repository: str) -> Repository:
        first, _, rest = repository.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            return cls(first, rest)
        return cls("docker.io", repository if "/" in repository else f"library/{repository}")

    def base_url(self, environ: Mapping[str, str]) -> str:
        host = DOCKER_HUB if self.registry == "docker.io" else self.registry
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        plain = environ.get("CONDUIT_REGISTRY_PLAIN_HTTP") == "1" or bare in LOOPBACK
        return f"{'http' if plain else 'https'}://{host}/v2/{self.name}"


@dataclass(frozen=True)
class PushedWeights:
    reference: str  # <weights repository>:<digest hex[:12]>
    digest: str  # sha256:… of the manifest
    pinned: str  # <weights repository>@sha256:…, what CONDUIT_WEIGHTS names
    bytes: int  # the whole artifact
    bytes_sent: int  # blob bytes uploaded: layers and config the registry lacked (the manifest always goes up)
    layers_sent: int
    layers_skipped: int  # the registry had them: nothing sent


@contextlib.contextmanager
def registry_errors(action: str) -> Iterator[None]:
    """httpx's errors, as one line naming what failed (never a credential: httpx's messages
    hold the URL, which has none)."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise RegistryError(f"{action}: {exc.__class__.__name__}: {exc}",
                            "is the registry running and reachable? CONDUIT_REGISTRY_PLAIN_HTTP=1 forces http") from None


class Client:
    """One repository of one registry, authenticated on the first 401."""

    def __init__(self, repository: Repository, environ: Mapping[str, str], transport: httpx.BaseTransport | None = None):
        self.repository = repository
        self.base = repository.base_url(environ)
        self.username = environ.get("CONDUIT_REGISTRY_USERNAME") or ""
        self.password = environ.get("CONDUIT_REGISTRY_PASSWORD") or ""
        self.authorization: str | None = None
        self.http = httpx.Client(timeout=httpx.Timeout(60, read=600), transport=transport, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests, authenticated -----------------------------------------------------------

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                body: Callable[[], Iterable[bytes] | bytes] | None = None,
                follow: bool = False) -> httpx.Response:
        """Send; on 401, authenticate as the challenge asks and send once more (a streamed
        body is made afresh by `body`)."""
        for attempt in (1, 2):
            sent = {**(headers or {}), **({"Authorization": self.authorization} if self.authorization else {})}
            response = self.http.request(method, url, headers=sent, content=body() if body else None,
                                         follow_redirects=follow)
            if response.status_code != 401 or attempt == 2:
                return response
            response.read()
            self.authenticate(response.headers.get("WWW-Authenticate", ""))
        raise AssertionError("unreachable")  # pragma: no cover

    def authenticate(self, challenge: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        if not self.username and scheme.lower() == "basic":
            raise RegistryError(f"{self.repository.registry} asks for credentials",
                                "set CONDUIT_REGISTRY_USERNAME and CONDUIT_REGISTRY_PASSWORD")
        if scheme.lower() == "basic":
            pair = f"{self.username}:{self.password}".encode()
            self.authorization = f"Basic {base64.b64encode(pair).decode()}"
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"{self.repository.registry} asks for {scheme or 'an unknown'} authentication",
                                "only basic and bearer tokens are spoken here")
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        realm = params.pop("realm", "")
        if not realm:
            raise RegistryError(f"{self.repository.registry}: a bearer challenge without a realm")
        query = {"service": params.get("service", "")} if params.get("service") else {}
        query["scope"] = f"repository:{self.repository.name}:pull,push"
        auth = httpx.BasicAuth(self.username, self.password) if self.username else None
        response = self.http.get(realm, params=query, auth=auth, follow_redirects=True)
        if response.status_code in (401, 403):
            raise RegistryError(f"{self.repository.registry} refused the credentials ({response.status_code})",
                                "check CONDUIT_REGISTRY_USERNAME and CONDUIT_REGISTRY_PASSWORD")
        if response.status_code != 200:
            raise RegistryError(f"{self.repository.registry}: the token service answered {response.status_code}")
        token = response.json().get("token") or response.json().get("access_token")
        if not token:
            raise RegistryError(f"{self.repository.registry}: the token service gave no token")
        self.authorization = f"Bearer {token}"

    def check(self, response: httpx.Response, action: str, *ok: int) -> httpx.Response:
        if response.status_code in ok:
            return response
        response.read()
        if response.status_code in (401, 403):
            raise RegistryError(f"{action}: {self.repository.registry} said {response.status_code}",
                                "set CONDUIT_REGISTRY_USERNAME and CONDUIT_REGISTRY_PASSWORD (or check them)")
        detail = registry_message(response)
        raise RegistryError(f"{action}: {self.repository.registry} said {response.status_code}{detail}")

    # -- the distribution API --------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        response = self.request("HEAD", f"{self.base}/blobs/{digest}", follow=True)
        if response.status_code == 404:
            return False
        self.check(response, f"look for blob {digest[:19]}…", 200)
        return True

    def upload_blob(self, path: Path, blob: Blob) -> None:
        """POST a session, then PUT the whole blob into it, streamed from the file."""
        action = f"upload {blob.path or 'config'} ({blob.digest[:19]}…)"
        started = self.check(self.request("POST", f"{self.base}/blobs/uploads/"), action, 202)
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"{action}: the registry gave no upload location")
        url = str(httpx.URL(self.base).join(location))
        url += ("&" if "?" in url else "?") + f"digest={blob.digest}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        self.check(self.request("PUT", url, headers, body=lambda: read_chunks(path)), action, 201)

    def put_manifest(self, tag: str, manifest: bytes, digest: str) -> None:
        action = f"put the manifest {self.repository.name}:{tag}"
        response = self.check(self.request("PUT", f"{self.base}/manifests/{tag}", {"Content-Type": MANIFEST_TYPE},
                                           body=lambda: manifest), action, 201)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RegistryError(f"{action}: the registry stored it as {answered}, not {digest}")

    def get_manifest(self, reference: str) -> bytes:
        response = self.request("GET", f"{self.base}/manifests/{reference}", {"Accept": MANIFEST_ACCEPT}, follow=True)
        return self.check(response, f"get the manifest {self.repository.name}@{reference}", 200).content


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


def registry_message(response: httpx.Response) -> str:
    """The first error of a distribution error body ({"errors": [{code, message}]}), if any."""
    try:
        first = response.json()["errors"][0]
        return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def push_weights(artifact: WeightsArtifact, environ: Mapping[str, str], root: Path | None = None,
                 transport: httpx.BaseTransport | None = None) -> PushedWeights:
    """Push `artifact` from the store to its repository: each blob the registry lacks, then
    the manifest under the tag <digest hex[:12]>."""
    repository = Repository.parse(artifact.repository)
    sent = sent_layers = skipped = 0
    with registry_errors(f"push weights to {artifact.repository}"), Client(repository, environ, transport) as client:
        for blob in artifact.blobs():
            if client.has_blob(blob.digest):
                skipped += blob in artifact.layers
                continue
            client.upload_blob(blob_path(blob.digest, root), blob)
            sent += blob.size
            sent_layers += blob in artifact.layers
        manifest = blob_path(artifact.digest, root).read_bytes()
        client.put_manifest(artifact.tag, manifest, artifact.digest)
    return PushedWeights(artifact.reference, artifact.digest, artifact.pinned, artifact.bytes, sent, sent_layers, skipped)
