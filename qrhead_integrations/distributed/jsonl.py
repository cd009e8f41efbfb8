"""Reading JSON Lines for ``rerank_dataset``: every line becomes a row, a bad line an error row.

Ray's own JSON reader hands whole files to Arrow, which infers one schema: one malformed line, rows mixing
string passages with ``{title, text}`` passages, or ``"passages": [1, 2]`` then fail the whole job with a
message about the wrong line. Here each line is parsed and checked on its own, passages are normalised to one
Arrow type (``list<struct<title, text>>``; a plain string passage keeps ``title`` null and is scored as the same
plain string), and a line that cannot be a row becomes a row with only the input-error column set, naming
``file:line``. The worker reports that error in the ``error`` column and scores nothing for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..passages import passage_problem

if TYPE_CHECKING:
    import pyarrow as pa

INPUT_ERROR = "_qrhead_input_error"
"""Private column carrying a line's parse error from the reader to the worker (dropped from the output)."""


def read_json_rows(files: Sequence[Path], query_column: str, passages_column: str) -> pa.Table:
    """A ``pyarrow.Table`` of every row of ``files``.

    Its columns: the query, the normalised passages, the input error (``None`` for a good row) and every other
    field as its own column.

    Other fields keep their JSON values; a field whose values Arrow cannot put in one column (an ``int`` in one
    row, an object in another) is stored as JSON text instead.

    Raises:
        InvalidInputError: no row at all has ``query_column`` or ``passages_column`` (a wrong column name,
            reported before any model loads).
    """
    import pyarrow as pa

    rows = [_row(where, value, query_column, passages_column) for where, value in _values(files)]
    parsed = [row for row in rows if row.get("_parsed")]
    for column in (query_column, passages_column):
        if parsed and not any(column in row.get("_fields", ()) for row in parsed):
            fields = sorted({name for row in parsed for name in row.get("_fields", ())})
            raise InvalidInputError(f"no column {column!r} in the input (columns: {fields})")
    extra = _extra_columns(rows, (query_column, passages_column))
    passage_type = pa.list_(pa.struct([("title", pa.string()), ("text", pa.string())]))
    columns = {
        query_column: pa.array([row.get(query_column) for row in rows], type=pa.string()),
        passages_column: pa.array([row.get(passages_column) for row in rows], type=passage_type),
        INPUT_ERROR: pa.array([row[INPUT_ERROR] for row in rows], type=pa.string()),
    }
    for name in extra:
        columns[name] = _column([row.get("_extra", {}).get(name) for row in rows])
    return pa.table(columns)


def _values(files: Sequence[Path]) -> Iterator[tuple[str, Any]]:
    """``(file:line, parsed JSON or the exception)`` for every non-blank line (or array item) of every file.

    A ``.json`` file that starts with ``[`` and parses whole is one array of rows; anything else, a ``.jsonl``
    file always, is read line by line (a JSON array on a line is then one row, reported as not an object).
    A UTF-8 byte order mark at the start of a file is dropped.
    """
    for path in files:
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
        items = _array_rows(path, data)
        if items is not None:
            yield from ((f"{path} item {number}", item) for number, item in enumerate(items, start=1))
            continue
        for number, raw in enumerate(data.splitlines(), start=1):
            if raw.strip():
                yield f"{path}:{number}", _parsed(raw)


def _array_rows(path: Path, data: bytes) -> list[Any] | None:
    """The rows of a ``.json`` file holding one JSON array, or ``None`` when it is not one (read it by lines)."""
    if path.suffix.lower() != ".json" or data.lstrip()[:1] != b"[":
        return None
    value = _parsed(data)
    return value if isinstance(value, list) else None


def _parsed(raw: bytes) -> Any:  # noqa: ANN401 - any JSON value, or the exception
    """One JSON text's value, or the exception that reading it raised (a line too deeply nested included)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return exc


def _row(where: str, value: object, query_column: str, passages_column: str) -> dict[str, Any]:
    """One output row: the query, the passages, the fields, and the input error (or ``None``)."""
    if isinstance(value, Exception):
        return {INPUT_ERROR: f"DataFormatError: {where}: {_problem(value)}"}
    if not isinstance(value, dict):
        return {INPUT_ERROR: f"DataFormatError: {where}: a row must be a JSON object, got {type(value).__name__}"}
    unencodable = _unencodable(value)
    if unencodable is not None:
        return {INPUT_ERROR: f"UnencodableTextError: {where}: {unencodable}"}
    row: dict[str, Any] = {
        INPUT_ERROR: None,
        "_parsed": True,
        "_fields": tuple(value),
        "_extra": {k: v for k, v in value.items() if k not in (query_column, passages_column)},
    }
    query = value.get(query_column)
    if isinstance(query, str):
        row[query_column] = query
    else:
        row[INPUT_ERROR] = f"InvalidInputError: {where}: {query_column!r} must be a string, got {_kind(query)}"
    passages, problem = _passages(value.get(passages_column), where)
    if problem is not None:
        row[INPUT_ERROR] = row[INPUT_ERROR] or problem
    else:
        row[passages_column] = passages
    return row


def _passages(value: object, where: str) -> tuple[list[dict[str, str | None]] | None, str | None]:
    """Passages read by the package's one parser, as Arrow structs; or ``None`` and the error line.

    A plain string keeps a null title (and so does a mapping without one), so the column shows what was given.
    """
    if not isinstance(value, list):
        return None, f"PassageTypeError: {where}: passages must be a list, got {_kind(value)}"
    out: list[dict[str, str | None]] = []
    for i, item in enumerate(value):
        passage, problem = passage_problem(item, f"passage {i}")
        if passage is None:
            kind, _, message = (problem or "").partition(": ")
            return None, f"{kind}: {where}: {message}"
        given = item.get("title") if isinstance(item, dict) else (None if isinstance(item, str) else passage.title)
        out.append({"title": given, "text": passage.text})
    return out, None


def _problem(exc: Exception) -> str:
    """Why a line is no JSON value, in the words of its error row."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 ({exc})"
    if isinstance(exc, RecursionError):
        return "not JSON (nested too deeply to read)"
    return f"not JSON ({exc})"


def _unencodable(value: dict[str, Any]) -> str | None:
    r"""Why a parsed row cannot become Arrow text (a lone surrogate from a ``\udfff`` escape), or ``None``.

    JSON may escape a lone surrogate; Python then holds it in a ``str``, but no UTF-8 encoder (Arrow's
    included) accepts it, and nesting Arrow cannot unify is written back as JSON text — so every string of the
    row, keys included, is checked here, once, by encoding the row.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"a lone surrogate U+{ord(exc.object[exc.start]):04X} in the row: it is not text any tokenizer can "
            "encode; clean the file first"
        )
    except RecursionError:
        return "the row is nested too deeply to store"
    return None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _extra_columns(rows: Sequence[dict[str, Any]], own: tuple[str, str]) -> list[str]:
    """Every other field, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row.get("_extra", {}):
            if name not in own and name != INPUT_ERROR:
                seen.setdefault(name, None)
    return list(seen)


def _column(values: list[Any]) -> pa.Array:
    """One Arrow column; values Arrow cannot unify become their JSON text (``None`` stays null)."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, RecursionError):
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string())
