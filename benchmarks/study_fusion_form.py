"""Fusion by score rather than by rank, checked on dev data (issue #13, lever 2's second form).

The product fuses by weighted reciprocal rank (``fusion.fuse_with_first_stage``). The alternative the issue names
is normalised score interpolation: per query, each signal is z-scored over the candidates (QRHead's attention
scores, BM25 over the candidates, and the input order as ``-rank``, since a chain hands over no first-stage
scores) and mixed with the same weights, ``(1 - w - l) z(qrhead) + w z(-rank) + l z(bm25)``. Scores keep the
*size* of a gap (a clear BM25 winner stays clear), which ranks throw away.

Compared on the all-head caches of ``study_cache.py`` (no model runs here), each model's default heads, the same
weight grid and the same rule as ``study_defaults.choose`` (pooled over models: best mean among the cells at or
above both model-free baselines on both tasks for every model); then a two-fold cross-validation (5 random
halvings per task): the rule chooses a cell on one half, the other half scores it — what each form would deliver
on queries that did not choose it.

    python benchmarks/study_fusion_form.py --model smollm2-135m-instruct --model qwen2.5-coder-0.5b-instruct \\
        --json reports/fusion_form_study.json --markdown reports/fusion_form_study.md
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _report import write_reports
from study_cache import dev_examples, study_parser
from study_defaults import (
    FUSION_GRID,
    TASKS,
    DevScores,
    cross_validated_choice,
    default_heads,
    figure,
    metric,
    pooled_choice,
    product_dev,
)

from qrhead_integrations.fusion import Fusion

CELLS = [(w, lex) for w, lex in FUSION_GRID if w or lex]  # the defaults study's grid, without "QRHead alone"
SPLITS = 5

Data = dict[str, dict[str, list[DevScores]]]  # model -> task -> dev queries


def _z(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def interpolated(data: list[DevScores], heads: list[int], name: str, weight: float, lexical: float) -> float:
    """Mean ``name`` of z-score interpolation over ``data``."""
    total = 0.0
    for item in data:
        qrhead = item.per_head[heads].mean(dim=0).numpy()
        order = -np.arange(len(qrhead), dtype=float)
        bm25 = np.asarray(item.lexical, dtype=float)
        fused = (1 - weight - lexical) * _z(qrhead) + weight * _z(order) + lexical * _z(bm25)
        total += metric(fused.tolist(), item.gold, name)
    return total / len(data)


def _name(cell: tuple[float, float]) -> str:
    return f"{cell[0]}/{cell[1]}"


def _figures(form: str, cell: tuple[float, float], data: Data, heads: dict[str, list[int]]) -> dict[str, Any]:
    w, lex = cell

    def one(queries: list[DevScores], subset: list[int], name: str) -> float:
        if form == "rank (RRF, shipped)":
            return figure(queries, subset, name, Fusion(weight=w, lexical=lex))
        return interpolated(queries, subset, name, w, lex)

    return {m: {t: one(data[m][t], heads[m], TASKS[t]) for t in TASKS} for m in data}


def main() -> None:
    args = study_parser(__doc__).parse_args()
    examples = {task: dev_examples(task) for task in TASKS}
    data: Data = {model: product_dev(model, args.tokens, args.cache_dir, examples) for model in args.model}
    heads = {model: default_heads(model) for model in args.model}
    forms = ("rank (RRF, shipped)", "score (z-score interpolation)")

    def chosen(form: str) -> dict[str, Any]:
        found = pooled_choice(CELLS, lambda cell, part: _figures(form, cell, part, heads), _name, data)
        return {k: v for k, v in found.items() if k != "raw"}

    def validated(form: str) -> Any:
        figures = lambda cell, part: _figures(form, cell, part, heads)  # noqa: E731
        return cross_validated_choice(CELLS, figures, _name, data, SPLITS)["figures"]

    report: dict[str, Any] = {
        "counts": {m: {t: len(d[t]) for t in TASKS} for m, d in data.items()},
        "chosen": {f: chosen(f) for f in forms},
        "cross_validated": {f: validated(f) for f in forms},
    }
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


def markdown(report: dict[str, Any]) -> str:
    models = list(report["counts"])
    head = " | ".join(f"{m} SciFact | {m} HotpotQA" for m in models)
    lines = [
        "# Fusion by rank or by score (dev data)",
        "",
        "Dev queries per model: "
        + "; ".join(f"{m}: {c['rerank']} SciFact, {c['multihop']} HotpotQA" for m, c in report["counts"].items())
        + ". Figures: SciFact nDCG@10 over BM25's top 20 (best last), HotpotQA recall@2 (random layout).",
        "",
        "## The rule's choice on all dev queries",
        "",
        f"| form | chosen cell (first stage / lexical) | qualifying cells | {head} | mean |",
        "|---|---|---|" + "---|" * (2 * len(models)) + "---|",
    ]
    for form, row in report["chosen"].items():
        cells = " | ".join(f"{row['figures'][m]['rerank']:.3f} | {row['figures'][m]['multihop']:.3f}" for m in models)
        lines.append(f"| {form} | {row['cell']} | {row['qualified']} | {cells} | {row['mean']:.4f} |")
    lines += [
        "",
        f"## Two-fold cross-validation ({SPLITS} halvings): the choice of one half, scored on the other",
        "",
        f"| form | {head} |",
        "|---|" + "---|" * (2 * len(models)),
    ]
    for form, per in report["cross_validated"].items():
        cells = " | ".join(f"{per[m]['rerank']:.3f} | {per[m]['multihop']:.3f}" for m in models)
        lines.append(f"| {form} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
