#!/usr/bin/env bash
# Set up (if needed) and run the offline demo on the bundled default model (Qwen2.5-Coder-0.5B-Instruct).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/qrhead demo "$@"
