"""Uploaded files as hooks receive them: binary, seekable, at position 0,
with `.name` (the client's filename, no path) and `.content_type`."""

from __future__ import annotations

import io
import mimetypes
import os
from typing import IO, Any


class UploadedFile(io.BufferedIOBase):
    """A read-only view of one upload, over an in-memory or spooled file."""

    def __init__(self, raw: IO[bytes], name: str, content_type: str, owns: bool = True) -> None:
        super().__init__()
        self._raw = raw
        self._owns = owns  # close the underlying file with this view
        self.name = os.path.basename(name.replace("\\", "/"))
        self.content_type = content_type
        raw.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._raw.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        if not self.closed and self._owns:
            self._raw.close()
        super().close()

    def __repr__(self) -> str:
        return f"UploadedFile(name={self.name!r}, content_type={self.content_type!r})"


def as_upload(item: Any, index: int = 0) -> UploadedFile:
    """A path, bytes or binary file object, the way the Python API accepts files."""
    if isinstance(item, UploadedFile):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return UploadedFile(io.BytesIO(bytes(item)), f"file{index}", "application/octet-stream")
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        return UploadedFile(open(path, "rb"), path, guess_type(path))
    if hasattr(item, "read"):
        name = str(getattr(item, "name", f"file{index}"))
        content_type = getattr(item, "content_type", None) or guess_type(name)
        if not hasattr(item, "seek") or not getattr(item, "seekable", lambda: True)():
            return UploadedFile(io.BytesIO(item.read()), name, content_type)
        return UploadedFile(item, name, content_type, owns=False)  # the caller's file stays open
    raise TypeError(f"files[{index}] must be a path, bytes or a binary file object, not {type(item).__name__}")


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
