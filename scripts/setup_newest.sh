#!/usr/bin/env bash
# Create .venv-newest: ivt_hf[dev] with the NEWEST versions that pyproject.toml's ranges allow, WITHOUT constraints.txt,
# i.e. what a user gets from a plain `pip install ivt_hf[dev]` today. CI runs the `compat` tests in it
# (docs/compatibility.md), so that a release of transformers, accelerate, datasets, ... inside our ranges that breaks
# us shows up in CI rather than at a user's. Idempotent; re-running upgrades to whatever is newest now.
# torch stays pinned to the local CPU wheel 2.13.0 (a constraint for this run only), otherwise pip may resolve a
# multi-GB CUDA build. Writes the resolved set to .venv-newest/resolved.txt (pip freeze) and runs pip check.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-newest
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
pin_torch=$(mktemp)
trap 'rm -f "$pin_torch"' EXIT
echo "torch==2.13.0" >"$pin_torch"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet -c "$pin_torch" "torch==2.13.0"
# --upgrade-strategy eager: the dependencies' dependencies move to their newest too (not only what is missing)
"${pip[@]}" install --quiet --upgrade --upgrade-strategy eager -c "$pin_torch" -e ".[dev]"
"${pip[@]}" freeze --exclude-editable >"$VENV/resolved.txt"
"${pip[@]}" check
echo "newest versions the ranges allow (full list: $VENV/resolved.txt):"
grep -iE '^(torch|transformers|accelerate|datasets|huggingface.hub|tokenizers|safetensors|evaluate|gradio|faiss-cpu|numpy|pyarrow|pillow)==' \
  "$VENV/resolved.txt" | tr '\n' ' '
echo
