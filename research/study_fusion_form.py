"""Fusion by score rather than by rank, checked on dev data (issue #13, lever 2's second form).

The product fuses by weighted reciprocal rank by default (``Fusion(form="ranks")``). The alternative the issue
names is normalised score interpolation, ``Fusion(form="scores")``: per query, each signal is z-scored over the
candidates (QRHead's attention scores, BM25 over the candidates, and the input order as ``-rank``, since a chain
hands over no first-stage scores) and mixed with the same weights, ``(1 - w - l) z(qrhead) + w z(-rank) + l
z(bm25)``. Scores keep the *size* of a gap (a clear BM25 winner stays clear), which ranks throw away. Both forms
are computed by the product's own ``fusion.fuse_with_first_stage``.

Compared on the all-head caches of ``study_cache.py`` (no model runs here), each model's default heads, the same
weight grid and the same rule as ``study_defaults.choose`` (pooled over models: best mean among the cells at or
above both model-free baselines on both tasks for every model); then a two-fold cross-validation (5 random
halvings per task): the rule chooses a cell on one half, the other half scores it — what each form would deliver
on queries that did not choose it.

    python research/study_fusion_form.py --model smollm2-135m-instruct --model qwen2.5-coder-0.5b-instruct \\
        --json reports/fusion_form_study.json --markdown reports/fusion_form_study.md

``--unseen-only MODEL`` (as in ``study_order_gate.py``): that model's SciFact figures come from the ``tune`` split
alone, for a model whose default heads were detected on the ``select`` split.
"""

from __future__ import annotations

from typing import Any

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

from qrhead_integrations.fusion import Fusion, FusionForm

CELLS = [(w, lex) for w, lex in FUSION_GRID if w or lex]  # the defaults study's grid, without "QRHead alone"
SPLITS = 5

Data = PooledData  # model -> task -> dev queries


def _name(cell: tuple[float, float]) -> str:
    return f"{cell[0]}/{cell[1]}"


FORMS: dict[str, FusionForm] = {"rank (RRF)": "ranks", "score (z-score interpolation)": "scores"}


def _figures(form: FusionForm, cell: tuple[float, float], data: Data, heads: dict[str, list[int]]) -> dict[str, Any]:
    fusion = Fusion(weight=cell[0], lexical=cell[1], form=form)
    return {m: {t: figure(data[m][t], heads[m], TASKS[t], fusion) for t in TASKS} for m in data}


def main() -> None:
    parser = study_parser(__doc__)
    add_unseen_only(parser)
    args = parser.parse_args()
    examples = {task: dev_examples(task) for task in TASKS}
    data: Data = {model: product_dev(model, args.tokens, args.cache_dir, examples) for model in args.model}
    unseen_only(data, args.unseen_only, args.tokens, args.cache_dir, examples)
    heads = {model: default_heads(model) for model in args.model}

    def chosen(form: FusionForm) -> dict[str, Any]:
        found = pooled_choice(CELLS, lambda cell, part: _figures(form, cell, part, heads), _name, data)
        return {k: v for k, v in found.items() if k != "raw"}

    def validated(form: FusionForm) -> Any:
        figures = lambda cell, part: _figures(form, cell, part, heads)  # noqa: E731
        return cross_validated_choice(CELLS, figures, _name, data, SPLITS)

    report: dict[str, Any] = {
        "counts": {m: {t: len(d[t]) for t in TASKS} for m, d in data.items()},
        "baselines": baseline_figures(data),
        "chosen": {label: chosen(form) for label, form in FORMS.items()},
        "cross_validated": {label: validated(form) for label, form in FORMS.items()},
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
    for form, found in report["cross_validated"].items():
        per = found["figures"]
        cells = " | ".join(f"{per[m]['rerank']:.3f} | {per[m]['multihop']:.3f}" for m in models)
        lines.append(f"| {form} | {cells} |")
    lines += [
        "",
        "Cells chosen by the halves: "
        + "; ".join(f"{form}: {', '.join(found['picks'])}" for form, found in report["cross_validated"].items())
        + ".",
    ]
    base = " | ".join(
        f"{b['rerank']['first stage']:.3f} / {b['rerank']['bm25']:.3f} | {b['multihop']['first stage']:.3f} / "
        f"{b['multihop']['bm25']:.3f}"
        for b in report["baselines"].values()
    )
    lines += ["", f"Model-free baselines (first stage / BM25 over the candidates): | {base} |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
