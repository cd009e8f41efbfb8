"""Prompt token ids assembled from each passage's own ids, so that a call tokenises every passage once.

Why: the cut to ``max_passage_tokens`` already tokenises each passage's text; tokenising the whole prompt again
costs about as much (issue #18). Re-using the cut's ids is exact only where a tokenizer splits text locally. That
holds for a byte-level BPE whose pre-tokenizer regex (GPT-2's, Llama 3's, Qwen 2's) always starts a new piece at a
space that sits between a non-space character and a letter — whatever comes before or after it. Between two such
spaces a passage's ids are the same inside the prompt as in the passage alone. So the prompt body is cut at the
first and last such space of every passage: the middles are copied from the cut's ids, and the short stretches in
between (a passage's marker, title, first and last words and the separators) are tokenised together in one
batched call.

A tokenizer that does not pass :func:`assembly_safe` (a normaliser other than NFC, another pre-tokenizer or model,
BPE dropout, non-special added tokens that hold or strip whitespace), or whose probe (``PromptBuilder``'s awkward
passages) disagrees with tokenising the text, uses the text path, unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

GPT2_STYLE = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
"""The GPT-2 pre-tokenizer (SmolLM2 and the tests' tiny tokenizers): ByteLevel with its own regex."""

_LETTERS_FIRST = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
_PUNCTUATION_AND_SPACE = r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LOCAL_SPLIT_PATTERNS = frozenset(
    {
        _LETTERS_FIRST + r"\p{N}" + _PUNCTUATION_AND_SPACE,  # Qwen 2 / 2.5
        _LETTERS_FIRST + r"\p{N}{1,3}" + _PUNCTUATION_AND_SPACE,  # Llama 3
    }
)
"""Split regexes (followed by a regex-free ByteLevel) under which a space between a non-space and a letter always
starts a piece: no alternative runs over a space from a non-space character, and the space is the optional first
character of a letter run."""

CHARS_PER_TOKEN = 5
"""Characters per token assumed when tokenising only the start of a long text for its cut: English runs at about
4 to 4.5 with these tokenizers; a prefix that turns out too short is tokenised whole (a second call, not an error)."""

_SPACE_BEFORE_LETTER = re.compile(r"(?<=\S) (?=[^\W\d_])")


@dataclass(frozen=True)
class TextIds:
    """A passage text's own token ids and ``(n, 2)`` character offsets, as the cut tokenised it.

    They cover the whole text or a prefix of it that holds more tokens than the cut keeps
    (:meth:`Assembler.encode_covering`).
    """

    ids: list[int]
    offsets: np.ndarray


def assembly_safe(tokenizer: object) -> bool:
    """Whether ``tokenizer``'s splitting is local in the sense above (the probe is :class:`Assembler`'s)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_special_tokens"):
        return False
    # NFC (Qwen's) is local too: a space is a starter that composes with neither neighbour.
    if backend.normalizer is not None and type(backend.normalizer).__name__ != "NFC":
        return False
    model = backend.model
    if type(model).__name__ != "BPE" or getattr(model, "dropout", None):
        return False
    if backend.pre_tokenizer is None or not _local_pre_tokenizer(json.loads(backend.pre_tokenizer.__getstate__())):
        return False
    return not any(
        not token.special and (token.lstrip or token.rstrip or any(ch.isspace() for ch in token.content))
        for token in backend.get_added_tokens_decoder().values()
    )


def _local_pre_tokenizer(config: dict[str, Any]) -> bool:
    if config.get("type") == "ByteLevel":
        return all(config.get(key) == value for key, value in GPT2_STYLE.items())
    steps = config.get("pretokenizers") if config.get("type") == "Sequence" else None
    if not steps or len(steps) != 2:
        return False
    split, byte_level = steps
    return (
        split.get("type") == "Split"
        and split.get("behavior") == "Isolated"
        and not split.get("invert")
        and (split.get("pattern") or {}).get("Regex") in LOCAL_SPLIT_PATTERNS
        and byte_level.get("type") == "ByteLevel"
        and byte_level.get("use_regex") is False
        and byte_level.get("add_prefix_space") is False
    )


class Assembler:
    """Encodes texts and assembles prompt bodies from their ids, for one fast tokenizer's backend.

    Every call reads user text: control-token look-alikes are ordinary text (``encode_special_tokens``, the flag
    ``split_special_tokens=True`` sets in the ``transformers`` wrapper).
    """

    def __init__(self, backend: Any) -> None:  # noqa: ANN401 - a tokenizers.Tokenizer (untyped)
        self.backend = backend

    def encode_many(self, texts: Sequence[str]) -> list[TextIds]:
        """Each text's ids and offsets, in one batched backend call."""
        if not texts:
            return []
        self.backend.encode_special_tokens = True
        return [
            TextIds(encoding.ids, offsets_array(encoding.offsets))  # ``ids`` is a new list on every access
            for encoding in self.backend.encode_batch(list(texts), add_special_tokens=False)
        ]

    def encode_covering(self, texts: Sequence[str], max_tokens: int) -> list[TextIds]:
        """Ids enough to cut each text to ``max_tokens`` tokens, exactly as tokenising it whole would.

        A text longer than :data:`CHARS_PER_TOKEN` characters per wanted token is tokenised only up to the first
        piece-starting space past that length: the tokens before such a space do not depend on what follows it.
        Where that prefix holds ``max_tokens`` tokens or fewer, the whole text is tokenised after all. So a
        :class:`TextIds` covers the text, or a prefix of it with more than ``max_tokens`` tokens.
        """
        reach = CHARS_PER_TOKEN * (max_tokens + 1)
        prefixes = [_prefix(text, reach) for text in texts]
        out = self.encode_many(prefixes)
        short = [
            i
            for i, (text, prefix, own) in enumerate(zip(texts, prefixes, out, strict=True))
            if len(prefix) < len(text) and len(own.ids) <= max_tokens
        ]
        for i, own in zip(short, self.encode_many([texts[i] for i in short]), strict=True):
            out[i] = own
        return out

    def body(self, body: str, texts: Sequence[tuple[int, str, TextIds | None]]) -> tuple[list[int], np.ndarray]:
        """Ids and offsets of ``body``, equal to tokenising it whole.

        Args:
            body: the prompt body.
            texts: per passage, in body order: where its (cut) text starts in ``body``, that text, and the ids
                the cut gave the passage's text (``None``: tokenise it with its surroundings).
        """
        middles: list[tuple[int, int, list[int], np.ndarray]] = []
        for start, text, own in texts:
            anchors = _anchors(text, own) if own is not None else None
            if anchors is None or own is None:
                continue
            first, first_token, last, last_token = anchors
            span = slice(first_token, last_token)
            middles.append((start + first, start + last, own.ids[span], own.offsets[span] + start))
        starts = [0, *(end for _, end, _, _ in middles)]
        ends = [*(begin for begin, _, _, _ in middles), len(body)]
        zones = self.encode_many([body[a:b] for a, b in zip(starts, ends, strict=True)])
        ids: list[int] = []
        offsets: list[np.ndarray] = []
        for k, zone in enumerate(zones):
            ids.extend(zone.ids)
            offsets.append(zone.offsets + starts[k])
            if k < len(middles):
                ids.extend(middles[k][2])
                offsets.append(middles[k][3])
        return ids, np.concatenate(offsets) if offsets else np.zeros((0, 2), dtype=np.int64)


def offsets_array(offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """A tokenizer's ``(start, end)`` offsets as an ``(n, 2)`` int64 array.

    Flattened first: about twice as fast as ``np.asarray`` on the list of tuples, at a thousand tokens per call.
    """
    return np.fromiter(chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets)).reshape(-1, 2)


def _prefix(text: str, reach: int) -> str:
    """``text`` up to its first piece-starting space at or after ``reach`` (all of it when there is none)."""
    if len(text) <= reach:
        return text
    for match in _SPACE_BEFORE_LETTER.finditer(text, reach):
        if text[match.start() + 1].isalpha():
            return text[: match.start()]
    return text


def _anchors(text: str, own: TextIds) -> tuple[int, int, int, int] | None:
    """The first and last piece-starting spaces of ``text`` and the indices of the tokens starting there.

    ``own`` tokenised the passage's text (or enough of it), of which ``text`` is a prefix (the cut). Both spaces
    lie inside ``text`` with a letter after them, so the tokens between them are the same in any surroundings.
    ``None`` when ``text`` has fewer than two usable spaces or no tokens between them.
    """
    first = last = None
    for match in _SPACE_BEFORE_LETTER.finditer(text):
        if text[match.start() + 1].isalpha() and (token := _token_at(own.offsets, match.start())) is not None:
            first = (match.start(), token)
            break
    space = len(text) - 1  # searched from the end: a scan of the whole text costs more than the rest of assembly
    while first is not None and (space := text.rfind(" ", 0, space)) > first[0]:
        if not text[space - 1].isspace() and text[space + 1].isalpha():
            token = _token_at(own.offsets, space)
            if token is not None:
                last = (space, token)
                break
    if first is None or last is None or last[1] <= first[1]:
        return None
    return first[0], first[1], last[0], last[1]


def _token_at(offsets: np.ndarray, space: int) -> int | None:
    """The index of the token that starts at ``space``, or ``None`` when the offsets do not show it plainly.

    That is the first token ending after ``space``, when it starts there (offsets may trim the space: then one
    character later) and the token before it starts before ``space``.
    """
    index = int(np.searchsorted(offsets[:, 1], space, side="right"))
    if index >= len(offsets) or int(offsets[index, 0]) not in (space, space + 1):
        return None
    if index > 0 and int(offsets[index - 1, 0]) >= space:
        return None
    return index
