"""ContextCompressor and Chunker: budgets, order, offsets, edge cases, tiktoken offline, shared prefix."""

from __future__ import annotations

from typing import Any

import pytest

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.chunking import Chunker, SourceDocument, paragraph_spans, sentence_spans
from qrhead_integrations.compress import ContextCompressor
from qrhead_integrations.errors import EmptyQueryError, PassageTypeError
from qrhead_integrations.tokens import TokenCounterError, tiktoken_counter

DOC = (
    "The moon orbits the earth. It has no light of its own.\n\n"
    "Paris is the capital of France. Hamlet is a play by Shakespeare.\n\n"
    "  \n\n"
    "Water boils at one hundred degrees. Cats and dogs are animals. The quick brown fox jumps over the dog.\n\n"
    "The sun is a star and the moon is not."
)
DOCS = [DOC, SourceDocument("Stars shine at night. Planets do not shine.", title="Sky", id="sky")]


def test_paragraph_and_sentence_spans_map_back_to_the_text() -> None:
    spans = paragraph_spans(DOC)
    assert len(spans) == 4
    assert DOC[slice(*spans[1])] == "Paris is the capital of France. Hamlet is a play by Shakespeare."
    sentences = sentence_spans(DOC, *spans[2])
    assert [DOC[s:e] for s, e in sentences] == [
        "Water boils at one hundred degrees.",
        "Cats and dogs are animals.",
        "The quick brown fox jumps over the dog.",
    ]


def test_chunker_caps_chunks_and_keeps_exact_offsets(tokenizer: Any) -> None:
    long_doc = DOC + "\n\n" + "A very long sentence without any end " * 30
    chunker = Chunker(tokenizer, max_tokens=24)
    chunks = chunker.split([long_doc, "short"])
    assert {c.doc_index for c in chunks} == {0, 1}
    for chunk in chunks:
        source = long_doc if chunk.doc_index == 0 else "short"
        assert source[chunk.start : chunk.end] == chunk.text and chunk.text.strip() == chunk.text
        assert len(tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) <= 24 + 1
    starts = [c.start for c in chunks if c.doc_index == 0]
    assert starts == sorted(starts)


def test_chunker_rejects_non_text(tokenizer: Any) -> None:
    with pytest.raises(PassageTypeError, match="document 1"):
        Chunker(tokenizer).split(["fine", 3])


@pytest.fixture(scope="module")
def compressor(tiny_scorer: QRHeadScorer) -> ContextCompressor:
    return ContextCompressor(tiny_scorer, budget_tokens=40, max_chunk_tokens=32)


@pytest.mark.parametrize("budget", [12, 25, 40, 80])
def test_budget_is_never_exceeded_and_order_is_preserved(tiny_scorer: QRHeadScorer, budget: int) -> None:
    comp = ContextCompressor(tiny_scorer, budget_tokens=budget, max_chunk_tokens=32)
    result = comp.compress("what orbits the earth", DOCS)
    assert 0 < result.kept_tokens <= budget
    assert comp.count_tokens(result.text) == result.kept_tokens
    positions = [(k.chunk.doc_index, k.chunk.start) for k in result.kept]
    assert positions == sorted(positions)
    assert 0 < result.ratio < 1


@pytest.mark.parametrize("lexical", [None, 0.3, 1.0])
def test_kept_chunks_are_the_best_ranked_ones(tiny_scorer: QRHeadScorer, lexical: float | None) -> None:
    compressor = ContextCompressor(tiny_scorer, budget_tokens=40, lexical=lexical)
    result = compressor.compress("capital of France", DOCS)
    kept = {(k.chunk.doc_index, k.chunk.start) for k in result.kept}
    dropped = [c for c in result.chunks if (c.chunk.doc_index, c.chunk.start) not in kept]
    # Every dropped chunk that would have fitted in the leftover budget ranks lower than every kept chunk.
    leftover = compressor.budget_tokens - result.kept_tokens  # type: ignore[operator]
    for chunk in dropped:
        if chunk.tokens + 2 <= leftover:
            assert chunk.priority <= min(k.priority for k in result.kept)
    # The best chunk that fits the budget on its own is always kept (it is considered first).
    fitting = [c for c in result.chunks if c.tokens <= compressor.budget_tokens]  # type: ignore[operator]
    best = max(fitting, key=lambda c: c.priority)
    assert (best.chunk.doc_index, best.chunk.start) in kept


def test_lexical_share_orders_the_selection_by_the_fused_ranking(tiny_scorer: QRHeadScorer) -> None:
    from qrhead_integrations.compress import DEFAULT_COMPRESSOR_LEXICAL
    from qrhead_integrations.fusion import Fusion, fuse_with_first_stage
    from qrhead_integrations.lexical import bm25_rank

    assert ContextCompressor(tiny_scorer, top_k=1).fusion == (
        Fusion(weight=0.0, lexical=DEFAULT_COMPRESSOR_LEXICAL, form="ranks") if DEFAULT_COMPRESSOR_LEXICAL else None
    )
    plain = ContextCompressor(tiny_scorer, top_k=2, lexical=None).compress("capital of France", DOCS)
    assert all(c.fused is None and c.priority == c.score for c in plain.chunks)
    lexical_only = ContextCompressor(tiny_scorer, top_k=1, lexical=1.0).compress("capital of France", DOCS)
    texts = [c.chunk.text for c in lexical_only.chunks]
    bm25 = bm25_rank("capital of France", texts)
    assert lexical_only.kept[0].chunk.text == texts[max(range(len(texts)), key=lambda i: (bm25[i], -i))]
    mixed = ContextCompressor(tiny_scorer, top_k=2, lexical=0.4).compress("capital of France", DOCS)
    expected = fuse_with_first_stage(
        [c.score for c in mixed.chunks], Fusion(weight=0.0, lexical=0.4, form="ranks"), lexical_scores=bm25
    )
    assert [c.fused for c in mixed.chunks] == pytest.approx(expected)
    assert [c.score for c in mixed.chunks] == pytest.approx([c.score for c in plain.chunks])  # QRHead's own
    with pytest.raises(ValueError, match="lexical"):
        ContextCompressor(tiny_scorer, top_k=1, lexical=1.5)


def test_offsets_map_back_to_the_source(compressor: ContextCompressor) -> None:
    result = compressor.compress("stars", DOCS)
    texts = [DOC, DOCS[1].text]  # type: ignore[union-attr]
    for item in result.chunks:
        assert texts[item.chunk.doc_index][item.chunk.start : item.chunk.end] == item.chunk.text
    sky = [c for c in result.chunks if c.chunk.doc_index == 1]
    assert sky and all(c.chunk.doc_id == "sky" and c.chunk.title == "Sky" for c in sky)


def test_top_k_instead_of_a_budget(tiny_scorer: QRHeadScorer) -> None:
    result = ContextCompressor(tiny_scorer, top_k=2, max_chunk_tokens=32).compress("moon", DOCS)
    assert len(result.kept) == 2
    best = sorted(result.chunks, key=lambda c: -c.score)[:2]
    assert {id(c.chunk) for c in best} == {id(k.chunk) for k in result.kept}


def test_keep_neighbors_adds_adjacent_chunks(tiny_scorer: QRHeadScorer) -> None:
    plain = ContextCompressor(tiny_scorer, top_k=1, max_chunk_tokens=32).compress("Paris", [DOC])
    wide = ContextCompressor(tiny_scorer, top_k=1, keep_neighbors=1, max_chunk_tokens=32).compress("Paris", [DOC])
    (center,) = plain.kept
    index = [c.chunk.start for c in plain.chunks].index(center.chunk.start)
    expected = {c.chunk.start for c in plain.chunks[max(0, index - 1) : index + 2]}
    assert {k.chunk.start for k in wide.kept} == expected


def test_min_score_drops_low_chunks(tiny_scorer: QRHeadScorer) -> None:
    result = ContextCompressor(tiny_scorer, top_k=10, min_score=1e9).compress("moon", DOCS)
    assert result.kept == [] and result.kept_tokens == 0


def test_empty_and_whitespace_documents(compressor: ContextCompressor) -> None:
    result = compressor.compress("moon", ["", "   \n\n  "])
    assert result.kept == [] and result.chunks == [] and result.ratio == 1.0
    assert compressor.compress("moon", []).kept == []


def test_a_chunk_longer_than_the_budget_is_cut_when_nothing_fits(tiny_scorer: QRHeadScorer) -> None:
    comp = ContextCompressor(tiny_scorer, budget_tokens=5, max_chunk_tokens=64)
    doc = "The moon orbits the earth and has no light of its own at all."
    result = comp.compress("moon", [doc])
    (only,) = result.kept
    assert only.truncated and 0 < result.kept_tokens <= 5
    assert doc.startswith(only.chunk.text) and doc[only.chunk.start : only.chunk.end] == only.chunk.text


def test_bad_inputs(compressor: ContextCompressor, tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(EmptyQueryError):
        compressor.compress(" ", DOCS)
    assert ContextCompressor(tiny_scorer).budget_tokens == 1024  # COMPRESSION_DEFAULTS, as in both adapters
    with pytest.raises(ValueError, match="budget_tokens, top_k"):
        ContextCompressor(tiny_scorer, budget_tokens=None)
    with pytest.raises(ValueError, match="budget_tokens"):
        ContextCompressor(tiny_scorer, budget_tokens=0)


def test_compress_many_equals_separate_calls(compressor: ContextCompressor) -> None:
    queries = ["moon", "capital of France", "boiling water"]
    many = compressor.compress_many(queries, DOCS)
    for query, result in zip(queries, many, strict=True):
        single = compressor.compress(query, DOCS)
        assert [c.score for c in result.chunks] == pytest.approx([c.score for c in single.chunks], abs=1e-5)
        assert [k.chunk for k in result.kept] == [k.chunk for k in single.kept]


def test_score_many_equals_score_within_1e5(tiny_scorer: QRHeadScorer) -> None:
    passages = [DOC[s:e] for s, e in paragraph_spans(DOC)]
    many = tiny_scorer.score_many(["moon", "France"], passages)
    assert many[0] == pytest.approx(tiny_scorer.score("moon", passages), abs=1e-5)
    assert many[1] == pytest.approx(tiny_scorer.score("France", passages), abs=1e-5)


def test_tiktoken_budget_works_offline(tiny_scorer: QRHeadScorer, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    count = tiktoken_counter("cl100k_base")
    assert count("hello world") == 2
    comp = ContextCompressor(tiny_scorer, budget_tokens=20, token_counter="cl100k_base", max_chunk_tokens=32)
    result = comp.compress("moon", DOCS)
    assert 0 < count(result.text) <= 20 and result.kept_tokens == count(result.text)


def test_unavailable_tiktoken_encoding_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import socket

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(TokenCounterError, match="not available offline"):
        tiktoken_counter("o200k_base")
    with pytest.raises(TokenCounterError, match="unknown tiktoken encoding"):
        tiktoken_counter("no_such_encoding")


def test_chunks_are_read_whole_whatever_the_scorers_passage_cut(tiny_scorer: QRHeadScorer) -> None:
    text = " ".join(f"Sentence {i} is about the moon and the capital of France." for i in range(12))
    cut = tiny_scorer.with_config(max_passage_tokens=8)
    whole = tiny_scorer.with_config(max_passage_tokens=None)
    a = ContextCompressor(cut, top_k=1, max_chunk_tokens=64, lexical=None).compress("capital?", [text, "Paris."])
    b = ContextCompressor(whole, top_k=1, max_chunk_tokens=64, lexical=None).compress("capital?", [text, "Paris."])
    assert [c.score for c in a.chunks] == pytest.approx([c.score for c in b.chunks], abs=1e-6)
    assert max(c.tokens for c in a.chunks) > 8  # the cut would have bitten


def test_a_budget_larger_than_the_text_returns_the_text_unchanged(tiny_scorer: QRHeadScorer) -> None:
    """Nothing removed means nothing re-joined: Windows line ends and extra blank lines survive as given."""
    document = "First paragraph.\r\n\r\nSecond   paragraph here.\n\n\n\nThird one."
    result = ContextCompressor(tiny_scorer, budget_tokens=10_000, max_chunk_tokens=16).compress("q", document)
    assert len(result.kept) == len(result.chunks) == 3
    assert result.text == document and result.kept_tokens == result.original_tokens
    tight = ContextCompressor(tiny_scorer, budget_tokens=result.original_tokens - 6, max_chunk_tokens=16)
    cut = tight.compress("q", document)
    assert cut.text != document and cut.kept_tokens <= result.original_tokens - 6


def test_show_progress_draws_a_bar_for_a_long_compression(tiny_scorer: QRHeadScorer, capsys: Any) -> None:
    document = "\n\n".join(f"Paragraph {i} talks about the moon and the sun." for i in range(6))
    ContextCompressor(tiny_scorer, budget_tokens=40).compress("moon?", document)
    assert "qrhead" not in capsys.readouterr().err
    ContextCompressor(tiny_scorer, budget_tokens=40, show_progress=True).compress("moon?", document)
    assert "qrhead" in capsys.readouterr().err
    assert not tiny_scorer.config.show_progress  # the shared scorer's setting is left alone
