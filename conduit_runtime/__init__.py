"""Conduit's model server: the runtime that goes into every image.

It imports only Starlette, uvicorn, python-multipart and the model libraries;
nothing from the build tool.
"""

from .cancellation import cancelled
from .errors import InputRejected
from .files import UploadedFile

__all__ = ["InputRejected", "UploadedFile", "cancelled"]
