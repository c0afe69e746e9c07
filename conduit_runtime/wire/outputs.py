"""Files in a result (bytes, a PIL image, a pathlib.Path) as data URLs in the JSON
answer, as Cog returns them: `data:image/png;base64,...`, the type told by the
content's first bytes (or a path's suffix)."""

from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import PurePath
from typing import Any

# (offset, magic bytes, media type); RIFF and ISO media files also need their subtype.
MAGIC = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (8, b"WAVE", "audio/wav"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"BM", "image/bmp"),
)


def sniff(content: bytes) -> str:
    for offset, magic, media_type in MAGIC:
        if content[offset:offset + len(magic)] == magic:
            return media_type
    return "application/octet-stream"


def data_url(content: bytes, media_type: str | None = None) -> str:
    return f"data:{media_type or sniff(content)};base64,{base64.b64encode(content).decode()}"


def as_data_url(value: Any) -> str | None:
    """A data URL for bytes, a PIL image or a path; None for anything else."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return data_url(bytes(value))
    if isinstance(value, PurePath):
        with open(value, "rb") as handle:
            content = handle.read()
        return data_url(content, mimetypes.guess_type(value.name)[0] or sniff(content))
    if type(value).__module__.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "mode"):
        buffer = io.BytesIO()
        image_format = value.format or "PNG"  # an image made in memory has no format: PNG keeps every pixel
        value.save(buffer, format=image_format)
        return data_url(buffer.getvalue())
    return None
