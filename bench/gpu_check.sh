#!/usr/bin/env bash
# `make gpu-check`: everything the MNIST study does on a GPU, in one command, on a CUDA machine.
# Installs only this project over the machine's own torch (pip install --no-deps -e .), then
# bench/gpu_check.py runs the GPU tests (pytest -m gpu), trains the default model for a few
# epochs in float32 and in bfloat16, runs bench/bench_mnist.py on the GPU and writes one JSON
# summary to $OUT/gpu_check.json (default: results/gpu_check/). Budget: under 5 minutes on one
# H100. Without a CUDA GPU it stops with one sentence, before installing or writing anything.
#   PYTHON=python3 MNIST_DIR=/path/to/mnist bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUTDIR=${OUT:-results/gpu_check}

if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
  echo "gpu-check: $PY cannot import torch; run it with the Python that has the machine's CUDA build of PyTorch (PYTHON=...)." >&2
  exit 1
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  echo "gpu-check: PyTorch ($PY) sees no CUDA GPU on this machine; run make gpu-check where one is available." >&2
  exit 1
fi
mkdir -p "$OUTDIR"
# Only the project: its dependencies (torch above all) are the machine's own. No build
# isolation, so nothing is downloaded; if the install fails the checkout is used in place.
if ! "$PY" -m pip install --no-deps --no-build-isolation -q -e . >"$OUTDIR/pip_install.log" 2>&1; then
  echo "gpu-check: pip install --no-deps -e . failed (see $OUTDIR/pip_install.log); using the checkout in place." >&2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" bench/gpu_check.py --out "$OUTDIR" "$@"
