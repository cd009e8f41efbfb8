"""How the selected heads' scores are combined: the paper's mean vs scale-free alternatives (dev caches, no model).

Why: the mean over heads (paper eq. 5) lets a head whose attention mass runs larger dominate the sum. Putting
every head on one scale first — per-query z-scores, ranks, shares of its positive mass, a median — could let
the weaker heads count. Measured on the defaults study's dev caches (each model's default heads, alone and at
its default fusion), SciFact and HotpotQA:

    python benchmarks/study_head_aggregation.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --unseen-only qwen2.5-coder-0.5b-instruct \\
        --json reports/head_aggregation_study.json --markdown reports/head_aggregation_study.md
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from _report import write_reports
from study_cache import dev_examples, study_parser
from study_defaults import (
    TASKS,
    DevScores,
    add_unseen_only,
    default_heads,
    metric,
    product_dev,
    unseen_only,
)

from qrhead_integrations.fusion import fuse_with_first_stage
from qrhead_integrations.presets import model_fusion


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


def study(model: str, unseen: bool, dev: dict[str, list[DevScores]]) -> dict[str, Any]:
    """Every aggregation's figures on ``dev`` (task -> dev queries), alone and at the model's fusion."""
    heads = default_heads(model)
    fusion = model_fusion(model)
    out: dict[str, Any] = {}
    for task, name in TASKS.items():
        data = dev[task]
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
        splits = ["tune"] if unseen and task == "rerank" else ["select", "tune"]
        out[task] = {"queries": len(data), "splits": splits, "metric": name, "rows": rows}
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Combining the selected heads' scores (dev caches)",
        "",
        "Each model's default heads; alone / at its default fusion (`benchmarks/study_head_aggregation.py`).",
    ]
    for model, tasks in report["models"].items():
        columns = [
            f"{'SciFact' if task == 'rerank' else 'HotpotQA'} {t['metric']} ({t['queries']}, {'+'.join(t['splits'])})"
            for task, t in tasks.items()
        ]
        lines += ["", f"## {model}", "", "| aggregation | " + " | ".join(columns) + " |", "|---|" + "---|" * len(tasks)]
        for label in AGGREGATIONS:
            cells = [f"{t['rows'][label]['alone']:.3f} / {t['rows'][label]['fused']:.3f}" for t in tasks.values()]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_parser(__doc__)
    add_unseen_only(parser)
    args = parser.parse_args()
    examples = {task: dev_examples(task) for task in TASKS}
    data = {model: product_dev(model, args.tokens, args.cache_dir, examples) for model in args.model}
    unseen_only(data, args.unseen_only, args.tokens, args.cache_dir, examples)
    report = {"models": {m: study(m, m in args.unseen_only, data[m]) for m in args.model}}
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


if __name__ == "__main__":
    main()
