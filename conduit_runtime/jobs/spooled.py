"""Spooled: the body of an async prediction waiting in the memory store, on disk.

A queued body must not stay in RAM (a thousand queued bodies of 100 MB would be 100 GB):
the JSON bytes, or a form's fields, go to an unnamed temporary file (deleted by the system
when it is closed, or when the process dies), and every upload to a file of its own on
disk (Starlette keeps an upload under 1 MiB in memory). What stays in memory is a few
file handles, and bodies under IN_MEMORY_MAX (a file per small body would cost more than
it saves: at most async_max_queue × 64 KiB, 64 MiB at the default 1000). The body is read
back when its prediction is taken to run.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import IO

from ..files import UploadedFile
from ..http.body import Body

IN_MEMORY_MAX = 64 * 1024


@dataclass
class Spooled:
    file: IO[bytes]  # the JSON body, or the form's fields as a JSON object
    is_json: bool
    files: list[UploadedFile] = field(default_factory=list)

    @classmethod
    def write(cls, body: Body) -> Spooled:
        """In a worker thread: the writes wait on the disk. The body's uploads are moved
        into files of their own (and closed); the parsed value, if any, is dropped."""
        data = body.json if body.json is not None else json.dumps(body.fields).encode()
        # closed by read() or close()
        file = io.BytesIO() if len(data) < IN_MEMORY_MAX else tempfile.TemporaryFile()  # noqa: SIM115
        try:
            file.write(data)
            return cls(file, body.json is not None, [on_disk(upload) for upload in body.files])
        except BaseException:
            file.close()
            raise

    def read(self) -> Body:
        """In a worker thread: the body again, as the worker takes it."""
        with self.file:
            self.file.seek(0)
            data = self.file.read()
        if self.is_json:
            return Body(json=data, files=self.files)
        return Body(fields=json.loads(data), files=self.files)

    def close(self) -> None:
        self.file.close()
        for upload in self.files:
            upload.close()


def on_disk(upload: UploadedFile) -> UploadedFile:
    copy = tempfile.TemporaryFile()  # noqa: SIM115 (the upload made of it closes it)
    try:
        upload.seek(0)
        shutil.copyfileobj(upload, copy)
    except BaseException:
        copy.close()
        raise
    finally:
        upload.close()
    return UploadedFile(copy, upload.name, upload.content_type)
