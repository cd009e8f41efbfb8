"""The one integer-option check (``_checks.check_int``) and the entry points that share it."""

from __future__ import annotations

import pytest

from qrhead_integrations import QRHeadScorer
from qrhead_integrations._checks import check_int
from qrhead_integrations.errors import HeadSpecError, InvalidInputError


def test_integers_within_the_bounds_pass_and_none_only_when_optional() -> None:
    assert check_int(3, "n") == 3
    assert check_int(0, "n") == 0
    assert check_int(None, "n", optional=True) is None
    assert check_int(5, "n", minimum=1, maximum=5) == 5


@pytest.mark.parametrize("bad", [True, 2.0, "3", None, -1])
def test_anything_else_is_refused_with_the_range_in_the_message(bad: object) -> None:
    with pytest.raises(InvalidInputError, match=rf"n must be an int >= 0, got {bad!r}"):
        check_int(bad, "n")


def test_the_message_names_the_upper_bound_the_hint_and_none() -> None:
    with pytest.raises(InvalidInputError, match=r"k must be an int in 1\.\.4 \(why\), got 5"):
        check_int(5, "k", minimum=1, maximum=4, hint="why")
    with pytest.raises(InvalidInputError, match=r"top_n must be an int >= 0 or None, got -1"):
        check_int(-1, "top_n", optional=True)
    with pytest.raises(HeadSpecError):
        check_int(0, "k", minimum=1, error=HeadSpecError)


def test_entry_points_share_the_check(tiny_scorer: QRHeadScorer) -> None:
    """The scorer's integer options all fail the same way (bool and float included, as no entry point allowed)."""
    from qrhead_integrations import ScorerConfig

    for call, name in (
        (lambda: tiny_scorer.rank("q", ["a"], top_n=True), "top_n"),
        (lambda: tiny_scorer.rank_batch([("q", ["a"])], rows_per_forward=1.0), "rows_per_forward"),  # type: ignore[arg-type]
        (lambda: ScorerConfig(max_passage_tokens=0), "max_passage_tokens"),
        (lambda: ScorerConfig(max_length=True), "max_length"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError, match=rf"{name} must be an int >="):
            call()
