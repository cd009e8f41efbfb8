"""Rebuild the small real samples in this folder from the full copies in ../shared/data (not needed to use them).

* ``hotpotqa_sample.jsonl``: HotpotQA dev rows 0-19 of ``hotpotqa_dev200.jsonl``, unchanged.
* ``scifact_sample/``: a standard-layout BEIR folder with SciFact train queries at positions 0-9 (query-id
  order; the qrels of those queries only) and a corpus cut to what they need: each query's BM25 top 20 over the
  full corpus plus its judged documents. BM25 over this small corpus ranks differently from BM25 over all 5,183
  abstracts, so figures on the sample only show that a command runs; the full figures need ../shared/data.

    python examples/data/build_sample.py
"""

from __future__ import annotations

import json
from pathlib import Path

from qrhead_integrations.evaluation import BM25Index, read_beir

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"
QUERIES = 10
TOP_K = 20


def main() -> None:
    rows = (SHARED / "hotpotqa" / "hotpotqa_dev200.jsonl").read_text(encoding="utf-8").splitlines()
    (HERE / "hotpotqa_sample.jsonl").write_text("\n".join(rows[:20]) + "\n", encoding="utf-8")

    dataset = read_beir(SHARED / "scifact", split="train")
    query_ids = sorted(dataset.queries, key=int)[:QUERIES]
    index = BM25Index(dataset.corpus)
    keep: set[str] = set()
    for qid in query_ids:
        keep.update(doc for doc, _ in index.search(dataset.queries[qid], TOP_K))
        keep.update(doc for doc in dataset.qrels[qid] if doc in dataset.corpus)
    out = HERE / "scifact_sample"
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc in sorted(keep, key=int):
            passage = dataset.corpus[doc]
            fh.write(json.dumps({"_id": doc, "title": passage.title, "text": passage.text}, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid in query_ids:
            fh.write(json.dumps({"_id": qid, "text": dataset.queries[qid]}, ensure_ascii=False) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{qid}\t{doc}\t{grade}" for qid in query_ids for doc, grade in dataset.qrels[qid].items()]
    (out / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(rows[:20])} HotpotQA rows; SciFact: {len(query_ids)} queries, {len(keep)} documents")


if __name__ == "__main__":
    main()
