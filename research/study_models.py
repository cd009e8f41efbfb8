"""Which bundled model should be the default? Dev figures of every bundled model on the same dev rows (#13).

From the all-head caches of ``study_cache.py`` (``select`` splits only, the rows every model has cached:
HotpotQA dev rows 0-59 in a seeded random layout, SciFact train query positions 0-99 with a judged document in
BM25's top 20, laid out best-last) and no model run: each model's heads are detected by two-fold cross-validation
(top-16 by QR score on one half of a task's rows, measured on the other half, both halves averaged), so no figure
is in-sample, then measured alone and at three fusion cells, the default (what the adapters return) among them.
Seconds per query come from the caches' own timings (the all-head forward, every layer: an upper bound on the
default heads' truncated forward) and are only comparable within one run of this machine.

    python research/study_models.py --json reports/models_study.json --markdown reports/models_study.md
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch
from _report import write_reports
from study_cache import CACHE, cache_path, dev_examples
from study_defaults import PRODUCT_CACHE, SHAPES, TASKS, figure, first_stage_figure, items, lexical_figure, load

from qrhead_integrations.detect import head_scores_table
from qrhead_integrations.fusion import Fusion

MIN_COVERAGE = 0.8
"""A model's cache joins a task's comparison only when it covers this share of the split (a partial cache would
shrink every model's rows to its few)."""
MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")


CELLS = ((0.0, 0.3), (0.1, 0.3), (0.2, 0.5))
"""Fusion cells (first-stage weight, lexical share) shown beside QRHead alone; (0.2, 0.5) is the default."""


def cv_figures(data: list[Any], shape: tuple[int, int], metric: str) -> dict[str, float]:
    """Two-fold CV of top-16 by QR score: alone and at each fusion cell, averaged over the folds."""
    n_layers, n_heads = shape
    halves = (data[0::2], data[1::2])
    found: dict[str, list[float]] = {}
    for fit, held in ((halves[0], halves[1]), (halves[1], halves[0])):
        table = head_scores_table(fit, method="qr_score", num_layers=n_layers, num_heads=n_heads)
        heads = [layer * n_heads + head for layer, head in table.top(16).heads]
        found.setdefault("alone", []).append(figure(held, heads, metric))
        for weight, lexical in CELLS:
            cell = Fusion(weight=weight, lexical=lexical, form="ranks")
            found.setdefault(f"fused {weight}/{lexical}", []).append(figure(held, heads, metric, cell))
    return {name: statistics.fmean(values) for name, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help=f"default: {', '.join(MODELS)}")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    examples = {task: dev_examples(task) for task in TASKS}
    models = args.model or list(MODELS)
    caches = {
        (model, task): load(model, task, PRODUCT_CACHE[task], args.tokens, args.cache_dir)
        for model in models
        for task in TASKS
    }
    per_model: dict[str, Any] = {model: {} for model in models}
    for task, metric in TASKS.items():
        select = [e for e in examples[task] if e.split == "select"]
        found = {
            model: cache
            for model in models
            if (cache := caches[(model, task)]) is not None
            and sum(e.key in cache for e in select) >= MIN_COVERAGE * len(select)
        }
        # The rows every model has cached, so that all models are compared on the same rows.
        common = [e for e in select if all(e.key in f for f in found.values())]
        keys = {e.key for e in common}
        for model, scores in found.items():
            assert scores is not None
            data = [x for x, e in zip(items(common, scores, "select"), common, strict=True) if e.key in keys]
            seconds = torch.load(cache_path(args.cache_dir, model, task, PRODUCT_CACHE[task], args.tokens))["seconds"]
            per_model[model][task] = {
                "n": len(data),
                **cv_figures(data, SHAPES[model], metric),
                "first stage": first_stage_figure(data, metric),
                "BM25": lexical_figure(data, metric),
                "seconds (all heads, full depth)": statistics.median(seconds[k] for k in keys),
            }
    lines = ["# Bundled models on the same dev rows (#13)", "", (__doc__ or "").split("\n\n")[1].replace("\n", " "), ""]
    cells = [f"fused {w}/{lex}" for w, lex in CELLS]
    lines += [
        "| model | task | rows | QRHead alone (CV) | "
        + " | ".join(f"{c} (CV)" for c in cells)
        + " | first stage | BM25 | s/query (all heads) |",
        "|---|---|---|---|" + "---|" * len(cells) + "---|---|---|",
    ]
    for model, row in per_model.items():
        for task, cell in row.items():
            lines.append(
                f"| {model} | {task} ({TASKS[task]}) | {cell['n']} | {cell['alone']:.3f} | "
                + " | ".join(f"{cell[c]:.3f}" for c in cells)
                + f" | {cell['first stage']:.3f} | {cell['BM25']:.3f} | "
                f"{cell['seconds (all heads, full depth)']:.1f} |"
            )
    lines += ["", "Fusion cells are first-stage weight / lexical share; 0.2/0.5 is the default (`DEFAULT_FUSION`)."]
    write_reports({"models": per_model}, "\n".join(lines) + "\n", json_path=args.json, markdown_path=args.markdown)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
