"""The Open Inference Protocol's tensors (KServe V2 REST): an infer request's
inputs become the flow's data, the flow's result becomes `outputs[]`.

    request   {"id", "parameters", "inputs": [{name, shape, datatype, data | parameters.binary_data_size}],
               "outputs": [{name, parameters.binary_data}]}  + binary tensors after the JSON header
    data      one input → an ndarray of its shape; several → {name: ndarray}; BYTES → nested lists
    files     each element of a BYTES input sent as binary data, in order, as an uploaded file
    answer    {"model_name", "model_version", "id", "parameters", "outputs": [{name, shape, datatype, data}]}

The binary tensor data extension (as Triton's clients speak it): the JSON header is the first
`Inference-Header-Content-Length` bytes of the body; each tensor with a `binary_data_size`
parameter takes that many bytes of the rest, in order. Numbers are little-endian, BOOL one byte
each, and each BYTES element a 4-byte little-endian length then its bytes. Answers are sent that
way for outputs asked for with `binary_data` (or every output with `binary_data_output`).

Pure functions of bytes and objects, run in a worker thread like predict.py's.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import PREDICTION_FAILED, BadRequest, ModelFailed
from ..files import UploadedFile
from ..model.loaders.signatures import BY_KIND, DATATYPES, DTYPES
from .codec import dumps, parse_json
from .outputs import sniff
from .predict import Request


def numpy() -> Any:
    """numpy, imported at the first infer request: every model library brings it, but a
    `python` model's image may do without (then no V2 infer), and start-up need not wait."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - images without numpy
        raise ModelFailed(PREDICTION_FAILED,
                          detail="numpy is not installed in this image: add it to requirements for /v2 infer") from None
    return numpy

# Request parameters that belong to the protocol (or to Triton's clients), not to the model.
RESERVED = frozenset({"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout"})
BAD = "bad_tensor"


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    value: Any  # an ndarray, or nested lists of str / bytes for BYTES


@dataclass
class Wanted:
    name: str
    binary: bool


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    parameters: dict[str, Any]
    outputs: list[Wanted] | None  # None: every output
    binary: bool  # binary_data_output: every output as binary data unless it says otherwise
    files: list[UploadedFile] = field(default_factory=list)

    def to_request(self) -> Request:
        """The flow's data: one input as its array, several as a dict by name."""
        data = self.inputs[0].value if len(self.inputs) == 1 else {t.name: t.value for t in self.inputs}
        parameters = {k: v for k, v in self.parameters.items() if k not in RESERVED}
        return Request(data, parameters, self.files)


# -- requests ------------------------------------------------------------------------------------------


def parse_infer(body: bytes | bytearray, header_length: int | None) -> InferRequest:
    """An infer request from its body; `header_length` from Inference-Header-Content-Length."""
    numpy()
    view = memoryview(body)
    if header_length is None:
        header_length = len(body)
    if not body.strip():
        raise BadRequest("the body is empty; send an inference request", "bad_json")
    if not 0 < header_length <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length {header_length} does not fit a body of {len(body)} bytes",
                         BAD)
    payload = parse_json(bytes(view[:header_length]), "the inference request", "bad_json")
    if not isinstance(payload, dict):
        raise BadRequest("an inference request is a JSON object with inputs[]", BAD)
    # Optional members are left out when not given: a null in their place is refused, as
    # /openapi.json describes them (a string, an object, a list).
    request_id = payload.get("id")
    if "id" in payload and not isinstance(request_id, str):
        raise BadRequest("id must be a string", BAD)
    parameters = payload.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest("parameters must be a JSON object", BAD)
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("inputs must be a non-empty list of tensors", BAD)
    binary = Binary(view[header_length:])
    files: list[UploadedFile] = []
    inputs = [read_tensor(raw, f"inputs[{i}]", binary, files) for i, raw in enumerate(raw_inputs)]
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        raise BadRequest("two inputs have the same name", BAD)
    if binary.left:
        raise BadRequest(f"{binary.left} bytes after the tensors' binary data: binary_data_size does not add up", BAD)
    binary_all = parameters.get("binary_data_output", False)
    if not isinstance(binary_all, bool):
        raise BadRequest("parameters.binary_data_output must be true or false", BAD)
    outputs = read_outputs(payload["outputs"], binary_all) if "outputs" in payload else None
    return InferRequest(request_id, inputs, parameters, outputs, binary_all, files)


class Binary:
    """The binary part of a body, taken tensor by tensor."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.at = 0

    @property
    def left(self) -> int:
        return len(self.view) - self.at

    def take(self, size: int, where: str) -> memoryview:
        if size > self.left:
            raise BadRequest(f"{where}: binary_data_size {size} is more than the {self.left} bytes left in the body",
                             BAD)
        piece = self.view[self.at:self.at + size]
        self.at += size
        return piece


def read_outputs(raw: Any, binary_all: bool) -> list[Wanted]:
    if not isinstance(raw, list):
        raise BadRequest("outputs must be a list of {name, parameters}", BAD)
    wanted = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"outputs[{index}] must be an object with a name", BAD)
        parameters = item.get("parameters", {})
        if not isinstance(parameters, dict):
            raise BadRequest(f"outputs[{index}].parameters must be a JSON object", BAD)
        binary = parameters.get("binary_data", binary_all)
        if not isinstance(binary, bool):
            raise BadRequest(f"outputs[{index}].parameters.binary_data must be true or false", BAD)
        wanted.append(Wanted(item["name"], binary))
    return wanted


def read_tensor(raw: Any, where: str, binary: Binary, files: list[UploadedFile]) -> Tensor:
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be a tensor object: name, shape, datatype, data", BAD)
    name, datatype = raw.get("name"), raw.get("datatype")
    if not isinstance(name, str):
        raise BadRequest(f"{where}.name must be a string", BAD)
    where = f"input {name!r}"
    shape, count = read_shape(raw.get("shape"), where)
    if datatype not in DATATYPES:
        raise BadRequest(f"{where}: datatype must be one of {', '.join(DATATYPES)}", BAD)
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: parameters must be a JSON object", BAD)
    size = parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise BadRequest(f"{where}: binary_data_size must be a non-negative integer", BAD)
        if "data" in raw:
            raise BadRequest(f"{where}: send data or binary_data_size, not both", BAD)
        piece = binary.take(size, where)
        if datatype == "BYTES":
            elements = split_bytes(piece, count, where)
            content_type = parameters.get("content_type")
            for index, element in enumerate(elements):
                kind = content_type if isinstance(content_type, str) else sniff(element)
                files.append(UploadedFile(io.BytesIO(element), f"{name}-{index}", kind))
            return Tensor(name, tuple(shape), datatype, nest(elements, shape))
        np = numpy()
        dtype = np.dtype(DTYPES[datatype])
        if size != count * dtype.itemsize:
            raise BadRequest(f"{where}: {size} bytes of binary data do not hold shape {shape} of {datatype}", BAD)
        array = reshaped(np.frombuffer(piece, dtype), shape, where)
        if dtype.kind == "f" and not np.isfinite(array).all():  # the bytes are the dtype: only inf and NaN are out
            raise BadRequest(f"{where}: a number is out of {datatype}'s finite range", BAD)
        return Tensor(name, tuple(shape), datatype, array)
    if "data" not in raw:
        raise BadRequest(f"{where}: data is missing", BAD)
    flat = flatten(raw["data"], shape, where)
    return Tensor(name, tuple(shape), datatype, to_array(flat, shape, datatype, where))


# numpy's own limit on dimensions (NPY_MAXDIMS before numpy 2); nested BYTES data is built
# by recursion, one level a dimension.
MAX_DIMS = 32
INT64_MAX = 2**63 - 1


def read_shape(shape: Any, where: str) -> tuple[list[int], int]:
    """A valid shape and its element count. No dimension may exceed max(1, count): else
    `[2000000, 0]` holds no element yet would build two million empty rows, and a
    dimension past int64 would fail inside numpy (a 500)."""
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"{where}: shape must be a list of non-negative integers", BAD)
    if len(shape) > MAX_DIMS:
        raise BadRequest(f"{where}: shape has {len(shape)} dimensions; at most {MAX_DIMS}", BAD)
    count = math.prod(shape)
    if count > INT64_MAX:
        raise BadRequest(f"{where}: shape holds more elements than int64 counts", BAD)
    largest = max(shape, default=0)
    if largest > max(1, count):
        raise BadRequest(f"{where}: dimension {largest} of a shape of {count} elements; "
                         "no dimension may exceed max(1, the element count)", BAD)
    return shape, count


def reshaped(array: Any, shape: list[int], where: str) -> Any:
    try:
        return array.reshape(shape)
    except (ValueError, OverflowError, MemoryError):
        raise BadRequest(f"{where}: its data does not take shape {shape}", BAD) from None


def flatten(data: Any, shape: list[int], where: str) -> list[Any]:
    """The data's elements in row-major order: sent flat, or nested exactly as the shape says."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}: data must be a list", BAD)
    count = math.prod(shape)
    if len(shape) > 1 and data and isinstance(data[0], list):
        flat: list[Any] = data
        for depth, size in enumerate(shape):
            if len(flat) != size * (math.prod(shape[:depth]) if depth else 1):
                raise BadRequest(f"{where}: nested data does not match shape {shape}", BAD)
            if depth < len(shape) - 1:
                if not all(isinstance(row, list) for row in flat):
                    raise BadRequest(f"{where}: nested data does not match shape {shape}", BAD)
                flat = [item for row in flat for item in row]
        return flat
    if len(data) != count:
        raise BadRequest(f"{where}: {len(data)} elements of data do not fill shape {shape} ({count} elements)", BAD)
    return data


# JSON types each datatype takes: bool is an int in Python, so it is told apart by type.
ELEMENT_TYPES: dict[str, set[type]] = {"BOOL": {bool}, "BYTES": {str}, "FP": {int, float}, "INT": {int}}


def to_array(flat: list[Any], shape: list[int], datatype: str, where: str) -> Any:
    family = "FP" if datatype.startswith("FP") else "INT" if "INT" in datatype else datatype
    if family == "INT" and float in set(map(type, flat)):
        # JSON Schema counts 2.0 as an integer, and so do many JSON writers: whole floats are taken.
        if not all(x.is_integer() if isinstance(x, float) else True for x in flat):
            raise BadRequest(f"{where}: {datatype} data cannot hold fractions", BAD)
        flat = [int(x) if isinstance(x, float) else x for x in flat]
    kinds = set(map(type, flat))
    if not kinds <= ELEMENT_TYPES[family]:
        found = ", ".join(sorted(k.__name__ for k in kinds - ELEMENT_TYPES[family]))
        raise BadRequest(f"{where}: {datatype} data cannot hold {found} elements", BAD)
    if datatype == "BYTES":
        return nest(flat, shape)
    np = numpy()
    dtype = np.dtype(DTYPES[datatype])
    if family == "INT" and flat:
        info = np.iinfo(dtype)
        if min(flat) < info.min or max(flat) > info.max:
            raise BadRequest(f"{where}: a number is out of {datatype}'s range", BAD)
    if family == "FP" and flat:
        finite = float(np.finfo(dtype).max)  # a Python float: compared with a float32, x would be rounded first
        try:
            beyond = any(not math.isfinite(x) or abs(x) > finite for x in flat)
        except OverflowError:  # an integer past any float
            beyond = True
        if beyond:
            raise BadRequest(f"{where}: a number is out of {datatype}'s finite range", BAD)
    return reshaped(np.array(flat, dtype=dtype), shape, where)


def split_bytes(piece: memoryview, count: int, where: str) -> list[bytes]:
    """BYTES binary data: each element a 4-byte little-endian length, then its bytes."""
    elements, at = [], 0
    while at < len(piece):
        if at + 4 > len(piece):
            raise BadRequest(f"{where}: BYTES binary data ends inside an element's length", BAD)
        (length,) = struct.unpack_from("<I", piece, at)
        at += 4
        if at + length > len(piece):
            raise BadRequest(f"{where}: a BYTES element runs past its binary data", BAD)
        elements.append(bytes(piece[at:at + length]))
        at += length
    if len(elements) != count:
        raise BadRequest(f"{where}: {len(elements)} BYTES elements do not fill its shape ({count} elements)", BAD)
    return elements


def nest(flat: list[Any], shape: list[int]) -> list[Any]:
    """Row-major elements as nested lists of `shape` (BYTES data: strings and bytes are no numbers)."""
    if len(shape) <= 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


# -- answers -------------------------------------------------------------------------------------------


def as_tensors(output: Any, default_name: str) -> dict[str, Any]:
    """The result as arrays by output name: a dict's items, else one output."""
    items = output.items() if isinstance(output, dict) else ((default_name, output),)
    return {str(name): as_array(value, str(name)) for name, value in items}


def as_array(value: Any, name: str) -> Any:
    np = numpy()
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged lists
        raise ModelFailed(PREDICTION_FAILED, detail=f"output {name!r} is not a tensor: {exc}") from exc
    if array.ndim == 0:
        array = array.reshape(1)  # a bare value is one row, as /predict's result makes it
    if array.dtype.kind in "biuf" and (array.dtype.kind, array.dtype.itemsize) in BY_KIND:
        return array
    if array.dtype.kind in "US":  # numpy strings: as BYTES
        return array.astype(object)
    if array.dtype.kind == "O":
        return array
    raise ModelFailed(PREDICTION_FAILED, detail=f"output {name!r} of dtype {array.dtype} has no Open Inference Protocol datatype")


def element_bytes(item: Any) -> bytes:
    """A BYTES element: strings as UTF-8, anything else (a dict, a number) as its JSON."""
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode()
    return dumps(item)


def encode_output(name: str, array: Any, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    """One output's JSON, and its binary data when it goes as such. BYTES elements that are
    not UTF-8 cannot be JSON strings: they go as binary data whatever was asked."""
    shape = list(array.shape)
    if array.dtype.kind == "O":
        elements = [element_bytes(item) for item in array.ravel()]
        if not binary:
            try:
                return {"name": name, "datatype": "BYTES", "shape": shape,
                        "data": [e.decode() for e in elements]}, None
            except UnicodeDecodeError:
                pass
        blob = b"".join(struct.pack("<I", len(e)) + e for e in elements)
        return {"name": name, "datatype": "BYTES", "shape": shape,
                "parameters": {"binary_data_size": len(blob)}}, blob
    datatype = BY_KIND[(array.dtype.kind, array.dtype.itemsize)]
    if binary:
        blob = numpy().ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
        return {"name": name, "datatype": datatype, "shape": shape,
                "parameters": {"binary_data_size": len(blob)}}, blob
    return {"name": name, "datatype": datatype, "shape": shape, "data": array.ravel().tolist()}, None


def infer_answer(tensors: dict[str, Any], request: InferRequest, model_name: str,
                 parameters: dict[str, Any]) -> tuple[bytes, int | None]:
    """The answer's bytes and, when binary data follows the JSON, the JSON's length."""
    if request.outputs is None:
        chosen = [(name, array, request.binary) for name, array in tensors.items()]
    else:
        unknown = [w.name for w in request.outputs if w.name not in tensors]
        if unknown:
            raise BadRequest(f"no output named {unknown[0]!r}; the outputs are {', '.join(tensors)}", BAD)
        chosen = [(w.name, tensors[w.name], w.binary) for w in request.outputs]
    outputs, blobs = [], []
    for name, array, binary in chosen:
        described, blob = encode_output(name, array, binary)
        outputs.append(described)
        if blob is not None:
            blobs.append(blob)
    answer: dict[str, Any] = {"model_name": model_name, "model_version": VERSION}
    if request.id is not None:
        answer["id"] = request.id
    answer["parameters"] = parameters
    answer["outputs"] = outputs
    header = dumps(answer)
    if not blobs:
        return header, None
    return b"".join((header, *blobs)), len(header)


def output_rows(tensors: dict[str, Any]) -> int:
    """Rows of the result, for its prediction ids: the first output's first dimension."""
    first = next(iter(tensors.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


# -- metadata ------------------------------------------------------------------------------------------

VERSION = "1"  # a served model has one version
EXTENSIONS = ["binary_tensor_data"]

PLATFORMS = {"sklearn": "sklearn", "sklearn_classifier": "sklearn", "sklearn_preprocessor": "sklearn",
             "xgboost_classifier": "xgboost", "xgboost_regressor": "xgboost", "onnx": "onnxruntime_onnx",
             "torch": "pytorch_torchscript", "spacy": "spacy", "hf_pipeline": "huggingface", "python": "python"}


def model_metadata(name: str, types: list[str], signature: dict[str, list[dict[str, Any]]] | None) -> dict[str, Any]:
    platform = PLATFORMS.get(types[0], "python") if len(types) == 1 else "conduit"
    signature = signature or {"inputs": [], "outputs": []}
    return {"name": name, "versions": [VERSION], "platform": platform, **signature}


def output_name(signature: dict[str, list[dict[str, Any]]] | None) -> str:
    outputs = signature["outputs"] if signature else []
    return str(outputs[0]["name"]) if outputs else "output-0"
