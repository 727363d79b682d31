"""Build what bench/gpu_check.sh carries to a bare GPU machine (Python 3.12 + CUDA PyTorch, no
network): the wheels of hwfit's pure-Python and small binary dependencies for CPython 3.12 on
manylinux x86_64, and an hwfit cache holding the CNN's trained weights and digits split (so the
machine needs neither scikit-learn nor scipy). Everything lands in bench/.gpu-carry/ (git-ignored),
which must stay under the 64 MiB a device call carries.

    python bench/gpu_carry.py            # build (downloads wheels; needs the network here)
    python bench/gpu_carry.py --check    # only print the table of what is there and its size

Left out, each for a reason printed in the table: torch and its own dependencies (the machine has
them), onnxruntime (28 MiB: ONNX Runtime's CPU build; the GPU build is 243 MiB), scikit-learn and
scipy (44 MiB; replaced by the carried cache), the MiniLM weights and sentence-transformers.
sympy (onnxscript's onnx-ir needs it) is carried although torch brings it: a torch may come without.
Runs on Python 3.11+ (tomllib).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / "bench" / ".gpu-carry"
LIMIT_BYTES = 64 * 1024 * 1024
TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]
# Beyond hwfit's own dependencies: the test runner, torch.onnx's exporter (the CNN and ResNet-50
# are exported to ONNX to count their FLOPs) and setuptools to build hwfit itself offline.
EXTRA = ["pytest>=8", "pytest-timeout>=2.2", "onnxscript>=0.2", "setuptools>=68"]
LEFT_OUT = {
    "onnxruntime": "28 MiB (CPU build; the GPU build is 243 MiB): ONNX Runtime variants skip with that reason",
    "torch": "the machine's own CUDA build is used (venv with --system-site-packages)",
}


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *EXTRA]


def download(target: Path) -> None:
    wheels = target / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), *TARGET, *platforms, *requirements()]
    subprocess.run(command, check=True)


def build_cache(target: Path) -> None:
    """Train the CNN into a fresh cache, then keep only its weights and split (the rest is rebuilt)."""
    cache = target / "hwfit-cache"
    shutil.rmtree(cache, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "HWFIT_CACHE": scratch}
        code = "from hwfit.models import load_model; load_model('cnn')"
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        (cache / "builtins").mkdir(parents=True)
        for path in (Path(scratch) / "builtins").glob("*"):
            if path.name.startswith(("cnn-digits-", "digits-split-")):
                shutil.copy2(path, cache / "builtins" / path.name)


def table(target: Path) -> int:
    files = sorted((p for p in target.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
    total = sum(p.stat().st_size for p in files)
    print(f"| file (under {target.relative_to(ROOT)}) | MiB |\n|---|---:|")
    for path in files:
        print(f"| {path.relative_to(target)} | {path.stat().st_size / 2**20:.2f} |")
    print(f"| **total ({len(files)} files)** | **{total / 2**20:.2f}** (limit {LIMIT_BYTES / 2**20:.0f}) |")
    print("\nleft out:")
    for name, why in LEFT_OUT.items():
        print(f"- {name}: {why}")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report what is in bench/.gpu-carry")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(CARRY / "wheels", ignore_errors=True)
        download(CARRY)
        build_cache(CARRY)
    total = table(CARRY)
    if total > LIMIT_BYTES:
        print(f"error: {total / 2**20:.1f} MiB is over the {LIMIT_BYTES / 2**20:.0f} MiB a device call carries")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
