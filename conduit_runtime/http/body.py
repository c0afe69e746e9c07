"""Read: the request body, streamed from the ASGI channel and refused as soon as
it passes `max_body_mb`, and counted against the server's buffer budget
(`max_buffered_mb`, admission.py) before it is held: by its Content-Length before
a byte is read, or chunk by chunk when it has none.

A JSON body is held once (one piece as it came, or one buffer sized by
Content-Length) and parsed later, in the worker. A form goes through Starlette's
streaming multipart parser, whose file parts spool to disk past 1 MiB, so an
upload costs memory only up to that (a form is counted by its whole length all
the same: the bound holds, on the safe side).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ..files import UploadedFile
from ..wire.predict import FORM_FIELDS

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]  # the ASGI receive channel
UNPARSED: Any = object()


@dataclass
class Body:
    """What the read stage hands to the worker: a JSON body, or a form's fields and files."""

    json: bytes | bytearray | None = None
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)  # closed by the Job that owns them
    # The JSON's value once it was parsed, before the worker's parse stage (to tell whether an
    # object names a webhook): then the worker reads this, and the bytes are parsed once.
    payload: Any = UNPARSED


async def read_body(content_type: bytes | None, content_length: bytes | None, receive: Receive, limit: int) -> Body:
    kind = media_type(content_type)
    declared = declared_length(content_length, limit)
    if kind == "multipart/form-data":
        headers = Headers(raw=[(b"content-type", content_type or b"")])
        return await read_form(headers, chunks(receive, limit), limit)
    if is_json(kind):
        return Body(json=await read_whole(receive, limit, declared))
    raise UnsupportedMediaType(
        f"content type {kind!r} is not accepted; send application/json or multipart/form-data"
    )


def media_type(content_type: bytes | None) -> str:
    return (content_type or b"").decode("latin-1").partition(";")[0].strip().lower()


def is_json(kind: str) -> bool:
    return kind in ("", "application/json") or kind.endswith("+json")


def budgeted(receive: Receive, content_length: bytes | None, limit: int, hold: Callable[[int], None]) -> Receive:
    """`receive`, with the body counted by `hold` (which refuses what does not fit) before
    it is read: at once by its Content-Length, else as each piece arrives."""
    declared = declared_length(content_length, limit)
    if declared is not None:
        hold(declared)
        return receive

    async def counted() -> MutableMapping[str, Any]:
        message = await receive()
        hold(len(message.get("body", b"")))
        return message

    return counted


def declared_length(content_length: bytes | None, limit: int) -> int | None:
    """Content-Length, refused at once when it is over the limit."""
    if content_length is None or not content_length.isdigit():
        return None
    length = int(content_length)
    if length > limit:
        raise PayloadTooLarge(
            f"request body of {length} bytes is over the limit of {limit} bytes (server.max_body_mb)"
        )
    return length


async def chunks(receive: Receive, limit: int) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, refused as soon as it passes `limit`."""
    received = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes (server.max_body_mb)")
        if chunk:
            yield chunk


async def read_whole(receive: Receive, limit: int, declared: int | None) -> bytes | bytearray:
    """The whole body in one buffer: the first piece itself when it is all there is
    (most bodies: no copy), else one buffer, sized by Content-Length when it was sent."""
    pieces = chunks(receive, limit)
    first = await anext(pieces, b"")
    second = await anext(pieces, None)
    if second is None:
        return first
    buffer = bytearray(declared or 0)
    view = memoryview(buffer)
    end = 0

    def put(piece: bytes) -> None:
        nonlocal buffer, view, end
        if end + len(piece) > len(buffer):  # no Content-Length (chunked): grow as it comes
            view.release()
            buffer += bytes(end + len(piece) - len(buffer))
            view = memoryview(buffer)
        view[end:end + len(piece)] = piece
        end += len(piece)

    put(first)
    put(second)
    async for piece in pieces:
        put(piece)
    view.release()
    return buffer


class FormParser(MultiPartParser):
    """Starlette's streaming parser, which also checks that the closing
    boundary arrived: a body cut short must not pass as a shorter form."""

    def __init__(self, headers: Headers, stream: AsyncIterator[bytes], max_part_size: int) -> None:
        super().__init__(headers, self.to_the_end(stream), max_part_size=max_part_size)
        self.complete = False

    async def to_the_end(self, stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        async for chunk in stream:
            yield chunk
        if not self.complete:  # raised inside parse(), which then closes the spooled files
            raise MultiPartException("the body ends before the closing boundary (--BOUNDARY--).")

    def on_end(self) -> None:
        self.complete = True


async def read_form(headers: Headers, stream: AsyncIterator[bytes], limit: int) -> Body:
    parser = FormParser(headers, stream, max_part_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"malformed multipart body: {exc.message}", "bad_form") from None
    body = Body()
    for name, value in form.multi_items():
        if isinstance(value, UploadFile) and name in FORM_FIELDS:
            # A field of the protocol sent as a part with a filename (Swagger UI sends its JSON
            # fields so, as Blobs): it is the field's text, never a file for the model.
            try:
                body.fields.setdefault(name, value.file.read().decode())
            except UnicodeDecodeError:
                raise BadRequest(f"the form's {name} field is not UTF-8 text", "bad_form") from None
            finally:
                value.file.close()
        elif isinstance(value, UploadFile):
            body.files.append(
                UploadedFile(value.file, value.filename or name, value.content_type or "application/octet-stream")
            )
        else:
            body.fields.setdefault(name, value)
    return body
