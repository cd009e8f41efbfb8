"""Question-answering rows for ``qrhead eval qa``: HotpotQA's and MuSiQue's shapes, read line by line.

Two shapes, so a user can point the harness at either data set as published (after one JSON Lines export):

* HotpotQA-like (this repository's ``hotpotqa_dev200.jsonl``):
  ``{"id"?, "question", "answer", "answer_aliases"?, "passages": [{"title"?, "text"}], "gold_idx"?: [int]}``;
* MuSiQue-like: ``{"id"?, "question", "answer", "answer_aliases"?, "paragraphs": [{"title"?,
  "paragraph_text", "is_supporting"?}]}`` — gold passages are those with ``is_supporting: true``.

Errors name ``file:line`` (:mod:`._lines`), before any model loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..prompt import Passage
from ._lines import fail, json_type, require_id, require_str
from .data import _parse_passage, read_rows


@dataclass(frozen=True)
class QAExample:
    """One question with its passages and reference answers.

    Attributes:
        id: the row's id, or its 1-based line number when it has none.
        question: the question.
        answers: the answer first, then its aliases (every one counts as right).
        passages: the context passages, in file order.
        gold: 0-based indices of the supporting passages; empty when the row does not say.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    passages: tuple[Passage, ...]
    gold: tuple[int, ...]


def read_qa_jsonl(path: str | os.PathLike[str], limit: int | None = None, start: int = 0) -> list[QAExample]:
    """Read QA rows (see the module docstring for the two shapes); ``start``/``limit`` select rows.

    Raises:
        DataFormatError: a line is not a JSON object, lacks ``question``/``answer``/passages, has a wrongly
            typed field or an out-of-range gold index, or repeats an id; the message names the file and line.
        FileNotFoundError: the file does not exist.
        InvalidInputError: ``start`` or ``limit`` is negative or not an integer.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"QA data file not found: {file}")
    return read_rows(file, _parse_row, limit=limit, start=start)


def _parse_row(obj: dict[str, Any], path: Path, line: int) -> QAExample:
    row_id = require_id(obj, "id", path, line) if obj.get("id") is not None else str(line)
    question = require_str(obj, "question", path, line, non_empty=True)
    answer = require_str(obj, "answer", path, line, non_empty=True)
    aliases = obj.get("answer_aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        fail(path, line, "field 'answer_aliases' must be an array of strings")
    answers = tuple(dict.fromkeys([answer, *(a for a in aliases if a.strip())]))
    if "paragraphs" in obj and "passages" not in obj:
        passages, gold = _musique_paragraphs(obj["paragraphs"], path, line)
    else:
        passages, gold = _hotpotqa_passages(obj, path, line)
    return QAExample(row_id, question, answers, passages, gold)


def _hotpotqa_passages(obj: dict[str, Any], path: Path, line: int) -> tuple[tuple[Passage, ...], tuple[int, ...]]:
    raw = obj.get("passages")
    if not isinstance(raw, list) or not raw:
        fail(path, line, "field 'passages' must be a non-empty array" if raw is not None else "missing 'passages'")
    passages = tuple(_parse_passage(item, f"passages[{i}]", path, line) for i, item in enumerate(raw))
    gold_raw = obj.get("gold_idx", [])
    if not isinstance(gold_raw, list):
        fail(path, line, f"field 'gold_idx' must be an array, got {json_type(gold_raw)}")
    gold: list[int] = []
    for value in gold_raw:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(passages):
            fail(path, line, f"gold index {value!r} is not an index into {len(passages)} passages")
        if value not in gold:
            gold.append(value)
    return passages, tuple(gold)


def _musique_paragraphs(raw: object, path: Path, line: int) -> tuple[tuple[Passage, ...], tuple[int, ...]]:
    if not isinstance(raw, list) or not raw:
        fail(path, line, "field 'paragraphs' must be a non-empty array")
    passages: list[Passage] = []
    gold: list[int] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            fail(path, line, f"paragraphs[{i}] must be an object, got {json_type(item)}")
        text = item.get("paragraph_text", item.get("text"))
        passages.append(_parse_passage({"title": item.get("title", ""), "text": text}, f"paragraphs[{i}]", path, line))
        if item.get("is_supporting") is True:
            gold.append(i)
    return tuple(passages), tuple(gold)
