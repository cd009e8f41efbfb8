"""QRHeadReranker: ranking, copies, metadata, thresholds, bad inputs, lazy loading, async off the loop."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from langchain_core.documents import BaseDocumentCompressor, Document

from qrhead_integrations import EmptyQueryError, PassageTypeError, QRHeadScorer
from qrhead_integrations.fusion import DEFAULT_FUSION
from qrhead_integrations.langchain import QRHeadReranker
from qrhead_integrations.presets import model_fusion
from tests.langchain.helpers import SlowScorer, heartbeats_during

QUESTION = "Which Canadian rock band released a song called Counterparts?"


def test_is_a_langchain_document_compressor(fast_scorer: QRHeadScorer) -> None:
    assert isinstance(QRHeadReranker(scorer=fast_scorer), BaseDocumentCompressor)


def test_returns_top_n_sorted_copies_with_scores(fast_scorer: QRHeadScorer, documents: list[Document]) -> None:
    reranker = QRHeadReranker(scorer=fast_scorer, top_n=4, title_key="title")
    out = reranker.compress_documents(documents, QUESTION)

    passages = [(d.metadata["title"], d.page_content) for d in documents]
    expected = fast_scorer.rank(QUESTION, passages, top_n=4, fusion=DEFAULT_FUSION)
    assert [doc.id for doc in out] == [documents[r.index].id for r in expected]
    assert [doc.metadata["relevance_score"] for doc in out] == pytest.approx([r.score for r in expected])
    assert [doc.metadata["qrhead_score"] for doc in out] == pytest.approx([r.qrhead_score for r in expected])
    for doc in out:
        original = next(d for d in documents if d.id == doc.id)
        assert doc is not original and doc.metadata is not original.metadata
        assert doc.page_content == original.page_content
        added = {"relevance_score", "qrhead_score"}
        assert {k: v for k, v in doc.metadata.items() if k not in added} == original.metadata
        assert isinstance(doc.metadata["relevance_score"], float)


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


def test_caller_documents_are_not_mutated(fast_scorer: QRHeadScorer, documents: list[Document]) -> None:
    before = copy.deepcopy(documents)
    out = QRHeadReranker(scorer=fast_scorer, top_n=None, title_key="title").compress_documents(documents, QUESTION)
    assert documents == before
    out[0].metadata["extra"] = 1  # each output owns its metadata dict
    assert documents == before
    assert all("relevance_score" not in d.metadata for d in documents)


def test_score_threshold_and_custom_key(fast_scorer: QRHeadScorer, documents: list[Document]) -> None:
    scores = fast_scorer.score(QUESTION, [d.page_content for d in documents])
    threshold = sorted(scores)[len(scores) // 2]
    reranker = QRHeadReranker(scorer=fast_scorer, top_n=None, score_threshold=threshold, relevance_score_key="rank")
    out = reranker.compress_documents(documents, QUESTION)
    assert len(out) == sum(s >= threshold for s in scores)  # the threshold applies to the QRHead score
    assert all(d.metadata["qrhead_score"] >= threshold for d in out)
    assert [d.metadata["rank"] for d in out] == sorted((d.metadata["rank"] for d in out), reverse=True)
    assert all("relevance_score" not in d.metadata for d in out)


def test_duplicates_are_each_scored_and_kept(fast_scorer: QRHeadScorer, documents: list[Document]) -> None:
    twin = Document(page_content=documents[0].page_content, metadata={"title": "twin"}, id="twin")
    out = QRHeadReranker(scorer=fast_scorer, top_n=None).compress_documents([*documents, twin], QUESTION)
    assert len(out) == len(documents) + 1
    assert {"twin", documents[0].id} <= {d.id for d in out}


def test_empty_document_list_returns_empty(fast_scorer: QRHeadScorer) -> None:
    assert QRHeadReranker(scorer=fast_scorer).compress_documents([], QUESTION) == []


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_raises_the_engine_error(fast_scorer: QRHeadScorer, documents: list[Document], query: str) -> None:
    with pytest.raises(EmptyQueryError, match="query is empty"):
        QRHeadReranker(scorer=fast_scorer).compress_documents(documents, query)
    with pytest.raises(ValueError):  # EmptyQueryError is a ValueError
        QRHeadReranker(scorer=fast_scorer).compress_documents([], query)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["plain text"], r"documents\[0\] is a str, not a langchain_core Document"),
        ([Document(page_content="ok"), {"page_content": "x"}], r"documents\[1\] is a dict"),
        (Document(page_content="one"), "must be a list of langchain_core Document"),
        ("a string", "must be a list"),
        (None, "must be a list"),
    ],
)
def test_non_documents_raise_a_clear_type_error(fast_scorer: QRHeadScorer, bad: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message) as info:
        QRHeadReranker(scorer=fast_scorer).compress_documents(bad, QUESTION)
    assert isinstance(info.value, PassageTypeError)


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
