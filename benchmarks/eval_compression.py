"""Long-context compression on HotpotQA: do both gold passages survive a 25% token budget?

Each question's 10 passages are concatenated into one document (``title. text`` paragraphs). Three selectors
keep chunks under the same budget (25% of the document's tokens by default) with the same selection rules:
QRHead scores, BM25 scores of the same chunks, and truncation (the first chunks, in order). A gold passage
"survives" when at least half of its characters are inside kept chunks.

    python benchmarks/eval_compression.py --model smollm2-135m-instruct --start 100 --limit 100 \\
        --json reports/compression_smollm2.json --markdown reports/compression_smollm2.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from _report import write_reports
from tqdm import tqdm

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.compress import ContextCompressor, ScoredChunk
from qrhead_integrations.evaluation import bm25_rank, read_multihop_jsonl

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"


def _document(example: Any) -> tuple[str, list[tuple[int, int]]]:
    """The concatenated document and each passage's character span in it."""
    parts, spans, cursor = [], [], 0
    for passage in example.passages:
        block = f"{passage.title}. {passage.text}" if passage.title else passage.text
        spans.append((cursor, cursor + len(block)))
        parts.append(block)
        cursor += len(block) + 2
    return "\n\n".join(parts), spans


def _survived(kept: list[ScoredChunk], span: tuple[int, int]) -> bool:
    start, end = span
    covered = sum(max(0, min(end, k.chunk.end) - max(start, k.chunk.start)) for k in kept)
    return covered >= 0.5 * (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--heads", default=None)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    examples = read_multihop_jsonl(args.data, limit=args.limit, start=args.start)
    scorer = QRHeadScorer.from_pretrained(args.model, heads=args.heads)
    systems = ("qrhead", "bm25", "truncation")
    both = dict.fromkeys(systems, 0)
    single = dict.fromkeys(systems, 0)
    ratios: dict[str, list[float]] = {s: [] for s in systems}
    seconds = 0.0
    for example in tqdm(examples, desc="compress"):
        document, spans = _document(example)
        budget = max(1, int(args.fraction * scorer._builder.count_tokens(document)))
        compressor = ContextCompressor(scorer, budget_tokens=budget)
        started = time.perf_counter()
        result = compressor.compress(example.question, document)
        seconds += time.perf_counter() - started
        chunks = result.chunks
        bm25 = bm25_rank(example.question, [c.chunk.text for c in chunks])
        selections = {
            "qrhead": result.kept,
            "bm25": compressor.select([ScoredChunk(c.chunk, s, c.tokens) for c, s in zip(chunks, bm25, strict=True)]),
            "truncation": compressor.select([ScoredChunk(c.chunk, -i, c.tokens) for i, c in enumerate(chunks)]),
        }
        for system, kept in selections.items():
            survived = [_survived(kept, spans[g]) for g in example.gold]
            both[system] += int(all(survived))
            single[system] += sum(survived)
            kept_tokens = compressor.count_tokens(compressor.separator.join(k.chunk.text for k in kept))
            ratios[system].append(kept_tokens / max(1, result.original_tokens))
    n = len(examples)
    gold_total = sum(len(e.gold) for e in examples)
    report = {
        "info": {
            "command": "python benchmarks/eval_compression.py "
            + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None and k not in ("json", "markdown")),
            "model": args.model,
            "heads": str(scorer.heads),
            "questions": n,
            "split": f"HotpotQA dev200 rows {args.start}..{args.start + n - 1}",
            "budget_fraction": args.fraction,
            "qrhead_seconds_per_question": seconds / max(1, n),
        },
        "metrics": {
            s: {
                "both_gold_kept": both[s] / n,
                "gold_kept": single[s] / gold_total,
                "mean_kept_ratio": sum(ratios[s]) / n,
            }
            for s in systems
        },
    }
    lines = [
        "# Compression to 25% of the tokens: gold passages kept",
        "",
        f"Command: `{report['info']['command']}`  ",
        f"Data: {report['info']['split']} ({n} questions); model {args.model}, heads `{scorer.heads}`; "
        f"QRHead {report['info']['qrhead_seconds_per_question']:.2f} s/question",
        "",
        "| selector | both gold kept | gold passages kept | mean kept/original tokens |",
        "| --- | --- | --- | --- |",
    ]
    for system, m in report["metrics"].items():
        lines.append(f"| {system} | {m['both_gold_kept']:.3f} | {m['gold_kept']:.3f} | {m['mean_kept_ratio']:.3f} |")
    markdown = "\n".join(lines) + "\n"
    write_reports(report, markdown, args.json, args.markdown)
    print(markdown)


if __name__ == "__main__":
    main()
