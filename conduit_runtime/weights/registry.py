"""The registry client of a pull by digest (the OCI distribution API over httpx): the manifest,
then blobs, each streamed and hashed as it comes (`Blob`), redirects followed (a blob may live
in object storage).

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
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx

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


def timeout() -> httpx.Timeout:
    read = float(os.environ.get(TIMEOUT_ENV) or READ_TIMEOUT_S)
    return httpx.Timeout(read, connect=min(CONNECT_TIMEOUT_S, read))


class Registry:
    """One artifact's repository on one registry; a context manager (it holds connections)."""

    def __init__(self, ref: Reference) -> None:
        self.ref = ref
        self.client = httpx.Client(timeout=timeout(), follow_redirects=True,
                                   headers={"User-Agent": "conduit-runtime"})
        self.authorization: str | None = None
        self.credentials = (os.environ.get(USERNAME_ENV, ""), os.environ.get(PASSWORD_ENV, ""))

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

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
            yield Blob(response.iter_bytes(CHUNK), digest, size, what, self.ref, file)

    @contextlib.contextmanager
    def get(self, path: str, what: str, accept: str | None = None, file: str | None = None) -> Iterator[httpx.Response]:
        url = f"{self.ref.base_url}/{path}"
        for attempt in range(2):
            headers = {**({"Accept": accept} if accept else {}),
                       **({"Authorization": self.authorization} if self.authorization else {})}
            with translated(self.ref, what):
                response = self.client.send(self.client.build_request("GET", url, headers=headers), stream=True)
            try:
                if response.status_code == 401 and attempt == 0:
                    challenge = response.headers.get("www-authenticate", "")
                    response.close()
                    self.authorization = self.authenticate(challenge, what)
                    continue
                if response.status_code != 200:
                    raise refusal(self.ref, what, response.status_code, self.authorization is not None, file)
                yield response
                return
            finally:
                response.close()

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
        with translated(self.ref, "a token"):
            response = self.client.get(realm, params={k: v for k, v in query.items() if v},
                                       headers={"Authorization": basic} if basic else {})
        if response.status_code != 200:
            raise refusal(self.ref, "a token", response.status_code, basic is not None)
        try:
            answer: Any = response.json()
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


def read_small(response: httpx.Response, what: str, ref: Reference) -> bytes:
    data = bytearray()
    with translated(ref, what):
        for chunk in response.iter_bytes(CHUNK):
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
    """httpx's errors as WeightsErrors (the one place they are read)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise WeightsError(f"the registry of {ref} did not answer for {what} within its timeout "
                           f"({type(exc).__name__}; {TIMEOUT_ENV})", str(ref)) from None
    except httpx.HTTPError as exc:
        raise WeightsError(f"the registry of {ref} is unreachable for {what} ({type(exc).__name__}: "
                           f"{str(exc)[:200]})", str(ref)) from None
