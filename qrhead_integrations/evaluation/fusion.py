"""Reciprocal-rank fusion (RRF): combine rankings by their ranks, not their scores.

QRHead scores (attention mass) and BM25 or cosine scores live on unrelated scales, so they are fused by rank:
``score(d) = Σ_r w_r / (k + rank_r(d))`` with 1-based ranks and ``k = 60`` (Cormack, Clarke and Büttcher 2009).
A prototype measured RRF(QRHead, BM25) at or above QRHead alone on every set it tried.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

from .metrics import rank_indices

RRF_K = 60
"""The usual RRF constant: it damps the weight of the very first ranks."""

Key = TypeVar("Key", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Key]], *, k: int = RRF_K, weights: Sequence[float] | None = None
) -> dict[Key, float]:
    """Fused scores of the items of several rankings (best first each); higher is better.

    An item missing from a ranking gets nothing from it, so items found by more rankings rise.

    Args:
        rankings: each a sequence of distinct items, best first.
        k: the RRF constant (>= 0).
        weights: one weight per ranking (default 1 each).

    Returns:
        ``{item: fused score}`` for every item in any ranking, in first-seen order.

    Raises:
        ValueError: ``k`` is negative, the weights do not match the rankings, or a ranking repeats an item.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    chosen = [1.0] * len(rankings) if weights is None else list(weights)
    if len(chosen) != len(rankings):
        raise ValueError(f"{len(chosen)} weights for {len(rankings)} rankings")
    fused: dict[Key, float] = {}
    for weight, ranking in zip(chosen, rankings, strict=True):
        if len(set(ranking)) != len(ranking):
            raise ValueError("a ranking lists the same item twice")
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def fuse_scores(score_lists: Sequence[Sequence[float]], *, k: int = RRF_K) -> list[float]:
    """RRF of several score lists over the same candidates (index-aligned), as one fused score per candidate.

    Each list is turned into a ranking with :func:`~qrhead_integrations.evaluation.metrics.rank_indices`
    (ties by ascending index), then fused. Equal fused scores are left equal; ``rank_indices`` then puts the
    lower index first, i.e. the candidate the first-stage retriever (or the file) put first.

    Raises:
        ValueError: the lists differ in length, a score is NaN, or ``k`` is negative.
    """
    if not score_lists:
        return []
    size = len(score_lists[0])
    if any(len(scores) != size for scores in score_lists):
        raise ValueError("score lists to fuse must have the same length")
    fused = reciprocal_rank_fusion([rank_indices(scores) for scores in score_lists], k=k)
    return [fused[i] for i in range(size)]
