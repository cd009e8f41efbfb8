"""Exact match and token F1 against hand-checked cases (SQuAD v1.1 / HotpotQA normalisation)."""

from __future__ import annotations

import pytest

from qrhead_integrations.evaluation.answers import best_scores, exact_match, normalize_answer, token_f1


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Beatles", "beatles"),
        ("  an  Apple, a day!", "apple day"),
        ("Rush.", "rush"),
        ("U.S.A.", "usa"),
        ("Theatre", "theatre"),  # "the" only as a whole word
        ("", ""),
    ],
)
def test_normalize_answer(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


def test_exact_match_ignores_case_punctuation_and_articles() -> None:
    assert exact_match("the Rush", "Rush.") == 1.0
    assert exact_match("Rush band", "Rush") == 0.0


def test_token_f1_hand_checked() -> None:
    # prediction "Neil Peart drummer" vs reference "Neil Peart": precision 2/3, recall 1 -> F1 0.8
    assert token_f1("Neil Peart, drummer", "Neil Peart") == pytest.approx(0.8)
    # one of two reference tokens, one of one predicted: precision 1, recall 1/2 -> 2/3
    assert token_f1("Peart", "Neil Peart") == pytest.approx(2 / 3)
    assert token_f1("Toronto", "Neil Peart") == 0.0
    assert token_f1("", "Rush") == 0.0
    # repeated tokens count once per occurrence (multiset overlap): "rush rush" vs "rush" -> P 1/2, R 1 -> 2/3
    assert token_f1("rush rush", "rush") == pytest.approx(2 / 3)


def test_yes_no_answers_only_match_themselves() -> None:
    assert token_f1("yes", "yes") == 1.0
    assert token_f1("yes they are", "yes") == 0.0  # HotpotQA's rule: no partial credit around yes/no
    assert token_f1("no", "yes") == 0.0


def test_best_scores_take_the_best_reference() -> None:
    assert best_scores("NYC", ["New York City", "NYC"]) == (1.0, 1.0)
    em, f1 = best_scores("New York", ["New York City", "Big Apple"])
    assert em == 0.0 and f1 == pytest.approx(0.8)
    assert best_scores("anything", []) == (0.0, 0.0)
