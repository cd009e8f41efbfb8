"""Reciprocal-rank fusion on hand-made rankings."""

from __future__ import annotations

import pytest

from qrhead_integrations.evaluation.fusion import RRF_K, fuse_scores, reciprocal_rank_fusion
from qrhead_integrations.evaluation.metrics import rank_indices


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "a"]], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert sorted(fused, key=lambda d: -fused[d]) == ["b", "a", "c"]


def test_rrf_rewards_agreement_and_missing_items_get_nothing() -> None:
    fused = reciprocal_rank_fusion([["x", "y"], ["y", "z"]])
    assert fused["y"] > fused["x"] > fused["z"]  # found by both beats first in one
    assert fused["z"] == pytest.approx(1 / (RRF_K + 2))


def test_rrf_weights_and_k() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=0, weights=[2.0, 1.0])
    assert fused == {"a": pytest.approx(2 + 1 / 2), "b": pytest.approx(1 + 1)}
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="k must"):
        reciprocal_rank_fusion([["a"]], k=-1)
    with pytest.raises(ValueError, match="twice"):
        reciprocal_rank_fusion([["a", "a"]])


def test_fuse_scores_over_aligned_candidates() -> None:
    model = [0.9, 0.1, 0.5, 0.3]  # ranks: 0, 2, 3, 1
    lexical = [1.0, 8.0, 4.0, 2.0]  # ranks: 1, 2, 3, 0
    fused = fuse_scores([model, lexical], k=60)
    assert fused[2] == pytest.approx(1 / 62 + 1 / 62)
    assert fused[0] == pytest.approx(1 / 61 + 1 / 64)
    assert rank_indices(fused) == [2, 0, 1, 3]  # 0 and 1 tie (1/61 + 1/64): the lower index goes first
    assert fuse_scores([]) == []
    assert fuse_scores([[], []]) == []
    with pytest.raises(ValueError, match="same length"):
        fuse_scores([[1.0], [1.0, 2.0]])


def test_fusing_a_ranking_with_itself_keeps_it() -> None:
    scores = [0.2, 0.7, -1.0, 0.4, float("-inf")]
    assert rank_indices(fuse_scores([scores, scores])) == rank_indices(scores)
