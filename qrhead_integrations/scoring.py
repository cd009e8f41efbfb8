"""Passage scores from captured attention (docs/engine.md, "Method", steps 4-7) — pure tensor maths, no model.

Input: for each selected head, the attention weight of every prefix position, averaged over the query-part rows,
once for the real query and once for the content-free ``"N/A"`` query. Because both passes share the prefix,
position ``t`` is the same token in both, so calibration can be done token by token:

* calibrated token score  ``s_h(t) = A_h(query -> t) - A_h("N/A" -> t)``  (or ``A_h(query -> t)`` uncalibrated)
* optional outlier filter: within each passage and head, token scores ``<= mean - 2·std`` are set to 0
* per-head passage score  ``QRscore_h(q, d) = sum_{t in d} s_h(t)``  (paper eq. 2; the row mean was taken at
  capture time)
* combined score ``R(q, d) = mean_h QRscore_h(q, d)`` (paper eq. 5).

With the filter off, ``sum_t (A_q - A_na) == sum_t A_q - sum_t A_na``: token-level and passage-level calibration
agree exactly, as in ICR.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def token_scores(query_weights: torch.Tensor, null_weights: torch.Tensor | None) -> torch.Tensor:
    """``(heads, positions)`` token scores: the query's attention, minus the ``"N/A"`` query's when given."""
    if null_weights is None:
        return query_weights
    if null_weights.shape != query_weights.shape:
        raise ValueError(f"shape mismatch: query {tuple(query_weights.shape)} vs N/A {tuple(null_weights.shape)}")
    return query_weights - null_weights


def passage_scores(
    scores: torch.Tensor,
    spans: Sequence[tuple[int, int]],
    *,
    outlier_filter: bool = False,
    num_std: float = 2.0,
) -> torch.Tensor:
    """Sum token scores over each passage's ``[start, end)`` span → ``(heads, passages)``.

    An empty span sums to 0. With ``outlier_filter``, token scores ``<= mean - num_std·std`` (population std,
    per passage and head) are zeroed first; a passage whose tokens are all equal is left unchanged.
    """
    n_heads = scores.shape[0]
    out = scores.new_zeros(n_heads, len(spans))
    for j, (start, end) in enumerate(spans):
        if end <= start:
            continue
        segment = scores[:, start:end]
        if outlier_filter and segment.shape[1] > 1:
            mean = segment.mean(dim=1, keepdim=True)
            std = segment.std(dim=1, keepdim=True, correction=0)
            threshold = mean - num_std * std
            segment = torch.where((segment <= threshold) & (std > 0), torch.zeros_like(segment), segment)
        out[:, j] = segment.sum(dim=1)
    return out


def combine_heads(per_head: torch.Tensor) -> torch.Tensor:
    """Mean over heads (paper eq. 5): ``(heads, passages) -> (passages,)``."""
    return per_head.mean(dim=0)
