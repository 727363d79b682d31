"""What to send and where: the server's URL checked (loopback unless allowed), the model found
(named, or the only one the server lists), and the request bodies built — from the model's
metadata (random data of each input's datatype and shape) or from a file — as KServe v2 JSON or
binary tensors (the binary tensor extension, encoded as tritonclient does)."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np

from hwfit.core import HwfitError
from hwfit.models import parse_shape_overrides

HEADER_LENGTH = "Inference-Header-Content-Length"
# KServe v2 datatypes and their numpy dtypes (BYTES is handled apart: variable-length strings)
DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
NUMPY_TO_DATATYPE = {np.dtype(dtype).name: name for name, dtype in DATATYPES.items()}
# Integer inputs get values in [1, SMALL_INT_HIGH): inside any vocabulary or index range of at
# least that size; masks get ones, type/segment ids zeros.
SMALL_INT_HIGH = 100
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


class LoadError(HwfitError):
    """The load cannot start: a bad URL, a server that cannot be reached or does not serve the
    model, inputs that cannot be built; the message says what to do."""


@dataclass(frozen=True)
class Payload:
    """Prepared requests: POSTed to `url` with `headers`, the bodies cycled; `description` says
    where the inputs came from, `model` how the model was found."""

    url: str
    headers: Mapping[str, str]
    bodies: tuple[bytes, ...]
    description: str
    model: str = ""
    model_how: str = ""


# --- the URL ------------------------------------------------------------------------------------


def check_url(url: str, allow_remote: bool) -> str:
    """The base URL without a trailing slash; a LoadError for anything but http://HOST[:PORT], and for
    a host that is not loopback unless `allow_remote`."""
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname:
        raise LoadError(
            f"URL {url!r}: expected http://HOST:PORT of a KServe v2 server, e.g. http://127.0.0.1:8000 "
            "(https is not supported)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise LoadError(f"URL {url!r}: the port is not a number in 1..65535") from None
    if not allow_remote and not is_loopback(parts.hostname):
        raise LoadError(
            f"URL {url!r}: {parts.hostname} is not a loopback address; hwfit load only sends to this machine "
            "(127.0.0.1, ::1, localhost) unless you pass --allow-remote (allow_remote=True) — "
            "only load a server you are allowed to"
        )
    base = f"http://{parts.netloc}{parts.path}".rstrip("/")
    if "/v2" in parts.path:  # a model's or the infer URL given: the server's base is what precedes /v2
        base = f"http://{parts.netloc}{parts.path[: parts.path.index('/v2')]}".rstrip("/")
    return base


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: not resolved here, so a name never passes for loopback


# --- talking to the server before the load --------------------------------------------------------


def http_json(method: str, url: str, token: str | None, timeout_s: float, body: bytes | None = None):
    """(status, parsed JSON or None) of one request; a LoadError naming what to do when the server
    cannot be reached."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise LoadError(
            f"cannot reach {url}: {reason}; is the server running there? (start one with `hwfit serve MODEL`, "
            "or give its URL)"
        ) from None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def find_model(base_url: str, model: str | None, token: str | None, timeout_s: float) -> tuple[str, str]:
    """(model name, how it was found). Without a name: the only model the server lists, through
    GET /v2/models (a listing some servers offer) or POST /v2/repository/index (Triton's and
    hwfit's repository index)."""
    if model:
        return model, "named with --model"
    listings = (
        ("GET", "/v2/models", None),
        ("POST", "/v2/repository/index", b"{}"),
    )
    tried = []
    for method, path, body in listings:
        status, data = http_json(method, base_url + path, token, timeout_s, body)
        names = _model_names(data) if status == 200 else None
        if names is None:
            tried.append(f"{method} {path}: HTTP {status}")
            continue
        if len(names) == 1:
            return names[0], f"the only model listed by {method} {path}"
        if not names:
            raise LoadError(f"{base_url} lists no models ({method} {path}); is a model loaded? name one with --model")
        raise LoadError(f"{base_url} serves {len(names)} models ({', '.join(names)}); choose one with --model NAME")
    raise LoadError(f"{base_url} does not list its models ({'; '.join(tried)}); name the model with --model NAME")


def _model_names(data) -> list[str] | None:
    """Model names from a listing: {"models": [...]} (names or objects) or a repository index
    [{"name": ...}, ...]; None if the answer is neither."""
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        data = data["models"]
    if not isinstance(data, list):
        return None
    names = []
    for entry in data:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(name, str):
            return None
        if isinstance(entry, dict) and entry.get("state") not in (None, "READY"):
            continue
        names.append(name)
    return list(dict.fromkeys(names))


def model_metadata(base_url: str, model: str, token: str | None, timeout_s: float) -> dict:
    """GET /v2/models/NAME: the model's inputs and outputs; a LoadError naming the model otherwise."""
    status, data = http_json("GET", f"{base_url}/v2/models/{quote(model, safe='')}", token, timeout_s)
    if status == 404:
        raise LoadError(
            f"{base_url} has no model {model!r} (GET /v2/models/{model}: 404"
            + (f": {data['error']}" if isinstance(data, dict) and "error" in data else "")
            + "); check --model"
        )
    if status == 401:
        raise LoadError(f"{base_url} requires a token (HTTP 401); give it with --token")
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise LoadError(
            f"GET {base_url}/v2/models/{model} answered HTTP {status} without KServe v2 model metadata "
            "(an 'inputs' list); is this a KServe v2 server? give inputs with --input FILE instead"
        )
    return data


# --- building the requests ------------------------------------------------------------------------


def shape_overrides(shape: Sequence[str] | Mapping[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """--shape NAME=D,D,... (or a mapping) -> {name: dims}; every dim a positive integer."""
    if not shape:
        return {}
    if isinstance(shape, Mapping):
        parsed = {name: tuple(dims) for name, dims in shape.items()}
    else:
        parsed = parse_shape_overrides([shape] if isinstance(shape, str) else shape)
    for name, dims in parsed.items():
        if not all(isinstance(d, int) and d > 0 for d in dims):
            raise LoadError(f"--shape {name}={','.join(map(str, dims))}: every dimension must be a positive integer")
    return parsed


def tensors_from_metadata(
    metadata: dict, overrides: Mapping[str, tuple[int, ...]], rng: np.random.Generator
) -> dict[str, tuple[str, np.ndarray | list[bytes]]]:
    """{name: (datatype, data)} of one request: each input's shape with -1 dims taken from the
    override or 1, random data of its datatype."""
    names = [entry.get("name") for entry in metadata["inputs"]]
    unknown = set(overrides) - set(names)
    if unknown:
        raise LoadError(f"--shape names {sorted(unknown)}, which the model does not have; its inputs are {names}")
    tensors = {}
    for entry in metadata["inputs"]:
        name, datatype = entry.get("name"), str(entry.get("datatype", "")).upper()
        shape = [int(d) for d in entry.get("shape", [])]
        if name in overrides:
            wanted = overrides[name]
            if len(wanted) != len(shape) or any(d != -1 and d != w for d, w in zip(shape, wanted)):
                raise LoadError(
                    f"--shape {name}={','.join(map(str, wanted))} does not fit the model's shape {shape} "
                    "(same rank; fixed dims must match)"
                )
            shape = list(wanted)
        shape = [1 if d == -1 else d for d in shape]
        tensors[name] = (datatype, random_tensor(name, datatype, tuple(shape), rng))
    return tensors


def random_tensor(name: str, datatype: str, shape: tuple[int, ...], rng: np.random.Generator):
    """Data valid for most models: floats standard normal, ints small (masks ones, type ids zeros),
    bools random, BYTES short strings."""
    if datatype == "BYTES":
        return [b"hwfit load %d" % i for i in range(int(np.prod(shape)))]
    if datatype not in DATATYPES:
        raise LoadError(f"input {name!r} has datatype {datatype!r}; expected one of {', '.join(DATATYPES)} or BYTES")
    dtype = np.dtype(DATATYPES[datatype])
    lowered = name.lower()
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        if "mask" in lowered:
            return np.ones(shape, dtype)
        if "type" in lowered or "segment" in lowered:
            return np.zeros(shape, dtype)
        high = min(SMALL_INT_HIGH, np.iinfo(dtype).max)
        return rng.integers(1, high, size=shape, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def tensors_from_file(path: str | Path) -> dict[str, tuple[str, np.ndarray | list[bytes]]]:
    """One request's inputs from a KServe v2 request JSON ({"inputs": [{name, shape, datatype,
    data}]}) or a .npz of arrays (each array one input, its whole shape)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError) as error:
            raise LoadError(f"--input {str(path)!r}: cannot read it as .npz ({error})") from None
        tensors = {}
        for name, array in arrays.items():
            if array.dtype.name not in NUMPY_TO_DATATYPE:
                raise LoadError(f"--input {str(path)!r}: array {name!r} has dtype {array.dtype}, not a KServe v2 type")
            tensors[name] = (NUMPY_TO_DATATYPE[array.dtype.name], array)
        if not tensors:
            raise LoadError(f"--input {str(path)!r} holds no arrays")
        return tensors
    try:
        request = json.loads(path.read_text())
    except OSError as error:
        raise LoadError(f"--input {str(path)!r}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise LoadError(
            f"--input {str(path)!r} is not JSON ({error}); expected a KServe v2 request or a .npz"
        ) from None
    inputs = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise LoadError(
            f'--input {str(path)!r}: expected a KServe v2 request, {{"inputs": [{{name, shape, datatype, data}}]}}'
        )
    tensors = {}
    for index, entry in enumerate(inputs):
        try:
            name, datatype, shape = entry["name"], str(entry["datatype"]).upper(), [int(d) for d in entry["shape"]]
            data = entry["data"]
        except (KeyError, TypeError, ValueError):
            raise LoadError(f"--input {str(path)!r}: inputs[{index}] needs name, shape, datatype and data") from None
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).ravel()
            tensors[name] = (datatype, [str(v).encode() if not isinstance(v, bytes) else v for v in flat])
            continue
        if datatype not in DATATYPES:
            raise LoadError(f"--input {str(path)!r}: inputs[{index}] datatype {datatype!r} is not a KServe v2 type")
        try:
            tensors[name] = (datatype, np.asarray(data, dtype=DATATYPES[datatype]).reshape(shape))
        except ValueError as error:
            raise LoadError(
                f"--input {str(path)!r}: inputs[{index}] ({name}): data does not fit shape {shape} ({error})"
            ) from None
    return tensors


def json_body(tensors: Mapping[str, tuple[str, object]]) -> bytes:
    inputs = []
    for name, (datatype, data) in tensors.items():
        if datatype == "BYTES":
            values, shape = [v.decode("utf-8", "replace") for v in data], [len(data)]
        else:
            values, shape = data.ravel().tolist(), list(data.shape)
        inputs.append({"name": name, "shape": shape, "datatype": datatype, "data": values})
    return json.dumps({"inputs": inputs}).encode()


def binary_body(tensors: Mapping[str, tuple[str, object]], output_names: Sequence[str]) -> tuple[bytes, int]:
    """The binary tensor extension as tritonclient writes it: a JSON header naming each input's
    `binary_data_size` (and asking for binary outputs), then the raw little-endian bytes in order
    (BYTES: each element prefixed by its 4-byte length). Returns (body, header length)."""
    inputs, blobs = [], []
    for name, (datatype, data) in tensors.items():
        if datatype == "BYTES":
            blob = b"".join(len(v).to_bytes(4, "little") + v for v in data)
            shape = [len(data)]
        else:
            blob, shape = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes(), list(data.shape)
        inputs.append(
            {"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": len(blob)}}
        )
        blobs.append(blob)
    header: dict = {"inputs": inputs}
    if output_names:
        header["outputs"] = [{"name": name, "parameters": {"binary_data": True}} for name in output_names]
    else:
        header["parameters"] = {"binary_data_output": True}
    head = json.dumps(header).encode()
    return head + b"".join(blobs), len(head)


def build_payload(
    url: str,
    model: str | None,
    *,
    binary: bool,
    shape=None,
    input_file: str | Path | None = None,
    token: str | None = None,
    seed: int = 0,
    samples: int = 16,
    allow_remote: bool = False,
    timeout_s: float = 10.0,
) -> Payload:
    """Check the URL, find the model, build `samples` request bodies (one with --input: the file's)."""
    base = check_url(url, allow_remote)
    name, how = find_model(base, model, token, timeout_s)
    metadata = model_metadata(base, name, token, timeout_s)
    if input_file is not None:
        if shape:
            raise LoadError("--shape and --input both given; the file's arrays have their own shapes")
        all_tensors = [tensors_from_file(input_file)]
        description = f"inputs from {input_file}"
    else:
        overrides = shape_overrides(shape)
        rng = np.random.default_rng(seed)
        all_tensors = [tensors_from_metadata(metadata, overrides, rng) for _ in range(max(1, samples))]
        shapes = ", ".join(f"{n} {d} {_shape_of(t)}" for n, (d, t) in all_tensors[0].items())
        description = f"{len(all_tensors)} random request(s) from the model's metadata: {shapes}"
    headers = {"Content-Type": "application/json"}
    if binary:
        outputs = [entry.get("name") for entry in metadata.get("outputs", []) if entry.get("name")]
        encoded = [binary_body(tensors, outputs) for tensors in all_tensors]
        bodies = tuple(body for body, _ in encoded)
        # every body has its own header length; one header per request would mean one Target per body
        if len({length for _, length in encoded}) != 1:
            bodies, encoded = bodies[:1], encoded[:1]
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(encoded[0][1])}
        description += "; binary tensors"
    else:
        bodies = tuple(json_body(tensors) for tensors in all_tensors)
        description += "; JSON tensors"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    infer_url = f"{base}/v2/models/{quote(name, safe='')}/infer"
    return Payload(infer_url, headers, bodies, description, name, how)


def _shape_of(data) -> list[int]:
    return [len(data)] if isinstance(data, list) else list(data.shape)
