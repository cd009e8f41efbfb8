"""Readers for the two evaluation formats: multi-hop QA questions and BEIR retrieval datasets.

The readers validate every record up front and fail with ``file:line`` messages, because a malformed record
discovered hours into a model run wastes the run, and a silently skipped one changes the reported numbers.
They return plain dataclasses of :class:`~qrhead_integrations.prompt.Passage` so the scorer, BM25 and the
metrics all consume one representation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .._checks import check_int
from ..errors import QRHeadError
from ..passages import Passage, to_passage
from ._lines import fail, iter_json_objects, iter_lines, json_type, require_id, require_str

PathLike = str | os.PathLike[str]


@dataclass
class MultihopExample:
    """One multi-hop question over its own small pool of passages (e.g. HotpotQA distractor setting).

    Attributes:
        id: the example's id from the file, or its 1-based line number when the file has none.
        question: the question, used as the query.
        passages: the candidate passages, in file order; ``gold`` indexes into this list.
        gold: 0-based indices of the supporting passages (non-empty, distinct, in range).
    """

    id: str
    question: str
    passages: list[Passage]
    gold: list[int]


@dataclass
class BeirDataset:
    """A BEIR retrieval dataset: the corpus, the queries that have judgments, and the judgments.

    Attributes:
        corpus: document id -> passage (``title`` and ``text``).
        queries: query id -> query text, only for queries with at least one qrels line in the split.
        qrels: query id -> {document id -> graded relevance}; grades > 0 count as relevant.
    """

    corpus: dict[str, Passage]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def read_multihop_jsonl(path: PathLike, limit: int | None = None, start: int = 0) -> list[MultihopExample]:
    """Read multi-hop examples from the unified JSON Lines format.

    Each non-blank line is ``{"id"?, "question", "passages": [{"title"?, "text"}], "gold_idx": [int]}``;
    other fields (``answer``, ``type``) are ignored. A passage may also be a string or a ``[title, text]`` pair
    (any shape :func:`~qrhead_integrations.passages.to_passage` reads). ``start`` and ``limit`` select a slice of
    *examples* (not lines) so that head-detection and evaluation splits can be cut from one file without copying
    it. Reading stops once ``limit`` examples are collected, so later lines are not validated.

    Args:
        path: the ``.jsonl`` file.
        limit: the most examples to return; ``None`` for all.
        start: how many leading examples to skip.

    Returns:
        The examples in file order.

    Raises:
        DataFormatError: a line is not valid JSON, lacks a field, has a wrongly typed field, an empty
            passage list, an empty or out-of-range ``gold_idx``, or repeats an earlier id; the message names
            the file and the 1-based line.
        FileNotFoundError: the file does not exist.
        ValueError: ``start`` or ``limit`` is negative.
    """
    return read_rows(Path(path), _parse_multihop, limit=limit, start=start)


_Row = TypeVar("_Row", bound="_HasId")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def read_rows(
    file: Path, parse: Callable[[dict[str, Any], Path, int], _Row], *, limit: int | None, start: int
) -> list[_Row]:
    """The rows ``start`` to ``start + limit`` of a JSON Lines file, each parsed by ``parse(obj, file, line)``.

    One reading loop for every row reader: ids must be unique (the message names both lines), ``start``/``limit``
    count rows (not lines), and reading stops once ``limit`` rows are collected, so later lines are not read.
    """
    check_int(start, "start")
    check_int(limit, "limit", optional=True)
    rows: list[_Row] = []
    first_line_of: dict[str, int] = {}
    seen = 0
    if limit == 0:
        return rows
    for number, obj in iter_json_objects(file):
        row = parse(obj, file, number)
        if row.id in first_line_of:
            fail(file, number, f"duplicate id {row.id!r} (first used on line {first_line_of[row.id]})")
        first_line_of[row.id] = number
        seen += 1
        if seen <= start:
            continue
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    return rows


def _parse_multihop(obj: dict[str, Any], path: Path, line: int) -> MultihopExample:
    """Validate one multi-hop record; a missing id becomes the line number so every example is addressable."""
    example_id = require_id(obj, "id", path, line) if obj.get("id") is not None else str(line)
    question = require_str(obj, "question", path, line, non_empty=True)
    raw_passages = obj.get("passages")
    if not isinstance(raw_passages, list):
        problem = "missing field 'passages'" if raw_passages is None else "field 'passages' must be an array"
        fail(path, line, problem)
    if not raw_passages:
        fail(path, line, "field 'passages' is empty: there is nothing to rank")
    passages = [_parse_passage(item, f"passages[{i}]", path, line) for i, item in enumerate(raw_passages)]
    gold = _parse_gold(obj, len(passages), path, line)
    return MultihopExample(id=example_id, question=question, passages=passages, gold=gold)


def _parse_passage(item: object, label: str, path: Path, line: int) -> Passage:
    """One passage, read by the package's one parser; the label in the message finds it inside a long line."""
    try:
        return to_passage(item, label=label)
    except QRHeadError as exc:
        fail(path, line, str(exc))


def _parse_gold(obj: dict[str, Any], n_passages: int, path: Path, line: int) -> list[int]:
    """``gold_idx``: distinct in-range integers; empty is an error, as recall over no gold is undefined."""
    raw = obj.get("gold_idx")
    if not isinstance(raw, list):
        fail(path, line, "missing field 'gold_idx'" if raw is None else "field 'gold_idx' must be an array")
    if not raw:
        fail(path, line, "field 'gold_idx' is empty: an example needs at least one gold passage")
    gold: list[int] = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(path, line, f"gold_idx entries must be integers, got {json_type(value)}")
        if not 0 <= value < n_passages:
            fail(path, line, f"gold index {value} is out of range for {n_passages} passages")
        if value in gold:
            fail(path, line, f"gold index {value} is repeated")
        gold.append(value)
    return gold


def read_beir(folder: PathLike, split: str = "test") -> BeirDataset:
    """Read a BEIR dataset folder, keeping only the queries judged in ``split``.

    Two layouts are accepted: the standard BEIR one (``corpus.jsonl``, ``queries.jsonl``,
    ``qrels/{split}.tsv``) and a flat one with the split in the file names (``queries_{split}.jsonl``,
    ``qrels_{split}.tsv``), as in the shared SciFact copy. Queries without qrels are dropped because they
    cannot be scored; qrels may name documents missing from the corpus (they still count in recall's
    denominator, as in BEIR).

    Args:
        folder: the dataset folder.
        split: the qrels split to load (``"test"``, ``"dev"``, ``"train"``).

    Returns:
        The corpus, the judged queries and their qrels.

    Raises:
        FileNotFoundError: the folder or one of its three files is missing; the message lists the names tried.
        DataFormatError: a malformed line, a duplicate id, a conflicting qrels grade, or a qrels query that
            the queries file lacks; the message names the file and the 1-based line.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"BEIR dataset folder not found: {root}")
    qrels_file = _find(root, "qrels", [f"qrels/{split}.tsv", f"qrels_{split}.tsv"])
    queries_file = _find(root, "queries", ["queries.jsonl", f"queries_{split}.jsonl"])
    corpus_file = _find(root, "corpus", ["corpus.jsonl"])

    qrels, qrels_line_of = _read_qrels(qrels_file)
    queries = _read_queries(queries_file, wanted=set(qrels))
    for query_id, line in qrels_line_of.items():
        if query_id not in queries:
            fail(qrels_file, line, f"query id {query_id!r} is not in {queries_file.name}")
    return BeirDataset(corpus=_read_corpus(corpus_file), queries=queries, qrels=qrels)


def _find(root: Path, what: str, candidates: list[str]) -> Path:
    """The first existing candidate file, or an error listing every name tried (so the fix is obvious)."""
    for name in candidates:
        if (root / name).is_file():
            return root / name
    tried = ", ".join(candidates)
    raise FileNotFoundError(f"BEIR folder {root} has no {what} file (looked for {tried})")


def _read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Parse ``query-id<TAB>corpus-id<TAB>score`` lines; also return each query's first line for errors.

    The first non-blank line is taken as a header when its score column is not an integer, as BEIR writes
    one; anywhere else a non-integer score is an error.
    """
    qrels: dict[str, dict[str, int]] = {}
    line_of: dict[str, int] = {}
    first = True
    for number, text in iter_lines(path):
        fields = [field.strip() for field in text.split("\t")]
        is_first, first = first, False
        if len(fields) != 3:
            fail(
                path,
                number,
                f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}",
            )
        query_id, doc_id, raw_score = fields
        try:
            score = int(raw_score)
        except ValueError:
            if is_first:
                continue
            fail(path, number, f"score must be an integer, got {raw_score!r}")
        if not query_id or not doc_id:
            fail(path, number, "empty query id or corpus id")
        judged = qrels.setdefault(query_id, {})
        if judged.get(doc_id, score) != score:
            fail(
                path,
                number,
                f"conflicting grades for ({query_id!r}, {doc_id!r}): {judged[doc_id]} and {score}",
            )
        judged[doc_id] = score
        line_of.setdefault(query_id, number)
    return qrels, line_of


def _read_queries(path: Path, wanted: set[str]) -> dict[str, str]:
    """Parse ``{"_id", "text"}`` lines, keeping the ``wanted`` ids (all lines are still validated)."""
    queries: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for number, obj in iter_json_objects(path):
        query_id = require_id(obj, "_id", path, number)
        text = require_str(obj, "text", path, number, non_empty=True)
        if query_id in line_of:
            fail(path, number, f"duplicate _id {query_id!r} (first used on line {line_of[query_id]})")
        line_of[query_id] = number
        if query_id in wanted:
            queries[query_id] = text
    return queries


def _read_corpus(path: Path) -> dict[str, Passage]:
    """Parse ``{"_id", "title"?, "text"}`` lines into passages keyed by document id."""
    corpus: dict[str, Passage] = {}
    line_of: dict[str, int] = {}
    for number, obj in iter_json_objects(path):
        doc_id = require_id(obj, "_id", path, number)
        if doc_id in line_of:
            fail(path, number, f"duplicate _id {doc_id!r} (first used on line {line_of[doc_id]})")
        line_of[doc_id] = number
        corpus[doc_id] = _parse_passage(obj, "the document", path, number)
    return corpus
