"""Regenerate the gRPC stubs from grpc_service.proto: `python -m hwfit.serve.frontend.proto.generate`.

Needs grpcio-tools (in the `test` extra). Its bundled protoc decides the protobuf runtime the
stubs need (the `protobuf` pin in pyproject.toml must allow it).

One edit after protoc: the messages are registered in a private descriptor pool, not the default
one. tritonclient registers Triton's own `grpc_service.proto` (package `inference`, the same
message names) in the default pool, and a second file defining those names there makes the
second import fail ("duplicate symbol"); a private pool lets both live in one process (tests,
benches, a user's script). Only the service path `/inference.GRPCInferenceService/...` is on the
wire, so clients see no difference.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "grpc_service.proto"
GENERATED = ("grpc_service_pb2.py", "grpc_service_pb2_grpc.py")
DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
PRIVATE_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on grpc_service.proto into `out_dir`; return the files written."""
    from grpc_tools import protoc  # only needed to regenerate; not a runtime dependency

    # Compile from the repository root so that the _grpc module imports hwfit.serve.frontend.proto.grpc_service_pb2.
    root = HERE.parents[3]
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "protoc",
            f"-I{root}",
            f"--python_out={scratch}",
            f"--grpc_python_out={scratch}",
            str(PROTO.relative_to(root)),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}: {' '.join(args)}")
        written = []
        for name in GENERATED:
            text = (Path(scratch) / PROTO.parent.relative_to(root) / name).read_text()
            if name.endswith("_pb2.py"):
                text = _private_pool(text)
            target = out_dir / name
            target.write_text(text)
            written.append(target)
    return written


def _private_pool(text: str) -> str:
    if text.count(DEFAULT_POOL) != 1:
        raise RuntimeError(f"protoc's output no longer has one `{DEFAULT_POOL}`: update generate.py")
    note = "# hwfit: a private descriptor pool (see hwfit/serve/frontend/proto/generate.py for why)\n"
    return text.replace("DESCRIPTOR = " + DEFAULT_POOL, note + "DESCRIPTOR = " + PRIVATE_POOL)


def main() -> int:
    for path in generate(HERE):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
