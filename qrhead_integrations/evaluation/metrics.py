"""Ranking metrics: BEIR-style nDCG@k, recall@k and MRR@k, plus multi-hop gold recall.

The formulas are implemented here rather than taken from a library: ``ranx`` pulls in
numba, pandas and ir_datasets and spends tens of seconds JIT-compiling on first use, and ``pytrec_eval``
breaks score ties by *descending* document id and cannot cut MRR at k. The definitions follow trec_eval as
used by BEIR:

* a document is relevant when its qrels grade is > 0; unjudged documents have grade 0;
* nDCG@k uses linear gain (the grade) and a ``log2(rank + 1)`` discount; the ideal DCG ranks *all* judged
  relevant documents of the query by grade, not only the retrieved ones;
* recall@k is the share of the query's relevant documents found in the top k;
* MRR@k is ``1 / rank`` of the first relevant document within the top k, else 0.

Ties: documents with equal scores are ordered by ascending document id, so results never depend on dict
order. trec_eval (``comp_sim_docno``) orders ties by *descending* id, so the two can differ only where a
relevant document ties with another document at or across the cutoff.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from .._checks import check_int
from ..errors import InvalidInputError
from ..fusion import rank_order

Run = Mapping[str, Mapping[str, float]]
"""Query id -> {document id -> retrieval score}; higher is better."""
Qrels = Mapping[str, Mapping[str, int]]
"""Query id -> {document id -> graded relevance}."""

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def _ndcg(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    gains = [max(judged.get(doc, 0), 0) for doc in ranked[:k]]
    dcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))
    ideal = sorted((grade for grade in judged.values() if grade > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def _recall(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def _mrr(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


_METRICS: dict[str, Callable[[Sequence[str], Mapping[str, int], int], float]] = {
    "ndcg": _ndcg,
    "recall": _recall,
    "mrr": _mrr,
}


def _parse(name: str) -> tuple[Callable[[Sequence[str], Mapping[str, int], int], float], int]:
    """``"ndcg@10"`` -> (function, 10); a typo fails before any work instead of producing a missing key."""
    base, sep, cutoff = name.lower().partition("@")
    if base not in _METRICS or not sep or not cutoff.isdigit() or int(cutoff) < 1:
        known = ", ".join(f"{m}@k" for m in _METRICS)
        raise InvalidInputError(f"unknown metric {name!r}; expected one of {known} with k >= 1")
    return _METRICS[base], int(cutoff)


def rank_documents(scores: Mapping[str, float]) -> list[str]:
    """Document ids by descending score, ties by ascending id (the module's deterministic tie rule).

    Raises:
        ValueError: a score is NaN, which has no place in an order.
    """
    for doc, score in scores.items():
        if math.isnan(score):
            raise InvalidInputError(f"document {doc!r} has a NaN score")
    return sorted(scores, key=lambda doc: (-scores[doc], doc))


def per_query(run: Run, qrels: Qrels, metrics: Iterable[str] = DEFAULT_METRICS) -> dict[str, dict[str, float]]:
    """Each metric for each query that has qrels: ``{query id: {metric: value}}``.

    A query judged in ``qrels`` but absent from ``run`` scores 0 on every metric (trec_eval ``-c``), so a
    retriever cannot raise its mean by skipping hard queries; run queries without qrels are ignored. A query
    whose judgments are all 0 scores 0. Per-query values are what significance tests and error analysis need.

    Args:
        run: query id -> {document id -> score}.
        qrels: query id -> {document id -> grade}.
        metrics: names like ``"ndcg@10"``, ``"recall@100"``, ``"mrr@10"`` (case-insensitive).

    Raises:
        ValueError: an unknown metric name or a NaN score.
    """
    names = list(metrics)
    parsed = [(name, *_parse(name)) for name in names]
    results: dict[str, dict[str, float]] = {}
    for query_id, judged in qrels.items():
        ranked = rank_documents(run.get(query_id, {}))
        results[query_id] = {name: fn(ranked, judged, k) for name, fn, k in parsed}
    return results


def evaluate_run(run: Run, qrels: Qrels, metrics: Iterable[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the queries that have qrels (see :func:`per_query` for the rules).

    Args:
        run: query id -> {document id -> score}, e.g. a re-ranker's scores over BM25's top 100.
        qrels: query id -> {document id -> grade}.
        metrics: names like ``"ndcg@10"``; the result keeps their spelling and order.

    Returns:
        ``{metric: mean}``; every mean is 0.0 when ``qrels`` is empty.

    Raises:
        ValueError: an unknown metric name or a NaN score.
    """
    names = list(metrics)
    table = per_query(run, qrels, names)
    count = len(table)
    return {name: (sum(row[name] for row in table.values()) / count if count else 0.0) for name in names}


def rank_indices(scores: Sequence[float]) -> list[int]:
    """Passage indices by descending score, ties by ascending index, to feed the multi-hop helpers.

    This is the product's own order: :func:`qrhead_integrations.fusion.rank_order`.
    """
    return rank_order(scores)


def recall_at_k(ranked_indices: Sequence[int], gold: Collection[int], k: int) -> float:
    """Fraction of the gold passages among the first ``k`` ranked indices (multi-hop retrieval recall).

    Raises:
        ValueError: ``gold`` is empty (recall is undefined) or ``k`` < 1.
    """
    wanted = _gold_set(gold, k)
    return len(wanted.intersection(ranked_indices[:k])) / len(wanted)


def all_gold_at_k(ranked_indices: Sequence[int], gold: Collection[int], k: int) -> float:
    """1.0 when *every* gold passage is in the first ``k``, else 0.0: a multi-hop answer needs all hops.

    Raises:
        ValueError: ``gold`` is empty or ``k`` < 1.
    """
    return 1.0 if _gold_set(gold, k).issubset(ranked_indices[:k]) else 0.0


def _gold_set(gold: Collection[int], k: int) -> set[int]:
    check_int(k, "k", minimum=1)
    if not gold:
        raise InvalidInputError("gold is empty: recall over no gold passages is undefined")
    return set(gold)
