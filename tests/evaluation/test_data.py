"""Readers: happy paths on small files, and malformed files failing with ``file:line``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qrhead_integrations.errors import DataFormatError
from qrhead_integrations.evaluation import read_beir, read_multihop_jsonl
from qrhead_integrations.prompt import Passage

GOOD = {
    "id": "a",
    "question": "Who wrote Hamlet?",
    "answer": "Shakespeare",
    "passages": [
        {"title": "Hamlet", "text": "A tragedy."},
        {"title": "Bard", "text": "Shakespeare wrote it."},
    ],
    "gold_idx": [1],
}


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


def test_multihop_happy_path(tmp_path: Path) -> None:
    no_id = {k: v for k, v in GOOD.items() if k != "id"}
    untitled = {
        **GOOD,
        "id": 7,
        "passages": [{"text": "x"}, {"title": None, "text": "y"}],
        "gold_idx": [1, 0],
    }
    path = _jsonl(tmp_path / "mh.jsonl", [GOOD, "", "   ", no_id, untitled])
    examples = read_multihop_jsonl(path)
    assert [e.id for e in examples] == ["a", "4", "7"]  # missing id -> its 1-based line number
    first = examples[0]
    assert first.question == "Who wrote Hamlet?"
    assert first.passages == [Passage("A tragedy.", "Hamlet"), Passage("Shakespeare wrote it.", "Bard")]
    assert first.gold == [1]
    assert examples[2].passages == [Passage("x"), Passage("y")]
    assert examples[2].gold == [1, 0]


def test_multihop_start_and_limit_slice_examples(tmp_path: Path) -> None:
    rows = [{**GOOD, "id": str(i)} for i in range(5)]
    path = _jsonl(tmp_path / "mh.jsonl", [*rows[:2], "", *rows[2:]])
    assert [e.id for e in read_multihop_jsonl(path, start=1, limit=2)] == ["1", "2"]
    assert [e.id for e in read_multihop_jsonl(path, start=3)] == ["3", "4"]
    assert read_multihop_jsonl(path, limit=0) == []
    assert read_multihop_jsonl(path, start=9) == []
    with pytest.raises(ValueError, match="start"):
        read_multihop_jsonl(path, start=-1)
    with pytest.raises(ValueError, match="limit"):
        read_multihop_jsonl(path, limit=-2)


MALFORMED_MULTIHOP = [
    ('{"question": "q", "passages": [', "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got array"),
    ({k: v for k, v in GOOD.items() if k != "question"}, "missing field 'question'"),
    ({**GOOD, "question": 5}, "'question' must be a string, got number"),
    ({**GOOD, "question": "  "}, "'question' is empty"),
    ({**GOOD, "id": ["x"]}, "'id' must be a string or integer"),
    ({k: v for k, v in GOOD.items() if k != "passages"}, "missing field 'passages'"),
    ({**GOOD, "passages": "text"}, "'passages' must be an array"),
    ({**GOOD, "passages": [], "gold_idx": []}, "'passages' is empty"),
    ({**GOOD, "passages": [3, {"text": "y"}]}, "passages[0] is int, not text"),
    ({**GOOD, "passages": [["title", 3], {"text": "y"}]}, "passages[0] is list of 2, not text"),
    ({**GOOD, "passages": [{"text": "x"}, {"title": "no text"}]}, "passages[1] is missing 'text'"),
    ({**GOOD, "passages": [{"text": "x"}, {"text": 3}]}, "passages[1] 'text' must be a string"),
    ({**GOOD, "passages": [{"text": "x", "title": 1}, {"text": "y"}]}, "'title' must be a string"),
    ({k: v for k, v in GOOD.items() if k != "gold_idx"}, "missing field 'gold_idx'"),
    ({**GOOD, "gold_idx": 1}, "'gold_idx' must be an array"),
    ({**GOOD, "gold_idx": []}, "'gold_idx' is empty"),
    ({**GOOD, "gold_idx": [2]}, "gold index 2 is out of range for 2 passages"),
    ({**GOOD, "gold_idx": [-1]}, "gold index -1 is out of range"),
    ({**GOOD, "gold_idx": ["1"]}, "gold_idx entries must be integers, got string"),
    ({**GOOD, "gold_idx": [True]}, "gold_idx entries must be integers, got boolean"),
    ({**GOOD, "gold_idx": [1, 1]}, "gold index 1 is repeated"),
    ({**GOOD, "id": "first"}, "duplicate id 'first' (first used on line 1)"),
]


@pytest.mark.parametrize(("bad", "problem"), MALFORMED_MULTIHOP)
def test_malformed_multihop_lines_name_file_and_line(tmp_path: Path, bad: Any, problem: str) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [{**GOOD, "id": "first"}, "", bad, GOOD])
    with pytest.raises(DataFormatError) as caught:
        read_multihop_jsonl(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert problem in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"question": "\xff"}\n')
    with pytest.raises(DataFormatError, match=r"bytes\.jsonl:2: not valid UTF-8"):
        read_multihop_jsonl(path)


def test_missing_multihop_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_multihop_jsonl(tmp_path / "absent.jsonl")


CORPUS: list[dict[str, Any]] = [
    {"_id": "d1", "title": "Cats", "text": "Cats purr."},
    {"_id": 2, "text": "Dogs bark."},
    {"_id": "d3", "title": "Fish", "text": "Fish swim.", "metadata": {}},
]
QUERIES: list[dict[str, Any]] = [
    {"_id": "q1", "text": "Do cats purr?"},
    {"_id": 2, "text": "Do dogs bark?"},
    {"_id": "q3", "text": "x"},
]
QRELS_TSV = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\n\n2\t2\t1\n"


def _beir(root: Path, *, flat: bool = False, split: str = "test", qrels: str = QRELS_TSV) -> Path:
    root.mkdir(exist_ok=True)
    _jsonl(root / "corpus.jsonl", CORPUS)
    _jsonl(root / (f"queries_{split}.jsonl" if flat else "queries.jsonl"), QUERIES)
    if flat:
        (root / f"qrels_{split}.tsv").write_text(qrels)
    else:
        (root / "qrels").mkdir(exist_ok=True)
        (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


def test_beir_standard_layout(tmp_path: Path) -> None:
    data = read_beir(_beir(tmp_path / "ds"))
    assert data.corpus == {
        "d1": Passage("Cats purr.", "Cats"),
        "2": Passage("Dogs bark."),
        "d3": Passage("Fish swim.", "Fish"),
    }
    assert data.queries == {"q1": "Do cats purr?", "2": "Do dogs bark?"}  # q3 has no qrels: dropped
    assert data.qrels == {"q1": {"d1": 2, "d3": 0}, "2": {"2": 1}}


def test_beir_flat_layout_with_split_in_file_names(tmp_path: Path) -> None:
    data = read_beir(_beir(tmp_path / "ds", flat=True, split="train"), split="train")
    assert set(data.queries) == {"q1", "2"}
    assert data.qrels["q1"] == {"d1": 2, "d3": 0}


def test_beir_qrels_without_header(tmp_path: Path) -> None:
    data = read_beir(_beir(tmp_path / "ds", qrels="q1\td1\t1\n"))
    assert data.qrels == {"q1": {"d1": 1}}
    assert data.queries == {"q1": "Do cats purr?"}


def test_beir_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder not found"):
        read_beir(tmp_path / "nowhere")
    root = _beir(tmp_path / "ds")
    with pytest.raises(FileNotFoundError, match=r"no qrels file \(looked for qrels/dev\.tsv, qrels_dev\.tsv\)"):
        read_beir(root, split="dev")
    (root / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"no queries file .*queries\.jsonl, queries_test\.jsonl"):
        read_beir(root)
    _jsonl(root / "queries.jsonl", QUERIES)
    (root / "corpus.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"no corpus file \(looked for corpus\.jsonl\)"):
        read_beir(root)


@pytest.mark.parametrize(
    ("qrels", "line", "problem"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\n", 2, "expected 3 tab-separated fields"),
        ("q1\td1\t1\nq1 d3 1\n", 2, "expected 3 tab-separated fields"),
        ("q1\td1\t1\nq1\td3\thigh\n", 2, "score must be an integer, got 'high'"),
        ("q1\td1\t1\n\nq1\td1\t2\n", 3, "conflicting grades for ('q1', 'd1'): 1 and 2"),
        ("q1\td1\t1\n \td1\t1\n", 2, "empty query id or corpus id"),
        ("q1\td1\t1\nq9\td1\t1\n", 2, "query id 'q9' is not in queries.jsonl"),
    ],
)
def test_beir_malformed_qrels(tmp_path: Path, qrels: str, line: int, problem: str) -> None:
    root = _beir(tmp_path / "ds", qrels=qrels)
    with pytest.raises(DataFormatError) as caught:
        read_beir(root)
    assert str(caught.value).startswith(f"{root / 'qrels' / 'test.tsv'}:{line}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("file", "rows", "problem"),
    [
        ("corpus.jsonl", [CORPUS[0], {"_id": "d9", "title": "no text"}], "document is missing 'text'"),
        ("corpus.jsonl", [CORPUS[0], {"text": "no id"}], "missing field '_id'"),
        (
            "corpus.jsonl",
            [CORPUS[0], {**CORPUS[0], "text": "again"}],
            "duplicate _id 'd1' (first used on line 1)",
        ),
        ("queries.jsonl", [QUERIES[0], {"_id": "q2", "text": 3}], "'text' must be a string, got number"),
        ("queries.jsonl", [QUERIES[0], '{"_id": "q2", "text": "x"'], "invalid JSON"),
        ("queries.jsonl", [QUERIES[0], {"_id": True, "text": "x"}], "'_id' must be a string or integer"),
    ],
)
def test_beir_malformed_jsonl(tmp_path: Path, file: str, rows: list[Any], problem: str) -> None:
    root = _beir(tmp_path / "ds", qrels="q1\td1\t1\n")
    _jsonl(root / file, rows)
    with pytest.raises(DataFormatError) as caught:
        read_beir(root)
    assert str(caught.value).startswith(f"{root / file}:2: ")
    assert problem in str(caught.value)
