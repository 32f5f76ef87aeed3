#!/usr/bin/env bash
# One-time, idempotent set-up: a virtual environment in .venv with the CPU build of
# PyTorch pinned first, then natgrad (editable) with its test dependencies (Ray, the env packages and the
# documentation tools among them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import natgrad, pytest, ray, ale_py, cv2, minatar, minigrid, moviepy, imageio_ffmpeg, \
        onnx, onnxscript, onnxruntime, optuna, mkdocs, material, mkdocstrings, mkdocstrings_handlers.python" \
        >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[dev]"
fi
