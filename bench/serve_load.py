"""hwfit serve against the real peers — PyTriton (Triton's C++ core), Ray Serve, Mosec, LitServe —
and against the raw backend, on the same model, the same machine, in one run.

Every server runs the same ONNX file (the built-in MiniLM encoder) with ONNX Runtime fp32 on the
CPU, the same intra-op threads, one worker, and its own native dynamic batching set to the same
max batch size and batching delay. Each runs in its own process and virtual environment (made once
under bench/.venvs/, reused after), one server at a time, and is torn down after its turn. The load
generator (bench/_load.py) is a process of its own: open loop at fixed Poisson rates (latency from
the scheduled send time, late sends counted) and closed loop at fixed concurrency, KServe v2 JSON
(and the binary tensor extension where the server has it), to 127.0.0.1 only.

    python bench/serve_load.py --quick               # smoke run, < 2 min
    python bench/serve_load.py [--json out.json] [--md out.md] [--only hwfit,pytriton]
    python bench/serve_load.py --only hwfit --baseline-tree ../old --ab-rounds 2   # A/B of two commits

With --baseline-tree, each hwfit row also runs from another checkout of hwfit (its server imports
that tree; the load generator, the raw backend and the payloads stay this tree's), in ABBA order
over --ab-rounds rounds, so that the machine's drift falls on both sides.

A peer that fails to install, start or answer correctly stays in the tables as a row with the reason.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS_DIR = BENCH / "serve_peers"
VENVS = BENCH / ".venvs"
try:
    import hwfit  # noqa: F401 - only checks that hwfit is installed; else the checkout is put on sys.path
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from _load import LATE_MS  # noqa: E402 - bench/ is sys.path[0] only once the install check above has run

# Triton's core inside PyTriton loads the system libpython: its venv must use Debian's own python.
SYSTEM_PYTHON = "/usr/bin/python3"
ORT_VERSION = importlib.metadata.version("onnxruntime")  # every peer gets the raw backend's ORT


class PeerUnavailable(Exception):
    """A peer that could not be installed, started, or did not answer correctly: kept as a row."""


@dataclass(frozen=True)
class Peer:
    name: str
    packages: tuple[str, ...]  # its venv's packages, besides onnxruntime and numpy; () = main venv
    base_python: str  # interpreter its venv is made with
    script: str | None  # bench/serve_peers/<script>; None for hwfit (`hwfit serve`, see hwfit_command)
    path: str  # the infer URL's path; {model} is the model name
    binary: bool  # speaks the KServe v2 binary tensor extension
    startup_s: float
    batching: str  # how its native batching was set, for the notes
    kind: str = ""  # which server it is (hwfit, hwfit-default, ...); the name when empty
    tree: Path | None = None  # hwfit only: run the server from this checkout (an A/B of two commits)

    @property
    def server(self) -> str:
        return self.kind or self.name


def peer_table(model: str) -> list[Peer]:
    pyenv_python = getattr(sys, "_base_executable", sys.executable)
    infer = f"/v2/models/{model}/infer"
    return [
        Peer(
            "hwfit",
            (),
            sys.executable,
            None,
            infer,
            True,
            90,
            "plan pool: max_batch_size, max_queue_delay_ms; result cache off",
        ),
        Peer(
            "hwfit-default",
            (),
            sys.executable,
            None,
            infer,
            True,
            180,
            "no plan: `hwfit serve MODEL`, its start-up search chose layout and max batch; result cache off",
        ),
        Peer(
            "pytriton",
            ("nvidia-pytriton",),
            SYSTEM_PYTHON,
            "pytriton_peer.py",
            infer,
            True,
            120,
            "Triton dynamic_batching: max_batch_size, max_queue_delay_microseconds",
        ),
        Peer(
            "ray-serve",
            ("ray[serve]",),
            pyenv_python,
            "ray_peer.py",
            infer,
            False,
            180,
            "@serve.batch(max_batch_size, batch_wait_timeout_s), max_ongoing_requests=256",
        ),
        Peer(
            "mosec",
            ("mosec",),
            pyenv_python,
            "mosec_peer.py",
            "/inference",
            False,
            90,
            "append_worker(max_batch_size, max_wait_time ms, integer >= 1)",
        ),
        Peer(
            "litserve",
            ("litserve",),
            pyenv_python,
            "litserve_peer.py",
            "/predict",
            False,
            90,
            "LitAPI(max_batch_size, batch_timeout), 1 API server, 1 worker",
        ),
    ]


@dataclass
class Settings:
    quick: bool
    threads: int
    max_batch_size: int
    batch_delay_ms: float
    seq_len: int
    samples: int
    rates: list[float]
    concurrency: int
    warmup_s: float
    window_s: float
    drain_s: float
    timeout_s: float
    raw_warmup_s: float
    raw_window_s: float
    max_in_flight: int = 512
    model: str = "minilm"
    single_client: bool = True  # also a closed loop of 1 client (JSON and binary): the added latency
    raw_layout_batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # the raw layouts hwfit-default is held to


@dataclass
class Payloads:
    onnx_path: Path
    input_names: list[str]
    output_name: str
    arrays: dict[str, np.ndarray]  # (samples, seq) each
    json_bodies: list[bytes]
    binary_bodies: list[bytes]
    binary_header_lengths: list[int]
    reference: np.ndarray  # (samples, dim): the raw session's outputs, to check every server


@dataclass
class PeerResult:
    name: str
    status: str = "ok"  # ok | failed | skipped
    reason: str = ""
    version: str = ""
    startup_s: float | None = None
    check: str = ""
    runs: dict[str, dict] = field(default_factory=dict)
    teardown: str = ""
    turn_s: float | None = None  # its whole turn: venv check, start, answers check, load runs, teardown
    chose: str = ""  # hwfit-default: the layout and max batch its start-up search chose, from its log


# --- payloads and the reference ---------------------------------------------------------------


def make_payloads(settings: Settings) -> Payloads:
    """Real sentences tokenized by the model's own tokenizer, cut to `seq_len` tokens (only padding
    is cut: checked), one request per sentence; and the raw session's output for each."""
    import onnxruntime as ort

    from hwfit.models import load_model

    model = load_model(settings.model)
    onnx_path = model.onnx_path()
    inputs, kind = model.sample_inputs(settings.samples)
    if not kind.startswith("real"):
        raise SystemExit(f"{settings.model}: expected real sentences as inputs, got {kind}")
    if "attention_mask" in inputs and inputs["attention_mask"][:, settings.seq_len :].any():
        raise SystemExit(
            f"--seq {settings.seq_len} would cut real tokens; the longest sentence has "
            f"{int(inputs['attention_mask'].sum(1).max())}"
        )
    arrays = {name: np.ascontiguousarray(array[:, : settings.seq_len]) for name, array in inputs.items()}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_name = session.get_outputs()[0].name
    reference = session.run([output_name], {name: arrays[name] for name in input_names})[0]

    json_bodies, binary_bodies, header_lengths = [], [], []
    for row in range(settings.samples):
        tensors = [(name, arrays[name][row : row + 1]) for name in input_names]
        json_bodies.append(
            json.dumps(
                {
                    "inputs": [
                        {"name": name, "shape": list(t.shape), "datatype": "INT64", "data": t.ravel().tolist()}
                        for name, t in tensors
                    ]
                }
            ).encode()
        )
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": name,
                        "shape": list(t.shape),
                        "datatype": "INT64",
                        "parameters": {"binary_data_size": t.nbytes},
                    }
                    for name, t in tensors
                ],
                "outputs": [{"name": output_name, "parameters": {"binary_data": True}}],
            }
        ).encode()
        binary_bodies.append(header + b"".join(t.tobytes() for _, t in tensors))
        header_lengths.append(len(header))
    return Payloads(onnx_path, input_names, output_name, arrays, json_bodies, binary_bodies, header_lengths, reference)


def binary_headers(header_length: int) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(header_length)}


JSON_HEADERS = {"Content-Type": "application/json"}


# --- loopback HTTP for readiness and the correctness check -----------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes, dict]:
    assert url.startswith("http://127.0.0.1:"), url
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def decode_output(raw: bytes, headers: dict) -> np.ndarray:
    """The first output of a KServe v2 response, JSON or binary-extension."""
    header_length = {k.lower(): v for k, v in headers.items()}.get("inference-header-content-length")
    if header_length is None:
        header, binary = json.loads(raw), b""
    else:
        header, binary = json.loads(raw[: int(header_length)]), raw[int(header_length) :]
    output = header["outputs"][0]
    if "data" in output:
        return np.asarray(output["data"], dtype=np.float32).reshape(-1)
    return np.frombuffer(binary[: output["parameters"]["binary_data_size"]], dtype=np.float32).copy()


def wait_ready(process, url: str, payloads: Payloads, timeout_s: float, log_path: Path) -> float:
    """Poll with a real inference request until it answers 200; the seconds it took."""
    started = time.perf_counter()
    last = "no answer"
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise PeerUnavailable(f"exited with status {process.returncode} while starting: {log_tail(log_path)}")
        try:
            status, raw, _ = post(url, payloads.json_bodies[0], JSON_HEADERS, timeout_s=10)
            if status == 200:
                return time.perf_counter() - started
            last = f"HTTP {status}: {raw[:200]!r}"
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(0.5)
    raise PeerUnavailable(f"not ready after {timeout_s:.0f} s (last: {last}); log: {log_tail(log_path)}")


def check_answers(url: str, payloads: Payloads, binary: bool, count: int) -> str:
    """Send the first `count` payloads once, one at a time; every answer must match the raw
    session's output."""
    worst = 0.0
    count = min(count, len(payloads.json_bodies))
    for row in range(count):
        if binary:
            body, headers = payloads.binary_bodies[row], binary_headers(payloads.binary_header_lengths[row])
        else:
            body, headers = payloads.json_bodies[row], JSON_HEADERS
        status, raw, response_headers = post(url, body, headers, timeout_s=30)
        if status != 200:
            kind = "binary" if binary else "JSON"
            raise PeerUnavailable(f"{kind} request {row} answered HTTP {status}: {raw[:300]!r}")
        try:
            output = decode_output(raw, response_headers)
        except (ValueError, KeyError, IndexError) as error:
            raise PeerUnavailable(f"answer {row} is not a KServe v2 response ({error}): {raw[:200]!r}") from None
        expected = payloads.reference[row]
        if output.shape != expected.shape:
            raise PeerUnavailable(f"answer {row} has {output.size} values, expected {expected.size}")
        worst = max(worst, float(np.abs(output - expected).max()))
    if worst > 1e-3:
        raise PeerUnavailable(f"answers differ from the raw session by up to {worst:.2g} (limit 1e-3)")
    return f"{count} answers match (max abs diff {worst:.1e})"


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A free pair of loopback ports (port, port + 1: Triton's gRPC takes the second)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65535:
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free pair of loopback ports")


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip()[:200] for line in text[-lines:]) or "(empty log)"


def stop_process_tree(process: subprocess.Popen, grace_s: float = 10.0) -> str:
    """SIGINT the leader, as Ctrl-C would (every peer stops its own children on it), and wait up
    to grace_s; then SIGTERM, and after 3 s SIGKILL, what is left of its process group and of every
    descendant seen (some servers start theirs in new sessions). Returns "clean" or what had to be
    SIGKILLed."""
    import psutil

    seen: dict[int, psutil.Process] = {}

    def remember() -> None:
        try:
            seen.update({p.pid: p for p in psutil.Process(process.pid).children(recursive=True)})
        except psutil.NoSuchProcess:
            pass

    def left() -> list:
        return [p for p in seen.values() if _running(p)] + ([process] if process.poll() is None else [])

    def wait_until_gone(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while left() and time.monotonic() < deadline:
            remember()
            time.sleep(0.1)

    remember()
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while process.poll() is None and time.monotonic() < deadline:
            remember()
            time.sleep(0.1)
    killed = []
    for signum, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        survivors = left()
        if not survivors:
            break
        if signum == signal.SIGKILL:
            killed = [_describe(p, process) for p in survivors]
        _signal_group(process.pid, signum)
        for p in survivors:
            _send(p, signum)
        wait_until_gone(wait_s)
    process.wait()
    _signal_group(process.pid, signal.SIGKILL)  # anything double-forked into the group
    return f"SIGKILLed {', '.join(killed)}" if killed else "clean"


def _describe(p, leader: subprocess.Popen) -> str:
    if p is leader:
        return f"leader[{p.pid}]"
    try:
        return f"{p.name()}[{p.pid}]"
    except Exception:  # gone meanwhile
        return f"?[{p.pid}]"


def _running(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _send(p, signum) -> None:
    try:
        p.send_signal(signum)
    except Exception:  # psutil.NoSuchProcess, or a Popen already reaped
        pass


def _signal_group(pgid: int, signum) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def peer_env(
    settings: Settings, payloads: Payloads, port: int, threads: int | None = None, tree: Path | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HWFIT_BENCH_ONNX": str(payloads.onnx_path),
            "HWFIT_BENCH_MODEL": settings.model,
            "HWFIT_BENCH_PORT": str(port),
            "HWFIT_BENCH_THREADS": str(threads or settings.threads),
            "HWFIT_BENCH_MAX_BATCH": str(settings.max_batch_size),
            "HWFIT_BENCH_DELAY_MS": str(settings.batch_delay_ms),
            "HWFIT_BENCH_TIMEOUT_S": str(settings.timeout_s),
            "PYTHONPATH": str(PEERS_DIR) if tree is None else f"{tree}{os.pathsep}{PEERS_DIR}",
            "PYTHONUNBUFFERED": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
            "OMP_NUM_THREADS": str(threads or settings.threads),
        }
    )
    env.pop("VIRTUAL_ENV", None)
    return env


# --- peer environments --------------------------------------------------------------------------


def ensure_venv(peer: Peer) -> Path:
    """The peer's venv python: made once under bench/.venvs/<name>, reused while its stamp matches."""
    venv = VENVS / peer.name
    python = venv / "bin" / "python"
    wanted = {"base_python": peer.base_python, "packages": [*peer.packages, f"onnxruntime=={ORT_VERSION}", "numpy"]}
    stamp = venv / ".hwfit-bench.json"
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        print(f"  {peer.name}: reusing {venv.relative_to(ROOT)}", flush=True)
        return python
    if not Path(peer.base_python).exists():
        raise PeerUnavailable(f"needs {peer.base_python} to make its venv, and it is not there")
    print(
        f"  {peer.name}: making {venv.relative_to(ROOT)} with {peer.base_python}: "
        f"pip install {' '.join(wanted['packages'])} (once; reused on the next run)",
        flush=True,
    )
    VENVS.mkdir(parents=True, exist_ok=True)
    log = VENVS / f"{peer.name}-install.log"
    with open(log, "wb") as out:
        for command in (
            [peer.base_python, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", *wanted["packages"]],
        ):
            try:
                code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=1200).returncode
            except subprocess.TimeoutExpired:
                raise PeerUnavailable(f"`{' '.join(command)}` took over 20 min; see {log}") from None
            if code != 0:
                raise PeerUnavailable(f"`{' '.join(command)}` failed ({code}): {log_tail(log, 3)}")
    stamp.write_text(json.dumps(wanted))
    return python


def package_version(python: Path | str, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "?"
    return out.stdout.strip() or "?"


# --- the hwfit server --------------------------------------------------------------------------


def hwfit_unavailable() -> str | None:
    """Why hwfit's server cannot be benched yet, or None. (Importing starts nothing.)"""
    try:
        import hwfit.serve.frontend.server  # noqa: F401 - importable is all that is asked
        import hwfit.serve.scheduler.dispatcher  # noqa: F401 - importable is all that is asked
    except Exception as error:  # ImportError, or a half-written module
        return f"hwfit.serve.frontend.server is not importable yet ({type(error).__name__}: {error})"
    return None


def hwfit_plan(settings: Settings, payloads: Payloads, raw_rows: list[dict], folder: Path) -> Path:
    """A one-pool plan with the same variant and batching as the peers: ORT fp32 on the CPU,
    `threads` threads, one replica; service_ms from the raw backend measured in this run."""
    from hwfit.models import load_model
    from hwfit.plan.schema import parse_plan

    model = load_model(str(payloads.onnx_path))
    service_ms = {row["batch_size"]: round(row["p50_ms"], 3) for row in raw_rows} or {1: 10.0}
    best = max((row["samples_per_s"] for row in raw_rows), default=1.0)
    expected = {"rate_rps": 0.0, "capacity_rps": round(best, 1), "how": "raw backend, measured in this run"}
    variant = f"ort/cpu/fp32/b{settings.max_batch_size}/t{settings.threads}"
    fields = {
        "schema": "hwfit.plan/1",
        "model": {"name": settings.model, "source": str(payloads.onnx_path), "hash": model.content_hash},
        # generous targets: this compares serving overhead, not hwfit's admission control
        "slo": {
            "latency_p99_ms": 60_000.0,
            "throughput_rps": 1.0,
            "objective": "throughput",
            "devices": {"cpu": {"count": 1}},
        },
        "feasible": True,
        "pools": [
            {
                "name": "cpu-ort-fp32",
                "role": "primary",
                "variant": variant,
                "backend": "ort",
                "device": "cpu",
                "precision": "fp32",
                "threads": settings.threads,
                "devices": 1,
                "replicas_per_device": 1,
                "max_batch_size": settings.max_batch_size,
                "max_queue_delay_ms": settings.batch_delay_ms,
                "service_ms": service_ms,
                "expected": expected,
                "measured_from": [variant],
            }
        ],
        "fallback": ["cpu-ort-fp32"],
        "answer": "bench/serve_load.py: one ORT fp32 CPU worker, batching as every peer's",
        "search": {"grid_size": 1, "measured": 0, "reused": 0, "method": "bench/serve_load.py"},
    }
    parse_plan(fields, source="serve_load plan")  # checked by this tree's schema
    # written as given, with no field left at its default, so that an older hwfit (--baseline-tree) reads it too
    path = folder / "hwfit-bench-plan.yaml"
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


def default_choice(log_path: Path) -> str:
    """What `hwfit serve MODEL`'s start-up search chose, from its start-up line (wrapped by the console)."""
    import re

    text = " ".join(log_path.read_text(errors="replace").split())
    found = re.search(r"CPU, (\d+ replicas? x \d+ threads?), max batch (\d+)", text)
    if found is None:
        return "?"
    safe = " (safe layout: too slow to search)" if "a safe layout, not a searched one" in text else ""
    return f"{found.group(1)}, max batch {found.group(2)}{safe}"


def hwfit_base() -> list[str]:
    """The `hwfit` command of this venv (or the CLI through python where the script is missing)."""
    script = Path(sys.executable).parent / "hwfit"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from hwfit.cli import main; main()"]


def tree_version(tree: Path | None) -> str:
    """hwfit's version, and for another checkout its commit."""
    version = importlib.metadata.version("hwfit")
    if tree is None:
        return version
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"{version} from {tree.name} at {commit.stdout.strip() or 'an unknown commit'}"


def ab_peers(peers: list[Peer], tree: Path, rounds: int) -> list[Peer]:
    """Each hwfit peer run from `tree` (base) and from this checkout, ABBA over `rounds`; other peers once, first."""
    if not (tree / "hwfit" / "__init__.py").exists():
        raise SystemExit(f"--baseline-tree {tree}: no hwfit package there (expected {tree}/hwfit/__init__.py)")
    others = [p for p in peers if p.server not in ("hwfit", "hwfit-default")]
    ordered = list(others)
    for peer in (p for p in peers if p.server in ("hwfit", "hwfit-default")):
        for index in range(rounds):
            base = replace(peer, name=f"{peer.name}@base#{index + 1}", kind=peer.server, tree=tree)
            new = replace(peer, name=f"{peer.name}#{index + 1}", kind=peer.server)
            ordered += [base, new] if index % 2 == 0 else [new, base]
    return ordered


def hwfit_command(plan_path: Path, port: int) -> tuple[list[str], str]:
    """`hwfit serve PLAN --http-port N` where the command exists, else the same server through its
    Python API (serve_peers/hwfit_peer.py: PlanDispatcher + run_server); and which one it is."""
    base = hwfit_base()
    probe = subprocess.run([*base, "serve", "--help"], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        return [sys.executable, str(PEERS_DIR / "hwfit_peer.py"), str(plan_path)], "API (no `hwfit serve` yet)"
    command = [*base, "serve", str(plan_path), "--http-port", str(port)]
    # --cache-mb 0: the bench cycles the same 64 requests, which a result cache would answer unrun
    for flag, value in (("--grpc-port", str(port + 1)), ("--host", "127.0.0.1"), ("--cache-mb", "0")):
        if flag in probe.stdout:
            command += [flag, value]
    return command, "`hwfit serve`"


# --- running one server -------------------------------------------------------------------------


def raw_backend_command(settings: Settings, inputs: Path, batches) -> list[str]:
    """The raw backend's command line: time `batches` on the saved inputs, each after its warm-up."""
    return [
        sys.executable,
        str(PEERS_DIR / "raw_backend.py"),
        str(inputs),
        "--batches",
        ",".join(map(str, batches)),
        "--warmup",
        str(settings.raw_warmup_s),
        "--window",
        str(settings.raw_window_s),
    ]


def run_raw_backend(settings: Settings, payloads: Payloads, folder: Path) -> list[dict]:
    batches = sorted({1, *[2**k for k in range(1, 12) if 2**k < settings.max_batch_size], settings.max_batch_size})
    inputs = folder / "inputs.npz"
    np.savez(inputs, **payloads.arrays)
    command = raw_backend_command(settings, inputs, batches)
    budget = len(batches) * (settings.raw_warmup_s + settings.raw_window_s) + 60
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=budget,
        env=peer_env(settings, payloads, 0),
        start_new_session=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"raw backend failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["rows"]


def raw_layouts(cores: int) -> list[tuple[int, int]]:
    """(replicas, threads) the raw backend is measured in for the no-plan comparison: one process on
    1..cores threads, and `cores` processes of one thread each, running at once."""
    layouts = [(1, threads) for threads in range(1, cores + 1)]
    if cores > 1:
        layouts.append((cores, 1))
    return layouts


def run_raw_layouts(settings: Settings, payloads: Payloads, folder: Path) -> list[dict]:
    """The raw backend in every layout of `raw_layouts` at batch sizes up to 32: samples/s of all its
    processes together (each one times the same batch sizes for the same windows, started together)."""
    inputs = folder / "inputs.npz"
    np.savez(inputs, **payloads.arrays)
    batches = settings.raw_layout_batches
    rows = []
    for replicas, threads in raw_layouts(os.cpu_count() or 1):
        command = raw_backend_command(settings, inputs, batches)
        budget = len(batches) * (settings.raw_warmup_s + settings.raw_window_s) + 120
        processes = [
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=peer_env(settings, payloads, 0, threads),
                start_new_session=True,
            )
            for _ in range(replicas)
        ]
        outputs = [process.communicate(timeout=budget) for process in processes]
        if any(process.returncode != 0 for process in processes):
            raise RuntimeError(f"raw backend {replicas}x{threads} failed: {outputs[0][1].strip()[-400:]}")
        per_process = [json.loads(out.strip().splitlines()[-1])["rows"] for out, _ in outputs]
        for index, batch in enumerate(batches):
            rows.append(
                {
                    "replicas": replicas,
                    "threads": threads,
                    "batch_size": batch,
                    "p50_ms": max(p[index]["p50_ms"] for p in per_process),
                    "samples_per_s": sum(p[index]["samples_per_s"] for p in per_process),
                }
            )
        print(
            f"  raw {replicas}x{threads}: best {max(r['samples_per_s'] for r in rows[-len(batches) :]):.1f} samples/s"
        )
    return rows


def measure_raw(raw: dict, when: str, settings: Settings, payloads: Payloads, folder: Path) -> None:
    try:
        raw[when] = run_raw_backend(settings, payloads, folder)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        raw["error"] = f"{when}: {error}"


def run_load(spec: dict, folder: Path) -> dict:
    """One measured run of the load generator, in its own process."""
    spec_path = folder / "load-spec.json"
    spec_path.write_text(json.dumps(spec))
    budget = spec["warmup_s"] + spec["window_s"] + spec["drain_s"] + 60
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "_load.py"), str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        stop_process_tree(process, grace_s=1)
        return {"error": f"load generator ran past {budget:.0f} s"}
    finally:
        if process.poll() is None:
            stop_process_tree(process, grace_s=1)
    if process.returncode != 0:
        return {"error": f"load generator failed: {stderr.strip()[-400:]}"}
    return json.loads(stdout.strip().splitlines()[-1])


def load_modes(settings: Settings) -> list[tuple[str, dict]]:
    modes = [(f"open-{rate:g}", {"mode": "open", "rate": rate}) for rate in settings.rates]
    if settings.single_client:
        modes.append(("closed-1", {"mode": "closed", "concurrency": 1}))
    modes.append((f"closed-{settings.concurrency}", {"mode": "closed", "concurrency": settings.concurrency}))
    return modes


OPEN_LOOP_PEERS_SKIP = ("hwfit-default",)  # closed loops only: it runs its own layout, not the peers' settings


def bench_peer(peer: Peer, settings: Settings, payloads: Payloads, raw_rows: list[dict], folder: Path) -> PeerResult:
    """One server's turn: start it, wait until it answers, check its answers, measure every mode,
    tear it down. Whatever goes wrong becomes the row's reason."""
    result = PeerResult(peer.name)
    turn_started = time.perf_counter()
    process = None
    log_path = folder / f"{peer.name}.log"
    try:
        port = free_port()
        command = server_command(peer, settings, payloads, raw_rows, folder, port, result)
        if command is None:
            return result
        print(f"  {peer.name} {result.version}: starting on 127.0.0.1:{port}", flush=True)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env=peer_env(
                    settings, payloads, port, os.cpu_count() if peer.server == "hwfit-default" else None, peer.tree
                ),
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}{peer.path.format(model=settings.model)}"
        result.startup_s = wait_ready(process, url, payloads, peer.startup_s, log_path)
        if peer.server == "hwfit-default":
            result.chose = default_choice(log_path)
        checks = 16 if settings.quick else len(payloads.json_bodies)
        result.check = check_answers(url, payloads, binary=False, count=checks)
        kinds = ["json"]
        if peer.binary:
            try:
                result.check += "; binary: " + check_answers(url, payloads, binary=True, count=checks)
                kinds.append("binary")
            except PeerUnavailable as error:
                result.check += f"; binary extension not benched: {error}"
        for kind in kinds:
            for key, mode in load_modes(settings):
                if kind == "binary" and mode["mode"] == "open":
                    continue  # the binary extension is compared in the closed loop only
                if peer.server in OPEN_LOOP_PEERS_SKIP and mode["mode"] == "open":
                    continue
                if process.poll() is not None:
                    raise PeerUnavailable(f"exited with status {process.returncode} under load: {log_tail(log_path)}")
                name = key if kind == "json" else f"{key}-binary"
                print(f"    {name}: {settings.warmup_s:g} s warm-up + {settings.window_s:g} s window", flush=True)
                result.runs[name] = run_load(load_spec(mode, kind, url, settings, payloads), folder)
    except PeerUnavailable as error:
        result.status, result.reason = "failed", str(error)
    except Exception as error:  # a peer must never take the whole bench down
        result.status, result.reason = "failed", f"{type(error).__name__}: {error}"
    finally:
        if process is not None:
            stopping = time.perf_counter()
            result.teardown = f"{stop_process_tree(process)} in {time.perf_counter() - stopping:.1f} s"
        result.turn_s = time.perf_counter() - turn_started
        if result.status != "ok":
            print(f"  {peer.name}: {result.status}: {result.reason}", flush=True)
    return result


def server_command(
    peer: Peer,
    settings: Settings,
    payloads: Payloads,
    raw_rows: list[dict],
    folder: Path,
    port: int,
    result: PeerResult,
) -> list[str] | None:
    """The command that starts the peer (its venv made if need be); None, with the reason in
    `result`, when it is skipped."""
    if peer.server == "hwfit":
        reason = hwfit_unavailable()
        if reason:
            result.status, result.reason = "skipped", reason
            return None
        command, how = hwfit_command(hwfit_plan(settings, payloads, raw_rows, folder), port)
        result.version = f"{tree_version(peer.tree)} via {how}"
        return command
    if peer.server == "hwfit-default":
        reason = hwfit_unavailable()
        if reason:
            result.status, result.reason = "skipped", reason
            return None
        result.version = f"{tree_version(peer.tree)} via `hwfit serve {settings.model}` (no plan)"
        command = [*hwfit_base(), "serve", settings.model, "--http-port", str(port), "--grpc-port", str(port + 1)]
        return command + ["--host", "127.0.0.1", "--cache-mb", "0"]
    python = ensure_venv(peer)
    result.version = package_version(python, peer.packages[0].split("[")[0])
    return [str(python), str(PEERS_DIR / peer.script)]


def load_spec(mode: dict, kind: str, url: str, settings: Settings, payloads: Payloads) -> dict:
    if kind == "json":
        bodies, headers = payloads.json_bodies, JSON_HEADERS
    else:  # every binary body has the same header length: same names, same shapes
        bodies, headers = payloads.binary_bodies, binary_headers(payloads.binary_header_lengths[0])
    return {
        **mode,
        "url": url,
        "headers": headers,
        "bodies_b64": [base64.b64encode(b).decode() for b in bodies],
        "warmup_s": settings.warmup_s,
        "window_s": settings.window_s,
        "drain_s": settings.drain_s,
        "timeout_s": settings.timeout_s,
        "max_in_flight": settings.max_in_flight,
        "max_requests": 100_000,
        "seed": 0,  # the same Poisson schedule for every server
    }


# --- report -----------------------------------------------------------------------------------


def fmt(value, spec: str = ".1f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def cell(text: str, limit: int = 300) -> str:
    """Text fit for one markdown table cell: no pipes, no newlines, no box drawing, not too long."""
    text = "".join(" " if 0x2500 <= ord(ch) <= 0x257F else ch for ch in str(text))
    text = " ".join(text.replace("|", "/").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def late_cell(run: dict) -> str:
    if run.get("late_sends") is None:
        return "-"
    if not run["late_sends"]:
        return "0"
    return f"{run['late_sends']} (max {run['max_late_ms']:.0f} ms)"


def client_cpu_text(results: list[PeerResult]) -> str:
    """The generator's own CPU per request, measured in every run (its process's CPU time / requests)."""
    runs = [run for r in results for run in r.runs.values() if run.get("client_cpu_ms_per_request") is not None]
    if not runs:
        return "its CPU per request not measured in this run"
    values = sorted(run["client_cpu_ms_per_request"] for run in runs)
    return f"{values[0]:.2f}-{values[-1]:.2f} ms CPU per request over these {len(values)} runs"


def best_raw(raw: dict) -> float | None:
    rows = [*raw.get("before", []), *raw.get("after", [])]
    return max((row["samples_per_s"] for row in rows), default=None)


def report(
    settings: Settings, raw: dict[str, list[dict]], results: list[PeerResult], peers: list[Peer], elapsed_s: float
) -> str:
    best = best_raw(raw)
    lines = [f"# bench/serve_load.py{' --quick (smoke run)' if settings.quick else ''}", ""]
    lines += [
        "## Raw backend (the same ORT session in a loop, no server), before and after the servers",
        "",
        "| batch | before: p50 ms/batch | before: samples/s | after: p50 ms/batch | after: samples/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    after = {row["batch_size"]: row for row in raw.get("after", [])}
    for row in raw.get("before", []):
        later = after.get(row["batch_size"], {})
        lines.append(
            f"| {row['batch_size']} | {row['p50_ms']:.2f} | {row['samples_per_s']:.1f} | "
            f"{fmt(later.get('p50_ms'), '.2f')} | {fmt(later.get('samples_per_s'))} |"
        )
    if raw.get("error"):
        lines.append(f"\nRaw backend failed: {cell(raw['error'])}")
    lines += [
        "",
        f"Best: {fmt(best)} samples/s — the denominator of every `x raw` below. Where before and "
        "after differ much, the machine was not quiet.",
        "",
    ]

    lines += [
        "## Servers",
        "",
        "| server | version | status | ready after s | answers | teardown | turn s |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for r in results:
        status = r.status if r.status == "ok" else cell(f"{r.status}: {r.reason}")
        lines.append(
            f"| {r.name} | {r.version or '-'} | {status} | {fmt(r.startup_s)} | {cell(r.check or '-')} | "
            f"{r.teardown or '-'} | {fmt(r.turn_s, '.0f')} |"
        )
    lines.append("")

    peers_results = [r for r in results if r.name not in OPEN_LOOP_PEERS_SKIP]
    keys = [key for key, _ in load_modes(settings) if key != "closed-1"]
    keys.append(f"closed-{settings.concurrency}-binary")
    for key in keys:
        rows = [(r, r.runs.get(key)) for r in peers_results]
        if key.endswith("-binary") and not any(run for _, run in rows):
            continue
        mode = "open" if key.startswith("open") else "closed"
        title = (
            f"Open loop, Poisson arrivals at {key.split('-')[1]} req/s"
            if mode == "open"
            else f"Closed loop, {settings.concurrency} clients"
            + (", binary tensor extension" if key.endswith("binary") else ", JSON")
        )
        lines += [f"## {title}", ""]
        header = "| server | offered req/s | achieved req/s | p50 ms | p99 ms | errors (rejects) | late sends | x raw |"
        lines += [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r, run in rows:
            if run is None or "error" in run:
                why = (run or {}).get("error") or (f"{r.status} (see Servers)" if r.status != "ok" else "not run")
                if run is None and r.status == "ok" and key.endswith("-binary"):
                    why = "no binary tensor extension"
                lines.append(f"| {r.name} | {cell(why, 120)} | | | | | | |")
                continue
            ratio = run["throughput_rps"] / best if best else None
            lines.append(
                f"| {r.name} | {fmt(run['offered_rps'])} | {run['throughput_rps']:.1f} | {fmt(run['p50_ms'])} | "
                f"{fmt(run['p99_ms'])} | {run['errors']} ({run['rejects']}) | {late_cell(run)} | "
                f"{fmt(ratio, '.2f')}x |"
            )
        lines.append("")

    lines += single_client_section(settings, raw, results)
    lines += default_plan_section(settings, raw, results)
    lines += ["## How these figures were obtained", ""]
    lines += [
        f"- Model: built-in `{settings.model}` ONNX file, ONNX Runtime {ORT_VERSION} fp32, CPU execution "
        f"provider, {settings.threads} intra-op thread(s), sequential executor — the same file, version and "
        "settings in every server and in the raw backend.",
        f"- Requests: {settings.samples} real sentences tokenized by the model's tokenizer, {settings.seq_len} "
        "tokens (padding only cut), one sample per request, cycled in the same order for every server; "
        "KServe v2 JSON bodies (the peers without a KServe front end decode the same body in their handler "
        "and answer the same JSON); binary tensor extension rows only for servers that speak it.",
        f"- Batching: max batch {settings.max_batch_size}, delay {settings.batch_delay_ms:g} ms, one worker, "
        "each server's own batcher: " + "; ".join(f"{p.name}: {p.batching}" for p in peers) + ".",
        "- Before measuring, each server answered requests one at a time (all of them; the first 16 with "
        "--quick) and each answer was compared with the raw session's output (`answers`).",
        f"- Each load run: {settings.warmup_s:g} s warm-up (discarded), then a {settings.window_s:g} s window; "
        f"at most {settings.drain_s:g} s after the window for outstanding answers, then they are cancelled "
        f"and counted as errors; per-request timeout {settings.timeout_s:g} s; at most {settings.max_in_flight} "
        "requests in flight (open loop).",
        "- achieved req/s: 200 answers that ended inside the window / window length. p50/p99: over the 200 "
        "answers to requests scheduled in the window (open loop: timed from the *scheduled* send time, so "
        "queueing is not hidden) or ended in the window (closed loop: from the send). errors: non-200, "
        "timeouts, connection errors, cancelled; rejects: HTTP 429/503. late sends: requests that left "
        f"more than {LATE_MS:g} ms after their scheduled time (open loop).",
        "- x raw: achieved req/s / the raw backend's best samples/s at any batch size up to the max batch, "
        "before or after the servers, in this run "
        f"({settings.raw_warmup_s:g} s warm-up + {settings.raw_window_s:g} s window per batch size; samples/s "
        "= samples run in the window / its wall time).",
        "- One load generator process (bench/_load.py: hwfit.load's asyncio HTTP/1.1 client, as `hwfit load` "
        f"runs it; {client_cpu_text(results)}; keep-alive connections, 127.0.0.1 only) shares the "
        f"machine's {os.cpu_count()} cores with the server under test; servers ran one at a time in the "
        "order listed, each in its own process group and venv, torn down after its turn.",
        f"- Total wall time {elapsed_s:.0f} s.",
    ]
    if settings.quick:
        lines.append("- **Smoke run** (--quick): short windows on a possibly busy machine; not figures to quote.")
    return "\n".join(lines) + "\n"


def raw_single_p50_ms(raw: dict) -> float | None:
    """The raw session's batch-1 p50: the mean of its runs before and after the servers."""
    values = [row["p50_ms"] for when in ("before", "after") for row in raw.get(when, []) if row["batch_size"] == 1]
    return sum(values) / len(values) if values else None


def single_client_section(settings: Settings, raw: dict, results: list[PeerResult]) -> list[str]:
    """One client at a time: each server's p50 and what it adds to the raw session's batch-1 p50."""
    if not settings.single_client:
        return []
    base = raw_single_p50_ms(raw)
    lines = [
        "## One client at a time: the latency each server adds (closed loop, 1 client)",
        "",
        f"added ms = the server's p50 − the raw session's batch-1 p50 ({fmt(base, '.2f')} ms, the mean of its "
        "runs before and after the servers): HTTP, decoding, batching, the trip to the model and back, "
        "encoding. Lowest first.",
        "",
        "| server | JSON p50 ms | JSON added ms | JSON req/s | binary p50 ms | binary added ms | binary req/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def added(run: dict | None) -> float | None:
        if not run or "error" in run or run.get("p50_ms") is None or base is None:
            return None
        return run["p50_ms"] - base

    rows = []
    for r in results:
        json_run, binary_run = r.runs.get("closed-1"), r.runs.get("closed-1-binary")
        if json_run is None and binary_run is None:
            why = f"{r.status} (see Servers)" if r.status != "ok" else "not run"
            rows.append((float("inf"), f"| {r.name} | {cell(why, 120)} | | | | | |"))
            continue

        def cells(run):
            if run is None:
                return ["no binary tensor extension", "", ""]
            if "error" in run:
                return [cell(run["error"], 80), "", ""]
            return [fmt(run["p50_ms"], ".2f"), fmt(added(run), ".2f"), fmt(run["throughput_rps"])]

        name = r.name + (f" ({r.chose})" if r.chose else "")
        rows.append(
            (added(json_run) or float("inf"), f"| {name} | " + " | ".join(cells(json_run) + cells(binary_run)) + " |")
        )
    lines += [row for _, row in sorted(rows, key=lambda item: item[0])]
    return lines + [""]


def default_plan_section(settings: Settings, raw: dict, results: list[PeerResult]) -> list[str]:
    """`hwfit serve MODEL` (no plan) at 32 clients next to the raw backend's best layout."""
    defaults = [r for r in results if r.name.startswith("hwfit-default")]
    layouts = raw.get("layouts") or []
    if not defaults:
        return []
    batches = sorted({row["batch_size"] for row in layouts})
    lines = [
        f"## `hwfit serve {settings.model}` (no plan) at {settings.concurrency} clients, next to the best raw layout",
        "",
        "The raw backend (the same ORT session in a loop, no server) in every layout: samples/s of all its "
        "processes running at once.",
        "",
        "| raw layout | " + " | ".join(f"b{b}" for b in batches) + " |",
        "|---|" + "---:|" * len(batches),
    ]
    for replicas, threads in dict.fromkeys((row["replicas"], row["threads"]) for row in layouts):
        cells = {
            row["batch_size"]: row["samples_per_s"]
            for row in layouts
            if (row["replicas"], row["threads"]) == (replicas, threads)
        }
        lines.append(f"| {replicas}x{threads} | " + " | ".join(fmt(cells.get(b)) for b in batches) + " |")
    best = max(layouts, key=lambda row: row["samples_per_s"], default=None)
    best_text = f"{best['replicas']}x{best['threads']} b{best['batch_size']}" if best else "-"
    lines += [
        "",
        "| server | chose at start-up | JSON req/s | binary req/s | best raw layout | its samples/s "
        "| x best raw (JSON) | x best raw (binary) |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for default in defaults:
        runs = [
            default.runs.get(f"closed-{settings.concurrency}"),
            default.runs.get(f"closed-{settings.concurrency}-binary"),
        ]
        rates = [run["throughput_rps"] if run and "error" not in run else None for run in runs]
        ratios = [rate / best["samples_per_s"] if rate and best else None for rate in rates]
        status = default.chose or (
            default.status if default.status == "ok" else cell(f"{default.status}: {default.reason}", 120)
        )
        lines.append(
            f"| {default.name} | {status} | {fmt(rates[0])} | {fmt(rates[1])} | {best_text} | "
            f"{fmt(best['samples_per_s'] if best else None)} | {fmt(ratios[0], '.2f')}x | {fmt(ratios[1], '.2f')}x |"
        )
    return lines + [""]


def to_json(settings: Settings, raw: dict, results: list[PeerResult]) -> dict:
    return {
        "settings": settings.__dict__,
        "onnxruntime": ORT_VERSION,
        "cpu_count": os.cpu_count(),
        "raw_backend": raw,
        "raw_best_samples_per_s": best_raw(raw),
        "servers": [r.__dict__ for r in results],
    }


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv=None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: one rate, short windows (< 2 min)")
    parser.add_argument("--only", help="comma-separated servers: hwfit,hwfit-default,pytriton,ray-serve,mosec,litserve")
    parser.add_argument("--rates", help="open-loop rates in req/s (default 25,50,100,150; --quick 50)")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients (default 32)")
    parser.add_argument("--window", type=float, help="measured window in s (default 10; --quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up before each window in s (default 3; --quick 1)")
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads in every server (default 1)")
    parser.add_argument("--max-batch", type=int, default=16, help="max batch size in every server (default 16)")
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=2.0,
        help="batching delay in every server, ms (default 2; Mosec takes whole ms >= 1)",
    )
    parser.add_argument("--seq", type=int, default=32, help="tokens per request (default 32)")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout of hwfit: each hwfit row also runs its server from there (A/B of two commits)",
    )
    parser.add_argument(
        "--ab-rounds", type=int, default=1, help="with --baseline-tree: ABBA rounds of base and this tree (default 1)"
    )
    parser.add_argument("--json", type=Path, help="write machine-readable results here")
    parser.add_argument("--md", type=Path, help="also write the printed report here")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.rates:
        rates = [float(rate) for rate in args.rates.split(",")]
    else:
        rates = [50.0] if quick else [25.0, 50.0, 100.0, 150.0]
    settings = Settings(
        quick=quick,
        threads=args.threads,
        max_batch_size=args.max_batch,
        batch_delay_ms=args.delay_ms,
        seq_len=args.seq,
        samples=64,
        rates=rates,
        concurrency=args.concurrency,
        warmup_s=args.warmup if args.warmup is not None else (1.0 if quick else 3.0),
        window_s=args.window if args.window is not None else (2.0 if quick else 10.0),
        drain_s=5.0 if quick else 15.0,
        timeout_s=10.0 if quick else 30.0,
        raw_warmup_s=0.3 if quick else 1.0,
        raw_window_s=1.0 if quick else 4.0,
    )
    return settings, args


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    settings, args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)  # a killed bench still runs its finally blocks
    started = time.perf_counter()
    peers = peer_table(settings.model)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {p.name for p in peers}
        if unknown:
            raise SystemExit(f"--only: unknown server(s) {sorted(unknown)}; known: {[p.name for p in peers]}")
        peers = [p for p in peers if p.name in wanted]
    if args.baseline_tree:
        peers = ab_peers(peers, args.baseline_tree.resolve(), args.ab_rounds)
    folder = Path(tempfile.mkdtemp(prefix="serve_load-"))
    try:
        print(f"payloads: {settings.samples} sentences of {settings.model}, {settings.seq_len} tokens", flush=True)
        payloads = make_payloads(settings)
        print(
            f"raw backend: ORT {ORT_VERSION}, {settings.threads} thread(s), batch 1..{settings.max_batch_size}",
            flush=True,
        )
        raw: dict = {}
        measure_raw(raw, "before", settings, payloads, folder)
        if any(peer.server == "hwfit-default" for peer in peers):
            print("raw backend in every layout (replicas x threads), for `hwfit serve MODEL` (no plan)", flush=True)
            try:
                raw["layouts"] = run_raw_layouts(settings, payloads, folder)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                raw["error"] = f"layouts: {error}"
        results = []
        for peer in peers:
            print(f"{peer.name}:", flush=True)
            results.append(bench_peer(peer, settings, payloads, raw.get("before", []), folder))
        print("raw backend again, after the servers", flush=True)
        measure_raw(raw, "after", settings, payloads, folder)
        text = report(settings, raw, results, peers, time.perf_counter() - started)
        print()
        print(text)
        if args.md:
            args.md.parent.mkdir(parents=True, exist_ok=True)
            args.md.write_text(text)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(to_json(settings, raw, results), indent=2, default=str))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:  # every server and generator was stopped by the finally blocks
        print(f"\ninterrupted ({stop or 'Ctrl-C'}); every server started was stopped", file=sys.stderr)
        sys.exit(130)
