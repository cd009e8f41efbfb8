"""Evaluation groundwork: data readers, ranking metrics and BM25 candidates.

``bm25s`` (the ``eval`` extra) is imported only when a BM25 index is built, so readers and metrics work on
a core install.
"""

from ..lexical import BM25Index, bm25_rank, load_stemmer
from .candidates import beir_candidates
from .data import BeirDataset, MultihopExample, read_beir, read_multihop_jsonl
from .metrics import (
    DEFAULT_METRICS,
    all_gold_at_k,
    evaluate_run,
    per_query,
    rank_documents,
    rank_indices,
    recall_at_k,
)

__all__ = [
    "DEFAULT_METRICS",
    "BM25Index",
    "BeirDataset",
    "MultihopExample",
    "all_gold_at_k",
    "beir_candidates",
    "bm25_rank",
    "evaluate_run",
    "load_stemmer",
    "per_query",
    "rank_documents",
    "rank_indices",
    "read_beir",
    "read_multihop_jsonl",
    "recall_at_k",
]
