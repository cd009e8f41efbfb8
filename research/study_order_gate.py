"""Fusion that trusts the input order only where it looks like a ranking, checked on dev data (issue #13).

The shipped fusion gives the input order a fixed weight. A re-ranker is also handed lists whose order means
nothing (a document's chunks, a file's order, a shuffled pool: HotpotQA's file order here), and there that weight
costs recall, while on a retriever's list (SciFact, BM25 first stage) it is what keeps the fused ranking level
with the first stage. ``Fusion(agreement=a)`` scales the weight per query by the Kendall tau between the input
order and BM25 over the candidates (full at ``tau >= a``, nothing at ``tau <= 0``; ``fusion.first_stage_trust``).

Compared on the all-head caches of ``study_cache.py`` (no model runs here), each model's default heads, with the
product's own fusion function: the defaults study's weight grid (``FUSION_GRID``) with ``agreement`` None (the
shipped form) or 0, 0.1, 0.2, 0.3, 0.4; the pooled rule of ``study_defaults.choose`` (best mean among the cells at
or above both model-free baselines on both tasks for every model); then two-fold cross-validation (5 random
halvings per task): the rule chooses a cell on one half, the other half scores it — with and without the
agreement in the grid.

    python research/study_order_gate.py --model smollm2-135m-instruct --model qwen2.5-coder-0.5b-instruct \\
        --json reports/order_gate_study.json --markdown reports/order_gate_study.md

With ``--unseen-only MODEL``, that model's SciFact figures come from the ``tune`` split alone: for a model whose
default heads were detected on the ``select`` split (Qwen 0.5B's ``rerank-best-last``), so the fusion is chosen on
queries its heads never read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _report import write_reports
from study_cache import dev_examples, study_parser
from study_defaults import (
    FUSION_GRID,
    TASKS,
    PooledData,
    add_unseen_only,
    baseline_figures,
    cross_validated_choice,
    default_heads,
    figure,
    pooled_choice,
    product_dev,
    unseen_only,
)

from qrhead_integrations.fusion import Fusion, kendall_tau

AGREEMENTS: tuple[float | None, ...] = (None, 0.0, 0.1, 0.2, 0.3, 0.4)
Cell = tuple[float, float, float | None]
CELLS: list[Cell] = [(w, lex, a) for w, lex in FUSION_GRID if w or lex for a in AGREEMENTS if a is None or w]
SPLITS = 5
FORMS = {"fixed weight (shipped)": False, "weight scaled by agreement": True}

Data = PooledData  # model -> task -> dev queries


def _fusion(cell: Cell) -> Fusion:
    return Fusion(weight=cell[0], lexical=cell[1], agreement=cell[2], form="ranks")


def _figures(cell: Cell, data: Data, heads: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    return {m: {t: figure(data[m][t], heads[m], TASKS[t], _fusion(cell)) for t in TASKS} for m in data}


def _name(cell: Cell) -> str:
    return f"{cell[0]}/{cell[1]}" + ("" if cell[2] is None else f", agreement {cell[2]}")


def agreement_spread(data: Data) -> dict[str, dict[str, list[float]]]:
    """Percentiles (10, 25, 50, 75, 90) of the per-query tau between input order and BM25, per task."""
    model = next(iter(data))
    out = {}
    for t in TASKS:
        taus = [kendall_tau([-float(i) for i in range(len(x.lexical))], x.lexical) for x in data[model][t]]
        values = [0.0 if tau is None else tau for tau in taus]
        out[t] = {"percentiles": [float(v) for v in np.percentile(values, [10, 25, 50, 75, 90])]}
        out[t]["undefined"] = [float(sum(tau is None for tau in taus))]
    return out


def main() -> None:
    parser = study_parser(__doc__)
    add_unseen_only(parser)
    args = parser.parse_args()
    examples = {task: dev_examples(task) for task in TASKS}
    data: Data = {model: product_dev(model, args.tokens, args.cache_dir, examples) for model in args.model}
    unseen_only(data, args.unseen_only, args.tokens, args.cache_dir, examples)
    heads = {model: default_heads(model) for model in args.model}
    grids = {form: [c for c in CELLS if gated or c[2] is None] for form, gated in FORMS.items()}

    def figures(cell: Cell, part: Data) -> dict[str, dict[str, float]]:
        return _figures(cell, part, heads)

    report: dict[str, Any] = {
        "counts": {m: {t: len(d[t]) for t in TASKS} for m, d in data.items()},
        "baselines": baseline_figures(data),
        "agreement": agreement_spread(data),
        "chosen": {
            f: {k: v for k, v in pooled_choice(g, figures, _name, data).items() if k != "raw"} for f, g in grids.items()
        },
        "cross_validated": {f: cross_validated_choice(g, figures, _name, data, SPLITS) for f, g in grids.items()},
    }
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


def markdown(report: dict[str, Any]) -> str:
    models = list(report["counts"])
    head = " | ".join(f"{m} SciFact | {m} HotpotQA" for m in models)
    spread = report["agreement"]
    base = " | ".join(
        f"{report['baselines'][m]['rerank']['first stage']:.3f} | {report['baselines'][m]['multihop']['bm25']:.3f}"
        for m in models
    )
    lines = [
        "# Fusion with a fixed input-order weight, or scaled by the order's agreement with BM25 (dev data)",
        "",
        "Dev queries per model: "
        + "; ".join(f"{m}: {c['rerank']} SciFact, {c['multihop']} HotpotQA" for m, c in report["counts"].items())
        + ". Figures: SciFact nDCG@10 over BM25's top 20 (best last), HotpotQA recall@2 (random layout).",
        "",
        "Kendall tau between the input order and BM25 over the candidates, percentiles 10/25/50/75/90: "
        + "; ".join(
            f"{'SciFact (BM25 first stage)' if t == 'rerank' else 'HotpotQA (file order)'} "
            + " / ".join(f"{v:.2f}" for v in spread[t]["percentiles"])
            + f" ({int(spread[t]['undefined'][0])} undefined)"
            for t in TASKS
        )
        + ".",
        "",
        "## The rule's choice on all dev queries",
        "",
        f"| grid | chosen cell (first stage / lexical) | qualifying cells | {head} | mean |",
        "|---|---|---|" + "---|" * (2 * len(models)) + "---|",
        f"| stronger model-free baseline (first stage on SciFact, BM25 on HotpotQA) | | | {base} | |",
    ]
    for form, row in report["chosen"].items():
        cells = " | ".join(f"{row['figures'][m]['rerank']:.3f} | {row['figures'][m]['multihop']:.3f}" for m in models)
        lines.append(f"| {form} | {row['cell']} | {row['qualified']} | {cells} | {row['mean']:.4f} |")
    lines += [
        "",
        f"## Two-fold cross-validation ({SPLITS} halvings): the choice of one half, scored on the other",
        "",
        f"| grid | {head} | cells chosen |",
        "|---|" + "---|" * (2 * len(models)) + "---|",
    ]
    for form, per in report["cross_validated"].items():
        cells = " | ".join(f"{per['figures'][m]['rerank']:.3f} | {per['figures'][m]['multihop']:.3f}" for m in models)
        lines.append(f"| {form} | {cells} | {'; '.join(per['picks'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
