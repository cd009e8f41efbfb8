"""``qrhead eval qa``'s harness: contexts per strategy, the report's shape, resuming, and the row reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.errors import DataFormatError, InvalidInputError
from qrhead_integrations.evaluation.qa import (
    Checkpoint,
    ContextBuilder,
    QASettings,
    block,
    comparison_pairs,
    document,
    qa_markdown,
    run_qa,
)
from qrhead_integrations.evaluation.qa_data import read_qa_jsonl
from qrhead_integrations.passages import Passage
from qrhead_integrations.reader import Reader
from tests.tiny_models import tiny_model

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "hotpotqa_sample.jsonl"
ALL = ["full", "closed_book", "gold", "qrhead@25%", "qrhead@50%", "bm25@25%", "bm25@50%", "qrhead_top2", "bm25_top2"]


@pytest.fixture(scope="module")
def long_scorer(tokenizer: Any) -> QRHeadScorer:
    """A tiny model with room for the example rows' full context in the tiny tokenizer (about 6K tokens)."""
    model = tiny_model("llama")
    model.config.max_position_embeddings = 8192
    return QRHeadScorer(model, tokenizer, heads="1-0,2-3,2-1", model_id="tiny-llama-8k")


@pytest.fixture(scope="module")
def builder(long_scorer: QRHeadScorer) -> ContextBuilder:
    return ContextBuilder(long_scorer, Reader.from_scorer(long_scorer, max_new_tokens=3), QASettings())


def test_settings_name_every_strategy() -> None:
    assert QASettings().names() == ALL
    assert QASettings(budgets=(0.1,), top_k=3).names()[3:] == ["qrhead@10%", "bm25@10%", "qrhead_top3", "bm25_top3"]
    assert QASettings(strategies=("full", "gold")).names() == ["full", "gold"]
    for bad in ({"budgets": (1.5,)}, {"budgets": (0,)}, {"top_k": 0}, {"strategies": ("qrhead@99%",)}):
        with pytest.raises(InvalidInputError):
            QASettings(**bad)


def test_contexts_follow_each_strategy(builder: ContextBuilder) -> None:
    example = read_qa_jsonl(SAMPLE, limit=1)[0]
    contexts = builder.contexts(example)
    assert list(contexts) == ALL
    full = contexts["full"].text
    assert full == document(example.passages) and contexts["closed_book"].text is None
    assert contexts["gold"].text == "\n\n".join(block(example.passages[i]) for i in example.gold)
    count = builder.reader.count_tokens
    total = count(full or "")
    for share, label in ((0.25, "25%"), (0.5, "50%")):
        for system in ("qrhead", "bm25"):
            text = contexts[f"{system}@{label}"].text or ""
            assert 0 < count(text) <= int(share * total)  # within the budget, in the reader's tokens
            assert all(part in full for part in text.split("\n\n"))  # kept chunks are pieces of the document
    for system in ("qrhead_top2", "bm25_top2"):
        blocks = (contexts[system].text or "").split("\n\n")
        assert len(blocks) == 2 and all(b in [block(p) for p in example.passages] for b in blocks)
    assert contexts["qrhead@25%"].select_seconds > 0


def test_run_reports_every_strategy_with_its_metrics(builder: ContextBuilder, tmp_path: Path) -> None:
    examples = read_qa_jsonl(SAMPLE, limit=2)
    report = run_qa(builder, examples, info={"command": "x"})
    data = report.to_dict()
    assert list(data["metrics"]) == ALL
    for values in data["metrics"].values():
        assert {"em", "f1", "reader_tokens", "seconds"} <= set(values)
        assert 0 <= values["f1"] <= 1 and values["em"] <= values["f1"] + 1e-9
    tokens = {name: values["reader_tokens"] for name, values in data["metrics"].items()}
    assert tokens["closed_book"] < tokens["gold"] < tokens["full"]
    assert tokens["qrhead@25%"] < tokens["qrhead@50%"] < tokens["full"]
    assert sorted(data["answers"]["full"]) == sorted(e.id for e in examples)
    pairs = {(c["a"], c["b"]) for c in data["comparisons"]}
    assert ("qrhead@25%", "bm25@25%") in pairs and ("gold", "full") in pairs
    assert data["info"]["n_queries"] == 2 and data["info"]["command"] == "x"
    assert data["metrics"]["gold"]["gold_in_context"] == 1.0 and data["metrics"]["full"]["gold_in_context"] == 1.0
    assert data["metrics"]["closed_book"]["answer_in_context"] == 0.0
    assert data["metrics"]["gold"]["answer_in_context"] >= data["metrics"]["closed_book"]["answer_in_context"]
    assert qa_markdown(report).startswith("| strategy | EM | F1 |")


def test_comparison_pairs() -> None:
    assert comparison_pairs(["full", "qrhead@25%", "bm25@25%", "qrhead_top2"]) == [
        ("qrhead@25%", "full"),
        ("bm25@25%", "full"),
        ("qrhead_top2", "full"),
        ("qrhead@25%", "bm25@25%"),
    ]


def test_a_context_past_the_readers_window_scores_zero_and_is_counted(tiny_scorer: Any) -> None:
    """The 2048-position tiny model cannot read the full context (about 6K tiny-tokenizer tokens)."""
    settings = QASettings(strategies=("full", "gold"))
    builder = ContextBuilder(tiny_scorer, Reader.from_scorer(tiny_scorer, max_new_tokens=2), settings)
    report = run_qa(builder, read_qa_jsonl(SAMPLE, limit=2))
    assert report.info["too_long"] == {"full": 2}
    assert report.metrics["full"]["f1"] == 0.0 and report.metrics["full"]["reader_tokens"] > 2048
    assert report.per_query["gold"] and "gold" not in report.info["too_long"]


def test_an_interrupted_run_resumes_without_answering_again(long_scorer: QRHeadScorer, tmp_path: Path) -> None:
    settings = QASettings(strategies=("full", "closed_book"))
    builder = ContextBuilder(long_scorer, Reader.from_scorer(long_scorer, max_new_tokens=2), settings)
    examples = read_qa_jsonl(SAMPLE, limit=3)
    path = tmp_path / "r.json.partial.jsonl"

    def stop_after_two(done: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_qa(builder, examples, checkpoint=Checkpoint(path, {"command": "c"}), on_row=stop_after_two)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "half a line')  # a kill mid-write
    resumed = Checkpoint(path, {"command": "c"})
    resumed.load()
    assert sorted(resumed.done) == sorted(e.id for e in examples[:2])
    answered: list[int] = []
    report = run_qa(builder, examples, checkpoint=resumed, on_row=answered.append)
    assert answered == [3] and report.info["resumed_rows"] == 2 and report.info["n_queries"] == 3
    with pytest.raises(InvalidInputError, match="other settings"):
        Checkpoint(path, {"command": "other"}).load()


def test_reader_rows_in_both_shapes(tmp_path: Path) -> None:
    rows = [
        {"id": "h", "question": "Q?", "answer": "A", "passages": [{"title": "T", "text": "x"}, "y"], "gold_idx": [1]},
        {
            "question": "Q2?",
            "answer": "B",
            "answer_aliases": ["b2", "B"],
            "paragraphs": [
                {"title": "P", "paragraph_text": "p", "is_supporting": False},
                {"title": "S", "paragraph_text": "s", "is_supporting": True},
            ],
        },
        {"id": "n", "question": "Q3?", "answer": "C", "passages": ["z"]},
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    first, second, third = read_qa_jsonl(path)
    assert first.gold == (1,) and first.passages[0] == Passage("x", "T") and first.answers == ("A",)
    assert second.id == "2" and second.answers == ("B", "b2") and second.gold == (1,)
    assert second.passages[1] == Passage("s", "S")
    assert third.gold == ()
    assert [r.id for r in read_qa_jsonl(path, start=1, limit=1)] == ["2"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "Q?", "passages": ["x"]}, "missing field 'answer'"),
        ({"question": "Q?", "answer": "A", "passages": []}, "non-empty"),
        ({"question": "Q?", "answer": "A", "passages": ["x"], "gold_idx": [3]}, "gold index 3"),
        ({"question": "Q?", "answer": "A", "passages": ["x"], "answer_aliases": "a"}, "answer_aliases"),
        ({"question": "Q?", "answer": "A", "paragraphs": [3]}, "paragraphs\\[0\\]"),
    ],
)
def test_reader_names_file_and_line(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"bad.jsonl:1: .*{message}"):
        read_qa_jsonl(path)


def test_diagnostics_find_the_answer_and_the_gold_passages() -> None:
    from qrhead_integrations.evaluation.qa import QAExample, diagnostics

    passages = (Passage("Rush is a Canadian rock band.", "Rush"), Passage("Toronto is a city.", "Toronto"))
    example = QAExample("1", "Which band?", ("Rush", "RUSH band"), passages, (0,))
    assert diagnostics(example, document(passages)) == {"answer_in_context": 1.0, "gold_in_context": 1.0}
    assert diagnostics(example, block(passages[1])) == {"answer_in_context": 0.0, "gold_in_context": 0.0}
    assert diagnostics(example, "the rushing river") == {"answer_in_context": 0.0, "gold_in_context": 0.0}
    assert diagnostics(example, None)["answer_in_context"] == 0.0
