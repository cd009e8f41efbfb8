#!/usr/bin/env bash
# Set up (if needed) and run the test suite: lint, types, the docs site build, then pytest (tiny models + the real bundled SmolLM2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The float32 path of CPUs without AMX (most laptops) on every machine, so results do not depend on the CPU CI
# lands on; tests that ask for bf16 still run it. QRHEAD_CPU_AMX=1 bash scripts/test.sh tests the AMX default.
export QRHEAD_CPU_AMX=${QRHEAD_CPU_AMX:-0}
.venv/bin/ruff check qrhead_integrations tests benchmarks research examples
.venv/bin/mypy qrhead_integrations
# The docs site: a broken link, page or API reference fails here (site/ is not committed).
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "${TMPDIR:-/tmp}/qrhead-docs-site"
# Test workers (pytest-xdist): one per core, at most 4, each with its share of the cores for torch
# (tests/workers.py); a test file stays on one worker (its module fixtures load once), and the tests that start a
# local Ray take turns through a lock. `-n 0` runs everything in this one process.
exec .venv/bin/python -m pytest -q -p no:cacheprovider --numprocesses auto --maxprocesses 4 --dist loadfile "$@"
