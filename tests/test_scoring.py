"""Calibration, outlier filter and head combination on hand-checked numbers."""

from __future__ import annotations

import pytest
import torch

from qrhead_integrations.scoring import combine_heads, passage_scores, token_scores


def test_calibration_subtracts_the_null_query_token_by_token() -> None:
    query = torch.tensor([[0.5, 0.2, 0.3]])
    null = torch.tensor([[0.4, 0.1, 0.5]])
    torch.testing.assert_close(token_scores(query, null), torch.tensor([[0.1, 0.1, -0.2]]))
    assert token_scores(query, None) is query
    with pytest.raises(ValueError, match="shape mismatch"):
        token_scores(query, torch.zeros(1, 2))


def test_passage_scores_sum_over_spans() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 0.0, 1.0, 0.0]])
    out = passage_scores(scores, [(0, 2), (2, 5), (3, 3)])
    # head 0: 1+2=3, 3+4+5=12, empty=0; head 1: 0+1=1, 0+1+0=1, 0
    torch.testing.assert_close(out, torch.tensor([[3.0, 12.0, 0.0], [1.0, 1.0, 0.0]]))


def test_outlier_filter_zeroes_scores_at_or_below_mean_minus_two_std() -> None:
    # Ten tokens: nine at 1.0 and one at -9.0. mean = 0.0, population std = 3.0, threshold = -6.0:
    # only the -9.0 token is zeroed, so the sum goes from 0.0 to 9.0.
    tokens = torch.tensor([[1.0] * 9 + [-9.0]])
    assert passage_scores(tokens, [(0, 10)]).item() == pytest.approx(0.0)
    assert passage_scores(tokens, [(0, 10)], outlier_filter=True).item() == pytest.approx(9.0)
    # Equal tokens have std 0: nothing is filtered.
    flat = torch.full((1, 4), 0.25)
    assert passage_scores(flat, [(0, 4)], outlier_filter=True).item() == pytest.approx(1.0)


def test_filter_leaves_passages_without_outliers_unchanged() -> None:
    tokens = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.1]])
    # mean 0.18, std ~0.075: threshold ~0.03, no token at or below it.
    assert passage_scores(tokens, [(0, 5)], outlier_filter=True).item() == pytest.approx(0.9)


def test_heads_are_combined_by_their_mean() -> None:
    per_head = torch.tensor([[1.0, 4.0], [3.0, 0.0]])
    torch.testing.assert_close(combine_heads(per_head), torch.tensor([2.0, 2.0]))
