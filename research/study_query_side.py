"""How the query side of the prompt is read and placed: variants of the product's prompt on the same dev queries.

Why: two readings of the method the reference codes fix without a measurement.

* ``query_part``: the reference codes average the attention of every row after the last passage — the late
  instruction, the query and the template's end. The instruction's rows are the same for every query (and for the
  content-free "N/A" query the calibration subtracts), so they add a query-independent share to both means,
  weighted by how long each query is. ``ScorerConfig.query_part="query"`` reads the query's own rows only.
* **query first** (a prototype layout, ``study_cache.py --query-first``): the query is also stated before the
  passages, so the passages' own tokens are computed in its light (under causal attention they never see the
  query otherwise); the scores still come from the query's rows after the passages.

Each variant's cache holds the same dev queries; each model's default heads, alone and at its default fusion:

    python research/study_cache.py --model M --task rerank --order reversed --tokens 128 --query-part query
    python research/study_cache.py --model M --task multihop --order shuffled --tokens 128 --query-part query
    python research/study_cache.py --model M --task rerank --order reversed --tokens 128 --query-first
    python research/study_cache.py --model M --task multihop --order shuffled --tokens 128 --query-first
    python research/study_query_side.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --unseen-only qwen2.5-coder-0.5b-instruct \\
        --json reports/query_side_study.json --markdown reports/query_side_study.md

Only queries every variant's cache holds are compared. ``--unseen-only M``: M's default heads were detected on its
SciFact ``select`` split, so its SciFact figures come from the ``tune`` split alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _variant_study
from _variant_study import splits_of, task_entry
from study_cache import PRODUCT, CacheVariant, DevExample
from study_defaults import TASKS, default_heads, product_cache

from qrhead_integrations.fusion import model_fusion

VARIANTS = {
    'shipped (`query_part="all"`)': PRODUCT,
    '`query_part="query"`': CacheVariant(query_part="query"),
    "query first (prototype)": CacheVariant(query_first=True),
}


def study(
    model: str, unseen: bool, tokens: int, cache_dir: Path, examples: dict[str, list[DevExample]]
) -> dict[str, Any]:
    """Every variant's figures, alone and fused, on the dev queries every cache holds."""
    heads = default_heads(model)
    fusion = model_fusion(model)
    out: dict[str, Any] = {}
    for task in TASKS:
        caches = {label: product_cache(model, task, tokens, cache_dir, v) for label, v in VARIANTS.items()}
        keys = set.intersection(*(set(c) for c in caches.values()))
        splits = splits_of(task, unseen)
        kept = [e for e in examples[task] if e.key in keys]
        out[task] = task_entry(task, kept, splits, caches, heads, fusion)
    return out


def markdown(report: dict[str, Any]) -> str:
    return _variant_study.markdown(
        report,
        title="The query side of the prompt: which rows are read, and the query stated first too (dev caches)",
        intro="Each model's default heads; alone / at its default fusion (`research/study_query_side.py`).",
        row_heading="variant",
    )


if __name__ == "__main__":
    _variant_study.main(__doc__, study, markdown)
