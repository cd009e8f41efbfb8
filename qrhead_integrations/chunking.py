"""Split documents into chunks with exact character offsets: paragraphs, then sentences, then token windows.

Why offsets: a compressed context must be traceable to its source (``source[start:end] == chunk.text``), so
callers can highlight, cite or re-expand what was kept. Chunk sizes are capped in the scoring model's tokens,
because the cap exists to keep each scored unit small enough to compete fairly for attention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import check_int
from .errors import PassageTypeError, UnencodableTextError
from .prompt import check_text

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_LINE_END = r"(?:\r\n|\r(?!\n)|\n)"
_PARAGRAPH_BREAK = re.compile(rf"{_LINE_END}[ \t]*{_LINE_END}\s*|\u2029\s*")
"""A blank line whatever the line ends (``\\n``, Windows ``\\r\\n``, old Mac ``\\r``), or a Unicode paragraph
separator (U+2029)."""
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")


@dataclass(frozen=True)
class SourceDocument:
    """A document to compress: its text, optional title and id (carried to every chunk)."""

    text: str
    title: str = ""
    id: str | None = None

    def __post_init__(self) -> None:
        """Check both texts (a typed error for a non-``str`` or unencodable one)."""
        check_text(self.text, "document text")
        check_text(self.title, "document title")


@dataclass(frozen=True)
class Chunk:
    """A contiguous piece of one document: ``document.text[start:end] == text``."""

    doc_index: int
    start: int
    end: int
    text: str
    title: str = ""
    doc_id: str | None = None


def to_document(item: object, index: int) -> SourceDocument:
    """Accept ``str``, :class:`SourceDocument`, ``(title, text)`` or a mapping with ``text``/``title``/``id``."""
    if isinstance(item, SourceDocument):
        return item
    if isinstance(item, str):
        return SourceDocument(text=item)
    if isinstance(item, Mapping) and isinstance(item.get("text"), str):
        doc_id = item.get("id")
        return SourceDocument(
            text=item["text"], title=str(item.get("title") or ""), id=None if doc_id is None else str(doc_id)
        )
    if isinstance(item, tuple | list) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return SourceDocument(text=item[1], title=item[0])
    raise PassageTypeError(
        f"document {index}: expected str, (title, text) or a mapping with 'text'; got {type(item).__name__}"
    )


def to_documents(items: str | Iterable[Any]) -> list[SourceDocument]:
    """One document (a bare ``str``) or a list of documents; a typed error names a bad one's index."""
    if isinstance(items, str):
        return [SourceDocument(text=items)]
    if isinstance(items, bytes | bytearray) or not isinstance(items, Iterable):
        raise PassageTypeError(f"documents must be a str or a list of documents, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(to_document(item, i))
        except UnencodableTextError as exc:
            raise UnencodableTextError(f"document {i}: {exc}") from None
    return out


def _stripped(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Non-blank paragraphs (separated by blank lines), whitespace trimmed."""
    spans = []
    cursor = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.append(_stripped(text, cursor, match.start()))
        cursor = match.end()
    spans.append(_stripped(text, cursor, len(text)))
    return [(s, e) for s, e in spans if e > s]


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of ``text[start:end]`` split after ``.!?…`` (and closing quotes) followed by whitespace."""
    spans = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        spans.append(_stripped(text, cursor, match.start() + len(match.group(0).rstrip())))
        cursor = match.end()
    spans.append(_stripped(text, cursor, end))
    return [(s, e) for s, e in spans if e > s]


class Chunker:
    """Splits documents into chunks of at most ``max_tokens`` tokens of ``tokenizer``.

    A paragraph that fits is one chunk. A longer paragraph is split into sentences packed greedily up to the
    cap; a sentence longer than the cap is cut at token boundaries.

    Args:
        tokenizer: the scoring model's tokenizer (a fast one: chunks are cut at its character offsets).
        max_tokens: the chunk size cap (at least 8).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_tokens: int = 256) -> None:
        check_int(max_tokens, "max_tokens", minimum=8)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def split(self, documents: str | Iterable[Any]) -> list[Chunk]:
        """Every document's chunks, in document order, with exact character offsets into its text."""
        chunks: list[Chunk] = []
        for doc_index, doc in enumerate(to_documents(documents)):
            for start, end in self._document_spans(doc.text):
                chunks.append(Chunk(doc_index, start, end, doc.text[start:end], doc.title, doc.id))
        return chunks

    def _token_starts(self, text: str, start: int, end: int) -> np.ndarray:
        encoding = self.tokenizer(
            text[start:end], add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
        )
        offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        return offsets[:, 0] + start

    def _document_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for p_start, p_end in paragraph_spans(text):
            starts = self._token_starts(text, p_start, p_end)
            if len(starts) <= self.max_tokens:
                spans.append((p_start, p_end))
                continue
            spans.extend(self._pack_sentences(text, p_start, p_end, starts))
        return spans

    def _pack_sentences(self, text: str, start: int, end: int, starts: np.ndarray) -> list[tuple[int, int]]:
        def tokens_in(s: int, e: int) -> int:
            return int(np.searchsorted(starts, e, "left") - np.searchsorted(starts, s, "left"))

        packed: list[tuple[int, int]] = []
        current: tuple[int, int] | None = None
        for s, e in sentence_spans(text, start, end):
            if tokens_in(s, e) > self.max_tokens:
                if current is not None:
                    packed.append(current)
                    current = None
                packed.extend(self._token_windows(text, s, e, starts))
            elif current is not None and tokens_in(current[0], e) <= self.max_tokens:
                current = (current[0], e)
            else:
                if current is not None:
                    packed.append(current)
                current = (s, e)
        if current is not None:
            packed.append(current)
        return packed

    def _token_windows(self, text: str, start: int, end: int, starts: np.ndarray) -> list[tuple[int, int]]:
        first = int(np.searchsorted(starts, start, "left"))
        last = int(np.searchsorted(starts, end, "left"))
        windows = []
        for i in range(first, last, self.max_tokens):
            s = int(starts[i]) if i > first else start
            e = int(starts[i + self.max_tokens]) if i + self.max_tokens < last else end
            s, e = _stripped(text, s, e)
            if e > s:
                windows.append((s, e))
        return windows
