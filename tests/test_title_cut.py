"""A passage's title is cut too: a runaway title (a whole document in a metadata field) never plans a huge block.

Planning only (no forward) except for the LangChain case, whose bounded call runs on the tiny model.
"""

from __future__ import annotations

from typing import Any

import pytest

from qrhead_integrations import Passage, QRHeadScorer
from qrhead_integrations.plan import Unit
from qrhead_integrations.prompt import title_limit

HUGE_TITLE = "Title words " * 5_000  # 60,000 characters
TEMPLATE_ROOM = 200
"""Tokens of the prompt template, the marker and the query around the passage, with room to spare."""


def _lengths(scorer: QRHeadScorer, passages: list[Passage], *, uncut: bool = False) -> list[int]:
    planned = scorer.planner.plan_row(0, ["who wrote it?"], passages, uncut=uncut)
    assert planned is not None
    return [unit.length for unit in planned.units]


def test_a_60000_character_title_is_cut_to_its_share_of_max_passage_tokens(tiny_scorer: QRHeadScorer) -> None:
    limit = tiny_scorer.config.max_passage_tokens
    assert limit is not None
    [length] = _lengths(tiny_scorer, [Passage(text="short text", title=HUGE_TITLE)])
    assert length <= limit + TEMPLATE_ROOM
    cut = tiny_scorer.planner.cut([Passage(text="short text", title=HUGE_TITLE)])[0][0]
    assert tiny_scorer.planner.builder.count_tokens(cut.title) <= title_limit(limit)
    assert HUGE_TITLE.startswith(cut.title) and cut.text == "short text"


def test_a_usual_title_and_its_text_are_read_as_before(tiny_scorer: QRHeadScorer) -> None:
    passage = Passage(text="word " * 400, title="Hamlet")
    cut = tiny_scorer.planner.cut([passage])[0][0]
    assert cut.title == "Hamlet"
    assert tiny_scorer.planner.builder.count_tokens(cut.text) == tiny_scorer.config.max_passage_tokens


def test_uncut_calls_cut_titles_too(tiny_scorer: QRHeadScorer) -> None:
    """The compressor reads its chunks whole; the document title each carries is still bounded."""
    limit = tiny_scorer.config.max_passage_tokens
    assert limit is not None
    lengths = _lengths(tiny_scorer, [Passage(text="chunk one", title=HUGE_TITLE)] * 3, uncut=True)
    assert sum(lengths) <= 3 * (limit // 2 + 20) + TEMPLATE_ROOM


def test_without_a_cap_a_title_longer_than_the_context_is_cut_to_fit(tiny_scorer: QRHeadScorer) -> None:
    scorer = tiny_scorer.with_config(max_passage_tokens=None)
    with pytest.warns(UserWarning, match="cut to fit"):
        lengths = _lengths(scorer, [Passage(text="body " * 50, title=HUGE_TITLE), Passage(text="other")])
    assert max(lengths) <= scorer.context_length


def test_a_langchain_metadata_title_of_10000_characters_is_bounded(tiny_scorer: QRHeadScorer) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from qrhead_integrations.langchain import QRHeadReranker

    scorer = tiny_scorer.with_config(max_passage_tokens=32)
    planned: list[Unit] = []
    plan_row = scorer.planner.plan_row

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = plan_row(*args, **kwargs)
        planned.extend(result.units if result is not None else [])
        return result

    scorer.planner.plan_row = spy  # type: ignore[method-assign]
    documents = [
        Document(page_content="Hamlet is a play by Shakespeare.", metadata={"title": "x" * 10_000}),
        Document(page_content="Paris is in France.", metadata={"title": "Paris"}),
    ]
    out = QRHeadReranker(scorer=scorer, title_key="title", top_n=None).compress_documents(documents, "Hamlet?")
    assert len(out) == 2 and out[0].metadata["title"] in ("x" * 10_000, "Paris")  # the caller's title untouched
    assert planned and sum(unit.length for unit in planned) <= 2 * 32 + 16 + TEMPLATE_ROOM
