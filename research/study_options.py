"""Which scorer options help? Recall@2/@5 on multi-hop questions for each option, against BM25 and chance.

Variants (each differs from the default in one option): default; outlier filter on; reversed order;
debias (both orders averaged); plain layout (no chat template); no calibration; all heads (ICR). BM25 over
each question's own passages is the lexical baseline.

    python research/study_options.py --model smollm2-135m-instruct --start 100 --limit 100 \\
        --json reports/options_smollm2.json --markdown reports/options_smollm2.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from _report import relative, write_reports
from tqdm import tqdm

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.evaluation import bm25_rank, rank_indices, read_multihop_jsonl, recall_at_k

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "outlier_filter": {"outlier_filter": True},
    "reversed_order": {"order": "reversed"},
    "debias": {"debias": True},
    "plain_layout": {"layout": "plain"},
    "no_calibration": {"calibrate": False},
    "all_heads": {"heads": "all"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--heads", default=None)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    examples = read_multihop_jsonl(args.data, limit=args.limit, start=args.start)
    base = QRHeadScorer.from_pretrained(args.model, heads=args.heads)
    metrics: dict[str, dict[str, float]] = {}

    def record(name: str, rankings: list[list[int]], seconds: float) -> None:
        metrics[name] = {
            "recall@2": sum(recall_at_k(r, e.gold, 2) for r, e in zip(rankings, examples, strict=True)) / len(examples),
            "recall@5": sum(recall_at_k(r, e.gold, 5) for r, e in zip(rankings, examples, strict=True)) / len(examples),
            "seconds_per_question": seconds / len(examples),
        }
        print(
            f"{name:16s} recall@2 {metrics[name]['recall@2']:.3f}  recall@5 {metrics[name]['recall@5']:.3f}  "
            f"{metrics[name]['seconds_per_question']:.2f} s/q",
            flush=True,
        )

    started = time.perf_counter()
    record("bm25", [rank_indices(bm25_rank(e.question, e.passages)) for e in examples], time.perf_counter() - started)
    for name in args.variants.split(","):
        options = dict(VARIANTS[name])
        heads = options.pop("heads", None)
        scorer = base.with_config(heads=heads, **options)
        started = time.perf_counter()
        rankings = [rank_indices(scorer.score(e.question, e.passages)) for e in tqdm(examples, desc=name, leave=False)]
        record(name, rankings, time.perf_counter() - started)

    n_passages = sum(len(e.passages) for e in examples) / len(examples)
    report = {
        "info": {
            "command": "python research/study_options.py "
            + " ".join(
                f"--{k} {relative(v)}" for k, v in vars(args).items() if v is not None and k not in ("json", "markdown")
            ),
            "model": args.model,
            "heads": str(base.heads),
            "questions": len(examples),
            "split": f"{args.data.name} rows {args.start}..{args.start + len(examples) - 1}",
            "chance_recall@2": 2 / n_passages,
        },
        "metrics": metrics,
    }
    lines = [
        "# Scorer options on multi-hop retrieval",
        "",
        f"Command: `{report['info']['command']}`  ",
        f"Data: {report['info']['split']}; model {args.model}; heads `{base.heads}`; "
        f"chance recall@2 ≈ {2 / n_passages:.2f}",
        "",
        "| system | recall@2 | recall@5 | s/question |",
        "| --- | --- | --- | --- |",
    ]
    for name, m in metrics.items():
        lines.append(f"| {name} | {m['recall@2']:.3f} | {m['recall@5']:.3f} | {m['seconds_per_question']:.2f} |")
    markdown = "\n".join(lines) + "\n"
    write_reports(report, markdown, args.json, args.markdown)
    print(markdown)


if __name__ == "__main__":
    main()
