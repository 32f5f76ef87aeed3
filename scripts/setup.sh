#!/usr/bin/env bash
# One-time, idempotent set-up: a virtual environment in .venv with PyTorch pinned first (the CPU build from
# PyTorch's own index where it can be reached, else pip's default wheel), then natgrad (editable) with its test
# dependencies (Ray, the env packages and the documentation tools among them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH="torch==2.13.0"
CPU_INDEX=https://download.pytorch.org/whl/cpu
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import natgrad, pytest, ray, ale_py, cv2, minatar, minigrid, gymnax, envpool, \
        array_api_compat, moviepy, imageio_ffmpeg, onnx, onnxscript, onnxruntime, optuna, mkdocs, material, \
        mkdocstrings, mkdocstrings_handlers.python" >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q --upgrade pip
    if .venv/bin/python -m pip install -q --timeout 5 --retries 0 --index-url "$CPU_INDEX" "$TORCH" >/dev/null 2>&1
    then
        echo "setup.sh: $TORCH, the CPU build, from $CPU_INDEX"
    else
        echo "setup.sh: $TORCH could not be installed from $CPU_INDEX: installing pip's default wheel instead" \
             "(on Linux x86_64, the CUDA build)"
        .venv/bin/python -m pip install -q "$TORCH"
    fi
    .venv/bin/python -m pip install -q -e ".[dev]"
fi
