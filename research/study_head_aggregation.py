"""How the selected heads' scores are combined: the paper's mean vs scale-free alternatives (dev caches, no model).

Why: the mean over heads (paper eq. 5) lets a head whose attention mass runs larger dominate the sum. Putting
every head on one scale first — per-query z-scores, ranks, shares of its positive mass, a median — could let
the weaker heads count. Measured on the defaults study's dev caches (each model's default heads, alone and at
its default fusion), SciFact and HotpotQA:

    python research/study_head_aggregation.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --unseen-only qwen2.5-coder-0.5b-instruct \\
        --json reports/head_aggregation_study.json --markdown reports/head_aggregation_study.md
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import _variant_study
import torch
from _variant_study import splits_of
from study_cache import DevExample
from study_defaults import TASKS, default_heads, metric, product_dev, unseen_only

from qrhead_integrations.fusion import fuse_with_first_stage, model_fusion


def _z(per_head: torch.Tensor) -> torch.Tensor:
    spread = per_head.std(dim=1, keepdim=True).clamp_min(1e-12)
    return ((per_head - per_head.mean(dim=1, keepdim=True)) / spread).mean(dim=0)


def _shares(per_head: torch.Tensor) -> torch.Tensor:
    positive = per_head.clamp_min(0)
    return (positive / positive.sum(dim=1, keepdim=True).clamp_min(1e-12)).mean(dim=0)


AGGREGATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean (the paper's, shipped)": lambda per_head: per_head.mean(dim=0),
    "mean of per-head z-scores": _z,
    "mean of per-head ranks": lambda per_head: per_head.argsort(dim=1).argsort(dim=1).double().mean(dim=0),
    "median over heads": lambda per_head: per_head.median(dim=0).values,
    "mean of per-head positive-mass shares": _shares,
}


def study(
    model: str, unseen: bool, tokens: int, cache_dir: Path, examples: dict[str, list[DevExample]]
) -> dict[str, Any]:
    """Every aggregation's figures on the model's product dev caches, alone and at the model's fusion."""
    dev = {model: product_dev(model, tokens, cache_dir, examples)}
    unseen_only(dev, [model] if unseen else [], tokens, cache_dir, examples)
    heads = default_heads(model)
    fusion = model_fusion(model)
    out: dict[str, Any] = {}
    for task, name in TASKS.items():
        data = dev[model][task]
        rows = {}
        for label, combine in AGGREGATIONS.items():
            alone = fused = 0.0
            for item in data:
                combined = combine(item.per_head[heads]).tolist()
                alone += metric(combined, item.gold, name)
                ranked = (
                    combined if fusion is None else fuse_with_first_stage(combined, fusion, lexical_scores=item.lexical)
                )
                fused += metric(ranked, item.gold, name)
            rows[label] = {"alone": alone / len(data), "fused": fused / len(data)}
        out[task] = {"queries": len(data), "splits": splits_of(task, unseen), "metric": name, "rows": rows}
    return out


def markdown(report: dict[str, Any]) -> str:
    return _variant_study.markdown(
        report,
        title="Combining the selected heads' scores (dev caches)",
        intro="Each model's default heads; alone / at its default fusion (`research/study_head_aggregation.py`).",
        row_heading="aggregation",
    )


if __name__ == "__main__":
    _variant_study.main(__doc__, study, markdown)
