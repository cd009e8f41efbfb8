"""Passages and the one parser every input path uses: the Python API, ``qrhead rank``, evaluation files, batch jobs.

Why one parser: a passage written one way must mean the same thing whether it reaches the scorer from Python, a
JSON Lines file of ``qrhead rank``, a multi-hop evaluation file or a ``qrhead batch`` input — and a bad one must
fail with the same words. :func:`to_passage` accepts every shape any of them took:

* a :class:`Passage`;
* a string (the text, no title);
* a mapping with a string ``"text"`` (or, for LangChain-style dicts, ``"page_content"``) and an optional
  ``"title"`` (a string; missing or ``null``: no title); other keys are ignored;
* a ``(title, text)`` pair of strings (a JSON ``[title, text]`` array).

Readers call it with their own ``label`` (``"passages[3]"``, ``"passage 3"``) and add where the passage was
(``file:line``) to its message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import EmptyQueryError, PassageTypeError, QRHeadError, UnencodableTextError

_SURROGATE = re.compile("[\ud800-\udfff]")

SHAPES = "a string, a (title, text) pair or a mapping with 'text'"
"""The accepted shapes, in the words every message uses."""


def check_text(value: object, what: str) -> str:
    """``value`` if it is a ``str`` a tokenizer can encode; else a typed error naming ``what``.

    Raises:
        PassageTypeError: not a ``str`` (``None``, bytes, a number...).
        UnencodableTextError: a lone surrogate (Python lets ``str`` hold one; no UTF-8 encoder accepts it).
    """
    if not isinstance(value, str):
        raise PassageTypeError(f"{what} must be a str, got {type(value).__name__}")
    found = _SURROGATE.search(value)
    if found is not None:
        raise UnencodableTextError(
            f"{what} holds a lone surrogate U+{ord(found.group()):04X} at character {found.start()}: it cannot be "
            "encoded; clean the text first, e.g. text.encode('utf-8', 'replace').decode('utf-8')"
        )
    return value


@dataclass(frozen=True)
class Passage:
    """One candidate passage: its text and an optional title (shown on the marker line).

    Both must be ``str`` a tokenizer can encode (checked here, so a bad passage fails before any model work).
    """

    text: str
    title: str = ""

    def __post_init__(self) -> None:
        """Check both texts (a typed error for a non-``str`` or unencodable one)."""
        check_text(self.text, "passage text")
        check_text(self.title, "passage title")

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to attend to: no text and no title besides whitespace."""
        return not self.text.strip() and not self.title.strip()


PassageLike = str | Passage | Sequence[str] | Mapping[str, Any]
"""Accepted passage inputs: ``str``, :class:`Passage`, ``(title, text)``, or a mapping with ``text``/``title``."""


def to_passage(item: object, index: int = 0, *, label: str | None = None) -> Passage:
    """One passage input as a :class:`Passage` (the shapes are in the module docstring).

    Args:
        item: the input.
        index: its position, named in errors as ``passage {index}``.
        label: how errors name it instead (``"passages[3]"``); a reader adds the file and line.

    Raises:
        PassageTypeError: not one of the shapes, or a non-string ``text``/``title``.
        UnencodableTextError: a lone surrogate in the text or title.
    """
    name = f"passage {index}" if label is None else label
    try:
        return _parse(item, name)
    except UnencodableTextError as exc:
        raise UnencodableTextError(f"{name}: {exc}") from None


def _parse(item: object, name: str) -> Passage:
    if isinstance(item, Passage):
        return item
    if isinstance(item, str):
        return Passage(text=item)
    if isinstance(item, Mapping):
        text = item["text"] if "text" in item else item.get("page_content")
        if text is None and "text" not in item and "page_content" not in item:
            raise PassageTypeError(f"{name} is missing 'text' (keys: {sorted(map(str, item))})")
        if not isinstance(text, str):
            raise PassageTypeError(f"{name} 'text' must be a string, got {_kind(text)}")
        title = item.get("title")
        if title is not None and not isinstance(title, str):
            raise PassageTypeError(f"{name} 'title' must be a string, got {_kind(title)}")
        return Passage(text=text, title=title or "")
    if isinstance(item, Sequence) and not isinstance(item, bytes | bytearray) and len(item) == 2:
        title, text = item
        if isinstance(title, str) and isinstance(text, str):
            return Passage(text=text, title=title)
    raise PassageTypeError(f"{name} is {_describe(item)}, not text: give {SHAPES}")


def to_passages(items: Iterable[Any]) -> list[Passage]:
    """Normalise a sequence of passage inputs (a bare ``str`` is rejected: it is one passage, not a list)."""
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise PassageTypeError("passages must be a list of passages, not a single string or non-iterable")
    return [to_passage(item, i) for i, item in enumerate(items)]


def passage_problem(item: object, label: str) -> tuple[Passage | None, str | None]:
    """:func:`to_passage` for readers that report instead of raising: the passage, or ``None`` and the message.

    The message starts with the error's class name (``"PassageTypeError: passages[2] is ..."``), as the batch
    job's ``error`` column shows it.
    """
    try:
        return to_passage(item, label=label), None
    except QRHeadError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def check_query(query: object) -> str:
    """Return the query, or raise a typed error for non-text or empty queries."""
    text = check_text(query, "the query")
    if not text.strip():
        raise EmptyQueryError("the query is empty: QRHead scores passages by the attention of query tokens")
    return text


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _describe(item: object) -> str:
    if isinstance(item, Sequence) and not isinstance(item, str | bytes | bytearray):
        return f"{type(item).__name__} of {len(item)}"
    return _kind(item)
