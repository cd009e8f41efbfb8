"""The reranker inside LangChain's own components: ContextualCompressionRetriever and LCEL RAG chains."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from tests.langchain.helpers import EventCollector, format_docs, lexical_store, row_documents

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer from the context only."), ("human", "Context:\n{context}\n\nQuestion: {question}")]
)

PROMOTED_ROW = 1
"""Chosen by running this exact setup (lexical base retriever, SmolLM2 with every default: preset heads, the
reversed layout, 128-token cut, z-score fusion with the base order and BM25) on HotpotQA dev rows 0-37, in float32
(as here) and bf16 (as the LangChain notebook on an AMX CPU): the base top 3 holds one gold passage of two and the
re-ranker's holds both in 10 rows in float32 (the first: this one, also the notebook's); it holds both in 15 of the 38
rows overall, the base in 5. A showcase of the plumbing with a real model, not a measurement: the measured figures
are in docs/results.md."""


def rag_chain(retriever: Any, answer: str = "Rush") -> Any:
    context = {"context": retriever | format_docs, "question": RunnablePassthrough()}
    return context | PROMPT | FakeListChatModel(responses=[answer])


def test_contextual_compression_retriever_uses_the_reranker(
    store: InMemoryVectorStore, fast_scorer: QRHeadScorer, row: dict[str, Any]
) -> None:
    reranker = QRHeadReranker(scorer=fast_scorer, top_n=3, title_key="title")
    base = store.as_retriever(search_kwargs={"k": 10})
    compression = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base)

    out = compression.invoke(row["question"])
    expected = reranker.compress_documents(base.invoke(row["question"]), row["question"])
    assert out == list(expected) and len(out) == 3
    assert asyncio.run(compression.ainvoke(row["question"])) == out

    same = QRHeadRetriever(base_retriever=base, reranker=reranker, fetch_k=10).invoke(row["question"])
    assert same == out


def test_lcel_chain_reports_retrievers_and_fills_the_prompt(
    store: InMemoryVectorStore, fast_scorer: QRHeadScorer, row: dict[str, Any]
) -> None:
    retriever = QRHeadRetriever(
        base_retriever=store.as_retriever(), reranker=QRHeadReranker(scorer=fast_scorer, title_key="title")
    )
    collector = EventCollector()
    answer = rag_chain(retriever).invoke(row["question"], config={"callbacks": [collector]})

    assert answer.content == "Rush"
    starts = collector.of_kind("start")
    assert [s["name"] for s in starts] == ["QRHeadRetriever", "VectorStoreRetriever"]
    assert starts[1]["parent_run_id"] == starts[0]["run_id"]
    reranked = collector.of_kind("end")[-1]["documents"]
    (messages,) = collector.of_kind("chat_start")[0]["messages"]
    assert format_docs(reranked) in messages[-1].content


@pytest.mark.real_model
def test_qrhead_promotes_gold_passages_into_the_chain_context(
    smollm2: QRHeadScorer, hotpotqa_rows: list[dict[str, Any]]
) -> None:
    row = hotpotqa_rows[PROMOTED_ROW]
    documents = row_documents(row)
    gold = {documents[i].metadata["title"] for i in row["gold_idx"]}
    store = lexical_store(documents)

    base_top3 = store.as_retriever(search_kwargs={"k": 3}).invoke(row["question"])
    assert len(gold & {d.metadata["title"] for d in base_top3}) < 2, "precondition: the base top 3 misses a gold"

    retriever = QRHeadRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": 3}),
        reranker=QRHeadReranker(scorer=smollm2, title_key="title"),
        fetch_k=10,
        top_n=3,
    )
    collector = EventCollector()
    answer = rag_chain(retriever, row["answer"]).invoke(row["question"], config={"callbacks": [collector]})
    assert answer.content == row["answer"]

    reranked: list[Document] = collector.of_kind("end")[-1]["documents"]
    assert gold <= {d.metadata["title"] for d in reranked}
    (messages,) = collector.of_kind("chat_start")[0]["messages"]
    context = messages[-1].content
    for doc in reranked:
        assert f"{doc.metadata['title']}: {doc.page_content}" in context
    for title in gold:
        assert f"{title}: " in context
