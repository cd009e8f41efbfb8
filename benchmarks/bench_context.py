"""Many queries over one long context: `compress_many` (shared prefix) vs separate `compress` calls.

For each context length (4K and 8K tokens of real HotpotQA passages, one document) and k = 1, 4, 16 queries,
reports the total time of ``compress_many(k queries)`` against one ``compress`` call, and the ratio to the goal
``(1 + 0.15·k) × one query``.

    python benchmarks/bench_context.py --json reports/bench_context.json --markdown reports/bench_context.md
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from _report import write_reports

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.compress import ContextCompressor
from qrhead_integrations.prompt import PromptBuilder

REPO = Path(__file__).resolve().parents[1]
HOTPOTQA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in HOTPOTQA.read_text(encoding="utf-8").splitlines() if line.strip()]


def _document(builder: PromptBuilder, rows: list[dict[str, Any]], target_tokens: int) -> str:
    """Concatenate passages (blank-line separated) until the prompt reaches ``target_tokens``."""
    parts: list[str] = []
    for row in rows:
        for passage in row["passages"]:
            parts.append(f"{passage['title']}. {passage['text']}")
            if builder.count_tokens("\n\n".join(parts)) >= target_tokens:
                return "\n\n".join(parts)
    return "\n\n".join(parts)


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", default="4096,8192")
    parser.add_argument("--ks", default="1,4,16")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    scorer = QRHeadScorer.from_pretrained(args.model)
    builder = PromptBuilder(scorer.tokenizer, scorer.config.layout)  # counts tokens as the scorer does
    rows = _rows()
    questions = [row["question"] for row in rows]
    ks = [int(k) for k in args.ks.split(",")]
    report: dict[str, Any] = {
        "info": {
            "command": (
                f"python benchmarks/bench_context.py --model {args.model} --lengths {args.lengths} --ks {args.ks}"
            ),
            "model": args.model,
            "heads": str(scorer.heads),
            "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
            "date": time.strftime("%Y-%m-%d"),
        },
        "lengths": {},
    }
    for length in (int(x) for x in args.lengths.split(",")):
        document = _document(builder, rows, length)
        compressor = ContextCompressor(scorer, budget_tokens=length // 4)
        compressor.compress(questions[0], document)  # warm-up
        single = _timed(partial(compressor.compress, questions[0], document))
        entry: dict[str, Any] = {
            "document_tokens": builder.count_tokens(document),
            "single_seconds": single,
            "k": {},
        }
        for k in ks:
            many = _timed(partial(compressor.compress_many, questions[:k], document))
            goal = (1 + 0.15 * k) * single
            entry["k"][str(k)] = {
                "many_seconds": many,
                "k_single_seconds": k * single,
                "ratio_many_over_single": many / single,
                "goal_ratio": 1 + 0.15 * k,
                "meets_goal": many <= goal,
            }
            print(
                f"{length:>5} tokens, k={k:>2}: many {many:.2f}s vs one {single:.2f}s "
                f"(ratio {many / single:.2f}, goal <= {1 + 0.15 * k:.2f}; k separate calls ≈ {k * single:.1f}s)",
                flush=True,
            )
        if "16" in entry["k"]:
            entry["ratio_many_over_single_k16"] = entry["k"]["16"]["ratio_many_over_single"]
        report["lengths"][str(length)] = entry
    lines = [
        "# Many queries over one context",
        "",
        f"Command: `{report['info']['command']}`  ",
        f"Model: {args.model}; {report['info']['machine']}",
        "",
        "| context tokens | k | compress_many s | one compress s | ratio | goal (1+0.15k) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in report["lengths"].values():
        for k, row in entry["k"].items():
            lines.append(
                f"| {entry['document_tokens']} | {k} | {row['many_seconds']:.2f} | {entry['single_seconds']:.2f} "
                f"| {row['ratio_many_over_single']:.2f} | {row['goal_ratio']:.2f} |"
            )
    markdown = "\n".join(lines) + "\n"
    write_reports(report, markdown, args.json, args.markdown)
    print(markdown)


if __name__ == "__main__":
    main()
