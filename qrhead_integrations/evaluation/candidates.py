"""Turn a BEIR dataset into labelled candidate lists: BM25's top-k per query, gold = judged relevant.

This is how re-ranking data reaches the engine (detection and evaluation alike): the model re-ranks what a
first-stage retriever found, so candidates and gold come from BM25 over the full corpus, as in BEIR's
re-ranking protocol.
"""

from __future__ import annotations

from ..lexical import BM25Index
from .data import BeirDataset, MultihopExample


def beir_candidates(
    dataset: BeirDataset,
    *,
    top_k: int = 20,
    start: int = 0,
    limit: int | None = None,
    index: BM25Index | None = None,
    require_gold: bool = True,
) -> list[MultihopExample]:
    """Candidate lists for the dataset's queries (sorted by query id, then ``[start:start+limit]``).

    Args:
        dataset: a :class:`BeirDataset`.
        top_k: BM25 candidates per query, best first.
        start: first query (in query-id order) to use — keep detection and evaluation slices disjoint.
        limit: how many queries from ``start`` (``None``: all).
        index: a prebuilt BM25 index over ``dataset.corpus`` (built here when ``None``).
        require_gold: drop queries with no judged-relevant document among the candidates (detection needs a
            gold passage; evaluation should keep them and count them as misses).

    Returns:
        One :class:`MultihopExample` per query: ``id`` = query id, ``passages`` in BM25 order, ``gold`` =
        indices of judged-relevant candidates.
    """
    bm25 = index if index is not None else BM25Index(dataset.corpus)
    query_ids = sorted(dataset.queries)
    chosen = query_ids[start:] if limit is None else query_ids[start : start + limit]
    examples = []
    for query_id in chosen:
        hits = bm25.search(dataset.queries[query_id], top_k)
        judged = dataset.qrels.get(query_id, {})
        gold = [i for i, (doc_id, _) in enumerate(hits) if judged.get(doc_id, 0) > 0]
        if require_gold and not gold:
            continue
        passages = [dataset.corpus[doc_id] for doc_id, _ in hits]
        examples.append(MultihopExample(id=query_id, question=dataset.queries[query_id], passages=passages, gold=gold))
    return examples
