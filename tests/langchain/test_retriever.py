"""QRHeadRetriever over real LangChain retrievers: fetch_k, invoke/batch/ainvoke/abatch, callbacks, concurrency."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore

from qrhead_integrations import EmptyQueryError, QRHeadScorer
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from tests.langchain.helpers import EventCollector, SlowScorer, heartbeats_during, lexical_store, row_documents


class ListRetriever(BaseRetriever):
    """A real retriever with a ``k`` field (the BM25Retriever convention): the first ``k`` documents."""

    docs: list[Document]
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.docs[: self.k]


def ids(documents: list[Document]) -> list[str | None]:
    return [doc.id for doc in documents]


@pytest.fixture
def reranker(fast_scorer: QRHeadScorer) -> QRHeadReranker:
    return QRHeadReranker(scorer=fast_scorer, top_n=3, title_key="title")


def test_reranks_fetch_k_candidates_from_a_vector_store(
    store: InMemoryVectorStore, reranker: QRHeadReranker, row: dict[str, Any]
) -> None:
    base = store.as_retriever()  # returns 4 by default
    retriever = QRHeadRetriever(base_retriever=base, reranker=reranker, fetch_k=10, top_n=10)
    out = retriever.invoke(row["question"])
    assert len(out) == 10, "fetch_k=10 must be requested from the vector store"
    assert base.search_kwargs == {}, "the caller's base retriever is not modified"

    candidates = store.as_retriever(search_kwargs={"k": 10}).invoke(row["question"])
    expected = reranker.rerank(candidates, row["question"], top_n=10)
    assert ids(out) == ids(expected)
    assert [d.metadata["relevance_score"] for d in out] == [d.metadata["relevance_score"] for d in expected]


QUERY = "Counterparts drummer"


def test_top_n_defaults_to_the_rerankers(store: InMemoryVectorStore, reranker: QRHeadReranker) -> None:
    retriever = QRHeadRetriever(base_retriever=store.as_retriever(), reranker=reranker)
    candidates = store.as_retriever(search_kwargs={"k": 20}).invoke(QUERY)  # fetch_k=20: all 10 stored
    assert ids(retriever.invoke(QUERY)) == ids(reranker.rerank(candidates, QUERY, top_n=3))
    five = retriever.model_copy(update={"top_n": 5}).invoke(QUERY)
    assert ids(five) == ids(reranker.rerank(candidates, QUERY, top_n=5))


def test_fetch_k_none_keeps_the_base_setting(store: InMemoryVectorStore, reranker: QRHeadReranker) -> None:
    retriever = QRHeadRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": 2}), reranker=reranker, fetch_k=None, top_n=10
    )
    candidates = store.as_retriever(search_kwargs={"k": 2}).invoke(QUERY)
    out = retriever.invoke(QUERY)
    assert len(out) == 2 and ids(out) == ids(reranker.rerank(candidates, QUERY, top_n=10))


def test_fetch_k_with_mmr_search(store: InMemoryVectorStore, reranker: QRHeadReranker) -> None:
    base = store.as_retriever(search_type="mmr", search_kwargs={"fetch_k": 5})
    retriever = QRHeadRetriever(base_retriever=base, reranker=reranker, fetch_k=8, top_n=8)
    # MMR's own fetch_k is raised to k: 8 of the 8 nearest, not 8 asked of 5
    candidates = store.as_retriever(search_type="mmr", search_kwargs={"k": 8, "fetch_k": 8}).invoke(QUERY)
    out = retriever.invoke(QUERY)
    assert len(out) == 8 and ids(out) == ids(reranker.rerank(candidates, QUERY, top_n=8))
    assert base.search_kwargs == {"fetch_k": 5}


def test_fetch_k_sets_a_k_field_on_a_copy(documents: list[Document], reranker: QRHeadReranker) -> None:
    base = ListRetriever(docs=documents, k=2)
    retriever = QRHeadRetriever(base_retriever=base, reranker=reranker, fetch_k=6, top_n=10)
    out = retriever.invoke(QUERY)
    assert ids(out) == ids(reranker.rerank(documents[:6], QUERY, top_n=10))
    assert base.k == 2


def test_any_runnable_returns_what_it_returns(documents: list[Document], reranker: QRHeadReranker) -> None:
    def first_five(query: str) -> list[Document]:
        return documents[:5]

    base = RunnableLambda(first_five)
    out = QRHeadRetriever(base_retriever=base, reranker=reranker, top_n=10).invoke(QUERY)
    assert ids(out) == ids(reranker.rerank(documents[:5], QUERY, top_n=10))


def test_empty_query_fails_before_retrieval_and_reports_the_error(
    store: InMemoryVectorStore, reranker: QRHeadReranker
) -> None:
    collector = EventCollector()
    retriever = QRHeadRetriever(base_retriever=store.as_retriever(), reranker=reranker)
    with pytest.raises(EmptyQueryError):
        retriever.invoke("  ", config={"callbacks": [collector]})
    assert [e["kind"] for e in collector.events] == ["start", "error"], "the base retriever is never called"
    with pytest.raises(EmptyQueryError):
        asyncio.run(retriever.ainvoke(""))


def test_callbacks_see_both_retrievers_nested(
    store: InMemoryVectorStore, reranker: QRHeadReranker, row: dict[str, Any]
) -> None:
    collector = EventCollector()
    retriever = QRHeadRetriever(base_retriever=store.as_retriever(), reranker=reranker)
    out = retriever.invoke(row["question"], config={"callbacks": [collector], "run_name": "qrhead"})

    starts, ends = collector.of_kind("start"), collector.of_kind("end")
    assert [s["name"] for s in starts] == ["qrhead", "VectorStoreRetriever"]
    outer, inner = starts
    assert outer["parent_run_id"] is None and inner["parent_run_id"] == outer["run_id"]
    assert all(s["query"] == row["question"] for s in starts)
    assert [e["run_id"] for e in ends] == [inner["run_id"], outer["run_id"]]
    assert ends[-1]["documents"] == out and len(ends[0]["documents"]) == 10  # fetch_k=20, 10 stored


def test_invoke_batch_ainvoke_abatch_agree(hotpotqa_rows: list[dict[str, Any]], reranker: QRHeadReranker) -> None:
    rows = hotpotqa_rows[:3]
    store = lexical_store([doc for r in rows for doc in row_documents(r)])
    retriever = QRHeadRetriever(base_retriever=store.as_retriever(), reranker=reranker, fetch_k=8)
    queries = [r["question"] for r in rows]

    sequential = [retriever.invoke(q) for q in queries]
    assert all(len(docs) == 3 for docs in sequential)
    assert retriever.batch(queries) == sequential
    assert asyncio.run(retriever.ainvoke(queries[0])) == sequential[0]
    assert asyncio.run(retriever.abatch(queries)) == sequential


def test_eight_concurrent_ainvoke_equal_sequential(
    hotpotqa_rows: list[dict[str, Any]], reranker: QRHeadReranker
) -> None:
    rows = hotpotqa_rows[:8]
    store = lexical_store([doc for r in rows for doc in row_documents(r)])
    retriever = QRHeadRetriever(base_retriever=store.as_retriever(), reranker=reranker, fetch_k=6)
    queries = [r["question"] for r in rows]
    sequential = [retriever.invoke(q) for q in queries]

    async def concurrently() -> list[list[Document]]:
        return list(await asyncio.gather(*(retriever.ainvoke(q) for q in queries)))

    assert asyncio.run(concurrently()) == sequential


def test_ainvoke_keeps_the_event_loop_free(
    tiny_llama: Any, tokenizer: Any, store: InMemoryVectorStore, row: dict[str, Any]
) -> None:
    scorer = SlowScorer(tiny_llama, tokenizer, heads="1-0,2-3", max_passage_tokens=32)
    retriever = QRHeadRetriever(base_retriever=store.as_retriever(), reranker=QRHeadReranker(scorer=scorer))
    out, ticks = asyncio.run(heartbeats_during(retriever.ainvoke(row["question"])))
    assert ticks >= 10, f"the event loop was blocked (only {ticks} heartbeats during 0.3 s of scoring)"
    assert scorer.threads and threading.get_ident() not in scorer.threads
    assert out == retriever.invoke(row["question"])
