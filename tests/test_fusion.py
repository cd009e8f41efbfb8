"""Fusion of QRHead's ranking with the first stage's (``qrhead_integrations.fusion`` and ``QRHeadScorer.rank``)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from qrhead_integrations import InvalidInputError, QRHeadScorer
from qrhead_integrations.fusion import Fusion, fuse_with_first_stage, z_scores

PASSAGES = [
    "The moon orbits the earth. The sun is a star.",
    "Paris is the capital of France. Hamlet is a play.",
    "Water boils at one hundred degrees.",
    "The quick brown fox jumps over the lazy dog.",
]


def _order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def _ranks(weight: float, lexical: float = 0.0, **more: Any) -> Fusion:
    """Weighted reciprocal-rank fusion (``form="ranks"``), no BM25 share unless given."""
    return Fusion(weight=weight, lexical=lexical, form="ranks", **more)


def test_weights_zero_and_one_give_each_ranking_alone() -> None:
    qrhead = [0.1, 0.9, 0.5, 0.3]
    assert _order(fuse_with_first_stage(qrhead, _ranks(0.0))) == _order(qrhead)
    assert _order(fuse_with_first_stage(qrhead, _ranks(1.0))) == [0, 1, 2, 3]
    assert _order(fuse_with_first_stage(qrhead, _ranks(1.0), [0.0, 0.0, 2.0, 1.0])) == [2, 3, 0, 1]


def test_fused_scores_follow_the_formula_and_top_at_one() -> None:
    qrhead = [0.9, 0.1, 0.5]
    fused = fuse_with_first_stage(qrhead, _ranks(0.25, k=10))
    ranks_q = {0: 1, 2: 2, 1: 3}
    for i in range(3):
        expected = 11 * (0.75 / (10 + ranks_q[i]) + 0.25 / (10 + i + 1))
        assert fused[i] == pytest.approx(expected)
    assert fused[0] == pytest.approx(1.0)  # first in both rankings
    assert all(0 < value <= 1 for value in fused)


def test_a_strong_first_stage_moves_a_close_second() -> None:
    # QRHead puts passage 2 first and passage 0 second; the first stage put 0 first: with a fair weight, 0 wins.
    qrhead = [0.50, 0.10, 0.51, 0.20]
    assert _order(fuse_with_first_stage(qrhead, _ranks(0.5)))[0] == 0
    assert _order(fuse_with_first_stage(qrhead, _ranks(0.2)))[0] == 2


def test_empty_passages_stay_last() -> None:
    fused = fuse_with_first_stage([-math.inf, 0.2, 0.1], _ranks(0.9))
    assert fused[0] == -math.inf and _order(fused)[-1] == 0


def _z(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / spread for v in values]


def test_score_form_mixes_z_scores_with_the_weights() -> None:
    qrhead, bm25 = [0.9, 0.1, 0.5, 0.3], [1.0, 4.0, 0.0, 2.0]
    fused = fuse_with_first_stage(qrhead, Fusion(weight=0.2, lexical=0.3, form="scores"), lexical_scores=bm25)
    zq, zo, zl = _z(qrhead), _z([0.0, -1.0, -2.0, -3.0]), _z(bm25)
    assert fused == pytest.approx([0.5 * zq[i] + 0.2 * zo[i] + 0.3 * zl[i] for i in range(4)])
    given = fuse_with_first_stage(qrhead, Fusion(weight=0.5, lexical=0.0, form="scores"), [3.0, 9.0, 1.0, 0.0])
    zf = _z([3.0, 9.0, 1.0, 0.0])
    assert given == pytest.approx([0.5 * zq[i] + 0.5 * zf[i] for i in range(4)])  # first-stage scores, not ranks


def test_score_form_keeps_the_size_of_a_gap() -> None:
    """Ranks see passage 0 one place ahead in QRHead and one behind in BM25 whatever the margins; scores do not:
    a far QRHead lead survives a hair-thin BM25 deficit, and the reverse."""
    bm25 = [1.0, 1.01, 0.0, 0.0]
    far_ahead = [10.0, 1.0, 0.9, 0.8]
    ranks = fuse_with_first_stage(far_ahead, _ranks(0.0, lexical=0.5), lexical_scores=bm25)
    scores = fuse_with_first_stage(far_ahead, Fusion(weight=0.0, lexical=0.5, form="scores"), lexical_scores=bm25)
    assert ranks[0] == pytest.approx(ranks[1])  # a tie: first in one ranking, second in the other
    assert _order(scores)[0] == 0
    hair_ahead = [1.001, 1.0, 0.0, 0.0]
    bm25_far = [0.0, 10.0, 0.0, 0.0]
    scores = fuse_with_first_stage(hair_ahead, Fusion(weight=0.0, lexical=0.5, form="scores"), lexical_scores=bm25_far)
    assert _order(scores)[0] == 1


def test_score_form_keeps_empty_passages_last_and_ignores_flat_signals() -> None:
    fused = fuse_with_first_stage([-math.inf, 0.2, 0.1], Fusion(weight=0.9, lexical=0.0, form="scores"))
    assert fused[0] == -math.inf and _order(fused) == [1, 2, 0]
    flat = fuse_with_first_stage(
        [0.3, 0.1, 0.2], Fusion(weight=0.0, lexical=0.5, form="scores"), lexical_scores=[2.0] * 3
    )
    assert _order(flat) == [0, 2, 1]  # BM25 ties every candidate: it adds nothing
    assert z_scores([5.0]).tolist() == [0.0]
    with pytest.raises(InvalidInputError, match="NaN"):
        fuse_with_first_stage([0.1, math.nan], Fusion(lexical=0.0))


def test_bad_forms_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="form"):
        Fusion(form="rrf")  # type: ignore[arg-type]


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan, "0.3", True])
def test_bad_weights_are_rejected(weight: object) -> None:
    with pytest.raises(InvalidInputError, match="weight"):
        Fusion(weight=weight)  # type: ignore[arg-type]


def test_bad_first_stage_scores_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="2 first-stage scores for 3"):
        fuse_with_first_stage([0.1, 0.2, 0.3], Fusion(), [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="NaN"):
        fuse_with_first_stage([0.1, 0.2], Fusion(), [1.0, math.nan])
    with pytest.raises(InvalidInputError, match="k must be"):
        Fusion(k=-1)


def test_rank_fuses_with_the_input_order(tiny_scorer: QRHeadScorer) -> None:
    query = "capital of France"
    alone = tiny_scorer.rank(query, PASSAGES, fusion=None)
    assert [r.score for r in alone] == [r.qrhead_score for r in alone]
    fused = tiny_scorer.rank(query, PASSAGES, fusion=0.4)
    expected = fuse_with_first_stage(tiny_scorer.score(query, PASSAGES), _ranks(0.4))
    assert [r.index for r in fused] == _order(expected)
    assert [r.score for r in fused] == pytest.approx([expected[r.index] for r in fused])
    assert {r.index: r.qrhead_score for r in fused} == {r.index: r.qrhead_score for r in alone}
    # The first stage alone: the input order, or the order of the scores given.
    assert [r.index for r in tiny_scorer.rank(query, PASSAGES, fusion=1.0)] == [0, 1, 2, 3]
    by_scores = tiny_scorer.rank(query, PASSAGES, fusion=1.0, first_stage_scores=[0.0, 3.0, 1.0, 2.0])
    assert [r.index for r in by_scores] == [1, 3, 2, 0]


def test_rank_uses_the_configured_fusion(tiny_scorer: QRHeadScorer) -> None:
    fused = tiny_scorer.with_config(fusion=1.0)
    assert [r.index for r in fused.rank("capital of France", PASSAGES)] == [0, 1, 2, 3]
    assert fused.config.fusion == _ranks(1.0)  # a number: the first stage's weight alone
    with pytest.raises(InvalidInputError, match="first-stage"):
        tiny_scorer.rank("q", PASSAGES, first_stage_scores=[1.0])
    with pytest.raises(InvalidInputError, match="top_n"):
        tiny_scorer.rank("q", PASSAGES, top_n=-1)


def test_lexical_share_ranks_by_bm25_over_the_candidates(tiny_scorer: QRHeadScorer) -> None:
    from qrhead_integrations.lexical import bm25_rank

    query = "Which river flows through the capital of France?"
    passages = ["Paris is the capital of France.", "The fox is quick.", "The Seine river flows through Paris."]
    lexical_only = tiny_scorer.rank(query, passages, fusion=_ranks(0.0, lexical=1.0))
    assert [r.index for r in lexical_only] == _order(bm25_rank(query, passages))
    three_way = tiny_scorer.rank(query, passages, fusion=_ranks(0.3, lexical=0.3))
    expected = fuse_with_first_stage(
        tiny_scorer.score(query, passages), _ranks(0.3, lexical=0.3), None, bm25_rank(query, passages)
    )
    assert [r.index for r in three_way] == _order(expected)
    with pytest.raises(InvalidInputError, match="lexical scores"):
        fuse_with_first_stage([0.1, 0.2], Fusion(lexical=0.2))
    with pytest.raises(InvalidInputError, match="<= 1"):
        Fusion(weight=0.6, lexical=0.6)


def test_as_fusion_conversions() -> None:
    from qrhead_integrations.fusion import as_fusion

    assert as_fusion(None) is None
    assert as_fusion(0.25) == Fusion(weight=0.25, lexical=0.0, form="ranks")
    assert as_fusion({"weight": 0.1, "lexical": 0.2}) == Fusion(weight=0.1, lexical=0.2)
    with pytest.raises(InvalidInputError, match="fusion must be"):
        as_fusion("strong")


def test_the_default_fusion_is_the_models_own(tiny_scorer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fusion="default"`` resolves, when the scorer is built, to the model's ``_fusion`` preset entry (chosen on
    that model's dev data), to ``None`` for a ``null`` entry, and to ``DEFAULT_FUSION`` for models without one."""
    from qrhead_integrations import QRHeadScorer, presets
    from qrhead_integrations.fusion import DEFAULT_FUSION

    assert QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, heads="1-0").config.fusion == DEFAULT_FUSION
    entries: dict[str, Any] = {"_fusion": {"weight": 0.1, "lexical": 0.4}}
    monkeypatch.setattr(presets, "_lookup", lambda model_id: entries)
    own = QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, heads="1-0")
    assert own.config.fusion == Fusion(weight=0.1, lexical=0.4)
    passages = ["the moon orbits the earth", "paris is a city", "water boils"]
    assert [r.index for r in own.rank("moon", passages)] == [
        r.index for r in own.rank("moon", passages, fusion=Fusion(weight=0.1, lexical=0.4))
    ]
    assert own.with_config(fusion=None).config.fusion is None  # an explicit choice wins
    entries["_fusion"] = {"weight": 0.3, "lexical": 0.4, "agreement": 0.2}
    gated = QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, heads="1-0").config.fusion
    assert gated == Fusion(weight=0.3, lexical=0.4, agreement=0.2)
    entries["_fusion"] = {"weight": 0.1, "lexical": 0.5, "form": "scores"}
    scored = QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, heads="1-0").config.fusion
    assert scored == Fusion(weight=0.1, lexical=0.5, form="scores")
    entries["_fusion"] = None
    assert QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, heads="1-0").config.fusion is None
    with pytest.raises(ValueError):
        QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, heads="1-0", fusion="other")


def test_kendall_tau_matches_its_definition() -> None:
    """tau-b by brute force over pairs (ties counted as tau-b does), and ``None`` where it is undefined."""
    from qrhead_integrations.fusion import kendall_tau

    def brute(x: list[float], y: list[float]) -> float:
        pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
        sign = [((x[i] > x[j]) - (x[i] < x[j])) * ((y[i] > y[j]) - (y[i] < y[j])) for i, j in pairs]
        untied_x = sum(x[i] != x[j] for i, j in pairs)
        untied_y = sum(y[i] != y[j] for i, j in pairs)
        return sum(sign) / math.sqrt(untied_x * untied_y)

    x, y = [3.0, 1.0, 2.0, 2.0, 0.0, 5.0], [1.0, 0.0, 0.0, 2.0, 1.0, 4.0]
    assert kendall_tau(x, y) == pytest.approx(brute(x, y))
    assert kendall_tau([1.0, 2.0, 3.0], [3.0, 4.0, 9.0]) == pytest.approx(1.0)
    assert kendall_tau([1.0, 2.0, 3.0], [9.0, 4.0, 3.0]) == pytest.approx(-1.0)
    assert kendall_tau([1.0], [2.0]) is None
    assert kendall_tau([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) is None  # BM25 ties them all: nothing to test
    with pytest.raises(InvalidInputError, match="cannot be compared"):
        kendall_tau([1.0, 2.0], [1.0])


def test_agreement_scales_the_first_stage_weight() -> None:
    """An order that agrees with BM25 keeps its weight, one that disagrees loses it (to QRHead), in between it
    shrinks linearly; undefined agreement keeps the weight."""
    from qrhead_integrations.fusion import first_stage_trust

    gated = Fusion(weight=0.4, lexical=0.2, agreement=0.5)
    order = [0.0, -1.0, -2.0, -3.0]
    assert first_stage_trust(gated, order, [4.0, 3.0, 2.0, 1.0]) == 1.0  # tau 1
    assert first_stage_trust(gated, order, [1.0, 2.0, 3.0, 4.0]) == 0.0  # tau -1
    assert first_stage_trust(gated, order, [4.0, 2.0, 3.0, 1.0]) == 1.0  # tau 2/3 >= 0.5
    assert first_stage_trust(gated, order, [3.0, 4.0, 1.0, 2.0]) == pytest.approx((2 / 6) / 0.5)  # tau 1/3
    assert first_stage_trust(gated, order, [0.0, 0.0, 0.0, 0.0]) == 1.0  # undefined
    assert first_stage_trust(Fusion(weight=0.4, agreement=0.0), order, [3.0, 4.0, 1.0, 2.0]) == 1.0  # tau > 0
    assert first_stage_trust(Fusion(weight=0.4, agreement=0.0), order, [2.0, 1.0, 4.0, 3.0]) == 0.0  # tau < 0
    assert first_stage_trust(Fusion(weight=0.4), order, [1.0, 2.0, 3.0, 4.0]) == 1.0  # no agreement: fixed
    with pytest.raises(InvalidInputError, match="lexical scores"):
        first_stage_trust(gated, order, None)

    # In the fused scores: an order BM25 contradicts counts for nothing, so the fusion is QRHead + BM25 alone.
    qrhead, lexical = [0.2, 0.1, 0.9, 0.5], [1.0, 2.0, 3.0, 4.0]
    assert fuse_with_first_stage(qrhead, gated, None, lexical) == pytest.approx(
        fuse_with_first_stage(qrhead, Fusion(weight=0.0, lexical=0.2), None, lexical)
    )
    # With first-stage scores, their ranking is what is tested: here they agree with BM25, so the weight stays.
    assert fuse_with_first_stage(qrhead, gated, [1.0, 2.0, 3.0, 5.0], lexical) == pytest.approx(
        fuse_with_first_stage(qrhead, Fusion(weight=0.4, lexical=0.2), [1.0, 2.0, 3.0, 5.0], lexical)
    )


@pytest.mark.parametrize("agreement", [-0.1, 1.5, math.nan, "0.3", True])
def test_bad_agreements_are_rejected(agreement: object) -> None:
    with pytest.raises(InvalidInputError, match="agreement"):
        Fusion(weight=0.2, agreement=agreement)  # type: ignore[arg-type]


def test_rank_computes_bm25_for_an_agreement_without_a_lexical_share(tiny_scorer: QRHeadScorer) -> None:
    from qrhead_integrations.lexical import bm25_rank

    query = "Which river flows through the capital of France?"
    passages = ["The fox is quick.", "Paris is the capital of France.", "The Seine river flows through Paris."]
    gated = Fusion(weight=0.5, agreement=0.3)
    assert (
        gated.needs_lexical
        and not Fusion(weight=0.5, lexical=0.0).needs_lexical
        and not Fusion(weight=0.0, lexical=0.0, agreement=0.3).needs_lexical
    )
    expected = fuse_with_first_stage(tiny_scorer.score(query, passages), gated, None, bm25_rank(query, passages))
    assert [r.score for r in tiny_scorer.rank(query, passages, fusion=gated)] == pytest.approx(
        sorted(expected, reverse=True)
    )


def test_fusion_defaults_are_the_default_fusion() -> None:
    """One fusion concept: ``Fusion()`` is the default fusion, and every way a fusion is written — keywords, a
    mapping, a model preset's ``"_fusion"`` entry — fills the fields it does not name from the same defaults."""
    from qrhead_integrations.fusion import DEFAULT_FUSION, as_fusion

    assert Fusion() == DEFAULT_FUSION == Fusion(weight=0.1, lexical=0.5, form="scores")
    assert as_fusion({}) == Fusion()
    assert as_fusion({"weight": 0.2}) == Fusion(weight=0.2)


def test_a_preset_fusion_entry_falls_back_to_fusions_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from qrhead_integrations import presets
    from qrhead_integrations.fusion import DEFAULT_FUSION, model_fusion

    entries: dict[str, Any] = {"_fusion": {"weight": 0.2}}
    monkeypatch.setattr(presets, "_lookup", lambda model_id: entries)
    assert model_fusion("any") == Fusion(weight=0.2)  # form and lexical: Fusion's own defaults
    entries.pop("_fusion")
    assert model_fusion("any") == DEFAULT_FUSION == Fusion()


def test_the_shipped_models_keep_their_fusion() -> None:
    """What each bundled model's rankings fuse by, pinned: all three the small models' dev-chosen fusion."""
    from qrhead_integrations.fusion import model_fusion

    small = Fusion(weight=0.1, lexical=0.5, k=60, agreement=None, form="scores")
    assert model_fusion("smollm2-135m-instruct") == small
    assert model_fusion("qwen2.5-coder-0.5b-instruct") == small
    assert model_fusion("qwen2.5-coder-1.5b-instruct") == small
    assert model_fusion("meta-llama/Llama-3.2-1B-Instruct") == small  # a model without its own entry


def test_default_is_the_one_sentinel_for_the_scorers_fusion(tiny_scorer: QRHeadScorer) -> None:
    """``"default"`` means the scorer's configured fusion wherever a fusion is taken; no other word does."""
    from qrhead_integrations.fusion import MODEL_DEFAULT, as_fusion_setting

    query, configured = "capital of France", tiny_scorer.with_config(fusion=Fusion(weight=0.2, lexical=0.3))
    ranked = configured.rank(query, PASSAGES)
    assert ranked == configured.rank(query, PASSAGES, fusion=MODEL_DEFAULT)
    assert ranked == configured.rank(query, PASSAGES, fusion={"weight": 0.2, "lexical": 0.3})
    assert as_fusion_setting(MODEL_DEFAULT) == MODEL_DEFAULT
    with pytest.raises(InvalidInputError, match="fusion must be"):
        tiny_scorer.rank(query, PASSAGES, fusion="config")  # type: ignore[arg-type]


def test_a_weight_too_large_for_the_default_lexical_share_says_so() -> None:
    with pytest.raises(InvalidInputError, match=r"lexical defaults to 0.5: give it too"):
        Fusion(weight=0.7)
    assert Fusion(weight=0.7, lexical=0.0).weight == 0.7
