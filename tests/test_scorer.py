"""QRHeadScorer behaviour on a tiny model: determinism, consistency, windows, order, bad input."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from qrhead_integrations import (
    EMPTY_PASSAGE_SCORE,
    EmptyQueryError,
    HeadSpecError,
    InvalidInputError,
    Passage,
    PassageTypeError,
    QRHeadScorer,
    RankedPassage,
)
from qrhead_integrations.prompt import PromptBuilder

PASSAGES = [
    ("Moon", "The moon orbits the earth. The sun is a star."),
    ("Paris", "Paris is the capital of France. Hamlet is a play."),
    ("Water", "Water boils at one hundred degrees. Cats and dogs are animals."),
    ("Fox", "The quick brown fox jumps over the lazy dog."),
    ("Stars", "The sun is a star and the moon is not."),
]


def test_scores_are_deterministic_and_the_same_for_every_passage_form(tiny_scorer: QRHeadScorer) -> None:
    query = "What is the capital of France?"
    scores = tiny_scorer.score(query, PASSAGES)
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores) and len(set(scores)) == len(scores)
    assert tiny_scorer.score(query, PASSAGES) == scores  # the same inputs, the same scores, exactly
    assert tiny_scorer.score(query, [Passage(text, title) for title, text in PASSAGES]) == scores
    assert tiny_scorer.score(query, [{"title": title, "text": text} for title, text in PASSAGES]) == scores
    assert tiny_scorer.score("Which body orbits the earth?", PASSAGES) != pytest.approx(scores)  # the query counts


def test_score_per_head_mean_is_the_score(tiny_scorer: QRHeadScorer) -> None:
    per_head = tiny_scorer.score_per_head("capital of France", PASSAGES)
    assert per_head.shape == (len(tiny_scorer.heads), len(PASSAGES))
    torch.testing.assert_close(per_head.mean(0), torch.tensor(tiny_scorer.score("capital of France", PASSAGES)))


def test_rank_sorts_by_score_and_keeps_the_passages(tiny_scorer: QRHeadScorer) -> None:
    ranked = tiny_scorer.rank("capital of France", PASSAGES, fusion=None)
    scores = tiny_scorer.score("capital of France", PASSAGES)
    assert [r.index for r in ranked] == sorted(range(len(PASSAGES)), key=lambda i: -scores[i])
    assert [r.score for r in ranked] == [r.qrhead_score for r in ranked] == sorted(scores, reverse=True)
    assert all(
        isinstance(r, RankedPassage) and r.passage == Passage(PASSAGES[r.index][1], PASSAGES[r.index][0])
        for r in ranked
    )
    assert [r.index for r in tiny_scorer.rank("capital of France", PASSAGES, top_n=2, fusion=None)] == [
        r.index for r in ranked[:2]
    ]
    assert tiny_scorer.rank("capital of France", PASSAGES, top_n=0) == []
    with pytest.raises(InvalidInputError):
        tiny_scorer.rank("q", PASSAGES, top_n=-1)


def test_score_many_equals_separate_calls(tiny_scorer: QRHeadScorer) -> None:
    queries = ["capital of France", "what orbits the earth", "boiling water"]
    many = tiny_scorer.score_many(queries, PASSAGES)
    for query, scores in zip(queries, many, strict=True):
        assert scores == pytest.approx(tiny_scorer.score(query, PASSAGES), abs=1e-5)


def test_calibration_is_switchable_and_changes_scores(tiny_scorer: QRHeadScorer) -> None:
    raw = tiny_scorer.with_config(calibrate=False).score("capital of France", PASSAGES)
    calibrated = tiny_scorer.score("capital of France", PASSAGES)
    assert all(s > 0 for s in raw)  # uncalibrated scores are attention mass
    assert raw != pytest.approx(calibrated)


def test_orders_and_debias(tiny_scorer: QRHeadScorer) -> None:
    query = "capital of France"
    assert tiny_scorer.config.order == "reversed"  # the default layout: the first passage given goes last
    given = tiny_scorer.with_config(order="as_given").score(query, PASSAGES)
    reversed_ = tiny_scorer.score(query, PASSAGES)
    # Scoring the reversed list in reversed order is scoring the same prompt.
    assert tiny_scorer.with_config(order="reversed").score(query, PASSAGES[::-1]) == pytest.approx(
        given[::-1], abs=1e-6
    )
    debiased = tiny_scorer.with_config(order="as_given", debias=True).score(query, PASSAGES)
    assert debiased == pytest.approx([(a + b) / 2 for a, b in zip(given, reversed_, strict=True)], abs=1e-6)
    shuffled_a = tiny_scorer.with_config(order="shuffled", seed=1).score(query, PASSAGES)
    shuffled_b = tiny_scorer.with_config(order="shuffled", seed=1).score(query, PASSAGES)
    assert shuffled_a == shuffled_b


def test_shuffle_does_not_touch_global_random_state(tiny_scorer: QRHeadScorer) -> None:
    import random

    state = random.getstate()
    tiny_scorer.with_config(order="shuffled", seed=3).score("q", PASSAGES)
    assert random.getstate() == state


def test_windows_when_passages_exceed_the_context(tiny_scorer: QRHeadScorer) -> None:
    passages = [
        (f"Title {i}", f"Passage {i}: " + "the moon orbits the earth and the sun is a star. " * 3) for i in range(12)
    ]
    small = tiny_scorer.with_config(max_length=256)
    with_windows = small.score("what orbits the earth", passages)
    builder = PromptBuilder(small.tokenizer, small.config.layout)
    plans = small.planner.windows(  # the window plan has no public form
        list(range(12)),
        {i: Passage(p[1], p[0]) for i, p in enumerate(passages)},
        [builder.tail_ids(t) for t in ("what orbits the earth", "N/A")],
    )
    assert len(plans) > 1 and sorted(i for w in plans for i in w) == list(range(12))
    # Each window is scored exactly as if its passages were scored alone.
    for window in plans:
        alone = small.score("what orbits the earth", [passages[i] for i in window])
        assert [with_windows[i] for i in window] == pytest.approx(alone, abs=1e-6)


def test_the_one_pass_window_check_gives_the_windows_of_the_full_count(tiny_scorer: QRHeadScorer) -> None:
    """The upper bound from the cut's token counts only skips the block count when everything fits: the windows
    are those the full count gives, near the context limit too."""
    builder = PromptBuilder(tiny_scorer.tokenizer, tiny_scorer.config.layout)
    tails = [builder.tail_ids(t) for t in ("what orbits the earth", "N/A")]
    for length in (160, 200, 256, 300, 400, 600):
        small = tiny_scorer.with_config(max_length=length, max_passage_tokens=40)
        for n in (1, 3, 6, 12):
            items = [Passage(f"Passage {i}: " + "the moon orbits the earth. " * 6, f"T{i}") for i in range(n)]
            cut, counts, _ = small.planner.cut(items)
            assert counts is not None
            fast = small.planner.windows(list(range(n)), dict(enumerate(cut)), tails, dict(enumerate(counts)))
            full = small.planner.windows(list(range(n)), dict(enumerate(cut)), tails)  # every block counted
            assert fast == full, (length, n)


def test_passage_cap_applies_to_scoring_only(tiny_scorer: QRHeadScorer) -> None:
    long_text = "The moon orbits the earth. " * 50
    capped = tiny_scorer.with_config(max_passage_tokens=20)
    ranked = capped.rank("moon", [long_text, "Paris"])
    assert {r.passage.text for r in ranked} == {long_text, "Paris"}  # returned untouched
    assert capped.score("moon", [long_text, "Paris"]) == pytest.approx(
        capped.score("moon", [PromptBuilder(capped.tokenizer).truncate(Passage(long_text), 20).text, "Paris"]), abs=1e-6
    )


def test_empty_passages_get_the_defined_score_and_rank_last(tiny_scorer: QRHeadScorer) -> None:
    scores = tiny_scorer.score("capital of France", ["Paris is in France.", "", "   ", ("", "")])
    assert scores[0] == tiny_scorer.score("capital of France", ["Paris is in France."])[0]  # empties are not read
    assert scores[1:] == [EMPTY_PASSAGE_SCORE] * 3
    assert tiny_scorer.rank("q", ["", "x"])[0].index == 1
    assert tiny_scorer.score("q", ["", " "]) == [EMPTY_PASSAGE_SCORE] * 2


def test_empty_inputs(tiny_scorer: QRHeadScorer) -> None:
    assert tiny_scorer.score("q", []) == []
    assert tiny_scorer.rank("q", []) == []
    assert tiny_scorer.score_many([], PASSAGES) == []


@pytest.mark.parametrize("query", ["", "  "])
def test_empty_query_raises(tiny_scorer: QRHeadScorer, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        tiny_scorer.score(query, PASSAGES)


def test_non_text_input_raises(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(PassageTypeError):
        tiny_scorer.score("q", [1, 2])
    with pytest.raises(PassageTypeError):
        tiny_scorer.score(None, PASSAGES)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        tiny_scorer.score_many("a single string", PASSAGES)


def test_bad_heads_raise(tiny_llama: Any, tokenizer: Any) -> None:
    with pytest.raises(HeadSpecError, match="4 layers"):
        QRHeadScorer(tiny_llama, tokenizer, heads="7-0", model_id="tiny")
    with pytest.raises(HeadSpecError, match="4 heads"):
        QRHeadScorer(tiny_llama, tokenizer, heads="1-9", model_id="tiny")


def test_bad_config_raises(tiny_llama: Any, tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="order"):
        QRHeadScorer(tiny_llama, tokenizer, heads="1-0", order="random")
    with pytest.raises(ValueError, match="max_passage_tokens"):
        QRHeadScorer(tiny_llama, tokenizer, heads="1-0", max_passage_tokens=0)
    with pytest.raises(ValueError, match="query_part"):
        QRHeadScorer(tiny_llama, tokenizer, heads="1-0", query_part="instruction")


def test_study_options_live_apart_and_keep_their_keyword_spellings(tiny_scorer: QRHeadScorer) -> None:
    """The retired variants are one field, ``ScorerConfig.study``; the study scripts' keywords still reach it."""
    import dataclasses

    from qrhead_integrations import ScorerConfig
    from qrhead_integrations.config import StudyOptions

    assert {f.name for f in dataclasses.fields(ScorerConfig)}.isdisjoint({"calibrate", "outlier_filter", "query_part"})
    assert ScorerConfig().study == StudyOptions(calibrate=True, outlier_filter=False, query_part="all")
    by_keyword = tiny_scorer.with_config(calibrate=False, query_part="query", order="as_given")
    study = StudyOptions(calibrate=False, query_part="query")
    assert by_keyword.config.study == study and by_keyword.config.order == "as_given"
    by_config = QRHeadScorer(
        tiny_scorer.model, tiny_scorer.tokenizer, heads=tiny_scorer.heads, config=ScorerConfig(study=study)
    )
    assert by_config.score("moon", PASSAGES) == by_keyword.with_config(order="reversed").score("moon", PASSAGES)
    assert by_keyword.with_config(outlier_filter=True).config.study == dataclasses.replace(study, outlier_filter=True)
    with pytest.raises(TypeError, match="unknown scorer option"):
        tiny_scorer.with_config(calibration=False)


def test_query_too_long_for_the_context_raises(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(InvalidInputError, match="no room"):
        tiny_scorer.with_config(max_length=128).score("what orbits the earth " * 20, PASSAGES)


def test_a_context_too_small_for_the_template_is_refused_when_configured(tiny_scorer: QRHeadScorer) -> None:
    """Not on the first call: a max_length the chat template alone fills could never score anything."""
    with pytest.raises(InvalidInputError, match=r"max_length=64 cannot score anything: .* template alone takes"):
        tiny_scorer.with_config(max_length=64)
    assert tiny_scorer.with_config(max_length=128).score("moon?", PASSAGES)  # room for short inputs


def test_from_pretrained_show_progress_covers_loading_and_scoring(saved_tiny_model: Any, capsys: Any) -> None:
    """One switch for both bars; without it a load prints no transformers bar (a cached load takes seconds)."""
    quiet = QRHeadScorer.from_pretrained(saved_tiny_model, heads="1-0")
    assert not quiet.config.show_progress and "Loading weights" not in capsys.readouterr().err
    loud = QRHeadScorer.from_pretrained(saved_tiny_model, heads="1-0", show_progress=True)
    assert loud.config.show_progress
    loud.score("moon?", PASSAGES)
    assert "qrhead" in capsys.readouterr().err  # the forward passes' bar


def test_threads_apply_to_the_forward_only_and_leave_the_scores_alone(tiny_scorer: QRHeadScorer) -> None:
    passages = ["Paris is in France.", "The moon orbits the earth.", "Berlin is in Germany."]
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    seen: list[int] = []
    first_layer = tiny_scorer.model.model.layers[0]  # the scorer runs the layers itself (a truncated forward)
    hook = first_layer.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        pinned = tiny_scorer.with_config(threads=wanted).score("capital of France", passages)
        default = tiny_scorer.score("capital of France", passages)
    finally:
        hook.remove()
        torch.set_num_threads(before)
    assert seen and seen[0] == wanted and seen[-1] == before  # the pinned call's forward, then the default one's
    assert torch.get_num_threads() == before  # restored after the call
    assert pinned == pytest.approx(default, abs=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_thread_count_is_a_typed_error(tiny_scorer: QRHeadScorer, bad: object) -> None:
    with pytest.raises(InvalidInputError, match="threads"):
        tiny_scorer.with_config(threads=bad)
