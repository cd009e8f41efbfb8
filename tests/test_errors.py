"""Regression tests for bad input found by a hostile probe (issue #15): typed errors, never another exception."""

from __future__ import annotations

import pytest

from qrhead_integrations import (
    ContextCompressor,
    InvalidInputError,
    Passage,
    PassageTypeError,
    QRHeadScorer,
    UnencodableTextError,
)
from qrhead_integrations.chunking import paragraph_spans

SURROGATE = "Paris \ud800 is in France"


def test_lone_surrogates_raise_a_typed_error_naming_the_passage(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(UnencodableTextError, match=r"passage 1: passage text holds a lone surrogate U\+D800"):
        tiny_scorer.score("capital?", ["fine", SURROGATE])
    with pytest.raises(UnencodableTextError, match="passage 0: passage title"):
        tiny_scorer.score("capital?", [(SURROGATE, "text")])
    with pytest.raises(UnencodableTextError, match="the query holds a lone surrogate"):
        tiny_scorer.rank(SURROGATE, ["a", "b"])
    with pytest.raises(ValueError):  # also a ValueError, as documented
        Passage(text=SURROGATE)


def test_passage_fields_must_be_text() -> None:
    with pytest.raises(PassageTypeError, match="passage text must be a str, got NoneType"):
        Passage(text=None)  # type: ignore[arg-type]
    with pytest.raises(PassageTypeError, match="passage title must be a str, got int"):
        Passage(text="x", title=3)  # type: ignore[arg-type]


def test_compressor_rejects_surrogates_with_the_typed_error(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(InvalidInputError):
        ContextCompressor(tiny_scorer, budget_tokens=50).compress("capital?", f"Intro.\n\n{SURROGATE}")


@pytest.mark.parametrize("brk", ["\n\n", "\r\n\r\n", "\r\r", "\u2029", "\r\n \t\r\n", "\n\r\n"])
def test_paragraph_breaks_of_every_platform(brk: str) -> None:
    text = f"First paragraph.{brk}Second paragraph."
    assert [text[s:e] for s, e in paragraph_spans(text)] == ["First paragraph.", "Second paragraph."]


@pytest.mark.parametrize("line", ["\n", "\r\n", "\r"])
def test_a_single_line_end_is_not_a_paragraph_break(line: str) -> None:
    text = f"One line.{line}Next line."
    assert [text[s:e] for s, e in paragraph_spans(text)] == [text]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget_tokens": "10"}, "budget_tokens must be an int"),
        ({"budget_tokens": float("nan")}, "budget_tokens must be an int"),
        ({"budget_tokens": True}, "budget_tokens must be an int"),
        ({"top_k": 0}, "top_k must be an int >= 1"),
        ({"budget_tokens": 10, "min_score": float("nan")}, "min_score must be a number"),
        ({"budget_tokens": 10, "keep_neighbors": -1}, "keep_neighbors"),
    ],
)
def test_compressor_options_are_checked(tiny_scorer: QRHeadScorer, options: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ContextCompressor(tiny_scorer, **options)


def test_none_where_lists_belong(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(PassageTypeError, match="queries must be a list"):
        tiny_scorer.score_many(None, ["a"])  # type: ignore[arg-type]
    with pytest.raises(PassageTypeError, match="documents must be a str or a list"):
        ContextCompressor(tiny_scorer, budget_tokens=10).compress("q", None)  # type: ignore[arg-type]
    with pytest.raises(PassageTypeError):
        tiny_scorer.score("q", None)  # type: ignore[arg-type]


@pytest.mark.parametrize("answer", [-1, float("nan"), None, 2.5, "3", True])
def test_a_token_counter_that_does_not_count_is_a_typed_error(tiny_scorer: QRHeadScorer, answer: object) -> None:
    from qrhead_integrations import TokenCounterError

    def broken(text: str) -> object:
        return answer

    compressor = ContextCompressor(tiny_scorer, budget_tokens=50, token_counter=broken)  # type: ignore[arg-type]
    with pytest.raises(TokenCounterError, match=r"token counter 'broken' returned .* it must return an int >= 0"):
        compressor.compress("moon?", "The moon orbits the earth.\n\nParis is in France.")
    with pytest.raises(TokenCounterError, match="token counter must be None"):
        ContextCompressor(tiny_scorer, budget_tokens=50, token_counter=42)  # type: ignore[arg-type]


def test_langchain_reranker_rejects_broken_documents_with_a_typed_error(tiny_scorer: QRHeadScorer) -> None:
    """Documents whose fields were reassigned after construction (no pydantic check); non-documents and non-nodes
    for every adapter are in the adapter contract (tests/adapters)."""
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from qrhead_integrations.langchain import QRHeadReranker

    reranker = QRHeadReranker(scorer=tiny_scorer, top_n=2)
    broken = Document(page_content="a")
    broken.metadata = None  # type: ignore[assignment]  # reassigned after construction: no pydantic check
    with pytest.raises(PassageTypeError, match=r"documents\[0\].metadata is a NoneType, not a dict"):
        reranker.compress_documents([broken], "q")
    empty = Document(page_content="b")
    empty.page_content = None  # type: ignore[assignment]
    with pytest.raises(PassageTypeError, match=r"documents\[1\].page_content is a NoneType"):
        reranker.compress_documents([Document(page_content="ok"), empty], "q")
