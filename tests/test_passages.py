"""The one passage parser (``passages.to_passage``) and the input paths that use it.

Every path — the Python API (``rank``/``score``, hence the adapters), ``qrhead rank``'s JSONL, the multi-hop
evaluation files and ``qrhead batch``'s JSON Lines — reads the same shapes into the same passage and refuses a bad
one with the same words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qrhead_integrations.cli.rank import read_passages
from qrhead_integrations.errors import DataFormatError, PassageTypeError, UnencodableTextError
from qrhead_integrations.evaluation import read_multihop_jsonl
from qrhead_integrations.passages import Passage, passage_problem, to_passage, to_passages

SHAPES: list[tuple[Any, Passage]] = [
    ("just text", Passage("just text")),
    (Passage("x", "T"), Passage("x", "T")),
    ({"text": "x"}, Passage("x")),
    ({"text": "x", "title": None}, Passage("x")),
    ({"text": "x", "title": "T", "other": 1}, Passage("x", "T")),
    ({"page_content": "x"}, Passage("x")),
    (("T", "x"), Passage("x", "T")),
    (["T", "x"], Passage("x", "T")),
]
"""Every shape any input path accepted before the paths shared one parser: the union, accepted everywhere."""

BAD: list[tuple[Any, str]] = [
    (3, "is int, not text"),
    (None, "is null, not text"),
    (b"bytes", "is bytes, not text"),
    (("a", "b", "c"), "is tuple of 3, not text"),
    (["T", 3], "is list of 2, not text"),
    ({"title": "no text"}, "is missing 'text'"),
    ({"text": 5}, "'text' must be a string, got int"),
    ({"text": None}, "'text' must be a string, got null"),
    ({"text": "x", "title": 1}, "'title' must be a string, got int"),
]


@pytest.mark.parametrize(("item", "expected"), SHAPES)
def test_every_accepted_shape_is_one_passage(item: Any, expected: Passage) -> None:
    assert to_passage(item) == expected


@pytest.mark.parametrize(("item", "problem"), BAD)
def test_a_bad_passage_is_named_by_index_or_label(item: Any, problem: str) -> None:
    with pytest.raises(PassageTypeError, match=rf"^passage 4 {problem}"):
        to_passage(item, 4)
    with pytest.raises(PassageTypeError, match=rf"^passages\[2\] {problem}"):
        to_passage(item, label="passages[2]")
    passage, message = passage_problem(item, "passage 0")
    assert passage is None and message is not None and message.startswith(f"PassageTypeError: passage 0 {problem}")


def test_unencodable_text_names_the_passage() -> None:
    with pytest.raises(UnencodableTextError, match="passage 1: passage text holds a lone surrogate"):
        to_passages(["fine", "bad \ud800"])


def test_the_api_reads_every_shape(tiny_scorer: Any) -> None:
    """``rank``/``score`` (and so every adapter, which hands the scorer passages) read the union."""
    items = [item for item, _ in SHAPES]
    same = [expected for _, expected in SHAPES]
    assert tiny_scorer.score("moon", items) == tiny_scorer.score("moon", same)


def test_evaluation_files_read_every_shape_and_name_the_line(tmp_path: Path) -> None:
    items = [item.__dict__ if isinstance(item, Passage) else item for item, _ in SHAPES]
    line = {"question": "q", "passages": [list(i) if isinstance(i, tuple) else i for i in items], "gold_idx": [0]}
    path = tmp_path / "mh.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    assert read_multihop_jsonl(path)[0].passages == [expected for _, expected in SHAPES]
    path.write_text(json.dumps({**line, "passages": ["ok", {"text": 5}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"^{path}:1: passages\[1\] 'text' must be a string, got int"):
        read_multihop_jsonl(path)


def test_qrhead_rank_reads_json_lines_with_the_parser_and_keeps_text_files_text(tmp_path: Path) -> None:
    """The file's format is decided for the whole file: a ``.jsonl`` is JSON lines (a line that is not JSON is
    an error naming it, never silently text); a ``.txt`` whose lines are not all JSON is text, line by line."""
    path = tmp_path / "p.jsonl"
    lines = ['{"text": "x", "title": "T"}', '{"page_content": "y"}', '"z"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_passages(str(path)) == [Passage("x", "T"), Passage("y"), Passage("z")]
    path.write_text("\n".join([*lines, "[1] a text line, not JSON"]) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 4: invalid JSON"):
        read_passages(str(path))
    text = tmp_path / "p.txt"
    text.write_text("\n".join([*lines, "[1] a text line, not JSON"]) + "\n", encoding="utf-8")
    assert read_passages(str(text)) == [Passage(line) for line in [*lines, "[1] a text line, not JSON"]]
    path.write_text('{"text": "x", "title": 5}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 1: the passage 'title' must be a string, got int"):
        read_passages(str(path))


def test_batch_json_lines_read_every_shape_and_keep_what_was_given(tmp_path: Path) -> None:
    """``qrhead batch``'s reader: the same union; a plain string (or a missing title) keeps a null title."""
    pytest.importorskip("pyarrow")
    from qrhead_integrations.distributed.jsonl import INPUT_ERROR, read_json_rows

    items = [item.__dict__ if isinstance(item, Passage) else item for item, _ in SHAPES]
    good = {"query": "q", "passages": [list(i) if isinstance(i, tuple) else i for i in items]}
    bad = {"query": "q", "passages": ["ok", {"text": 5}]}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    table = read_json_rows([path], "query", "passages").to_pylist()
    assert [to_passage(p) for p in table[0]["passages"]] == [expected for _, expected in SHAPES]
    assert table[0]["passages"][0] == {"title": None, "text": "just text"}
    assert table[0][INPUT_ERROR] is None
    assert table[1][INPUT_ERROR] == f"PassageTypeError: {path}:2: passage 1 'text' must be a string, got int"
