r"""The one place that knows how a QRHead prompt is laid out and where each passage's tokens are.

Layout (docs/engine.md, "Method"): one user turn — an opening line, the passages as ``[i] title\ntext``
separated by blank lines, a late instruction and ``Query: {query}`` — wrapped in the tokenizer's own chat template
with the assistant header appended, or a plain layout when the tokenizer has no template.

The prompt is encoded as a shared **prefix** (template head, opening, passages, and the instruction) and one
**tail** per query (the query text and the template end). The "query part" whose attention is read is the
instruction *and* the tail, as in the paper; the instruction comes before the query, so under causal attention
its rows are the same whatever the query is — they are captured once, in the prefix pass
(``EncodedPrompt.shared_rows``), and each tail adds only its own few tokens (packed after the prefix in the same
forward, or on a fork of the prefix cache for sliding-window models).

User text (passages, titles, queries) is tokenised with ``split_special_tokens=True``: a passage that contains
``<|im_start|>`` or ``<|eot_id|>`` is read as those characters, never as control tokens. Only the template's own
markup is parsed for special tokens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .assembly import Assembler, TextIds, assembly_safe, offsets_array
from .errors import InvalidInputError
from .passages import Passage, PassageLike, check_query, check_text, to_passage, to_passages

__all__ = [  # Passage and its parser live in .passages; re-exported here, where callers always found them
    "INSTRUCTION",
    "NULL_QUERY",
    "OPENING",
    "PASSAGE_SEPARATOR",
    "EncodedPrompt",
    "Layout",
    "Passage",
    "PassageLike",
    "PromptBuilder",
    "check_query",
    "check_text",
    "passage_block",
    "to_passage",
    "to_passages",
]

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

OPENING = "Here are some paragraphs:\n\n"
PASSAGE_SEPARATOR = "\n\n"
INSTRUCTION = "Please find information that are relevant to the following query in the paragraphs above.\n\nQuery: "
NULL_QUERY = "N/A"
"""The content-free query used for calibration (ICR)."""

_SENTINEL = "\u2063QRHEAD_BODY\u2063"

_PROBES = (
    ("", "Ends with a full stop. And another sentence follows it."),
    ("A title", "two  spaces  inside, a\ttab and\nnew lines\n\nbetween words here"),
    ("", "<|im_end|> looks like markup <|eot_id|> but is text all along"),
    ("Café", "naïve café résumé déjà vu, ½ of it; 1999 and 2025 numbers in between"),
    ("", "中文 文字 mixed with English words and don't won't it's contractions"),
    ("T", "trailing spaces after words   "),
    ("", " leading space, then words and the end."),
    ("", "combining marks: cafe\u0301 e\u0301te\u0301 A\u030a ring and \u00e9 precomposed"),
)
"""Awkward passage texts the assembled body must reproduce (:meth:`PromptBuilder._assembly_agrees`)."""

Layout = Literal["auto", "chat", "plain"]


def title_limit(max_tokens: int) -> int:
    """Most tokens a passage's title keeps when its passage is cut to ``max_tokens``: half of them (at least one).

    Why a share and not the rest of the limit: a usual title (a few words) is far below it, so the text keeps its
    full ``max_tokens`` as before; only a runaway title (a whole document in a metadata field) is cut, and the
    block stays within 1.5 times the limit.
    """
    return max(1, max_tokens // 2)


def split_template(tokenizer: PreTrainedTokenizerBase, before: list[dict[str, str]]) -> tuple[str, str] | None:
    """The chat template's text before and after a user message that follows the ``before`` messages.

    Rendered around a sentinel, so the user text can be tokenised on its own (control tokens split) between the
    template's markup; ``None`` when the template does not keep the message verbatim.
    """
    rendered = tokenizer.apply_chat_template(
        [*before, {"role": "user", "content": _SENTINEL}], tokenize=False, add_generation_prompt=True
    )
    if isinstance(rendered, str) and rendered.count(_SENTINEL) == 1:
        head, tail = rendered.split(_SENTINEL)
        return head, tail
    return None


def bos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The BOS token, when the tokenizer normally adds one (Gemma depends on it), for prompts without a template."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return []
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if probe and probe[0] == bos else []


def passage_block(number: int, passage: Passage) -> str:
    r"""``[i] title\ntext`` (or ``[i] text`` without a title): the marker and title belong to the span."""
    head = f"[{number}] {passage.title}".rstrip() if passage.title.strip() else f"[{number}]"
    return f"{head}\n{passage.text}" if passage.title.strip() else f"{head} {passage.text}"


@dataclass
class EncodedPrompt:
    """Token ids of one prompt: the shared prefix, each passage's span in it, and one tail per query."""

    prefix_ids: list[int]
    passage_spans: list[tuple[int, int]]
    """``[start, end)`` token positions of each passage (in prompt order) inside ``prefix_ids``."""
    tails: list[list[int]]
    """Token ids after the prefix, one list per query, in the order the queries were given."""
    shared_rows: int = 0
    """The last ``shared_rows`` prefix tokens (the instruction) belong to every query's query part."""


class PromptBuilder:
    """Builds and tokenises QRHead prompts for one tokenizer.

    Args:
        tokenizer: a Hugging Face tokenizer (fast tokenizers give character offsets).
        layout: ``"chat"`` wraps the body in the tokenizer's chat template, ``"plain"`` does not, ``"auto"``
            uses the template when the tokenizer has one.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, layout: Layout = "auto") -> None:
        self.tokenizer = tokenizer
        self.layout = self._choose_layout(layout)
        self.before_ids, self.after_ids = self._template_ids()
        self._instruction_ids = self._user_ids(INSTRUCTION)
        self._opening_tokens = len(self._user_ids(OPENING))
        self._null_tail = self._user_ids(NULL_QUERY) + self.after_ids
        self._assembler = Assembler(tokenizer.backend_tokenizer) if assembly_safe(tokenizer) else None
        if self._assembler is not None and not self._assembly_agrees():
            self._assembler = None

    @property
    def assembles(self) -> bool:
        """Whether prompt bodies are assembled from the cut's ids (:mod:`.assembly`) when the caller has them."""
        return self._assembler is not None

    def _assembly_agrees(self) -> bool:
        """The assembled body of awkward probe passages equals the tokenised text (else: the text path only)."""
        assembler = self._assembler
        if assembler is None:
            return False
        passages = [Passage(text=text, title=title) for title, text in _PROBES]
        own = assembler.encode_many([passage.text for passage in passages])
        body, char_spans = self._prefix_body(passages)
        texts = [
            (end - len(passage.text), passage.text, ids)
            for passage, (_, end), ids in zip(passages, char_spans, own, strict=True)
        ]
        ids, offsets = assembler.body(body, texts)
        encoding = assembler.encode_many([body])[0]
        return ids == encoding.ids and np.array_equal(offsets, encoding.offsets)

    # -------------------------------------------------------------------------------------------- template
    def _choose_layout(self, layout: Layout) -> Literal["chat", "plain"]:
        if layout not in ("auto", "chat", "plain"):
            raise InvalidInputError(f"layout must be 'auto', 'chat' or 'plain', got {layout!r}")
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if layout == "chat" and not has_template:
            raise InvalidInputError("layout='chat' but the tokenizer has no chat template; use 'plain' or 'auto'")
        if layout == "auto":
            return "chat" if has_template else "plain"
        return layout

    def _template_ids(self) -> tuple[list[int], list[int]]:
        """Token ids the template puts before and after the user message body."""
        if self.layout == "chat":
            parts = split_template(self.tokenizer, [])
            if parts is not None:
                return self._markup_ids(parts[0]), self._markup_ids(parts[1])
            warnings.warn(
                "the chat template does not keep the message text verbatim; using the plain layout",
                stacklevel=3,
            )
            self.layout = "plain"
        return self._plain_before_ids(), []

    def _plain_before_ids(self) -> list[int]:
        """The BOS token, when the tokenizer normally adds one (Gemma depends on it)."""
        return bos_ids(self.tokenizer)

    def _markup_ids(self, text: str) -> list[int]:
        """Template markup: special tokens in it are real control tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _user_ids(self, text: str) -> list[int]:
        """User text: special-token look-alikes are split into ordinary tokens."""
        if not text:
            return []
        backend = self._direct_backend()
        if backend is not None:
            return list(backend.encode(text, add_special_tokens=False).ids)
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def _direct_backend(self) -> Any:  # noqa: ANN401 - a tokenizers.Tokenizer (untyped)
        """The fast tokenizer's Rust backend, set to read control-token look-alikes as text, or ``None``.

        Called directly, it skips the ``transformers`` wrapper, which spends about as long turning an encoding into
        Python lists as the backend spends tokenising (same ids and offsets: tested on every tokenizer in the
        tests). ``None`` for a slow tokenizer.
        """
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or not hasattr(backend, "encode_special_tokens"):
            return None
        # The flag ``split_special_tokens=True`` sets in the wrapper, which leaves it set too (every user-text
        # call of this class sets it the same way).
        backend.encode_special_tokens = True
        return backend

    # -------------------------------------------------------------------------------------------- passages
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` read as user text."""
        return len(self._user_ids(text))

    def _user_ids_many(self, texts: Sequence[str], offsets: bool = False) -> BatchEncoding:
        """One batched tokenizer call for many user texts.

        The per-call overhead, not the tokenising, is what costs on a GPU, where a forward over a few thousand
        tokens takes milliseconds.
        """
        encoding: BatchEncoding = self.tokenizer(
            list(texts), add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=offsets
        )
        return encoding

    def block_tokens(self, passages: Sequence[Passage]) -> list[int]:
        """Approximate token count of each passage's block in a prompt (marker, title, text, separator)."""
        if not passages:
            return []
        blocks = [passage_block(99, passage) + PASSAGE_SEPARATOR for passage in passages]
        return [len(ids) for ids in self._user_ids_many(blocks)["input_ids"]]

    def truncate(self, passage: Passage, max_tokens: int) -> Passage:
        """Cut a passage's text to at most ``max_tokens`` tokens (at a token boundary)."""
        return self.truncate_many([passage], max_tokens)[0]

    def truncate_many(self, passages: Sequence[Passage], max_tokens: int) -> list[Passage]:
        """:meth:`truncate` for many passages with one tokenizer call; passages that fit are returned as is."""
        return self.truncate_counted(passages, max_tokens)[0]

    def truncate_counted(self, passages: Sequence[Passage], max_tokens: int) -> tuple[list[Passage], list[int]]:
        """:meth:`truncate_many`, and each returned text's token count from the same tokenizer call.

        A caller that needs both so tokenises the texts once. Titles are cut to :func:`title_limit` tokens.
        """
        if not passages:
            return [], []
        passages = self.cut_titles(passages, title_limit(max_tokens))
        encoding = self._user_ids_many([passage.text for passage in passages], offsets=True)
        return _cut_by_offsets(passages, encoding["offset_mapping"], max_tokens)

    def truncate_encoded(
        self, passages: Sequence[Passage], max_tokens: int
    ) -> tuple[list[Passage], list[int], list[TextIds]]:
        """:meth:`truncate_counted`, and each passage's text ids (for :meth:`encode` to assemble the prompt from).

        Needs :attr:`assembles`; the cut and counts are those of :meth:`truncate_counted`.
        """
        if self._assembler is None:
            raise RuntimeError("truncate_encoded needs a tokenizer that assembles prompts (see .assembles)")
        passages = self.cut_titles(passages, title_limit(max_tokens))
        own = self._assembler.encode_covering([passage.text for passage in passages], max_tokens)
        return (*_cut_by_offsets(passages, [encoded.offsets for encoded in own], max_tokens), own)

    def cut_titles(self, passages: Sequence[Passage], max_tokens: int) -> list[Passage]:
        """The passages with each title cut to at most ``max_tokens`` tokens (at a token boundary).

        Only a title longer in UTF-8 bytes than the limit can exceed it (no token is shorter than a byte, the
        margin covers a tokenizer's added word marker), so a usual title is never tokenised here.
        """
        long = [i for i, passage in enumerate(passages) if len(passage.title.encode("utf-8")) + 2 > max_tokens]
        out = list(passages)
        if not long:
            return out
        encoding = self._user_ids_many([passages[i].title for i in long], offsets=True)
        for i, spans in zip(long, encoding["offset_mapping"], strict=True):
            if len(spans) > max_tokens:
                out[i] = Passage(text=passages[i].text, title=passages[i].title[: int(spans[max_tokens - 1][1])])
        return out

    def fit(self, passage: Passage, max_tokens: int) -> Passage:
        """The passage cut so that its title and text *together* take at most ``max_tokens`` tokens.

        For a passage longer than a whole window: the title keeps at most :func:`title_limit` tokens and the
        text the rest.
        """
        titled = self.cut_titles([passage], title_limit(max_tokens))[0]
        used = self.count_tokens(titled.title) if titled.title else 0
        encoding = self._user_ids_many([titled.text], offsets=True)
        return _cut_by_offsets([titled], encoding["offset_mapping"], max(1, max_tokens - used))[0][0]

    @staticmethod
    def block_token_bound(passage: Passage, text_tokens: int) -> int:
        """An upper bound on the tokens of the passage's block, from its text's token count.

        No token is shorter than one byte, so the marker, title and separator take at most their UTF-8 length,
        and joining the pieces changes the text's own count by a token or two at its ends (the margin).
        """
        head = passage_block(99, Passage(text="", title=passage.title)) + PASSAGE_SEPARATOR
        return text_tokens + len(head.encode("utf-8")) + 4

    def fixed_tokens(self, tail_tokens: int) -> int:
        """Tokens of everything but the passages, for a tail of ``tail_tokens`` tokens."""
        return len(self.before_ids) + self._opening_tokens + len(self._instruction_ids) + tail_tokens

    def tail_ids(self, query: str) -> list[int]:
        """Token ids after the prefix for ``query``: the query text and the template end."""
        if query == NULL_QUERY:  # the same ids every call: kept from construction
            return list(self._null_tail)
        return self._user_ids(query) + self.after_ids

    # ---------------------------------------------------------------------------------------------- encode
    def encode(
        self,
        passages: Sequence[Passage],
        queries: Sequence[str],
        tails: Sequence[list[int]] | None = None,
        text_ids: Sequence[TextIds | None] | None = None,
    ) -> EncodedPrompt:
        """Encode the shared prefix for ``passages`` (in the given order) and one tail per query.

        ``tails`` are the queries' :meth:`tail_ids`, when the caller already has them. ``text_ids`` are the
        passages' text ids from :meth:`truncate_encoded` (each passage's text must be a prefix of the text its
        ids read; ``None``: none to reuse): with them, and :attr:`assembles`, the body is assembled instead of
        tokenised again — the same ids either way.
        """
        body, char_spans = self._prefix_body(passages)
        if text_ids is not None and self.assembles and self._assembler is not None:
            texts = [
                (end - len(passage.text), passage.text, own)
                for passage, (_, end), own in zip(passages, char_spans, text_ids, strict=True)
            ]
            body_ids, offsets = self._assembler.body(body, texts)
        else:
            body_ids, offsets = self._encode_body(body)
        token_spans = _char_to_token_spans(offsets, char_spans)
        shift = len(self.before_ids)
        return EncodedPrompt(
            prefix_ids=self.before_ids + body_ids + self._instruction_ids,
            passage_spans=[(start + shift, end + shift) for start, end in token_spans],
            tails=[list(t) for t in tails] if tails is not None else [self.tail_ids(query) for query in queries],
            shared_rows=len(self._instruction_ids),
        )

    def _encode_body(self, body: str) -> tuple[list[int], np.ndarray]:
        """Token ids and ``(n, 2)`` character offsets of the prompt body, read as user text.

        Through the Rust backend directly where :meth:`_direct_backend` allows, else the wrapper.
        """
        backend = self._direct_backend()
        if backend is None:
            encoding = self.tokenizer(
                body, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
            )
            return list(encoding["input_ids"]), np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        encoding = backend.encode(body, add_special_tokens=False)
        return list(encoding.ids), offsets_array(encoding.offsets)

    @staticmethod
    def _prefix_body(passages: Sequence[Passage]) -> tuple[str, list[tuple[int, int]]]:
        parts = [OPENING]
        spans = []
        cursor = len(OPENING)
        for number, passage in enumerate(passages, start=1):
            block = passage_block(number, passage)
            spans.append((cursor, cursor + len(block)))
            parts.append(block + PASSAGE_SEPARATOR)
            cursor += len(block) + len(PASSAGE_SEPARATOR)
        return "".join(parts), spans


def _cut_by_offsets(
    passages: Sequence[Passage], offsets: Sequence[Any], max_tokens: int
) -> tuple[list[Passage], list[int]]:
    """Each passage cut at the end of its ``max_tokens``-th token (as is when it has no more), and its count.

    ``offsets[i]`` are passage ``i``'s token ``(start, end)`` character offsets (a list of pairs or an array).
    """
    out, counts = [], []
    for passage, spans in zip(passages, offsets, strict=True):
        counts.append(min(len(spans), max_tokens))
        if len(spans) <= max_tokens:
            out.append(passage)
            continue
        end = int(spans[max_tokens - 1][1]) if max_tokens > 0 else 0
        out.append(Passage(text=passage.text[:end], title=passage.title))
    return out, counts


def _char_to_token_spans(offsets: np.ndarray, char_spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Map ``[start, end)`` character spans to ``[start, end)`` token spans: every token overlapping the span."""
    if len(offsets) == 0:
        return [(0, 0) for _ in char_spans]
    token_ends = offsets[:, 1]
    token_starts = offsets[:, 0]
    spans = []
    for start, end in char_spans:
        first = int(np.searchsorted(token_ends, start, side="right"))
        last = int(np.searchsorted(token_starts, end, side="left"))
        spans.append((first, max(first, last)))
    return spans
