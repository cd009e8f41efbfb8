"""Long work is announced before the forward pass: a warning with the planned tokens and a rough time, and a bar
over the forwards of a long compression. Planning only for the sizes; the thresholds are lowered to run the
whole path on the tiny model."""

from __future__ import annotations

import warnings

import pytest

from qrhead_integrations import ContextCompressor, LongWorkWarning, Passage, QRHeadScorer
from qrhead_integrations import plan as plan_module
from qrhead_integrations.plan import ModelSize, Workload


def _workload(scorer: QRHeadScorer, query: str, passages: list[Passage], *, uncut: bool = False) -> Workload:
    planned = scorer.planner.plan_row(0, [query], passages, uncut=uncut)
    assert planned is not None
    return Workload.of(planned.units)


def test_a_usual_call_is_not_long(tiny_scorer: QRHeadScorer) -> None:
    work = _workload(tiny_scorer, "who wrote Hamlet?", [Passage(text="word " * 200)] * 20)
    assert not work.is_long and 1_000 < work.tokens < plan_module.LONG_TOKENS


def test_many_long_passages_plan_past_20000_tokens_and_the_message_gives_an_estimate(
    tiny_scorer: QRHeadScorer,
) -> None:
    scorer = tiny_scorer.with_config(max_passage_tokens=None)
    work = _workload(scorer, "q?", [Passage(text="word " * 100)] * 50)  # about 25,000 tokens, in windows
    assert work.is_long and work.tokens > plan_module.LONG_TOKENS and work.forwards > 1
    smollm2 = ModelSize(parameters=135_000_000, layers=30, hidden=576)
    seconds = work.estimate_seconds(smollm2, accelerator=False)
    assert 10 < seconds < 600  # minutes at most on a CPU, far less on a GPU
    assert work.estimate_seconds(smollm2, accelerator=True) < seconds / 10
    message = work.message(smollm2, accelerator=False)
    assert f"{work.tokens:,} tokens" in message and "rough" in message


def test_a_query_of_thousands_of_tokens_is_long_work(
    tiny_scorer: QRHeadScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_module, "LONG_QUERY_TOKENS", 100)  # the tiny model's context holds 2,048 tokens
    work = _workload(tiny_scorer, "why " * 150, [Passage(text="short")])
    assert work.is_long and work.tokens < plan_module.LONG_TOKENS and work.longest_query > 100
    assert "-token query" in work.message(ModelSize(135_000_000, 30, 576), accelerator=False)


def test_a_long_call_warns_once_before_the_forward_and_names_the_callers_line(
    tiny_scorer: QRHeadScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_module, "LONG_TOKENS", 50)
    forwards: list[int] = []
    original = tiny_scorer.forwards.capture_many
    monkeypatch.setattr(tiny_scorer.forwards, "capture_many", lambda e: forwards.append(1) or original(e))
    with pytest.warns(LongWorkWarning, match="long work planned") as caught:
        tiny_scorer.rank("who wrote Hamlet?", ["Hamlet is a play.", "Paris is in France."])
    assert len(caught) == 1 and caught[0].filename == __file__  # the user's line, not the package's
    assert forwards  # the call still runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(plan_module, "LONG_TOKENS", 20_000)
        tiny_scorer.rank("who wrote Hamlet?", ["Hamlet is a play."])  # a usual call: silent


def test_a_long_compression_shows_a_bar_over_its_forwards(
    tiny_scorer: QRHeadScorer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(plan_module, "LONG_TOKENS", 50)
    scorer = tiny_scorer.with_config(max_length=256)
    document = "\n\n".join(f"Paragraph {i} says something about the moon and the sun." for i in range(30))
    with pytest.warns(LongWorkWarning):
        ContextCompressor(scorer, budget_tokens=40, max_chunk_tokens=16).compress("moon?", document)
    assert "qrhead" in capsys.readouterr().err  # tqdm's bar, on stderr
    with pytest.warns(LongWorkWarning):
        scorer.score_many(["moon?"], document.split("\n\n"), uncut=True, show_progress=False)
    assert "qrhead" not in capsys.readouterr().err  # the call said no
