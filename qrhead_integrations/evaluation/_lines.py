"""Line-by-line reading of data files with errors that point at ``file:line``.

Evaluation files are hand-edited, converted from other formats and truncated by interrupted downloads. A
bare ``json.JSONDecodeError`` or ``KeyError`` from deep inside a reader says neither which file nor which
line is broken, so every reader goes through these helpers and raises :class:`DataFormatError` with a
``path:line: problem`` message that an editor or terminal can jump to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from ..errors import DataFormatError


def fail(path: Path, line: int, problem: str) -> NoReturn:
    """Raise :class:`DataFormatError` for ``problem`` at 1-based ``line`` of ``path``."""
    raise DataFormatError(f"{path}:{line}: {problem}")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, text)`` for each non-blank line, decoded as UTF-8.

    Lines are decoded one at a time (not by the file object) so that invalid UTF-8 is reported with its line
    number; a leading byte-order mark is dropped because some editors add one to JSONL files.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                fail(path, number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
            if text.strip():
                yield number, text.rstrip("\r\n")


def iter_json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON Lines file.

    Every line must hold one JSON *object*; an array or a bare value is as malformed as broken JSON because
    the readers look fields up by name.
    """
    for number, text in iter_lines(path):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(path, number, f"invalid JSON ({exc.msg} at column {exc.colno})")
        if not isinstance(value, dict):
            fail(path, number, f"expected a JSON object, got {json_type(value)}")
        yield number, value


def require_str(obj: Mapping[str, Any], key: str, path: Path, line: int, *, non_empty: bool = False) -> str:
    """Return ``obj[key]`` as a ``str``, or fail naming the missing or mistyped field."""
    if key not in obj:
        fail(path, line, f"missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        fail(path, line, f"field {key!r} must be a string, got {json_type(value)}")
    if non_empty and not value.strip():
        fail(path, line, f"field {key!r} is empty")
    return value


def require_id(obj: Mapping[str, Any], key: str, path: Path, line: int) -> str:
    """Return an id field as ``str``; JSON integers are accepted because some dumps write ids as numbers."""
    if key not in obj:
        fail(path, line, f"missing field {key!r}")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        fail(path, line, f"field {key!r} must be a string or integer, got {json_type(value)}")
    text = str(value)
    if not text.strip():
        fail(path, line, f"field {key!r} is empty")
    return text


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, so messages speak the file's language, not Python's."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
