"""Fusion with the retriever's own scores vs with its order (SciFact dev, from the study caches; no model run).

Why: the LlamaIndex postprocessor fuses with the nodes' retriever scores whenever every node has one, where
LangChain and ``rank`` fuse with the input order (``-position``). Under the default z-score fusion the two
differ: a retriever's scores keep how far ahead its best candidates are, its order does not. The defaults
study had no retriever scores (its first stage was always given as an order), so this measures the difference
on the SciFact dev queries, whose first stage is BM25 over the corpus: ``node.score`` as LlamaIndex's
``BM25Retriever`` would give it.

    python research/study_first_stage_scores.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --unseen-only qwen2.5-coder-0.5b-instruct \\
        --json reports/first_stage_scores_study.json --markdown reports/first_stage_scores_study.md

Each model's default heads and default fusion (``presets.model_fusion``), the product's best-last cache
(``--tokens``, 128 by default); ``--unseen-only`` keeps a model's SciFact ``tune`` split alone (its heads were
detected on ``select``).
Also printed: the same fusion by ranks, where retriever scores and the order give the same ranking by design.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from _report import write_reports
from study_cache import SCIFACT, TOP_K, dev_examples, study_parser
from study_defaults import (
    PRODUCT_CACHE,
    add_unseen_only,
    default_heads,
    first_stage_figure,
    items,
    lexical_figure,
    load,
    metric,
)

from qrhead_integrations.evaluation import BM25Index, read_beir
from qrhead_integrations.fusion import Fusion, fuse_with_first_stage, model_fusion


def retriever_scores(examples: list[Any]) -> dict[str, list[float]]:
    """Each dev query's BM25 corpus scores of its candidates, in candidate order (the study cache's order)."""
    dataset = read_beir(SCIFACT, split="train")
    index = BM25Index(dataset.corpus)
    out = {}
    for example in examples:
        hits = index.search(example.question, TOP_K)
        if [dataset.corpus[doc_id] for doc_id, _ in hits] != example.passages:
            raise SystemExit(f"query {example.key}: the candidates differ from the cache's; rebuild the caches")
        out[example.key] = [score for _, score in hits]
    return out


def fused_figure(data: list[Any], scores: list[list[float] | None], heads: list[int], fusion: Fusion | None) -> float:
    """Mean nDCG@10; ``scores[i]`` the retriever's scores of query ``i`` (``None``: fuse with its order)."""
    total = 0.0
    for item, first in zip(data, scores, strict=True):
        qr = item.per_head[heads].mean(dim=0).tolist()
        ranked = (
            qr
            if fusion is None
            else fuse_with_first_stage(qr, fusion, first_stage_scores=first, lexical_scores=item.lexical)
        )
        total += metric(ranked, item.gold, "ndcg@10")
    return total / len(data)


def study_model(
    model: str, unseen: bool, examples: list[Any], bm25: dict[str, list[float]], args: argparse.Namespace
) -> dict[str, Any]:
    cache = load(model, "rerank", PRODUCT_CACHE["rerank"], args.tokens, args.cache_dir)
    if cache is None:
        raise SystemExit(f"missing the rerank cache of {model}: run research/study_cache.py first")
    splits = ("tune",) if unseen else ("select", "tune")
    data = [item for split in splits for item in items(examples, cache, split)]
    keys = [e.key for split in splits for e in examples if e.split == split and e.key in cache]
    heads = default_heads(model)
    fusion = model_fusion(model)
    if fusion is None:
        raise SystemExit(f"{model} has no default fusion: nothing to compare")
    by_scores = [bm25[key] for key in keys]
    by_order: list[list[float] | None] = [None] * len(data)
    other_form = replace(fusion, form="ranks" if fusion.form == "scores" else "scores")
    return {
        "queries": len(data),
        "splits": list(splits),
        "fusion": repr(fusion),
        "rows": {
            "first stage (BM25 over the corpus)": first_stage_figure(data, "ndcg@10"),
            "BM25 over the candidates": lexical_figure(data, "ndcg@10"),
            "QRHead alone": fused_figure(data, by_order, heads, None),
            f"default fusion ({fusion.form}), with the order": fused_figure(data, by_order, heads, fusion),
            f"default fusion ({fusion.form}), with the retriever's scores": fused_figure(
                data, by_scores, heads, fusion
            ),
            f"the same weights by {other_form.form}, with the order": fused_figure(data, by_order, heads, other_form),
            f"the same weights by {other_form.form}, with the retriever's scores": fused_figure(
                data, by_scores, heads, other_form
            ),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Fusion with the retriever's scores vs with its order (SciFact dev)",
        "",
        "nDCG@10 over BM25's top 20 (dev queries with a judged-relevant candidate), each model's default heads and "
        "fusion, from the study caches (`research/study_first_stage_scores.py`).",
    ]
    for model, result in report["models"].items():
        lines += [
            "",
            f"## {model} ({result['queries']} queries, split {' + '.join(result['splits'])}; {result['fusion']})",
            "",
            "| system | nDCG@10 |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value:.3f} |" for name, value in result["rows"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_parser(__doc__)
    add_unseen_only(parser)
    args = parser.parse_args()
    examples = dev_examples("rerank")
    bm25 = retriever_scores(examples)
    report = {"models": {m: study_model(m, m in args.unseen_only, examples, bm25, args) for m in args.model}}
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


if __name__ == "__main__":
    main()
