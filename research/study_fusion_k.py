"""The RRF constant ``k`` of the re-ranking fusion, checked on dev data (issue #13): every ``k`` with every
(first-stage weight, lexical share) cell of ``study_defaults.FUSION_GRID``, from the all-head caches of
``study_cache.py`` (no model runs here), with each model's default heads.

Per model and ``k``: the cell ``study_defaults.choose`` would pick for that model alone (best mean over both tasks
among the cells at or above both model-free baselines on both tasks), and its dev figures.

    python research/study_fusion_k.py --model smollm2-135m-instruct --model qwen2.5-coder-0.5b-instruct \\
        --json reports/fusion_k_study.json --markdown reports/fusion_k_study.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _report import write_reports
from study_cache import dev_examples, study_parser
from study_defaults import (
    FUSION_GRID,
    TASKS,
    default_heads,
    figure,
    first_stage_figure,
    lexical_figure,
    product_dev,
)

from qrhead_integrations.fusion import RRF_K, Fusion

KS = (0, 2, 5, 10, 20, RRF_K)


def study(model: str, tokens: int, cache_dir: Path) -> dict[str, Any]:
    examples = {task: dev_examples(task) for task in TASKS}
    dev = product_dev(model, tokens, cache_dir, examples)
    heads = default_heads(model)
    floor = {t: max(first_stage_figure(dev[t], TASKS[t]), lexical_figure(dev[t], TASKS[t])) for t in TASKS}
    per_k = {}
    for k in KS:
        cells = []
        for w, lex in FUSION_GRID:
            if not (w or lex):
                continue
            values = {
                t: figure(dev[t], heads, TASKS[t], Fusion(weight=w, lexical=lex, k=k, form="ranks")) for t in TASKS
            }
            ok = all(values[t] >= floor[t] for t in TASKS)
            cells.append((ok, float(np.mean(list(values.values()))), f"{w}/{lex}", values))
        qualified = [c for c in cells if c[0]]
        best = max(qualified or cells, key=lambda c: c[1])
        per_k[str(k)] = {"cell": best[2], "mean": best[1], "qualified": len(qualified), **best[3]}
    return {"counts": {t: len(dev[t]) for t in TASKS}, "floor": floor, "k": per_k}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# RRF constant k on dev data",
        "",
        "Per model and k: the cell the defaults rule picks for that model alone (first-stage weight / lexical share;"
        " best mean among cells at or above both model-free baselines on both tasks), with its dev figures "
        "(SciFact nDCG@10 over BM25's top 20 / HotpotQA recall@2).",
        "",
        "| model | k | chosen cell | qualifying cells | SciFact | HotpotQA | mean |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model, data in report["models"].items():
        for k, row in data["k"].items():
            lines.append(
                f"| {model} | {k} | {row['cell']} | {row['qualified']} | {row['rerank']:.3f} | "
                f"{row['multihop']:.3f} | {row['mean']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = study_parser(__doc__).parse_args()
    report = {"tokens": args.tokens, "models": {m: study(m, args.tokens, args.cache_dir) for m in args.model}}
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


if __name__ == "__main__":
    main()
