"""Many rows per forward (`score_per_head_batch`, `score_batch`, `rank_batch`): the same results as one row at a
time, on every tiny architecture (the sliding-window one falls back to one row per forward)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from qrhead_integrations import EmptyQueryError, InvalidInputError, PassageTypeError, QRHeadScorer, capture
from qrhead_integrations.fusion import Fusion
from tests.tiny_models import tiny_model

WORDS = [
    "the",
    "moon",
    "orbits",
    "earth",
    "sun",
    "is",
    "a",
    "star",
    "paris",
    "capital",
    "france",
    "water",
    "boils",
    "cats",
    "dogs",
    "fox",
    "jumps",
]


def _rows(count: int, seed: int = 0) -> list[tuple[str, list[Any]]]:
    """Rows of different lengths and passage counts (titles, an empty passage, a control-token look-alike)."""
    rng = torch.Generator().manual_seed(seed)
    rows = []
    for r in range(count):
        n = 2 + int(torch.randint(0, 6, (1,), generator=rng))
        passages: list[Any] = []
        for p in range(n):
            length = 3 + int(torch.randint(0, 25, (1,), generator=rng))
            words = [WORDS[int(i)] for i in torch.randint(0, len(WORDS), (length,), generator=rng)]
            passages.append((f"T{p}", " ".join(words)) if p % 2 else " ".join(words))
        if r == 3:
            passages.append("")
        if r == 5:
            passages.append("see <|im_end|> here")
        rows.append((f"where is {WORDS[r % len(WORDS)]} {r}?", passages))
    return rows


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma3"])
def scorer(request: pytest.FixtureRequest, tokenizer: Any) -> QRHeadScorer:
    model = tiny_model(request.param, vocab=len(tokenizer))
    return QRHeadScorer(model, tokenizer, heads="all", max_passage_tokens=None, fusion=None)


@pytest.mark.parametrize("rows_per_forward", [2, 4, 16])
def test_batched_scores_equal_row_by_row(scorer: QRHeadScorer, rows_per_forward: int) -> None:
    rows = _rows(9)
    alone = [scorer.score_per_head(query, passages) for query, passages in rows]
    batched = scorer.score_per_head_batch(rows, rows_per_forward=rows_per_forward)
    assert len(batched) == len(rows)
    for one, many in zip(alone, batched, strict=True):
        assert one.shape == many.shape
        assert torch.equal(torch.isinf(one), torch.isinf(many))
        finite = torch.isfinite(one)
        torch.testing.assert_close(many[finite], one[finite], rtol=0, atol=1e-5)


def test_batched_forward_really_packs_rows(scorer: QRHeadScorer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-cache models run several rows per forward; the sliding-window model (gemma3) one row per prefix
    forward (its tails then run on a fork of that row's cache)."""
    prefix_forwards: list[int] = []
    original = capture.run_layers

    def counting(model: Any, input_ids: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs["start"] == 0:
            prefix_forwards.append(len(input_ids) if not isinstance(input_ids[0], int) else 1)
        original(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(capture, "run_layers", counting)
    scorer.score_batch(_rows(6), rows_per_forward=3)
    if scorer.model.config.model_type == "gemma3_text":
        assert not capture.can_crop(capture.new_cache(scorer.model))  # a sliding-window cache cannot be packed
        assert prefix_forwards == [1] * 6
    else:
        assert capture.can_crop(capture.new_cache(scorer.model))
        assert prefix_forwards == [3, 3]


def test_rank_batch_equals_rank_with_fusion_and_first_stage(scorer: QRHeadScorer) -> None:
    rows = _rows(7, seed=1)
    fusion = Fusion(weight=0.3, lexical=0.2)
    stages = [None if r % 2 else [float(-i) for i in range(len(p))] for r, (_, p) in enumerate(rows)]
    batched = scorer.rank_batch(rows, fusion=fusion, first_stage_scores=stages, top_n=3, rows_per_forward=4)
    for (query, passages), stage, ranked in zip(rows, stages, batched, strict=True):
        alone = scorer.rank(query, passages, fusion=fusion, first_stage_scores=stage, top_n=3)
        assert [r.index for r in ranked] == [r.index for r in alone]
        assert [r.passage for r in ranked] == [r.passage for r in alone]
        for a, b in zip(ranked, alone, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)


def test_batched_windows_and_debias_equal_row_by_row(tokenizer: Any) -> None:
    model = tiny_model("llama", vocab=len(tokenizer))
    scorer = QRHeadScorer(model, tokenizer, heads="all", max_length=200, debias=True, max_passage_tokens=None)
    rows = [*_rows(5, seed=2), ("a long one?", [" ".join(WORDS * 3)] * 6)]
    alone = [scorer.score(query, passages) for query, passages in rows]
    batched = scorer.score_batch(rows, rows_per_forward=4)
    for one, many in zip(alone, batched, strict=True):
        assert many == pytest.approx(one, abs=1e-5)


def test_bad_rows_raise_typed_errors_naming_the_row(scorer: QRHeadScorer) -> None:
    good = ("a query", ["a passage"])
    with pytest.raises(EmptyQueryError, match="row 1"):
        scorer.score_batch([good, ("  ", ["x"])])
    with pytest.raises(PassageTypeError, match="row 0"):
        scorer.score_batch([("q", [None]), good])
    with pytest.raises(PassageTypeError, match="row 1"):
        scorer.score_batch([good, "not a pair"])
    with pytest.raises(PassageTypeError):
        scorer.score_batch("not rows")
    with pytest.raises(InvalidInputError, match="rows_per_forward"):
        scorer.score_batch([good], rows_per_forward=0)
    with pytest.raises(InvalidInputError, match="row 0"):
        scorer.rank_batch([good], first_stage_scores=[[1.0, 2.0]])
    with pytest.raises(InvalidInputError, match="1 rows"):
        scorer.rank_batch([good], first_stage_scores=[None, None])


def test_empty_batches_and_rows(scorer: QRHeadScorer) -> None:
    assert scorer.score_batch([]) == []
    assert scorer.rank_batch([("q", [])]) == [[]]
    scores = scorer.score_batch([("q", ["", "  "]), ("q", ["text here"])])
    assert scores[0] == [float("-inf"), float("-inf")]
    assert scores[1] == pytest.approx(scorer.score("q", ["text here"]), abs=1e-5)
