"""Reciprocal-rank fusion (RRF) of whole score lists, for the evaluation's ``fusion`` baselines.

The fusion itself lives in the engine (:mod:`qrhead_integrations.fusion`), where the re-rankers use it with the
first stage's order; this module fuses index-aligned score lists of several systems with equal weights, as the
``fusion`` and ``fusion_dense`` baselines of ``qrhead eval`` do.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidInputError
from ..fusion import RRF_K, rank_order, reciprocal_rank_fusion

__all__ = ["RRF_K", "fuse_scores", "reciprocal_rank_fusion"]


def fuse_scores(score_lists: Sequence[Sequence[float]], *, k: int = RRF_K) -> list[float]:
    """RRF of several score lists over the same candidates (index-aligned), as one fused score per candidate.

    Each list is turned into a ranking (ties by ascending index), then fused with equal weights. Equal fused
    scores are left equal; a ranking of them then puts the lower index first, i.e. the candidate the
    first-stage retriever (or the file) put first.

    Raises:
        ValueError: the lists differ in length, a score is NaN, or ``k`` is negative.
    """
    if not score_lists:
        return []
    size = len(score_lists[0])
    if any(len(scores) != size for scores in score_lists):
        raise InvalidInputError("score lists to fuse must have the same length")
    fused = reciprocal_rank_fusion([rank_order(scores) for scores in score_lists], k=k)
    return [fused[i] for i in range(size)]
