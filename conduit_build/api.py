"""The Python API, for notebooks and unit tests of hooks:

    model = Conduit.from_file("conduit.yaml").load()
    model.run([[5.1, 3.5, 1.4, 0.2]])             # → the server's envelope
    model.run([None], files=["three.png"])        # paths, bytes or binary files

In-process, no HTTP; hooks receive files exactly as the server gives them.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from conduit_runtime.errors import ModelFailed, ServerError
from conduit_runtime.files import UploadedFile, as_upload
from conduit_runtime.protocol import Request, check_data, check_parameters, dumps, envelope
from conduit_runtime.service import Service
from conduit_runtime.spec import ServerSpec

from .config import Project, load


class PredictionError(Exception):
    """A prediction failed the way the server would answer with `status`."""

    def __init__(self, error: ServerError) -> None:
        super().__init__(f"{error.status} {error.code}: {error.message}")
        self.status = error.status
        self.code = error.code
        self.message = error.message


class Conduit:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.spec = ServerSpec.from_dict(project.runtime_spec(), project.root)
        self._service: Service | None = None

    @classmethod
    def from_file(cls, path: str | Path = "conduit.yaml") -> Conduit:
        return cls(load(path))

    def load(self) -> Conduit:
        """Load every stage once (and warm up with the first `tests:` example)."""
        if self._service is None:
            service = Service(self.spec)
            try:
                service.load()
            except ServerError as error:
                raise PredictionError(error) from error
            self._service = service
        return self

    def run(self, data: Any, files: list[Any] | None = None, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """One prediction; the same envelope the server answers with."""
        self.load()
        assert self._service is not None
        started = time.perf_counter()
        uploads = [as_upload(item, index) for index, item in enumerate(files or [])]
        try:
            if isinstance(data, dict) and "data" in data:
                data, parameters = data["data"], data.get("parameters", parameters)
            request = Request(check_data(data), check_parameters(parameters), uploads)
            rows = self._service.predict(request)
        except ServerError as error:
            raise PredictionError(error) from error
        finally:
            request_files_close(uploads)
        answer = envelope(rows, str(uuid.uuid4()), round((time.perf_counter() - started) * 1000, 3))
        try:
            result: dict[str, Any] = json.loads(dumps(answer))
        except TypeError as exc:  # the server answers this with a 500 too
            raise PredictionError(ModelFailed(str(exc))) from None
        return result


def request_files_close(uploads: list[UploadedFile]) -> None:
    """Close the views; files opened here from paths close too, the caller's own stay open."""
    for upload in uploads:
        upload.close()
