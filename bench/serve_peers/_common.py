"""What every peer server in bench/serve_load.py shares: its settings (from HWFIT_BENCH_* environment
variables, so a peer's own command line stays its own), the ONNX Runtime session they all run, and
the KServe v2 JSON decoding and encoding the peers without a native KServe front end use.

Runs inside each peer's own virtual environment: imports only the standard library, numpy and
onnxruntime.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

import numpy as np

DATATYPE_TO_NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP16": np.float16}


@dataclass(frozen=True)
class PeerSettings:
    onnx_path: str
    model_name: str
    host: str
    port: int
    threads: int
    max_batch_size: int
    batch_delay_ms: float
    timeout_s: float


def settings() -> PeerSettings:
    env = os.environ
    return PeerSettings(
        onnx_path=env["HWFIT_BENCH_ONNX"],
        model_name=env.get("HWFIT_BENCH_MODEL", "minilm"),
        host="127.0.0.1",
        port=int(env["HWFIT_BENCH_PORT"]),
        threads=int(env["HWFIT_BENCH_THREADS"]),
        max_batch_size=int(env["HWFIT_BENCH_MAX_BATCH"]),
        batch_delay_ms=float(env["HWFIT_BENCH_DELAY_MS"]),
        timeout_s=float(env.get("HWFIT_BENCH_TIMEOUT_S", "30")),
    )


def make_session(config: PeerSettings):
    """The one ORT configuration every server and the raw backend use: CPU EP, fp32, `threads`
    intra-op threads, sequential execution (so inter-op adds no threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(config.onnx_path, options, providers=["CPUExecutionProvider"])


def io_names(session) -> tuple[list[str], str]:
    return [i.name for i in session.get_inputs()], session.get_outputs()[0].name


def decode_kserve_json(body: dict) -> dict[str, np.ndarray]:
    """{"inputs": [{"name", "shape", "datatype", "data"}]} -> arrays (shape [1, seq] each)."""
    arrays = {}
    for tensor in body["inputs"]:
        dtype = DATATYPE_TO_NUMPY[tensor["datatype"]]
        arrays[tensor["name"]] = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
    return arrays


def encode_kserve_json(model_name: str, output_name: str, output: np.ndarray) -> dict:
    return {
        "model_name": model_name,
        "outputs": [
            {"name": output_name, "datatype": "FP32", "shape": list(output.shape), "data": output.ravel().tolist()}
        ],
    }


def run_batch(
    session, input_names: list[str], output_name: str, requests: list[dict[str, np.ndarray]]
) -> list[np.ndarray]:
    """Run one batch made of single-sample requests; one (1, dim) output per request, in order."""
    feed = {name: np.concatenate([request[name] for request in requests], axis=0) for name in input_names}
    output = session.run([output_name], feed)[0]
    return [output[i : i + 1] for i in range(len(requests))]


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `with`/`finally` blocks stop the peer's own children."""

    def handler(signum, frame):
        raise SystemExit(f"{os.path.basename(sys.argv[0])}: SIGTERM")

    signal.signal(signal.SIGTERM, handler)
