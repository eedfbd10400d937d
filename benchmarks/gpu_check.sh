#!/usr/bin/env bash
# Run the benchmark comparison on a GPU machine: ONNX Runtime's CUDA execution
# provider in-process and in TorchServe, PyTorch eager on CUDA, the stock handler on
# CUDA, and batch sizes up to 64. The gpu profile is sized to finish in under
# 8 minutes; the run is stopped after 8 minutes in any case.
#
# Usage: bash benchmarks/gpu_check.sh [extra options for `python -m benchmarks run`]
#
# Needs: the project's environment (`make install`) with onnxruntime replaced by
# onnxruntime-gpu of the same version, an NVIDIA driver, Java 17, and a price model
# archive in model_store/ (built by `make serve`) or --price-dir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
TIME_LIMIT_S="${TIME_LIMIT_S:-480}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "No NVIDIA GPU found (nvidia-smi failed); run this script on a machine with a GPU." >&2
    exit 2
fi

if ! "$PYTHON" -c 'import sys, onnxruntime as ort; sys.exit("CUDAExecutionProvider" not in ort.get_available_providers())'; then
    version="$("$PYTHON" -c 'import onnxruntime; print(onnxruntime.__version__)')"
    echo "ONNX Runtime ${version} has no CUDAExecutionProvider. Install the GPU build of the same version:" >&2
    echo "  $PYTHON -m pip uninstall -y onnxruntime && $PYTHON -m pip install onnxruntime-gpu==${version}" >&2
    exit 2
fi

if ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "PyTorch cannot see the GPU (torch.cuda.is_available() is False); install a CUDA build of torch." >&2
    exit 2
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
out_dir="results/gpu-$(date -u +%Y%m%dT%H%M%SZ)"

# timeout sends SIGTERM first, so the run stops its TorchServe and facade processes.
timeout --kill-after=30 "$TIME_LIMIT_S" \
    "$PYTHON" -m benchmarks run --profile gpu --device cuda --out "$out_dir" "$@"
echo "GPU comparison written to $out_dir"
