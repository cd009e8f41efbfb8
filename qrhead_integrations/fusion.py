"""Fusion of QRHead's ranking with the first stage's: weighted reciprocal-rank fusion (RRF).

A re-ranker is handed candidates that a first stage (BM25, a vector store, a hybrid retriever) has already
ranked, and that order is evidence: on the dev data of docs/results.md a small model's attention alone ranked
SciFact's BM25 top 20 *below* BM25's own order, while fusing the two beat both. Scores of the two stages live
on unrelated scales (attention mass vs BM25 or cosine), so they are fused by rank:

    fused(d) = (k + 1) · [ (1 − w) / (k + rank_qrhead(d)) + w / (k + rank_first_stage(d)) ]

with 1-based ranks, ``w`` the first stage's weight and ``k = 60`` (Cormack, Clarke and Büttcher 2009). The
factor ``k + 1`` puts a passage first in both rankings at 1.0, so fused scores lie in (0, 1]. When no
first-stage scores are given, the input order is the first stage's ranking (LangChain and LlamaIndex hand
candidates over best first).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import InvalidInputError

RRF_K = 60
"""The usual RRF constant: it damps the weight of the very first ranks."""

DEFAULT_FUSION_WEIGHT: float | None = 0.3
"""The first stage's weight in every re-ranker's default fusion (``None`` would mean QRHead alone). Chosen on dev
data disjoint from the published evaluation rows: see "Defaults and why" in docs/results.md."""

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Fusion:
    """How much the first stage's order counts next to QRHead's.

    Attributes:
        weight: the first stage's share, in ``[0, 1]`` (0: QRHead alone; 1: the first stage alone).
        k: the RRF constant (>= 0): larger values flatten the difference between the top ranks.
    """

    weight: float = 0.5
    k: int = RRF_K

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
            raise InvalidInputError(f"fusion weight must be a number in [0, 1], got {self.weight!r}")
        if not 0.0 <= float(self.weight) <= 1.0:  # also rejects NaN
            raise InvalidInputError(f"fusion weight must be in [0, 1], got {self.weight!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0:
            raise InvalidInputError(f"fusion k must be an int >= 0, got {self.k!r}")


def rank_order(scores: Sequence[float]) -> list[int]:
    """Indices by descending score, ties by ascending index (the input order decides ties).

    Raises:
        InvalidInputError: a score is NaN.
    """
    for i, score in enumerate(scores):
        if math.isnan(score):
            raise InvalidInputError(f"passage {i} has a NaN score")
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


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
        InvalidInputError: ``k`` is negative, the weights do not match the rankings, or a ranking repeats an item.
    """
    if k < 0:
        raise InvalidInputError(f"k must be >= 0, got {k}")
    chosen = [1.0] * len(rankings) if weights is None else list(weights)
    if len(chosen) != len(rankings):
        raise InvalidInputError(f"{len(chosen)} weights for {len(rankings)} rankings")
    fused: dict[Key, float] = {}
    for weight, ranking in zip(chosen, rankings, strict=True):
        if len(set(ranking)) != len(ranking):
            raise InvalidInputError("a ranking lists the same item twice")
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def fuse_with_first_stage(
    qrhead_scores: Sequence[float],
    fusion: Fusion,
    first_stage_scores: Sequence[float] | None = None,
) -> list[float]:
    """Fused score of each passage (input order), see the module docstring.

    Args:
        qrhead_scores: QRHead's scores, input order. ``-inf`` (a passage with nothing to score) stays ``-inf``:
            an empty passage is never lifted by the first stage.
        fusion: the weights.
        first_stage_scores: the first stage's scores (higher = better), input order; ``None``: the input
            order is the first stage's ranking.

    Raises:
        InvalidInputError: lengths differ or a score is NaN.
    """
    n = len(qrhead_scores)
    if first_stage_scores is not None and len(first_stage_scores) != n:
        raise InvalidInputError(f"{len(first_stage_scores)} first-stage scores for {n} passages")
    first = list(range(n)) if first_stage_scores is None else rank_order(first_stage_scores)
    weight = float(fusion.weight)
    fused = reciprocal_rank_fusion([rank_order(qrhead_scores), first], k=fusion.k, weights=[1.0 - weight, weight])
    scale = fusion.k + 1
    return [-math.inf if qrhead_scores[i] == -math.inf else fused[i] * scale for i in range(n)]
