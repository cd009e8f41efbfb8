"""QRHeadRetriever.batch/abatch with packed forwards: invoke's result and runs per query, fewer forwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from qrhead_integrations import EmptyQueryError, PassageTypeError, QRHeadScorer
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from tests.langchain.helpers import EventCollector, lexical_store, row_documents


def _store_retriever(rows: list[dict[str, Any]], rows_per_forward: int | None, scorer: QRHeadScorer) -> QRHeadRetriever:
    documents = [doc for row in rows for doc in row_documents(row)]
    reranker = QRHeadReranker(scorer=scorer, top_n=3, title_key="title", rows_per_forward=rows_per_forward)
    return QRHeadRetriever(base_retriever=lexical_store(documents).as_retriever(), reranker=reranker, fetch_k=8)


def _forwards(scorer: QRHeadScorer) -> tuple[list[int], Any]:
    calls: list[int] = []
    handle = scorer.model.model.layers[0].register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    return calls, handle


def _scored(documents: list[Document]) -> list[tuple[str | None, float]]:
    return [(doc.id, doc.metadata["relevance_score"]) for doc in documents]


@pytest.fixture
def queries(hotpotqa_rows: list[dict[str, Any]]) -> list[str]:
    return [row["question"] for row in hotpotqa_rows[:4]]


def test_packed_batch_gives_invokes_results_in_fewer_forwards(
    hotpotqa_rows: list[dict[str, Any]], fast_scorer: QRHeadScorer, queries: list[str]
) -> None:
    retriever = _store_retriever(hotpotqa_rows[:4], 4, fast_scorer)
    calls, handle = _forwards(fast_scorer)
    try:
        alone = [retriever.invoke(q) for q in queries]
        sequential_forwards = len(calls)
        calls.clear()
        packed = retriever.batch(queries)
    finally:
        handle.remove()
    assert [[d.id for d in docs] for docs in packed] == [[d.id for d in docs] for docs in alone]
    for got, want in zip(packed, alone, strict=True):
        assert [s for _, s in _scored(got)] == pytest.approx([s for _, s in _scored(want)], abs=1e-5)
        assert [d.metadata["title"] for d in got] == [d.metadata["title"] for d in want]
    assert max(calls) > 1, "several rows must share a forward"
    assert len(calls) < sequential_forwards


def test_packed_batch_starts_one_run_per_query_with_the_base_run_nested(
    hotpotqa_rows: list[dict[str, Any]], fast_scorer: QRHeadScorer, queries: list[str]
) -> None:
    retriever = _store_retriever(hotpotqa_rows[:4], 4, fast_scorer)
    collector = EventCollector()
    out = retriever.batch(queries, config={"callbacks": [collector], "run_name": "rerank-step"})
    starts = collector.of_kind("start")
    ours = [e for e in starts if e["name"] == "rerank-step"]
    assert sorted(e["query"] for e in ours) == sorted(queries)
    assert all(e["parent_run_id"] is None for e in ours)
    children = [e for e in starts if e["name"] != "rerank-step"]
    assert sorted(e["parent_run_id"] for e in children) == sorted(e["run_id"] for e in ours)
    ends = {e["run_id"]: e["documents"] for e in collector.of_kind("end")}
    by_query = {e["query"]: e["run_id"] for e in ours}
    for query, docs in zip(queries, out, strict=True):
        assert [d.id for d in ends[by_query[query]]] == [d.id for d in docs]


def test_packed_batch_keeps_each_querys_error_to_itself(
    hotpotqa_rows: list[dict[str, Any]], fast_scorer: QRHeadScorer, queries: list[str]
) -> None:
    retriever = _store_retriever(hotpotqa_rows[:4], 4, fast_scorer)
    collector = EventCollector()
    inputs = [queries[0], "   ", queries[1]]
    out = retriever.batch(inputs, config={"callbacks": [collector]}, return_exceptions=True)
    assert isinstance(out[1], EmptyQueryError)
    assert [d.id for d in out[0]] == [d.id for d in retriever.invoke(queries[0])]
    assert [d.id for d in out[2]] == [d.id for d in retriever.invoke(queries[1])]
    assert len(collector.of_kind("error")) == 1
    with pytest.raises(EmptyQueryError):
        retriever.batch(inputs)


def test_packed_batch_isolates_a_base_retriever_returning_non_documents(
    hotpotqa_rows: list[dict[str, Any]], fast_scorer: QRHeadScorer
) -> None:
    documents = row_documents(hotpotqa_rows[0])
    base = RunnableLambda(lambda q: ["not a document"] if q == "bad" else documents)
    reranker = QRHeadReranker(scorer=fast_scorer, top_n=2, rows_per_forward=4)
    retriever = QRHeadRetriever(base_retriever=base, reranker=reranker)
    out = retriever.batch(["good one", "bad", "good two"], return_exceptions=True)
    assert isinstance(out[1], PassageTypeError)
    assert [d.id for d in out[0]] == [d.id for d in retriever.invoke("good one")]
    assert [d.id for d in out[2]] == [d.id for d in retriever.invoke("good two")]


def test_packed_abatch_equals_batch_and_per_call_k(
    hotpotqa_rows: list[dict[str, Any]], fast_scorer: QRHeadScorer, queries: list[str]
) -> None:
    retriever = _store_retriever(hotpotqa_rows[:4], 3, fast_scorer)
    packed = retriever.batch(queries, k=5)
    assert [len(docs) for docs in packed] == [5] * len(queries)
    assert [[d.id for d in docs] for docs in asyncio.run(retriever.abatch(queries, k=5))] == [
        [d.id for d in docs] for docs in packed
    ]


def test_cpu_default_is_langchains_own_batch(
    hotpotqa_rows: list[dict[str, Any]], fast_scorer: QRHeadScorer, queries: list[str]
) -> None:
    retriever = _store_retriever(hotpotqa_rows[:4], None, fast_scorer)
    calls, handle = _forwards(fast_scorer)
    try:
        out = retriever.batch(queries)
    finally:
        handle.remove()
    assert max(calls) == 1, "on a CPU the default packs no rows (measured slower there)"
    assert [[d.id for d in docs] for docs in out] == [[d.id for d in retriever.invoke(q)] for q in queries]


def test_rerank_many_equals_rerank_row_by_row(hotpotqa_rows: list[dict[str, Any]], fast_scorer: QRHeadScorer) -> None:
    reranker = QRHeadReranker(scorer=fast_scorer, top_n=None, rows_per_forward=2)
    rows = [(row_documents(r), r["question"]) for r in hotpotqa_rows[:3]] + [([], "nothing to rank")]
    together = reranker.rerank_many(rows)
    assert together[-1] == []
    for (docs, query), got in zip(rows[:-1], together[:-1], strict=True):
        want = reranker.rerank(docs, query)
        assert [d.id for d in got] == [d.id for d in want]
        assert [d.metadata["qrhead_score"] for d in got] == pytest.approx(
            [d.metadata["qrhead_score"] for d in want], abs=1e-5
        )
    with pytest.raises(EmptyQueryError):
        reranker.rerank_many([(rows[0][0], " ")])
