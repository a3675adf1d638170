#!/usr/bin/env bash
# Create .venv and install ivt_hf with the exact tested versions of its dependencies (constraints.txt; idempotent;
# about 2 minutes on a fresh machine).
# torch is installed FIRST and pinned to the CPU wheel, otherwise pip resolves a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
.venv/bin/python -c "import ivt_hf, torch; print(f'ivt_hf {ivt_hf.__version__} ready (torch {torch.__version__})')"
