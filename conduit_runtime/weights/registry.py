"""The registry client of a pull by digest (the OCI distribution API over httpcore, which the
image has; httpx it has not): the manifest, then blobs, each streamed and hashed as it comes
(`Blob`), redirects followed (a blob may live in object storage; Authorization is not sent to
another origin). No proxy variables are read.

Access: anonymous; or CONDUIT_REGISTRY_USERNAME / CONDUIT_REGISTRY_PASSWORD, sent only when the
registry asks (a 401): as Basic, or to the realm of a `WWW-Authenticate: Bearer realm=…,
service=…,scope=…` challenge for a token. Credentials never reach a message or the log.

Timeouts: 10 s to connect, and CONDUIT_REGISTRY_TIMEOUT_S (default 30 s) for each read and
write: a registry that accepts the connection and never answers ends the pull then, in a
WeightsError, rather than hold the start forever. A slow registry that keeps sending is not cut
off: a big layer may take long.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpcore

from . import WeightsError
from .reference import Reference

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
USERNAME_ENV, PASSWORD_ENV = "CONDUIT_REGISTRY_USERNAME", "CONDUIT_REGISTRY_PASSWORD"
TIMEOUT_ENV = "CONDUIT_REGISTRY_TIMEOUT_S"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
SMALL = 4 * 1024 * 1024  # the most a manifest, a config or a token answer may be
CHUNK = 1024 * 1024


REDIRECTS = 5


def timeouts() -> dict[str, float]:
    read = float(os.environ.get(TIMEOUT_ENV) or READ_TIMEOUT_S)
    return {"connect": min(CONNECT_TIMEOUT_S, read), "read": read, "write": read, "pool": read}


def header(response: httpcore.Response, name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in response.headers if key.lower() == name), "")


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class Registry:
    """One artifact's repository on one registry; a context manager (it holds connections)."""

    def __init__(self, ref: Reference) -> None:
        self.ref = ref
        self.pool = httpcore.ConnectionPool()
        self.timeouts = timeouts()
        self.authorization: str | None = None
        self.credentials = (os.environ.get(USERNAME_ENV, ""), os.environ.get(PASSWORD_ENV, ""))

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.close()

    def manifest(self) -> bytes:
        with self.get(f"manifests/{self.ref.digest}", "the manifest", ", ".join(MANIFEST_TYPES)) as response:
            return read_small(response, "the manifest", self.ref)

    def small_blob(self, digest: str, size: int, what: str) -> bytes:
        if size > SMALL:
            raise WeightsError(f"{what} of {self.ref} is larger than {SMALL} bytes", str(self.ref))
        with self.blob(digest, size, what) as blob:
            data = blob.reader().read()
            blob.finish()
        return data

    @contextlib.contextmanager
    def blob(self, digest: str, size: int, what: str, file: str | None = None) -> Iterator[Blob]:
        """A blob as a file to read, hashed as read; `finish()` checks its digest and size."""
        with self.get(f"blobs/{digest}", what, file=file) as response:
            yield Blob(iter(response.iter_stream()), digest, size, what, self.ref, file)

    @contextlib.contextmanager
    def get(self, path: str, what: str, accept: str | None = None,
            file: str | None = None) -> Iterator[httpcore.Response]:
        """A 200 answer to GET, read as it comes; once more after a 401, with what it asked for."""
        for attempt in range(2):
            headers = {**({"Accept": accept} if accept else {}),
                       **({"Authorization": self.authorization} if self.authorization else {})}
            response = self.send(f"{self.ref.base_url}/{path}", headers, what)
            try:
                if response.status == 401 and attempt == 0:
                    self.authorization = self.authenticate(header(response, b"www-authenticate"), what)
                    continue
                if response.status != 200:
                    raise refusal(self.ref, what, response.status, self.authorization is not None, file)
                yield response
                return
            finally:
                response.close()

    def send(self, url: str, headers: dict[str, str], what: str) -> httpcore.Response:
        """GET, redirects followed (Authorization kept only on the same origin); the answer streams."""
        for _ in range(REDIRECTS + 1):
            sent: dict[str | bytes, str | bytes] = {"Host": urlsplit(url).netloc, "User-Agent": "conduit-runtime"}
            sent.update(headers)
            with translated(self.ref, what):
                response = self.pool.handle_request(httpcore.Request("GET", url, headers=sent,
                                                                     extensions={"timeout": self.timeouts}))
            location = header(response, b"location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                return response
            response.close()
            target = urljoin(url, location)
            if origin(target) != origin(url):
                headers = {name: value for name, value in headers.items() if name != "Authorization"}
            url = target
        raise WeightsError(f"the registry of {self.ref} redirected {what} more than {REDIRECTS} times", str(self.ref))

    def authenticate(self, challenge: str, what: str) -> str:
        """The Authorization a 401's challenge asks for (Basic, or a Bearer token from its realm)."""
        username, password = self.credentials
        basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if username else None
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            if basic is None:
                raise WeightsError(f"the registry of {self.ref} asks for credentials to read {what}: set "
                                   f"{USERNAME_ENV} and {PASSWORD_ENV}", str(self.ref))
            return basic
        if scheme.lower() != "bearer":
            raise WeightsError(f"the registry of {self.ref} refused {what} (401) and asks for no known "
                               "authentication", str(self.ref))
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest)) | dict(re.findall(r'(\w+)=([^",\s]+)', rest))
        realm = params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise WeightsError(f"the registry of {self.ref} names no token realm", str(self.ref))
        query = {"service": params.get("service", ""),
                 "scope": params.get("scope") or f"repository:{self.ref.repository}:pull"}
        url = realm + ("&" if "?" in realm else "?") + urlencode({k: v for k, v in query.items() if v})
        response = self.send(url, {"Authorization": basic} if basic else {}, "a token")
        try:
            if response.status != 200:
                raise refusal(self.ref, "a token", response.status, basic is not None)
            body = read_small(response, "a token", self.ref)
        finally:
            response.close()
        try:
            answer: Any = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise WeightsError(f"the token service of the registry of {self.ref} gave no token", str(self.ref))
        return f"Bearer {token}"


class Blob(io.RawIOBase):
    """A blob as it arrives, as a raw file (`reader()` buffers it), hashed on the way; finish()
    reads what is left (a tar's padding) and checks the size and the digest."""

    def __init__(self, chunks: Iterator[bytes], digest: str, size: int, what: str, ref: Reference,
                 file: str | None = None) -> None:
        self.chunks = chunks
        self.file = file
        self.digest, self.size, self.what, self.ref = digest, size, what, ref
        self.hash = hashlib.sha256()
        self.count = 0
        self.buffer = bytearray()

    def readable(self) -> bool:
        return True

    def pull(self) -> bool:
        """One more chunk off the network into the buffer; False at the end."""
        with translated(self.ref, self.what):
            chunk = next(self.chunks, None)
        if chunk is None:
            return False
        self.count += len(chunk)
        if self.count > self.size:
            raise WeightsError(f"{self.what} of {self.ref} is larger than its manifest says ({self.size} bytes)",
                               str(self.ref), self.file)
        self.hash.update(chunk)
        self.buffer += chunk
        return True

    def readinto(self, target: Any) -> int:
        while not self.buffer and self.pull():
            pass
        taken = min(len(target), len(self.buffer))
        target[:taken] = self.buffer[:taken]
        del self.buffer[:taken]
        return taken

    def reader(self) -> io.BufferedReader:
        return io.BufferedReader(self, CHUNK)

    def finish(self) -> int:
        """Its size, once every byte came and the digest is right."""
        while self.pull():
            self.buffer.clear()
        if self.count != self.size or f"sha256:{self.hash.hexdigest()}" != self.digest:
            raise WeightsError(f"{self.what} of {self.ref} is not what its digest says ({self.digest})",
                               str(self.ref), self.file)
        return self.count


def read_small(response: httpcore.Response, what: str, ref: Reference) -> bytes:
    data = bytearray()
    with translated(ref, what):
        for chunk in response.iter_stream():
            data += chunk
            if len(data) > SMALL:
                raise WeightsError(f"{what} of {ref} is larger than {SMALL} bytes", str(ref))
    return bytes(data)


def refusal(ref: Reference, what: str, status: int, authenticated: bool, file: str | None = None) -> WeightsError:
    if status == 404:
        return WeightsError(f"{what} of {ref} is not in the registry (404)", str(ref), file)
    if status in (401, 403):
        hint = "" if authenticated else f": set {USERNAME_ENV} and {PASSWORD_ENV}"
        return WeightsError(f"the registry refused {what} of {ref} ({status}){hint}", str(ref), file)
    return WeightsError(f"the registry answered {status} for {what} of {ref}", str(ref), file)


@contextlib.contextmanager
def translated(ref: Reference, what: str) -> Iterator[None]:
    """httpcore's errors as WeightsErrors (the one place they are read)."""
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise WeightsError(f"the registry of {ref} did not answer for {what} within its timeout "
                           f"({type(exc).__name__}; {TIMEOUT_ENV})", str(ref)) from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
            httpcore.LocalProtocolError) as exc:
        raise WeightsError(f"the registry of {ref} is unreachable for {what} ({type(exc).__name__}: "
                           f"{str(exc)[:200]})", str(ref)) from None
