#!/usr/bin/env bash
# Every run behind the tables of docs/results.md, one after the other (one model run at a time: the figures
# include seconds per query, which two jobs sharing 2 CPU cores would distort).
#
#   bash benchmarks/results.sh                 # both small bundled models, all tables
#   MODELS=smollm2 bash benchmarks/results.sh  # one model (smollm2, qwen, or large: the 1.5B, default runs only)
#   RUNS=default bash benchmarks/results.sh    # only the `default` runs (what the adapters do) and compression
#   DTYPE=bfloat16 RUNS=default bash benchmarks/results.sh  # the default runs in bf16 (reports named *_bf16),
#                                              # the default dtype on CPUs with AMX bf16 (models.resolve_dtype)
#
# Resumable: a run whose report already exists is skipped (delete the report to run it again). Each report's
# info.command holds the exact command with every option spelled out; reports land in reports/. Then
# `python benchmarks/results_tables.py --render --write docs/results.md` rebuilds the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
QRHEAD=${QRHEAD:-.venv/bin/qrhead}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data}
MODELS=${MODELS:-smollm2 qwen}
RUNS=${RUNS:-all}
# float32 unless asked: the figures stay comparable across machines (the automatic dtype depends on the CPU).
DTYPE=${DTYPE:-float32}
TAG=$([ "$DTYPE" = float32 ] && echo "" || echo "_bf16")

declare -A MODEL_ID=([smollm2]=smollm2-135m-instruct [qwen]=qwen2.5-coder-0.5b-instruct [large]=qwen2.5-coder-1.5b-instruct)

run() {  # run NAME ARGS...: one eval, its JSON report, bar chart and Markdown table under reports/NAME.*
  local name=$1
  shift
  if [ -f "reports/$name.json" ]; then
    echo "skip $name (reports/$name.json exists)"
    return
  fi
  echo "== $name: $*"
  "$QRHEAD" eval "$@" --dtype "$DTYPE" --output "reports/$name.json" --plot "reports/$name.png" --markdown "reports/$name.md"
}

# The product's defaults on the evaluation rows: the `default` system (default heads, cut, order and fusion,
# through QRHeadScorer.rank, as every adapter calls it) beside BM25, with no separate qrhead run.
for short in $MODELS; do
  model=${MODEL_ID[$short]}
  run "default_hotpotqa_$short$TAG" multihop "$DATA/hotpotqa/hotpotqa_dev200.jsonl" --start 100 --limit 100 \
    --model "$model" --baselines bm25,default --no-qrhead
  # SciFact: the candidates are handed over in BM25's order (best first), as a chain would.
  run "default_scifact_$short$TAG" beir "$DATA/scifact" --split train --queries-from 100 --limit 50 --top-k 20 \
    --model "$model" --baselines bm25,default --no-qrhead --order retriever
  run "default_hotpotqa_${short}_shuffled$TAG" multihop "$DATA/hotpotqa/hotpotqa_dev200.jsonl" --start 100 \
    --limit 100 --model "$model" --baselines bm25,default --no-qrhead --order shuffled
  # The compressor with every default (and QRHead, BM25, truncation beside it) at a 25% budget.
  if [ -f "reports/compression_$short$TAG.json" ]; then
    echo "skip compression_$short$TAG (reports/compression_$short$TAG.json exists)"
  else
    "$PYTHON" benchmarks/eval_compression.py --data "$DATA/hotpotqa/hotpotqa_dev200.jsonl" --model "$model" \
      --dtype "$DTYPE" --start 100 --limit 100 --lexical-grid 0.2,0.3,0.4,0.5 \
      --json "reports/compression_$short$TAG.json" --markdown "reports/compression_$short$TAG.md"
  fi
done
if [ "$RUNS" = default ]; then
  exit 0
fi
if [ "$DTYPE" != float32 ]; then
  echo "the full tables run in float32 only (DTYPE=$DTYPE covers the default runs: RUNS=default)" >&2
  exit 2
fi

# The `multihop` heads alone against every baseline (for SmolLM2 its default set; for Qwen 0.5B a named set).
for short in $MODELS; do
  [ "$short" = large ] && continue  # the 1.5B model: only the default runs above
  model=${MODEL_ID[$short]}
  # HotpotQA dev rows 100-199 (rows 0-99 detected the heads): file order with every baseline, then shuffled.
  run "eval_hotpotqa_$short" multihop "$DATA/hotpotqa/hotpotqa_dev200.jsonl" --start 100 --limit 100 \
    --model "$model" --heads multihop --baselines all
  run "eval_hotpotqa_${short}_shuffled" multihop "$DATA/hotpotqa/hotpotqa_dev200.jsonl" --start 100 --limit 100 \
    --model "$model" --heads multihop --order shuffled
  # SciFact train queries 100-149 in query-id order (the detection study used the first ones): BM25's top 20
  # re-ranked, passages cut to 256 tokens; BM25's order reversed (its best passage next to the query), then shuffled.
  run "eval_scifact_$short" beir "$DATA/scifact" --split train --queries-from 100 --limit 50 --top-k 20 \
    --max-passage-tokens 256 --model "$model" --heads multihop --baselines all
  # The same queries and order with the heads detected on SciFact (in-task).
  run "eval_scifact_${short}_rerank" beir "$DATA/scifact" --split train --queries-from 100 --limit 50 --top-k 20 \
    --max-passage-tokens 256 --model "$model" --heads rerank --baselines bm25,fusion
  run "eval_scifact_${short}_shuffled" beir "$DATA/scifact" --split train --queries-from 100 --limit 50 --top-k 20 \
    --max-passage-tokens 256 --model "$model" --heads multihop --order shuffled
done
