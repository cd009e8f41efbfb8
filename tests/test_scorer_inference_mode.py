"""Every public scoring entry point runs the model without autograd (regression: ``rank_batch`` built a graph)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from qrhead_integrations import QRHeadScorer

PASSAGES = ["Ash clouds rose over the volcano.", "The river froze in winter.", "Lava flowed down the slope."]
QUERY = "What came out of the volcano?"

CALLS: dict[str, Callable[[QRHeadScorer], Any]] = {
    "score": lambda s: s.score(QUERY, PASSAGES),
    "score_many": lambda s: s.score_many([QUERY, "river"], PASSAGES),
    "score_per_head": lambda s: s.score_per_head(QUERY, PASSAGES),
    "rank": lambda s: s.rank(QUERY, PASSAGES),
    "score_batch": lambda s: s.score_batch([(QUERY, PASSAGES), ("river", PASSAGES[:2])]),
    "score_per_head_batch": lambda s: s.score_per_head_batch([(QUERY, PASSAGES)], rows_per_forward=2),
    "rank_batch": lambda s: s.rank_batch([(QUERY, PASSAGES), ("river", PASSAGES[:2])], rows_per_forward=2),
    "rank_batch one per forward": lambda s: s.rank_batch([(QUERY, PASSAGES)], rows_per_forward=1),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_scoring_never_records_autograd(tiny_scorer: QRHeadScorer, name: str) -> None:
    grad_enabled: list[bool] = []
    layer = tiny_scorer.model.model.layers[0]
    handle = layer.register_forward_hook(lambda *_: grad_enabled.append(torch.is_grad_enabled()))
    try:
        CALLS[name](tiny_scorer)
    finally:
        handle.remove()
    assert grad_enabled, "the model ran no forward"
    assert not any(grad_enabled), f"{name} ran a forward with autograd on (memory and time for a graph never used)"
