"""Which prompt rows' attention is read: the whole tail after the passages, or the query's own tokens (dev caches).

Why: the reference codes average the attention of every row after the last passage — the late instruction, the
query and the template's end. The instruction's rows are the same for every query (and for the content-free
"N/A" query the calibration subtracts), so they add a query-independent share to both means, weighted by how
long each query is. ``ScorerConfig.query_part="query"`` reads the query's own rows only. Measured on the
defaults study's dev data with each model's default heads, alone and at its default fusion, from two caches of
the same queries (``study_cache.py ... --query-part all`` and ``--query-part query``):

    python benchmarks/study_cache.py --model M --task rerank --order reversed --tokens 128 --query-part query
    python benchmarks/study_cache.py --model M --task multihop --order shuffled --tokens 128 --query-part query
    python benchmarks/study_query_part.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --unseen-only qwen2.5-coder-0.5b-instruct \\
        --json reports/query_part_study.json --markdown reports/query_part_study.md

Only queries both caches hold are compared. ``--unseen-only M``: M's default heads were detected on its SciFact
``select`` split, so its SciFact figures come from the ``tune`` split alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _report import write_reports
from study_cache import DevExample, dev_examples, study_parser
from study_defaults import TASKS, DevScores, add_unseen_only, default_heads, figure, items, product_cache

from qrhead_integrations.presets import model_fusion

QUERY_PARTS = ("all", "query")


def study(
    model: str, unseen: bool, tokens: int, cache_dir: Path, examples: dict[str, list[DevExample]]
) -> dict[str, Any]:
    """Both query parts' figures, alone and fused, on the dev queries both caches hold."""
    heads = default_heads(model)
    fusion = model_fusion(model)
    out: dict[str, Any] = {}
    for task, name in TASKS.items():
        caches = {part: product_cache(model, task, tokens, cache_dir, query_part=part) for part in QUERY_PARTS}
        keys = set.intersection(*(set(c) for c in caches.values()))
        splits = ["tune"] if unseen and task == "rerank" else ["select", "tune"]
        kept = [e for e in examples[task] if e.key in keys]
        rows = {}
        for part, scores in caches.items():
            data: list[DevScores] = [d for split in splits for d in items(kept, scores, split)]
            rows[part] = {"alone": figure(data, heads, name), "fused": figure(data, heads, name, fusion)}
        out[task] = {"queries": len(data), "splits": splits, "metric": name, "rows": rows}
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Which rows' attention is read: the whole tail or the query's own (dev caches)",
        "",
        "Each model's default heads; alone / at its default fusion (`benchmarks/study_query_part.py`).",
    ]
    for model, tasks in report["models"].items():
        columns = [
            f"{'SciFact' if task == 'rerank' else 'HotpotQA'} {t['metric']} ({t['queries']}, {'+'.join(t['splits'])})"
            for task, t in tasks.items()
        ]
        lines += ["", f"## {model}", "", "| query_part | " + " | ".join(columns) + " |", "|---|" + "---|" * len(tasks)]
        for part in QUERY_PARTS:
            cells = [f"{t['rows'][part]['alone']:.3f} / {t['rows'][part]['fused']:.3f}" for t in tasks.values()]
            lines.append(f"| `{part}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_parser(__doc__)
    add_unseen_only(parser)
    args = parser.parse_args()
    examples = {task: dev_examples(task) for task in TASKS}
    report = {"models": {m: study(m, m in args.unseen_only, args.tokens, args.cache_dir, examples) for m in args.model}}
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


if __name__ == "__main__":
    main()
