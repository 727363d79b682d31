#!/usr/bin/env bash
# The device check: one command on a bare NVIDIA GPU machine (Python 3.12 with a CUDA PyTorch, no
# network) that installs hwfit from the carried wheels and proves its GPU paths, each step with its
# own time limit inside one overall budget, results under $OUT.
#
#   python bench/gpu_carry.py                 # here, with network: builds bench/.gpu-carry (<= 64 MiB)
#   bash bench/gpu_check.sh                   # there: carry bench/.gpu-carry; results in $OUT
#
# Steps, in order of what they prove (a step past the budget is skipped and says so):
#   install   venv (--system-site-packages: the machine's CUDA torch) + hwfit and its missing
#             dependencies from bench/.gpu-carry/wheels (pip --no-index); the CNN cache copied
#   devices   hwfit devices --json (no CUDA call yet: what the machine has, what is missing, how)
#   cuda      the first CUDA call: torch.cuda on cuda:0; without a GPU the check ends here, exit 3
#   pytest    pytest -m gpu on the files that hold GPU tests (each skips for its own reason)
#   bench     hwfit devices --bench --json: measured bf16/fp16/tf32/fp32/int8 ceilings, h2d/d2h
#   cnn       hwfit profile cnn on torch and torch-compile, cuda:0, fp32/tf32/bf16/fp16
#   resnet50  hwfit profile resnet50 on torch (eager), same precisions
#   serve     hwfit serve of the CNN on torch/cuda:0/fp16, 200 requests, /metrics scraped
#   resnet50-compile  hwfit profile resnet50 on torch-compile (the longest: last)
# Environment: OUT (results; default bench/.gpu-check-out), PYTHON (default python3),
# GPU_CHECK_BUDGET_S (all steps together; default 540), GPU_CHECK_STEPS (a subset, space-separated).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY="$ROOT/bench/.gpu-carry"
OUT=${OUT:-"$ROOT/bench/.gpu-check-out"}
PYTHON=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-540}
STEPS=${GPU_CHECK_STEPS:-"install devices cuda pytest bench cnn resnet50 serve resnet50-compile"}
VENV=${GPU_CHECK_VENV:-"$ROOT/bench/.gpu-venv"}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"
STARTED=$(date +%s)
export HWFIT_CACHE="$OUT/hwfit-cache" HF_HUB_OFFLINE=1 PIP_NO_INPUT=1
# Inductor compiles in hwfit's process with one thread unless told otherwise: a 16-core machine
# compiles ResNet-50's kernels several times faster with a pool (timed runs start after compile).
export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-8}
HWFIT="$VENV/bin/hwfit"
DB="$OUT/results.db"

say() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" >&2; }
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
remaining() { echo $((BUDGET_S - ($(date +%s) - STARTED))); }

{
  echo "# hwfit device check"
  echo
  echo "- started: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "- budget: ${BUDGET_S} s for all steps; steps: ${STEPS}"
  echo
  echo "| step | exit | seconds | limit | log |"
  echo "|---|---:|---:|---:|---|"
} >"$SUMMARY"

# run_step NAME LIMIT_S COMMAND...: run under min(LIMIT_S, what is left of the budget); log to $OUT/NAME.log.
run_step() {
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  local left
  left=$(remaining)
  if ((left < 20)); then
    echo "| $name | skipped | 0 | $limit | budget spent (${left} s left) |" >>"$SUMMARY"
    say "$name: skipped, budget spent"
    return 0
  fi
  ((limit > left)) && limit=$left
  say "$name: up to ${limit} s"
  local t0 rc
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  local took=$(($(date +%s) - t0))
  local note="$name.log"
  ((rc == 124 || rc == 137)) && note="$name.log (timed out)"
  echo "| $name | $rc | $took | $limit | $note |" >>"$SUMMARY"
  say "$name: exit $rc after ${took} s"
  return $rc
}

install_hwfit() {
  [[ -d "$CARRY/wheels" ]] || { echo "no $CARRY/wheels: run python bench/gpu_carry.py where there is network, and carry bench/.gpu-carry"; return 2; }
  "$PYTHON" -c 'import sys; print(sys.version)' || return 2
  "$PYTHON" -m venv --system-site-packages "$VENV" || return 2
  "$VENV/bin/python" -m pip install --no-index --find-links "$CARRY/wheels" -e "$ROOT" \
    "pytest>=8" "pytest-timeout>=2.2" "onnxscript>=0.2" || return 2
  mkdir -p "$HWFIT_CACHE" && cp -r "$CARRY/hwfit-cache/." "$HWFIT_CACHE/"
  "$VENV/bin/python" -m pip list --format=freeze
}

cuda_probe() {
  "$VENV/bin/python" - <<'PY'
import sys
try:
    import torch
except ImportError as error:
    print(f"no GPU: torch is not installed ({error})")
    sys.exit(3)
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}")
if not torch.cuda.is_available():
    print(f"no GPU: torch.cuda.is_available() is False (torch built for CUDA {torch.version.cuda})")
    sys.exit(3)
props = torch.cuda.get_device_properties(0)
x = torch.ones(1024, device="cuda:0")
print(f"cuda:0 {props.name}, compute capability {props.major}.{props.minor}, "
      f"{props.total_memory / 2**30:.1f} GiB; a kernel ran: {float(x.sum())}")
PY
}

gpu_tests() {
  local files
  files=$(cd "$ROOT" && grep -l "mark.gpu" -r tests --include='test_*.py' | sort)
  (cd "$ROOT" && "$VENV/bin/python" -m pytest -m gpu -q -rA -p no:cacheprovider --timeout 150 \
    --continue-on-collection-errors --junitxml "$OUT/pytest-gpu.xml" $files)
}

profile() {
  local model=$1 backends=$2 batches=$3
  cat >"$OUT/sweep-$model-${backends// /-}.yaml" <<YAML
backends: [${backends// /, }]
devices: [cuda:0]
precisions: [fp32, tf32, bf16, fp16]
batch_sizes: [$batches]
budget_s: 2
warmup_s: 1
processes: 1
YAML
  "$HWFIT" profile "$model" --sweep "$OUT/sweep-$model-${backends// /-}.yaml" --db "$DB" --json \
    >"$OUT/profile-$model-${backends// /-}.json"
}

# The steps run under `timeout`, in a child bash: it needs the functions and settings exported.
export ROOT CARRY OUT PYTHON VENV HWFIT DB
export -f install_hwfit cuda_probe gpu_tests profile
cd "$ROOT" || exit 2
run_step install 180 bash -c install_hwfit || { say "install failed: see $OUT/install.log"; exit 2; }
run_step devices 60 bash -c "'$HWFIT' devices --json > '$OUT/devices.json'"
if ! run_step cuda 60 bash -c cuda_probe; then
  { echo; tail -n 1 "$OUT/cuda.log" | sed 's/^/- /'; } >>"$SUMMARY"
  say "$(tail -n 1 "$OUT/cuda.log"): stopping before the GPU steps (exit 3)"
  exit 3
fi
run_step pytest 240 bash -c gpu_tests
run_step bench 150 bash -c "'$HWFIT' devices --bench --json > '$OUT/devices-bench.json'"
run_step cnn 150 bash -c 'profile cnn "torch torch-compile" "1, 256"'
run_step resnet50 120 bash -c 'profile resnet50 torch "1, 64"'
run_step serve 90 "$VENV/bin/python" bench/gpu_serve_check.py --model cnn --variant torch/cuda:0/fp16/b32 \
  --out "$OUT/serve" --hwfit "$HWFIT"
run_step resnet50-compile 240 bash -c 'profile resnet50 torch-compile 64'
{
  echo
  echo "- finished: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - STARTED)) s in all"
  echo "- results: devices.json, devices-bench.json, pytest-gpu.xml, profile-*.json, results.db, serve/"
} >>"$SUMMARY"
say "done: $SUMMARY"
cat "$SUMMARY"
