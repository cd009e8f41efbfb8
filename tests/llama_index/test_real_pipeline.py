"""End to end with real LlamaIndex components and the real SmolLM2 QRHead scorer on real HotpotQA passages.

The question (``PROMOTED_QUESTION``) was found by running the lexical retriever and SmolLM2's QRHead (every
default) over the first 20 questions of hotpotqa_dev200: on 5 of them (0, 14, 15, 17, 18) the retriever's top 2
hold no gold passage; on this one, in float32 and in bf16 alike, QRHeadRerank puts both gold passages in its top 2.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex, get_response_synthesizer
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.llama_index import QRHeadRerank
from tests.llama_index.conftest import PROMOTED_QUESTION, gold_ids
from tests.llama_index.events import ReRankEvents

pytestmark = pytest.mark.real_model

RETRIEVE_K = 10
TOP_N = 2


def test_retriever_alone_misses_gold(hotpot_index: VectorStoreIndex, promoted_row: dict[str, Any]) -> None:
    """The premise of the tests below: without re-ranking, no gold passage is in the top 2."""
    engine = hotpot_index.as_query_engine(similarity_top_k=TOP_N, llm=MockLLM())
    response = engine.query(promoted_row["question"])
    assert len(response.source_nodes) == TOP_N
    assert not {n.node.node_id for n in response.source_nodes} & gold_ids(promoted_row, PROMOTED_QUESTION)


def test_as_query_engine_promotes_gold(
    smollm2: QRHeadScorer, hotpot_index: VectorStoreIndex, promoted_row: dict[str, Any]
) -> None:
    rerank = QRHeadRerank(scorer=smollm2, top_n=TOP_N, keep_retrieval_score=True)
    engine = hotpot_index.as_query_engine(similarity_top_k=RETRIEVE_K, node_postprocessors=[rerank], llm=MockLLM())
    response = engine.query(promoted_row["question"])
    ids = [n.node.node_id for n in response.source_nodes]
    assert len(ids) == TOP_N
    assert set(ids) == gold_ids(promoted_row, PROMOTED_QUESTION)  # both gold passages promoted into the top 2
    scores = [n.score for n in response.source_nodes]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert all(0.0 < n.node.metadata["retrieval_score"] < 1.0 for n in response.source_nodes)
    assert all(n.node.metadata["title"] for n in response.source_nodes)


def test_retriever_query_engine_aquery_promotes_gold(
    smollm2: QRHeadScorer, hotpot_index: VectorStoreIndex, promoted_row: dict[str, Any]
) -> None:
    handler = ReRankEvents()
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        engine = RetrieverQueryEngine(
            retriever=hotpot_index.as_retriever(similarity_top_k=RETRIEVE_K),
            response_synthesizer=get_response_synthesizer(llm=MockLLM()),
            node_postprocessors=[QRHeadRerank(scorer=smollm2, top_n=TOP_N)],
        )
        response = asyncio.run(engine.aquery(promoted_row["question"]))
    finally:
        root.event_handlers.remove(handler)
    gold = gold_ids(promoted_row, PROMOTED_QUESTION)
    assert {n.node.node_id for n in response.source_nodes} == gold
    start, end = handler.events
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.model_name == smollm2.model_id and len(start.nodes) == RETRIEVE_K
    assert {n.node.node_id for n in end.nodes} == gold
