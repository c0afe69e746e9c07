"""Errors the server turns into HTTP answers.

    ServerError                (status, code, message)
      ├── BadRequest           400  bad_json | bad_form | bad_shape
      ├── Unauthorized         401  unauthorized
      ├── NotFound             404  not_found
      ├── MethodNotAllowed     405  method_not_allowed
      ├── PayloadTooLarge      413  payload_too_large
      ├── UnsupportedMediaType 415  unsupported_media_type
      ├── InputRejected        422  invalid_input
      ├── Overloaded           429  overloaded
      ├── ModelFailed          500  model_error
      ├── NotReady             503  not_ready | startup_failed (/ready, when start-up failed for good)
      └── TimedOut             504  timeout

Hooks and models may raise InputRejected themselves; ValueError, TypeError,
KeyError and IndexError raised by them are read the same way (the input was
refused), and so is a decoder refusing uploaded bytes (Pillow's
UnidentifiedImageError, or the OSError / SyntaxError it raises for a truncated
or broken image), and so is what a loader knows its library raises for input that
does not fit the model (onnxruntime's INVALID_ARGUMENT, a torch shape error).
Anything else is a 500.

What a client reads is `message`. A 422's message is what the user's code said
about the input (that is for the client); 500s and 503s carry a fixed message,
and what went wrong inside (`detail`, the exception and its traceback) goes only
to the log line of the same run_id, or into the body under `--debug`.
"""

from __future__ import annotations

from collections.abc import Callable


class ServerError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, code: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # internal: for the log and --debug, never a client
        if code is not None:
            self.code = code


class BadRequest(ServerError):
    status, code = 400, "bad_request"


class Unauthorized(ServerError):
    status, code = 401, "unauthorized"


class NotFound(ServerError):
    status, code = 404, "not_found"


class MethodNotAllowed(ServerError):
    status, code = 405, "method_not_allowed"


class PayloadTooLarge(ServerError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServerError):
    status, code = 415, "unsupported_media_type"


class InputRejected(ServerError):
    status, code = 422, "invalid_input"


class Overloaded(ServerError):
    status, code = 429, "overloaded"


class ModelFailed(ServerError):
    status, code = 500, "model_error"


class NotReady(ServerError):
    status, code = 503, "not_ready"


class TimedOut(ServerError):
    status, code = 504, "timeout"


# Exceptions from user code that mean "this input is not acceptable".
INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)

# Libraries that decode uploaded bytes, and what they raise for bytes that are
# not what they decode: a client's mistake (422), not a failure of the model.
DECODERS = ("PIL",)
DECODE_ERRORS = (OSError, SyntaxError, EOFError)


def from_decoder(exc: BaseException) -> bool:
    """Raised by a decoder, for its input: its own exception class
    (PIL.UnidentifiedImageError, DecompressionBombError), or an OSError /
    SyntaxError / EOFError raised in the decoder's code ("image file is truncated")."""
    if type(exc).__module__.partition(".")[0] in DECODERS:
        return True
    if not isinstance(exc, DECODE_ERRORS):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).partition(".")[0] in DECODERS


PREDICTION_FAILED = "the prediction failed; the server's log has the details under this run_id"
INTERNAL_FAILURE = "the server failed; its log has the details under this run_id"
# The /ready error code of a server whose start-up failed for good: deploys and `conduit test`
# stop waiting at once (the build tool imports it from here).
STARTUP_FAILED = "startup_failed"


def from_user_code(exc: BaseException, where: str,
                   rejects: Callable[[BaseException], str | None] | None = None) -> ServerError:
    """Read an exception raised by a hook or a model as a 422 or a 500;
    `rejects` tells a model library's own input errors."""
    if isinstance(exc, ServerError):
        return exc
    detail = f"{type(exc).__name__}: {exc}"[:500]
    said = rejects(exc) if rejects is not None else None  # the library's words, cleaned of paths
    if said is not None:
        return InputRejected(f"{where} rejected the input: {type(exc).__name__}: {said}"[:600])
    if isinstance(exc, INPUT_ERRORS) or from_decoder(exc):
        return InputRejected(f"{where} rejected the input: {detail}")
    return ModelFailed(PREDICTION_FAILED, detail=f"{where} failed: {detail}")


def internal_error(exc: BaseException) -> ServerError:
    """A bug of ours, or of a library under us: a 500 that says nothing of it (the log line
    of its run_id has the exception, through __cause__)."""
    if isinstance(exc, ServerError):
        return exc
    error = ServerError(INTERNAL_FAILURE, detail=repr(exc))
    error.__cause__ = exc
    return error
