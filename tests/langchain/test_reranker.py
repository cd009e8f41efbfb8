"""QRHeadReranker beyond the adapter contract (tests/adapters): fusion, titles, score key, duplicates, empty text,
options, serialisation, thread-safe lazy loading, async off the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from langchain_core.documents import Document

from qrhead_integrations import EmptyQueryError, PassageTypeError, QRHeadScorer
from qrhead_integrations.fusion import model_fusion
from qrhead_integrations.langchain import QRHeadReranker
from tests.langchain.helpers import SlowScorer, heartbeats_during

QUESTION = "Which Canadian rock band released a song called Counterparts?"


def test_default_fuses_the_input_order_and_none_turns_it_off(
    fast_scorer: QRHeadScorer, documents: list[Document]
) -> None:
    assert QRHeadReranker(scorer=fast_scorer).fusion == "default"  # the scorer's: the model's dev-chosen fusion
    assert fast_scorer.config.fusion == model_fusion(fast_scorer.model_id)
    scores = fast_scorer.score(QUESTION, [d.page_content for d in documents])
    alone = QRHeadReranker(scorer=fast_scorer, top_n=None, fusion=None).compress_documents(documents, QUESTION)
    order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))
    assert [d.id for d in alone] == [documents[i].id for i in order]
    assert [d.metadata["relevance_score"] for d in alone] == [d.metadata["qrhead_score"] for d in alone]
    # The input order alone (weight 1) returns the documents as given; reversing the input reverses it.
    first = QRHeadReranker(scorer=fast_scorer, top_n=None, fusion=1.0)
    assert [d.id for d in first.compress_documents(documents, QUESTION)] == [d.id for d in documents]
    assert [d.id for d in first.compress_documents(documents[::-1], QUESTION)] == [d.id for d in documents[::-1]]
    with pytest.raises(ValueError, match="fusion"):
        QRHeadReranker(scorer=fast_scorer, fusion=1.5)


def test_title_key_feeds_the_title_to_the_model(fast_scorer: QRHeadScorer, documents: list[Document]) -> None:
    with_title = QRHeadReranker(scorer=fast_scorer, top_n=None, title_key="title")
    without = QRHeadReranker(scorer=fast_scorer, top_n=None)
    by_id = {d.id: d.metadata["qrhead_score"] for d in with_title.compress_documents(documents, QUESTION)}
    plain = {d.id: d.metadata["qrhead_score"] for d in without.compress_documents(documents, QUESTION)}
    titled = fast_scorer.score(QUESTION, [(d.metadata["title"], d.page_content) for d in documents])
    untitled = fast_scorer.score(QUESTION, [d.page_content for d in documents])
    assert [by_id[d.id] for d in documents] == pytest.approx(titled)
    assert [plain[d.id] for d in documents] == pytest.approx(untitled)
    assert titled != pytest.approx(untitled)


def test_custom_score_key_and_an_existing_value_overwritten(
    fast_scorer: QRHeadScorer, documents: list[Document]
) -> None:
    """The score threshold itself is in the adapter contract (tests/adapters); here: where the score goes."""
    default = QRHeadReranker(scorer=fast_scorer, top_n=None).compress_documents(documents, QUESTION)
    keyed = QRHeadReranker(scorer=fast_scorer, top_n=None, relevance_score_key="rank")
    out = keyed.compress_documents(documents, QUESTION)
    assert [d.id for d in out] == [d.id for d in default]
    assert [d.metadata["rank"] for d in out] == [d.metadata["relevance_score"] for d in default]
    assert all("relevance_score" not in d.metadata for d in out)
    stale = [d.model_copy(update={"metadata": {**d.metadata, "rank": 99.0}}) for d in documents]
    rescored = keyed.compress_documents(stale, QUESTION)
    assert [d.metadata["rank"] for d in rescored] == [d.metadata["rank"] for d in out]
    assert all(d.metadata["rank"] == 99.0 for d in stale)


def test_duplicates_are_each_scored_and_kept(fast_scorer: QRHeadScorer, documents: list[Document]) -> None:
    twin = Document(page_content=documents[0].page_content, metadata={"title": "twin"}, id="twin")
    candidates = [*documents, twin]
    out = QRHeadReranker(scorer=fast_scorer, top_n=None).compress_documents(candidates, QUESTION)
    expected = fast_scorer.rank(QUESTION, [d.page_content for d in candidates], fusion="default")
    assert [d.id for d in out] == [candidates[r.index].id for r in expected]  # both copies, each at its own score
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx([r.score for r in expected])


def test_empty_documents_rank_last_with_minus_infinity(fast_scorer: QRHeadScorer) -> None:
    docs = [Document(page_content=""), Document(page_content="Rush is a Canadian rock band.")]
    out = QRHeadReranker(scorer=fast_scorer, top_n=None).compress_documents(docs, QUESTION)
    assert out[0].page_content.startswith("Rush")
    assert out[1].metadata["relevance_score"] == float("-inf")


def test_field_validation(fast_scorer: QRHeadScorer) -> None:
    with pytest.raises(ValueError, match="either `scorer` or loading options"):
        QRHeadReranker(scorer=fast_scorer, model="smollm2-135m-instruct")
    with pytest.raises(ValueError, match="top_n"):
        QRHeadReranker(scorer=fast_scorer, top_n=0)
    with pytest.raises(ValueError, match="top_n"):
        QRHeadReranker(scorer=fast_scorer).rerank([Document(page_content="x")], QUESTION, top_n=0)


def test_scorer_is_excluded_from_serialisation(fast_scorer: QRHeadScorer) -> None:
    reranker = QRHeadReranker(scorer=fast_scorer, top_n=2, title_key="title")
    dumped = reranker.model_dump()
    assert "scorer" not in dumped and dumped["top_n"] == 2 and dumped["title_key"] == "title"
    assert "scorer" not in json.loads(reranker.model_dump_json())


def test_lazy_scorer_loads_once_on_first_use(saved_tiny_model: Path, documents: list[Document]) -> None:
    reranker = QRHeadReranker(
        model=saved_tiny_model, heads="1-0,2-3", device="cpu", scorer_kwargs={"max_passage_tokens": 32}
    )
    with pytest.raises(EmptyQueryError):
        reranker.compress_documents(documents, " ")
    with pytest.raises(PassageTypeError):
        reranker.compress_documents(cast(Any, ["text"]), QUESTION)
    assert not reranker.scorer_loaded, "bad input must be rejected before the model is loaded"
    assert "model" in reranker.model_dump()

    barrier = threading.Barrier(4)
    seen: list[QRHeadScorer] = []

    def first_use() -> None:
        barrier.wait()
        reranker.compress_documents(documents[:3], QUESTION)
        seen.append(reranker.get_scorer())

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4 and all(s is seen[0] for s in seen)
    assert seen[0].config.max_passage_tokens == 32 and len(seen[0].heads) == 2


def test_acompress_runs_off_the_event_loop(tiny_llama: Any, tokenizer: Any, documents: list[Document]) -> None:
    scorer = SlowScorer(tiny_llama, tokenizer, heads="1-0,2-3", max_passage_tokens=32)
    reranker = QRHeadReranker(scorer=scorer, top_n=2)
    out, ticks = asyncio.run(heartbeats_during(reranker.acompress_documents(documents, QUESTION)))
    assert ticks >= 10, f"the event loop was blocked (only {ticks} heartbeats during 0.3 s of scoring)"
    assert scorer.threads and threading.get_ident() not in scorer.threads
    assert [d.id for d in out] == [d.id for d in reranker.compress_documents(documents, QUESTION)]
