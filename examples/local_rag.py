"""A complete local RAG pipeline with one model in memory: BM25 retrieval → QRHead re-rank → answer.

Offline, on the 20 real HotpotQA rows shipped in ``examples/data/``. Their 200 Wikipedia passages form the
corpus; BM25 retrieves 10 candidates for a question; the model's QRHead heads re-rank them and keep the top 3;
the *same loaded model* answers from those 3 (``Reader.from_scorer``: no second copy of the weights). The script
prints the answer, the passages kept, and the reader tokens saved against answering from all 10 candidates —
and, for comparison, the answer from all 10.

    python examples/local_rag.py                          # the default model, question 15 of the sample
    python examples/local_rag.py --row 8 --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrhead_integrations import DEFAULT_MODEL, Passage, QRHeadScorer, Reader
from qrhead_integrations.lexical import BM25Index

DATA = Path(__file__).resolve().parent / "data" / "hotpotqa_sample.jsonl"
RETRIEVE = 10
KEEP = 3


def load_rows(path: Path = DATA) -> list[dict[str, Any]]:
    """The sample's rows (question, answer, passages, gold_idx)."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: give --data a HotpotQA-format JSONL file")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def corpus_of(rows: list[dict[str, Any]]) -> list[Passage]:
    """Every passage of every row, once (rows share some Wikipedia pages)."""
    seen: dict[tuple[str, str], Passage] = {}
    for row in rows:
        for p in row["passages"]:
            seen.setdefault((p["title"], p["text"]), Passage(text=p["text"], title=p["title"]))
    return list(seen.values())


def context_of(passages: list[Passage]) -> str:
    """The passages as the reader sees them: ``title. text`` paragraphs."""
    return "\n\n".join(f"{p.title}. {p.text}" for p in passages)


@dataclass
class RagResult:
    """What one question went through: the retrieved and kept passages, both answers and their token counts."""

    retrieved: list[Passage]
    kept: list[Passage]
    answer: str
    answer_tokens: int
    answer_from_all: str
    all_tokens: int


def answer_question(
    scorer: QRHeadScorer, reader: Reader, index: BM25Index, corpus: list[Passage], question: str
) -> RagResult:
    """Retrieve with BM25, re-rank with QRHead, answer from the top passages (and from all, to compare)."""
    retrieved = [corpus[int(doc_id)] for doc_id, _ in index.search(question, k=RETRIEVE)]
    ranked = scorer.rank(question, retrieved, top_n=KEEP)
    kept = [retrieved[r.index] for r in ranked]
    short = reader.answer(question, context_of(kept))
    full = reader.answer(question, context_of(retrieved))
    return RagResult(retrieved, kept, short.text, short.input_tokens, full.text, full.input_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="HotpotQA-format JSONL (default: the sample)")
    parser.add_argument("--row", type=int, default=15, help="which row's question to ask (default 15)")
    parser.add_argument("--model", default=os.environ.get("QRHEAD_EXAMPLE_MODEL", DEFAULT_MODEL))
    args = parser.parse_args()

    rows = load_rows(args.data)
    if not 0 <= args.row < len(rows):
        raise SystemExit(f"--row must be in 0..{len(rows) - 1} for {args.data}")
    row = rows[args.row]
    corpus = corpus_of(rows)
    index = BM25Index(corpus)  # ids are the corpus positions, as strings

    scorer = QRHeadScorer.from_pretrained(args.model)
    reader = Reader.from_scorer(scorer)  # the same weights answer: one model in memory
    result = answer_question(scorer, reader, index, corpus, row["question"])

    gold = {row["passages"][i]["title"] for i in row["gold_idx"]}
    print(f"Question: {row['question']}  (reference answer: {row['answer']})")
    print(f"\nBM25 retrieved {len(result.retrieved)} passages from {len(corpus)}; QRHead kept {len(result.kept)}:")
    for p in result.kept:
        print(f"  - {p.title}{'  [gold]' if p.title in gold else ''}")
    saved = 1 - result.answer_tokens / result.all_tokens
    print(f"\nAnswer from the {len(result.kept)} kept passages: {result.answer}")
    print(f"Reader tokens: {result.answer_tokens} instead of {result.all_tokens} ({saved:.0%} saved)")
    print(f"Answer from all {len(result.retrieved)} retrieved passages: {result.answer_from_all}")


if __name__ == "__main__":
    main()
