"""Sanity check of the evaluation groundwork: BM25 top-100 on SciFact, scored with nDCG@10.

BEIR reports 0.665 nDCG@10 for BM25 on the SciFact *test* split; the shared copy has the *train* split, where
the same setup should land in the same 0.6-0.7 band. Usage::

    .venv/bin/python research/bm25_scifact.py [--data ../shared/data/scifact] [--split train] [--k 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from qrhead_integrations.evaluation import BM25Index, evaluate_run, read_beir

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="train")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--no-stem", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    dataset = read_beir(args.data, split=args.split)
    loaded = time.perf_counter()
    index = BM25Index(dataset.corpus, stem=False if args.no_stem else None)
    indexed = time.perf_counter()
    run = index.run(dataset.queries, k=args.k)
    searched = time.perf_counter()
    scores = evaluate_run(run, dataset.qrels, ("ndcg@10", "recall@10", f"recall@{args.k}", "mrr@10"))
    result = {
        "dataset": f"scifact/{args.split}",
        "docs": len(dataset.corpus),
        "queries": len(dataset.queries),
        "stemmed": index.stemmed,
        "metrics": {name: round(value, 4) for name, value in scores.items()},
        "seconds": {
            "read": round(loaded - started, 2),
            "index": round(indexed - loaded, 2),
            "search": round(searched - indexed, 2),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
