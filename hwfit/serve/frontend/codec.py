"""KServe v2 tensors on the wire: JSON tensors, BYTES tensors, the binary tensor extension (as
tritonclient encodes it), and per-request `parameters` -> RequestOptions. Protocol code only: it
turns bytes into an `InferRequest` and an `InferResponse` into bytes, and knows no model."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from hwfit.serve.api import (
    DATATYPES,
    DEFAULT_PRIORITY_LEVEL,
    PRIORITY_LEVELS,
    TIERS,
    BadRequest,
    InferRequest,
    InferResponse,
    InternalError,
    RequestOptions,
    datatype_of,
)

# The HTTP header that says how many leading bytes of the body are JSON (binary tensor extension).
HEADER_LENGTH = "Inference-Header-Content-Length"

INTEGER_TYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
FLOAT_TYPES = {"FP16", "FP32", "FP64"}
# Nesting deeper than this is not a tensor anyone sends; refusing it early keeps json and numpy
# from recursing on a hostile body.
MAX_RANK = 16


# --- parameters -> RequestOptions ---------------------------------------------------------------


def request_options(parameters: Mapping[str, Any] | None) -> RequestOptions:
    """Read the parameters hwfit acts on; others are passed over, as the protocol allows.

    `timeout_ms` (number > 0) or Triton's `timeout` (microseconds, integer > 0) set the deadline;
    `priority` (Triton's level: integer >= 0, 1 is the highest, larger numbers are lower, 0 = the
    default level); `tier` ("full" or "degraded").
    """
    parameters = parameters or {}
    if not isinstance(parameters, Mapping):
        raise BadRequest(f"'parameters' must be an object of name: value, got {_kind(parameters)}")
    _refuse_sequences(parameters)
    return RequestOptions(
        timeout_ms=_timeout_ms(parameters),
        priority=_priority(parameters),
        tier=_tier(parameters),
    )


def _timeout_ms(parameters: Mapping[str, Any]) -> float | None:
    if "timeout_ms" in parameters and "timeout" in parameters:
        raise BadRequest("give either parameter 'timeout_ms' (milliseconds) or 'timeout' (microseconds), not both")
    if "timeout_ms" in parameters:
        value = parameters["timeout_ms"]
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise BadRequest(f"parameter 'timeout_ms' must be a number of milliseconds > 0, got {value!r}")
        return float(value)
    if "timeout" in parameters:
        value = parameters["timeout"]
        if not _is_integer(value) or value <= 0:
            raise BadRequest(f"parameter 'timeout' (Triton's, in microseconds) must be an integer > 0, got {value!r}")
        return value / 1000.0
    return None


def _priority(parameters: Mapping[str, Any]) -> int:
    value = parameters.get("priority", 0)
    if not _is_integer(value) or value < 0:
        raise BadRequest(
            f"parameter 'priority' must be a priority level, an integer >= 0 (1 is the highest, "
            f"larger numbers are lower, 0 = the default level {DEFAULT_PRIORITY_LEVEL} of "
            f"1..{PRIORITY_LEVELS}), got {value!r}"
        )
    return int(value)


def _tier(parameters: Mapping[str, Any]) -> str:
    value = parameters.get("tier", "full")
    if value not in TIERS:
        raise BadRequest(f"parameter 'tier' must be one of {', '.join(TIERS)}, got {value!r}")
    return value


def _refuse_sequences(parameters: Mapping[str, Any]) -> None:
    sequence_id = parameters.get("sequence_id", 0)
    if sequence_id not in (0, "", None):
        raise BadRequest(
            f"parameter 'sequence_id' is {sequence_id!r}, but hwfit serves stateless models only: "
            "sequence batching is not supported; send requests without a sequence id"
        )


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


# --- one tensor ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorHeader:
    """What the JSON says about one input tensor, checked for form (not against the model)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def count(self) -> int:
        return math.prod(self.shape)


def tensor_header(name: Any, datatype: Any, shape: Any, where: str = "input") -> TensorHeader:
    if not isinstance(name, str) or not name:
        raise BadRequest(f"every {where} needs a 'name' (a non-empty string), got {name!r}")
    if datatype not in DATATYPES:
        raise BadRequest(
            f"{where} '{name}' has datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
            + (" (BF16 is not served: send FP32 or FP16)" if datatype == "BF16" else "")
        )
    if not isinstance(shape, (list, tuple)) or not all(_is_integer(d) and d >= 0 for d in shape):
        raise BadRequest(f"{where} '{name}' has shape {shape!r}; expected a list of integers >= 0")
    if len(shape) > MAX_RANK:
        raise BadRequest(f"{where} '{name}' has rank {len(shape)}; at most {MAX_RANK} dimensions are accepted")
    return TensorHeader(name, datatype, tuple(int(d) for d in shape))


def array_from_raw(header: TensorHeader, raw: bytes | memoryview) -> np.ndarray:
    """A tensor from its raw bytes: row-major little-endian values, or length-prefixed BYTES."""
    if header.datatype == "BYTES":
        return _bytes_from_raw(header, raw)
    dtype = np.dtype(DATATYPES[header.datatype]).newbyteorder("<")
    expected = header.count * dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"input '{header.name}' has {len(raw)} bytes of binary data; expected {expected} "
            f"({header.datatype}, shape {list(header.shape)}: {header.count} x {dtype.itemsize} bytes)"
        )
    # A copy: the body's buffer is read-only and may be unaligned for the dtype.
    array = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)
    return array.reshape(header.shape)


def _bytes_from_raw(header: TensorHeader, raw: bytes | memoryview) -> np.ndarray:
    raw = bytes(raw)
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(
                f"BYTES input '{header.name}' is malformed: {len(raw) - offset} byte(s) left at offset {offset} "
                "where a 4-byte little-endian length was expected"
            )
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(
                f"BYTES input '{header.name}' is malformed: element {len(items)} says {length} bytes "
                f"but only {len(raw) - offset} remain"
            )
        items.append(raw[offset : offset + length])
        offset += length
    if len(items) != header.count:
        raise BadRequest(
            f"BYTES input '{header.name}' holds {len(items)} element(s); shape {list(header.shape)} "
            f"needs {header.count}"
        )
    return _object_array(items, header.shape)


def array_from_json(header: TensorHeader, data: Any) -> np.ndarray:
    """A tensor from JSON `data`: a flat row-major list, or nested lists with as many elements."""
    if not isinstance(data, list):
        raise BadRequest(f"input '{header.name}' has 'data' of {_kind(data)}; expected an array of values")
    if header.datatype == "BYTES":
        return _bytes_from_json(header, data)
    values = _numeric_values(header, data)
    if values.size != header.count:
        raise BadRequest(
            f"input '{header.name}' has {values.size} value(s) in 'data'; shape {list(header.shape)} "
            f"needs {header.count}"
        )
    return cast_values(header, values.reshape(-1)).reshape(header.shape)


def _numeric_values(header: TensorHeader, data: list) -> np.ndarray:
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, RecursionError) as error:
        raise BadRequest(
            f"input '{header.name}' has 'data' that is not a rectangular array of numbers ({error}); "
            "expected a flat row-major list or nested lists of equal lengths"
        ) from None
    if values.ndim > MAX_RANK:
        raise BadRequest(f"input '{header.name}' has 'data' nested {values.ndim} deep; at most {MAX_RANK} is accepted")
    return values


def cast_values(header: TensorHeader, values: np.ndarray) -> np.ndarray:
    """Check that JSON values fit the datatype (kind and range), then convert."""
    name, datatype = header.name, header.datatype
    target = np.dtype(DATATYPES[datatype])
    kind = values.dtype.kind
    if values.size == 0:
        return values.astype(target)
    if datatype == "BOOL":
        if kind != "b":
            raise BadRequest(f"input '{name}' is BOOL; 'data' must hold true/false, got {values.dtype.name} values")
        return values
    if datatype in INTEGER_TYPES:
        if kind not in "iu":
            raise BadRequest(f"input '{name}' is {datatype}; 'data' must hold integers, got {_json_kind(values)}")
        info = np.iinfo(target)
        low, high = int(values.min()), int(values.max())
        if low < info.min or high > info.max:
            raise BadRequest(
                f"input '{name}' is {datatype}; values must lie in [{info.min}, {info.max}], got [{low}, {high}]"
            )
        return values.astype(target)
    if kind not in "iuf":
        raise BadRequest(f"input '{name}' is {datatype}; 'data' must hold numbers, got {_json_kind(values)}")
    largest = (
        float(np.max(np.abs(values[np.isfinite(values)]), initial=0.0)) if kind == "f" else float(np.abs(values).max())
    )
    limit = float(np.finfo(target).max)
    if largest > limit:
        raise BadRequest(
            f"input '{name}' is {datatype}; values must lie within +-{limit:.4g}, got magnitude {largest:.4g}"
        )
    return values.astype(target)


def _json_kind(values: np.ndarray) -> str:
    kind = values.dtype.kind
    return {"b": "booleans", "f": "floating-point numbers", "U": "strings", "O": "mixed or out-of-range values"}.get(
        kind, f"{values.dtype.name} values"
    )


def _bytes_from_json(header: TensorHeader, data: list) -> np.ndarray:
    items = _flatten_strings(header, data)
    if len(items) != header.count:
        raise BadRequest(
            f"BYTES input '{header.name}' has {len(items)} string(s) in 'data'; shape {list(header.shape)} "
            f"needs {header.count}"
        )
    return _object_array([item.encode("utf-8") for item in items], header.shape)


def _flatten_strings(header: TensorHeader, data: list, depth: int = 0) -> list[str]:
    if depth > MAX_RANK:
        raise BadRequest(f"BYTES input '{header.name}' has 'data' nested deeper than {MAX_RANK}")
    items: list[str] = []
    for item in data:
        if isinstance(item, list):
            items.extend(_flatten_strings(header, item, depth + 1))
        elif isinstance(item, str):
            items.append(item)
        else:
            raise BadRequest(f"BYTES input '{header.name}' must hold strings in 'data', got {_kind(item)}")
    return items


def _object_array(items: list[bytes], shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def raw_from_array(array: np.ndarray) -> bytes:
    """Row-major little-endian bytes of a tensor; BYTES as 4-byte length + bytes per element."""
    if array.dtype == object or array.dtype.kind in "SU":
        return _raw_from_bytes_array(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _raw_from_bytes_array(array: np.ndarray) -> bytes:
    parts = []
    for item in array.reshape(-1):
        encoded = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


def datatype_of_array(array: np.ndarray) -> str:
    """Datatype of an output array; str/bytes arrays are BYTES."""
    if array.dtype.kind in "SU":
        return "BYTES"
    return datatype_of(array.dtype)


# --- HTTP request -------------------------------------------------------------------------------


def decode_http_request(
    body: bytes,
    header_length: str | None,
    model_name: str,
    model_version: str | None = None,
    all_outputs: tuple[str, ...] = (),
) -> InferRequest:
    """An HTTP/REST infer body (JSON, optionally followed by binary tensor data) -> InferRequest.

    `all_outputs` are the model's output names: what `binary_data_output: true` means when the
    request names no outputs.
    """
    json_length = _json_length(header_length, len(body))
    document = _parse_json(body[:json_length])
    binary = memoryview(body)[json_length:]
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {_kind(request_id)}")
    parameters = document.get("parameters") or {}
    options = request_options(parameters)
    inputs = _decode_inputs(document.get("inputs"), binary, has_binary_section=header_length is not None)
    requested, binary_outputs = _decode_requested_outputs(document.get("outputs"), parameters, all_outputs)
    return InferRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        id=request_id,
        requested_outputs=requested,
        binary_outputs=binary_outputs,
        options=options,
    )


def _json_length(header_length: str | None, body_length: int) -> int:
    if header_length is None:
        return body_length
    try:
        length = int(header_length)
    except ValueError:
        raise BadRequest(f"header {HEADER_LENGTH} must be an integer byte count, got {header_length!r}") from None
    if not 0 < length <= body_length:
        raise BadRequest(
            f"header {HEADER_LENGTH} is {length} but the body has {body_length} bytes; "
            "expected the length of the JSON part, between 1 and the body's length"
        )
    return length


def _parse_json(text: bytes) -> dict:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        message = str(error) if not isinstance(error, RecursionError) else "nested too deeply"
        raise BadRequest(f"request body is not valid JSON: {message}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"request body must be a JSON object with 'inputs', got {_kind(document)}")
    return document


def _decode_inputs(entries: Any, binary: memoryview, has_binary_section: bool) -> dict[str, np.ndarray]:
    if not isinstance(entries, list) or not entries:
        raise BadRequest(f"'inputs' must be a non-empty array of tensors, got {_kind(entries)}")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadRequest(f"each entry of 'inputs' must be an object, got {_kind(entry)}")
        header = tensor_header(entry.get("name"), entry.get("datatype"), entry.get("shape"))
        if header.name in inputs:
            raise BadRequest(f"input '{header.name}' is given twice; each input must appear once")
        size = _binary_size(header, entry.get("parameters"))
        if size is None:
            inputs[header.name] = _json_tensor(header, entry)
            continue
        if not has_binary_section:
            raise BadRequest(
                f"input '{header.name}' has parameters.binary_data_size but the request has no "
                f"{HEADER_LENGTH} header saying where the JSON ends"
            )
        if offset + size > len(binary):
            raise BadRequest(
                f"input '{header.name}' says binary_data_size {size} but only {len(binary) - offset} "
                "byte(s) of binary data remain after the JSON"
            )
        inputs[header.name] = array_from_raw(header, binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise BadRequest(
            f"the body has {len(binary) - offset} byte(s) of binary data after the JSON that no input's "
            "binary_data_size accounts for"
        )
    return inputs


def _binary_size(header: TensorHeader, parameters: Any) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BadRequest(f"input '{header.name}' has 'parameters' of {_kind(parameters)}; expected an object")
    if "shared_memory_region" in parameters:
        raise BadRequest(f"input '{header.name}' uses shared memory, which this server does not offer")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not _is_integer(size) or size < 0:
        raise BadRequest(f"input '{header.name}' has binary_data_size {size!r}; expected an integer >= 0")
    return int(size)


def _json_tensor(header: TensorHeader, entry: dict) -> np.ndarray:
    if "data" not in entry:
        raise BadRequest(
            f"input '{header.name}' has no 'data' and no parameters.binary_data_size; "
            "expected its values in 'data' or as binary data after the JSON"
        )
    return array_from_json(header, entry["data"])


def _decode_requested_outputs(
    entries: Any, parameters: Mapping[str, Any], all_outputs: tuple[str, ...]
) -> tuple[list[str] | None, set[str]]:
    """Requested output names (None: all) and which of them go back as binary data."""
    all_binary = parameters.get("binary_data_output", False)
    if not isinstance(all_binary, bool):
        raise BadRequest(f"parameter 'binary_data_output' must be true or false, got {all_binary!r}")
    if entries is None:
        return None, set(all_outputs) if all_binary else set()
    if not isinstance(entries, list):
        raise BadRequest(f"'outputs' must be an array of {{\"name\": ...}} objects, got {_kind(entries)}")
    names: list[str] = []
    binary: set[str] = set()
    for entry in entries:
        name, is_binary = _requested_output(entry, all_binary)
        if name in names:
            raise BadRequest(f"output '{name}' is requested twice")
        names.append(name)
        if is_binary:
            binary.add(name)
    return names, binary


def _requested_output(entry: Any, all_binary: bool) -> tuple[str, bool]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise BadRequest(f"each entry of 'outputs' must be an object with a 'name' string, got {entry!r}")
    name = entry["name"]
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"output '{name}' has 'parameters' of {_kind(parameters)}; expected an object")
    if parameters.get("classification", 0) not in (0, None):
        raise BadRequest(f"output '{name}' asks for classification, which this server does not offer")
    if "shared_memory_region" in parameters:
        raise BadRequest(f"output '{name}' asks for shared memory, which this server does not offer")
    is_binary = parameters.get("binary_data", all_binary)
    if not isinstance(is_binary, bool):
        raise BadRequest(f"output '{name}' has binary_data {is_binary!r}; expected true or false")
    return name, is_binary


# --- HTTP response ------------------------------------------------------------------------------


def encode_http_response(response: InferResponse, request: InferRequest) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the length of its JSON part.

    Outputs appear in the order requested (else the order the dispatcher returned them); binary
    blobs follow the JSON in that same order, as tritonclient reads them.
    """
    names = _output_order(response, request)
    binary_names = request.binary_outputs
    outputs = []
    blobs: list[bytes] = []
    for name in names:
        array = np.asarray(response.outputs[name])
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of_array(array), "shape": list(array.shape)}
        if name in binary_names:
            blob = raw_from_array(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(name, array)
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        document["id"] = response.id
    if response.pool is not None:
        document["parameters"] = {"pool": response.pool}
    # orjson writes numeric arrays straight from numpy (float32 in its own shortest form, which reads
    # back to the same float32); NaN and infinities, which JSON has no numbers for, become null
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _output_order(response: InferResponse, request: InferRequest) -> list[str]:
    if request.requested_outputs is None:
        return list(response.outputs)
    missing = [name for name in request.requested_outputs if name not in response.outputs]
    if missing:
        raise InternalError(f"the model returned no output(s) {missing}; it returned {list(response.outputs)}")
    return list(request.requested_outputs)


def _json_data(name: str, array: np.ndarray) -> np.ndarray | list:
    if array.dtype != object and array.dtype.kind not in "SU":
        # a flat, C-ordered, native-endian array: what orjson serializes without a Python object per value
        return np.ascontiguousarray(array.reshape(-1), dtype=array.dtype.newbyteorder("="))
    flat = array.reshape(-1)
    try:
        return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in flat]
    except UnicodeDecodeError:
        raise BadRequest(
            f"output '{name}' holds bytes that are not UTF-8 text; request it with binary_data: true"
        ) from None
