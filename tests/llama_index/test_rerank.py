"""QRHeadRerank on a tiny random model beyond the adapter contract (tests/adapters): serialisation, defaults,
fusion, missing query, duplicates, keep_retrieval_score, async off the loop, lazy loading, pipelines."""

from __future__ import annotations

import asyncio
import copy
import math
import re
import threading
import time
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex, get_response_synthesizer
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from qrhead_integrations import EMPTY_PASSAGE_SCORE, QRHeadScorer
from qrhead_integrations.fusion import DEFAULT_FUSION
from qrhead_integrations.llama_index import QRHeadRerank
from qrhead_integrations.llama_index import rerank as rerank_module

QUERY = "What is the capital of France?"
MISSING = re.escape("Missing query bundle in extra info.")


def texts_of(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]


def snapshot(nodes: list[NodeWithScore]) -> list[dict[str, Any]]:
    return [n.model_dump() for n in nodes]


# -------------------------------------------------------------------------------------------- basic contract
def test_class_name_and_serialisation(tiny_scorer: QRHeadScorer) -> None:
    rerank = QRHeadRerank(scorer=tiny_scorer, top_n=3)
    assert QRHeadRerank.class_name() == "QRHeadRerank"
    data = rerank.to_dict()
    assert data["class_name"] == "QRHeadRerank"
    assert data["top_n"] == 3 and data["model"] == "tiny-llama" and data["heads"] == "1-0,2-3,2-1"
    rebuilt = QRHeadRerank.from_dict(data)  # a new reranker that would load its model lazily
    assert (rebuilt.top_n, rebuilt.model, rebuilt.heads) == (3, "tiny-llama", "1-0,2-3,2-1")
    assert not rebuilt.scorer_loaded


def test_defaults_mirror_sentence_transformer_rerank() -> None:
    rerank = QRHeadRerank()
    assert rerank.top_n == 2
    assert rerank.keep_retrieval_score is False
    assert not rerank.scorer_loaded  # nothing is loaded until first use


def expected_ranking(scorer: QRHeadScorer, query: str, nodes: list[NodeWithScore], top_n: int | None) -> list[Any]:
    """What the default re-ranker must return: QRHead fused with the retriever's scores at the default weight."""
    first_stage = [float(n.score) for n in nodes] if all(n.score is not None for n in nodes) else None
    return scorer.rank(query, texts_of(nodes), top_n=top_n, first_stage_scores=first_stage, fusion=DEFAULT_FUSION)


def test_fusion_follows_the_retriever_scores_and_none_turns_it_off(
    tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore]
) -> None:
    assert QRHeadRerank(scorer=tiny_scorer).fusion == "default"  # the scorer's: the model's dev-chosen fusion
    assert tiny_scorer.config.fusion == DEFAULT_FUSION  # a model without its own
    alone = QRHeadRerank(scorer=tiny_scorer, top_n=None, fusion=None).postprocess_nodes(fact_nodes, query_str=QUERY)
    plain = tiny_scorer.rank(QUERY, texts_of(fact_nodes), fusion=None)
    assert [(n.node.node_id, n.score) for n in alone] == [
        (fact_nodes[r.index].node.node_id, pytest.approx(r.score)) for r in plain
    ]
    # Weight 1: the retriever's scores alone decide, whatever order the nodes come in.
    by_retriever = sorted(fact_nodes, key=lambda n: -float(n.score or 0.0))
    first = QRHeadRerank(scorer=tiny_scorer, top_n=None, fusion=1.0)
    assert [n.node.node_id for n in first.postprocess_nodes(fact_nodes[::-1], query_str=QUERY)] == [
        n.node.node_id for n in by_retriever
    ]
    # Without retriever scores, the input order is the first stage.
    unscored = [NodeWithScore(node=n.node) for n in fact_nodes]
    assert [n.node.node_id for n in first.postprocess_nodes(unscored, query_str=QUERY)] == [
        n.node.node_id for n in fact_nodes
    ]
    with pytest.raises(ValueError):
        QRHeadRerank(scorer=tiny_scorer, fusion=-0.5)


def test_query_bundle_is_accepted(tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore]) -> None:
    rerank = QRHeadRerank(scorer=tiny_scorer)
    by_bundle = rerank.postprocess_nodes(fact_nodes, query_bundle=QueryBundle(QUERY))
    by_str = rerank.postprocess_nodes(fact_nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in by_bundle] == [(n.node.node_id, n.score) for n in by_str]


def test_missing_query(tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore]) -> None:
    rerank = QRHeadRerank(scorer=tiny_scorer)
    with pytest.raises(ValueError, match=MISSING):
        rerank.postprocess_nodes(fact_nodes)
    with pytest.raises(ValueError, match=MISSING):
        asyncio.run(rerank.apostprocess_nodes(fact_nodes))
    with pytest.raises(ValueError, match=MISSING):
        rerank.postprocess_nodes([])  # checked before the empty-list shortcut, like the built-ins


def test_empty_node_ranks_last(tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore]) -> None:
    nodes = [NodeWithScore(node=TextNode(id_="blank", text=""), score=5.0), *fact_nodes]
    out = QRHeadRerank(scorer=tiny_scorer, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert out[-1].node.node_id == "blank"
    assert out[-1].score == EMPTY_PASSAGE_SCORE and math.isinf(EMPTY_PASSAGE_SCORE)
    expected = expected_ranking(tiny_scorer, QUERY, nodes, top_n=None)
    assert [(n.node.node_id, n.score) for n in out[:-1]] == [
        (nodes[r.index].node.node_id, pytest.approx(r.score)) for r in expected[:-1]
    ]


def test_duplicated_node_ids_are_each_scored_and_kept(
    tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore]
) -> None:
    """Hybrid or multi-query retrievers can return the same node twice: nothing is merged or dropped, and each
    copy gets the score of its own position in the prompt (positions differ, so the copies may differ)."""
    twin = NodeWithScore(node=fact_nodes[1].node, score=0.1)  # the very same node object, another score
    nodes = [*fact_nodes, twin]
    before = snapshot(nodes)
    out = QRHeadRerank(scorer=tiny_scorer, top_n=None, fusion=None).postprocess_nodes(nodes, query_str=QUERY)
    assert sum(n.node.node_id == fact_nodes[1].node.node_id for n in out) == 2
    expected = tiny_scorer.rank(QUERY, texts_of(nodes), fusion=None)
    assert [(n.node.node_id, n.score) for n in out] == [
        (nodes[r.index].node.node_id, pytest.approx(r.score)) for r in expected
    ]
    assert snapshot(nodes) == before


def test_scorer_and_model_are_exclusive(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(ValueError, match="either `scorer` or loading options"):
        QRHeadRerank(scorer=tiny_scorer, model="smollm2-135m-instruct")
    with pytest.raises(ValueError, match="heads"):
        QRHeadRerank(scorer=tiny_scorer, heads="nq")
    with pytest.raises(TypeError, match="QRHeadScorer"):
        QRHeadRerank(scorer=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QRHeadRerank(top_n=-1)


# -------------------------------------------------------------------------------------------- immutability
def test_keep_retrieval_score_copies_the_node_and_leaves_the_callers_alone(
    tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore]
) -> None:
    """Without ``keep_retrieval_score`` the node is shared (no mutation: tests/adapters); with it the node is copied
    before the score is added, so the caller's node never gains the key."""
    original = {n.node.node_id: n.score for n in fact_nodes}
    before = copy.deepcopy(fact_nodes)
    keeping = QRHeadRerank(scorer=tiny_scorer, top_n=None, keep_retrieval_score=True)
    out = keeping.postprocess_nodes(fact_nodes, query_str=QUERY)
    out_async = asyncio.run(keeping.apostprocess_nodes(fact_nodes, query_str=QUERY))
    assert fact_nodes == before
    assert not any(r.node is n.node or r.node.metadata is n.node.metadata for r in out for n in fact_nodes)
    assert [(r.node.node_id, r.score, r.node.metadata) for r in out_async] == [
        (r.node.node_id, r.score, r.node.metadata) for r in out
    ]
    texts = {n.node.node_id: n.node.get_content() for n in fact_nodes}
    for r in out:
        assert r.node.metadata["retrieval_score"] == original[r.node.node_id]
        assert r.node.metadata["source"] == "facts"
        assert r.node.get_content() == texts[r.node.node_id]
    plain = QRHeadRerank(scorer=tiny_scorer, top_n=None).postprocess_nodes(fact_nodes, query_str=QUERY)
    assert all("retrieval_score" not in r.node.metadata for r in plain)
    # the score in metadata is not shown to the model: the copy scores exactly like the original
    assert [r.score for r in out] == [r.score for r in plain]


# -------------------------------------------------------------------------------------------- async & threads
def test_async_scores_off_the_event_loop(
    tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    original = QRHeadScorer.score

    def recording_score(self: QRHeadScorer, query: str, passages: Any) -> list[float]:
        threads.append(threading.get_ident())
        time.sleep(0.2)
        return original(self, query, passages)

    monkeypatch.setattr(QRHeadScorer, "score", recording_score)
    rerank = QRHeadRerank(scorer=tiny_scorer, top_n=None)

    async def main() -> tuple[int, int, list[NodeWithScore]]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        out = await rerank.apostprocess_nodes(fact_nodes, query_str=QUERY)
        task.cancel()
        return threading.get_ident(), ticks, out

    loop_thread, ticks, out = asyncio.run(main())
    assert threads and threads[0] != loop_thread
    assert ticks >= 5  # the loop kept running while the model scored
    sync = QRHeadRerank(scorer=tiny_scorer, top_n=None).postprocess_nodes(fact_nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == [(n.node.node_id, n.score) for n in sync]


def test_concurrent_async_queries(tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore]) -> None:
    rerank = QRHeadRerank(scorer=tiny_scorer, top_n=3)
    queries = [QUERY, "Which body orbits the earth?", "What temperature does water boil at?"]

    async def main() -> list[list[NodeWithScore]]:
        return list(await asyncio.gather(*(rerank.apostprocess_nodes(fact_nodes, query_str=q) for q in queries)))

    results = asyncio.run(main())
    for query, result in zip(queries, results, strict=True):
        expected = expected_ranking(tiny_scorer, query, fact_nodes, top_n=3)
        assert [n.node.node_id for n in result] == [fact_nodes[r.index].node.node_id for r in expected]


def test_lazy_scorer_is_built_once_thread_safe(
    tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def fake_from_pretrained(model: Any, **kwargs: Any) -> QRHeadScorer:
        calls.append((model, kwargs))
        time.sleep(0.2)  # widen the race window
        return tiny_scorer

    monkeypatch.setattr(rerank_module.QRHeadScorer, "from_pretrained", fake_from_pretrained)
    rerank = QRHeadRerank(model="some-model", heads="1-0", device="cpu", scorer_kwargs={"debias": True})
    assert calls == []  # construction loads nothing
    seen: list[QRHeadScorer] = []
    workers = [threading.Thread(target=lambda: seen.append(rerank.scorer)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert calls == [("some-model", {"heads": "1-0", "device": "cpu", "debias": True})]
    assert len(seen) == 4 and all(s is tiny_scorer for s in seen)
    assert rerank.postprocess_nodes(fact_nodes, query_str=QUERY)


def test_lazy_scorer_async_loads_off_the_event_loop(
    tiny_scorer: QRHeadScorer, fact_nodes: list[NodeWithScore], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []

    def fake_from_pretrained(model: Any, **kwargs: Any) -> QRHeadScorer:
        threads.append(threading.get_ident())
        return tiny_scorer

    monkeypatch.setattr(rerank_module.QRHeadScorer, "from_pretrained", fake_from_pretrained)
    rerank = QRHeadRerank(model="some-model")

    async def main() -> int:
        await rerank.apostprocess_nodes(fact_nodes, query_str=QUERY)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(threads) == 1 and threads[0] != loop_thread


# -------------------------------------------------------------------------------------------- real pipelines
def test_query_engine_pipeline_tiny(tiny_scorer: QRHeadScorer, facts_index: VectorStoreIndex) -> None:
    rerank = QRHeadRerank(scorer=tiny_scorer, top_n=2)
    engine = facts_index.as_query_engine(similarity_top_k=5, node_postprocessors=[rerank], llm=MockLLM())
    response = engine.query(QUERY)
    assert isinstance(response, Response) and isinstance(response.response, str)
    retrieved = facts_index.as_retriever(similarity_top_k=5).retrieve(QUERY)
    expected = expected_ranking(tiny_scorer, QUERY, retrieved, top_n=2)
    assert [n.node.node_id for n in response.source_nodes] == [retrieved[r.index].node.node_id for r in expected]
    assert [n.score for n in response.source_nodes] == pytest.approx([r.score for r in expected])


def test_query_engine_callback_manager(tiny_scorer: QRHeadScorer, facts_index: VectorStoreIndex) -> None:
    debug = LlamaDebugHandler()
    engine = RetrieverQueryEngine.from_args(
        facts_index.as_retriever(similarity_top_k=5),
        llm=MockLLM(),
        node_postprocessors=[QRHeadRerank(scorer=tiny_scorer, top_n=2)],
        callback_manager=CallbackManager([debug]),
    )
    response = engine.query(QUERY)
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1
    start, end = pairs[0]
    assert start.payload is not None and end.payload is not None
    assert start.payload[EventPayload.QUERY_STR] == QUERY and len(start.payload[EventPayload.NODES]) == 5
    assert [n.node.node_id for n in end.payload[EventPayload.NODES]] == [n.node.node_id for n in response.source_nodes]
    # the re-ranking is traced inside the query
    kinds = [event.event_type for event in debug.get_events()]
    assert kinds[0] == kinds[-1] == CBEventType.QUERY and kinds.count(CBEventType.RERANKING) == 2


def test_chained_with_builtin_postprocessor(tiny_scorer: QRHeadScorer, facts_index: VectorStoreIndex) -> None:
    synthesizer = get_response_synthesizer(llm=MockLLM())
    engine = RetrieverQueryEngine(
        retriever=facts_index.as_retriever(similarity_top_k=5),
        response_synthesizer=synthesizer,
        node_postprocessors=[
            SimilarityPostprocessor(similarity_cutoff=-1.0),
            QRHeadRerank(scorer=tiny_scorer, top_n=3),
        ],
    )
    response = asyncio.run(engine.aquery(QUERY))
    retrieved = facts_index.as_retriever(similarity_top_k=5).retrieve(QUERY)  # the cutoff of -1 keeps all 5
    expected = expected_ranking(tiny_scorer, QUERY, retrieved, top_n=3)
    assert [n.node.node_id for n in response.source_nodes] == [retrieved[r.index].node.node_id for r in expected]
    assert [n.score for n in response.source_nodes] == pytest.approx([r.score for r in expected])
