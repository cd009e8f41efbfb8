"""`ContextCompressor`: keep the chunks of long documents that a query needs, within a token budget.

The paper's second use: a long-context reader answers better from the top-scoring parts of its input than from
all of it. Documents are chunked (paragraphs → sentences → token windows, exact offsets), every chunk is
scored by the shared engine as one passage (all chunks in one prompt, windowed when they exceed the context),
and the best chunks are kept until the budget — counted in the *reader's* tokens — is reached. Kept chunks come
back in their original order.

Several queries over the same documents (:meth:`ContextCompressor.compress_many`) encode the chunks once and
reuse their key/value cache for each query's short tail and for the shared ``"N/A"`` calibration tail.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._checks import check_bool, check_int, check_real
from .chunking import Chunk, Chunker, to_documents
from .errors import InvalidInputError, OptionTypeError
from .fusion import Fusion, fuse_with_first_stage
from .lexical import BM25Index
from .prompt import Passage, check_query, check_text
from .scorer import QRHeadScorer
from .tokens import TokenCounter, resolve_counter


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk with its QRHead score and its length in the budget's tokens."""

    chunk: Chunk
    score: float
    tokens: int
    truncated: bool = False
    """True when the chunk was cut to fit a budget smaller than any whole chunk (see ContextCompressor)."""
    fused: float | None = None
    """The chunk's fused score when lexical fusion is on (it then orders the selection instead of ``score``)."""

    @property
    def priority(self) -> float:
        """What the selection ranks chunks by: the fused score when there is one, else the QRHead score."""
        return self.score if self.fused is None else self.fused


@dataclass(frozen=True)
class CompressionResult:
    """What was kept for one query, in original order, with the numbers to judge it."""

    query: str
    kept: list[ScoredChunk]
    chunks: list[ScoredChunk] = field(repr=False)
    """Every chunk (kept or not), in original order, with its score."""
    original_tokens: int
    kept_tokens: int
    separator: str = "\n\n"
    whole: str | None = field(default=None, repr=False)
    """The input text itself when nothing was removed (every chunk kept whole, within the budget)."""

    @property
    def text(self) -> str:
        """The compressed context: the kept chunks joined by the separator.

        When nothing was removed, it is the input exactly as given (its own line ends and spacing), not a
        re-joined copy of it.
        """
        if self.whole is not None:
            return self.whole
        return self.separator.join(item.chunk.text for item in self.kept)

    @property
    def ratio(self) -> float:
        """Kept tokens over original tokens (1.0 for empty input: nothing was removed)."""
        return 1.0 if self.original_tokens == 0 else self.kept_tokens / self.original_tokens

    def kept_for(self, doc_index: int) -> list[ScoredChunk]:
        """The kept chunks of one input document."""
        return [item for item in self.kept if item.chunk.doc_index == doc_index]


@dataclass(frozen=True)
class CompressionDefaults:
    """Every compressor default, in one place.

    :class:`ContextCompressor` and both frameworks' compressor components read their defaults from
    :data:`COMPRESSION_DEFAULTS` (see ``ContextCompressor`` for each).
    """

    budget_tokens: int | None = 1024
    """Reader tokens of kept text: a working default, so a compressor built with no options compresses."""
    top_k: int | None = None
    token_counter: str | None = "model"
    max_chunk_tokens: int = 256
    keep_neighbors: int = 0
    min_score: float | None = None
    separator: str = "\n\n"
    lexical: float | None = 0.5
    """Chosen on HotpotQA dev rows 0-99 with each model's default heads ("Defaults and why" in docs/results.md)."""


COMPRESSION_DEFAULTS = CompressionDefaults()

DEFAULT_COMPRESSOR_LEXICAL: float | None = COMPRESSION_DEFAULTS.lexical
"""The lexical share of the compressor's default chunk ranking (see ``ContextCompressor``'s ``lexical``)."""


class ContextCompressor:
    """Compresses documents for a query with QRHead scores.

    Args:
        scorer: the shared :class:`QRHeadScorer`.
        budget_tokens: most tokens of kept text (joined with ``separator``), counted by ``token_counter``
            (default 1024; ``None``: no budget, then ``top_k`` is required).
        top_k: keep the ``k`` best chunks instead of (or as well as) a budget.
        token_counter: ``None``/``"model"`` (the scorer's tokenizer), a tiktoken encoding name such as
            ``"cl100k_base"`` or ``"o200k_base"``, or any ``Callable[[str], int]``.
        max_chunk_tokens: chunk size cap, in the scoring model's tokens.
        keep_neighbors: also keep up to this many chunks on each side of a kept chunk (same document), budget
            permitting — useful when answers span chunk boundaries.
        min_score: never keep chunks whose QRHead score is below this.
        separator: placed between kept chunks in :attr:`CompressionResult.text` (counted in the budget).
        lexical: share of a BM25 ranking of the chunks fused with QRHead's ranking (weighted reciprocal-rank
            fusion, :mod:`qrhead_integrations.fusion`) to order the selection; ``None`` or 0: QRHead alone. The
            default was chosen on dev data ("Defaults and why" in docs/results.md).
        show_progress: a progress bar over the forward passes of each call (a long document on a CPU takes
            a minute or more; the scorer's own ``show_progress`` setting applies when this is off).

    A chunk longer than the whole budget is never kept whole. If no chunk fits at all, the best chunk is cut to
    the budget (``ScoredChunk.truncated``), so a budget always yields some context when there is text.
    """

    def __init__(
        self,
        scorer: QRHeadScorer,
        *,
        budget_tokens: int | None = COMPRESSION_DEFAULTS.budget_tokens,
        top_k: int | None = COMPRESSION_DEFAULTS.top_k,
        token_counter: str | TokenCounter | None = COMPRESSION_DEFAULTS.token_counter,
        max_chunk_tokens: int = COMPRESSION_DEFAULTS.max_chunk_tokens,
        keep_neighbors: int = COMPRESSION_DEFAULTS.keep_neighbors,
        min_score: float | None = COMPRESSION_DEFAULTS.min_score,
        separator: str = COMPRESSION_DEFAULTS.separator,
        lexical: float | None = COMPRESSION_DEFAULTS.lexical,
        show_progress: bool = False,
    ) -> None:
        if not isinstance(scorer, QRHeadScorer):
            raise OptionTypeError(f"scorer must be a QRHeadScorer, got {type(scorer).__name__}")
        if budget_tokens is None and top_k is None:
            raise InvalidInputError("give budget_tokens, top_k, or both")
        check_int(budget_tokens, "budget_tokens", minimum=1, optional=True)
        check_int(top_k, "top_k", minimum=1, optional=True)
        check_int(keep_neighbors, "keep_neighbors")
        check_int(max_chunk_tokens, "max_chunk_tokens", minimum=1)
        if min_score is not None and (
            isinstance(min_score, bool) or not isinstance(min_score, numbers.Real) or math.isnan(min_score)
        ):
            raise InvalidInputError(f"min_score must be a number (not NaN) or None, got {min_score!r}")
        check_text(separator, "separator")
        check_bool(show_progress, "show_progress")
        check_real(lexical, "lexical", optional=True)
        self.scorer = scorer
        self.budget_tokens = budget_tokens
        self.top_k = top_k
        self.count_tokens = resolve_counter(token_counter, scorer.tokenizer)
        self.chunker = Chunker(scorer.tokenizer, max_chunk_tokens)
        self.keep_neighbors = keep_neighbors
        self.min_score = min_score
        self.separator = separator
        self.show_progress = show_progress
        # Reciprocal ranks of QRHead and BM25 over the chunks (the form the compressor's default was chosen in).
        self.fusion = None if not lexical else Fusion(weight=0.0, lexical=lexical, form="ranks")

    def compress(self, query: str, documents: str | Iterable[Any]) -> CompressionResult:
        """Compress ``documents`` (one ``str`` or a list) for ``query``."""
        return self.compress_many([query], documents)[0]

    def compress_many(self, queries: Sequence[str], documents: str | Iterable[Any]) -> list[CompressionResult]:
        """Compress the same documents for several queries, encoding the chunks once."""
        if isinstance(queries, str):
            raise InvalidInputError("compress_many takes a list of queries, not a single string")
        if isinstance(queries, bytes | bytearray) or not isinstance(queries, Iterable):
            raise OptionTypeError(f"queries must be a list of str, got {type(queries).__name__}")
        query_list = [check_query(q) for q in queries]
        docs = to_documents(documents)
        chunks = self.chunker.split(docs)
        original = self.separator.join(d.text for d in docs if d.text.strip())
        original_tokens = self.count_tokens(original)
        if not chunks:
            return [CompressionResult(q, [], [], original_tokens, 0, self.separator) for q in query_list]
        passages = [Passage(text=c.text, title=c.title) for c in chunks]
        # Chunks are already at most max_chunk_tokens long: the model reads them whole, whatever passage cut the
        # scorer applies to re-ranking (a cut would hide the end of every longer chunk).
        progress = {"show_progress": True} if self.show_progress else {}  # else the scorer's own setting
        all_scores = self.scorer.score_many(query_list, passages, uncut=True, **progress)
        lengths = [self.count_tokens(c.text) for c in chunks]
        index = BM25Index(passages) if self.fusion is not None else None  # one index for every query
        results = []
        for query, scores in zip(query_list, all_scores, strict=True):
            fused: list[float | None] = [None] * len(chunks)
            if self.fusion is not None and index is not None:  # both set together
                lexical = [float(value) for value in index.scores(query)]
                fused = list(fuse_with_first_stage(scores, self.fusion, lexical_scores=lexical))
            scored = [ScoredChunk(c, s, n, fused=f) for c, s, n, f in zip(chunks, scores, lengths, fused, strict=True)]
            kept = self.select(scored)
            everything = len(kept) == len(scored) and not any(item.truncated for item in kept)
            if everything and (self.budget_tokens is None or original_tokens <= self.budget_tokens):
                results.append(
                    CompressionResult(query, kept, scored, original_tokens, original_tokens, self.separator, original)
                )
                continue
            text = self.separator.join(item.chunk.text for item in kept)
            results.append(
                CompressionResult(query, kept, scored, original_tokens, self.count_tokens(text), self.separator)
            )
        return results

    # ------------------------------------------------------------------------------------------- selection
    def select(self, scored: list[ScoredChunk]) -> list[ScoredChunk]:
        """Choose chunks from already-scored ones (original order in, original order out).

        The choice follows this compressor's budget, ``top_k``, ``min_score`` and ``keep_neighbors`` — public so
        that other scores (e.g. a BM25 baseline) can be compared under exactly the same selection rules.
        """
        ranked = sorted(range(len(scored)), key=lambda i: (-scored[i].priority, i))
        if self.min_score is not None:
            ranked = [i for i in ranked if scored[i].score >= self.min_score]
        chosen: set[int] = set()
        separator_tokens = self.count_tokens(self.separator)
        used = 0
        picks = 0
        for i in ranked:
            if self.top_k is not None and picks >= self.top_k:
                break
            if i in chosen:
                continue
            group = [i, *self._neighbours(scored, i)]
            added = False
            for j in group:
                if j in chosen:
                    continue
                cost = scored[j].tokens + (separator_tokens if chosen else 0)
                if self.budget_tokens is None or used + cost <= self.budget_tokens:
                    chosen.add(j)
                    used += cost
                    added = added or j == i
            picks += int(added)
        kept = [scored[i] for i in sorted(chosen)]
        if self.budget_tokens is not None:
            kept = self._enforce_budget(kept)
            if not kept and ranked:
                kept = self._cut_to_budget(scored[ranked[0]])
        return kept

    def _neighbours(self, scored: list[ScoredChunk], i: int) -> list[int]:
        """Chunks within ``keep_neighbors`` of chunk ``i`` in the same document, nearest first."""
        out = []
        doc = scored[i].chunk.doc_index
        for distance in range(1, self.keep_neighbors + 1):
            for j in (i - distance, i + distance):
                if 0 <= j < len(scored) and scored[j].chunk.doc_index == doc:
                    out.append(j)
        return out

    def _enforce_budget(self, kept: list[ScoredChunk]) -> list[ScoredChunk]:
        """Counting the joined text can differ from the sum of parts; drop the weakest chunk until it fits."""
        assert self.budget_tokens is not None
        while kept and self.count_tokens(self.separator.join(k.chunk.text for k in kept)) > self.budget_tokens:
            weakest = min(range(len(kept)), key=lambda k: (kept[k].priority, -k))
            kept = kept[:weakest] + kept[weakest + 1 :]
        return kept

    def _cut_to_budget(self, best: ScoredChunk) -> list[ScoredChunk]:
        """The longest prefix of the best chunk that fits the budget (binary search on characters)."""
        assert self.budget_tokens is not None
        text = best.chunk.text
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if self.count_tokens(text[:mid]) <= self.budget_tokens:
                low = mid
            else:
                high = mid - 1
        cut = text[:low].rstrip()
        if not cut:
            warnings.warn(f"budget of {self.budget_tokens} tokens is too small for any text", stacklevel=4)
            return []
        chunk = replace(best.chunk, end=best.chunk.start + len(cut), text=cut)
        return [ScoredChunk(chunk, best.score, self.count_tokens(cut), truncated=True, fused=best.fused)]
