"""`QRHeadReranker`: a LangChain document compressor that re-ranks documents with QRHead scores.

Why a compressor: ``BaseDocumentCompressor`` is the interface LangChain's post-retrieval steps share
(``ContextualCompressionRetriever``, ``DocumentCompressorPipeline``), so the reranker drops into any of
them. The model is loaded lazily on first use and never serialised: a reranker can be declared in a config or
shared between threads without paying for (or copying) the model until it first scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from pydantic import Field, field_validator

from .._checks import check_int
from ..errors import OptionTypeError, QRHeadError
from ..fusion import FUSION_HELP, MODEL_DEFAULT, Fusion, as_fusion_setting
from ..prompt import Passage, check_query
from ..scorer import RankedPassage
from ._scorer import DocumentStep, check_documents, document_title

_UNSET: Any = object()
"""Marks "use the field's value" for per-call overrides, where ``None`` is itself a meaningful value."""


class QRHeadReranker(DocumentStep):
    """Re-ranks documents by the attention a causal LM's query-focused retrieval heads pay them.

    By default QRHead is **not the only judge**: LangChain hands a compressor its retriever's documents best
    first, and QRHead's ranking is fused with that order and with a BM25 ranking of the documents themselves
    (a weighted sum of per-query z-scores, or weighted reciprocal ranks; weights in ``fusion``; see
    :mod:`qrhead_integrations.fusion`, and "Defaults and why" in docs/results.md for the dev measurement behind
    the default: a small model's attention alone ranked SciFact below BM25, the fusion above it).
    ``fusion="default"`` (the default) uses the scorer's setting, which is the model's own dev-chosen fusion
    (``Fusion(weight=0.1, lexical=0.5, form="scores")`` for a model without one: QRHead's z-scores 0.4, the input
    order 0.1, BM25 over the documents 0.5); ``fusion=None`` ranks by attention alone; ``fusion=Fusion(weight=0,
    lexical=0.5, form="scores")`` ignores the input order; ``Fusion(..., agreement=0.2)`` counts it only where it
    agrees with BM25 over the documents (looks like a ranking).

    All documents are read in **one** prompt, so their QRHead scores are relative to each other: a document's
    score depends on which other documents it was ranked with. Scores are comparable within one call, not
    across calls; set ``score_threshold`` with that in mind: it applies to the QRHead score (0 separates "more
    attention than a content-free query pays it" from "less"), whether or not fusion is on.

    Each returned document is a **copy** of the input (same class, ``id`` and ``page_content``, all metadata
    kept) whose metadata gains the ranking score under ``relevance_score_key`` (the fused score with fusion
    on — a z-score mix centred near 0 for the default ``form="scores"``, in ``(0, 1]`` for ``form="ranks"`` —
    else the QRHead score) and the QRHead score under ``qrhead_score``; the caller's documents
    are never modified. Duplicate documents (same content) are each scored and kept: they compete for the attention the
    model pays that text, so deduplicate upstream (e.g. ``EmbeddingsRedundantFilter``) if your base retriever
    returns duplicates.

    Either pass a loaded ``scorer`` (to share one model between rerankers, retrievers and threads), or
    ``model`` (plus optional ``heads``, ``device``, ``quantize``, ``scorer_kwargs``) to load one lazily on first use.

    Example:
        .. code-block:: python

            from qrhead_integrations.langchain import QRHeadReranker

            reranker = QRHeadReranker(model="smollm2-135m-instruct", top_n=3)
            best = reranker.compress_documents(documents, "Who wrote Hamlet?")
            best[0].metadata["relevance_score"]
    """

    top_n: int | None = Field(
        default=3, ge=1, description="Documents to return, best first (None: all that pass the threshold)."
    )
    score_threshold: float | None = Field(
        default=None, description="Keep only documents whose score is >= this value (None: no threshold)."
    )
    relevance_score_key: str = Field(
        default="relevance_score",
        min_length=1,
        description="Metadata key the score is written under (an existing value there is overwritten).",
    )
    title_key: str | None = Field(
        default=None,
        description="Metadata field read as the passage title (shown to the model before the text), if any.",
    )
    fusion: Fusion | Literal["default"] | None = Field(default=MODEL_DEFAULT, description=FUSION_HELP)
    fusion_from_any = field_validator("fusion", mode="before")(staticmethod(as_fusion_setting))
    rows_per_forward: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Rows packed into one forward by `rerank_many` and `QRHeadRetriever.batch` (None: the scorer's "
            "default, 1 on a CPU where packing is slower, 8 on an accelerator)."
        ),
    )

    # ---------------------------------------------------------------------------------------- public API
    def rerank(self, documents: Sequence[Document], query: str, *, top_n: int | None = _UNSET) -> list[Document]:
        """Score ``documents`` for ``query`` and return the best, highest score first, as scored copies.

        Inputs are checked before the model is touched, so a bad call never pays for a lazy model load.
        Ties keep the input order.

        Args:
            documents: the candidates, typically a base retriever's output.
            query: the question the documents should answer.
            top_n: overrides the ``top_n`` field for this call (``None``: all).

        Returns:
            At most ``top_n`` copies of the documents scoring ``>= score_threshold``, best first.

        Raises:
            EmptyQueryError: ``query`` is empty or whitespace (a ``ValueError``).
            PassageTypeError: ``documents`` is not a sequence of ``Document`` (a ``TypeError``).
        """
        limit = self.top_n if top_n is _UNSET else top_n
        check_int(limit, "top_n", minimum=1, optional=True)
        return self._rerank_checked([(check_query(query), check_documents(documents))], limit)[0]

    def rerank_many(
        self, rows: Sequence[tuple[Sequence[Document], str]], *, top_n: int | None = _UNSET
    ) -> list[list[Document]]:
        """:meth:`rerank` for several ``(documents, query)`` rows, several rows per forward where that pays.

        The rows are scored by :meth:`QRHeadScorer.rank_batch`: on an accelerator several rows share a padded
        forward (``rows_per_forward``, else the scorer's default); on a CPU, where packing is slower, one row
        runs per forward. Each row's result is the one :meth:`rerank` gives it alone. Every row is checked
        before the model is touched: one bad row raises for the whole call.

        Args:
            rows: ``(documents, query)`` pairs, in :meth:`rerank`'s argument order.
            top_n: overrides the ``top_n`` field for this call (``None``: all).

        Returns:
            One list per row: at most ``top_n`` scored copies of its documents, best first.

        Raises:
            EmptyQueryError: a row's query is empty or whitespace (a ``ValueError``).
            PassageTypeError: a row's documents are not a sequence of ``Document`` (a ``TypeError``).
            OptionTypeError: ``rows`` is not a list of ``(documents, query)`` pairs (a ``TypeError``).
        """
        limit = self.top_n if top_n is _UNSET else top_n
        check_int(limit, "top_n", minimum=1, optional=True)
        return self._rerank_checked([_check_row(i, row) for i, row in enumerate(_row_list(rows))], limit)

    def _rerank_checked(self, checked: list[tuple[str, list[Document]]], limit: int | None) -> list[list[Document]]:
        """The scored copies of each checked ``(query, documents)`` row, best first, at most ``limit``."""
        scorable = [(query, [self._passage(doc) for doc in docs]) for query, docs in checked if docs]
        ranked_rows = iter(self._rank_rows(scorable))
        out: list[list[Document]] = []
        for _, docs in checked:
            ranked = next(ranked_rows) if docs else []
            if self.score_threshold is not None:
                ranked = [r for r in ranked if r.qrhead_score >= self.score_threshold]
            if limit is not None:
                ranked = ranked[:limit]
            out.append([_with_score(docs[r.index], self.relevance_score_key, r) for r in ranked])
        return out

    def _process(self, documents: Sequence[Document], query: str) -> list[Document]:
        """``compress_documents`` re-ranks (see :meth:`rerank`)."""
        return self.rerank(documents, query)

    # ---------------------------------------------------------------------------------------------- hook
    def _rank_rows(self, rows: list[tuple[str, list[Passage]]]) -> list[list[RankedPassage]]:
        """Each row ranked, best first: one row by :meth:`QRHeadScorer.rank`, several by ``rank_batch``."""
        if not rows:
            return []  # nothing to score: the lazy model stays unloaded
        scorer = self.get_scorer()
        if len(rows) == 1:
            return [scorer.rank(*rows[0], fusion=self.fusion)]
        return scorer.rank_batch(rows, fusion=self.fusion, rows_per_forward=self.rows_per_forward)

    def _passage(self, document: Document) -> Passage:
        """What the model reads of ``document``: the hook to override to change it."""
        return Passage(text=document.page_content, title=self._title(document))

    def _title(self, document: Document) -> str:
        return document_title(document, self.title_key)


def _row_list(rows: object) -> list[object]:
    """``rerank_many``'s rows as a list, or a typed error naming ``rows`` (a string or ``None`` is no list)."""
    if isinstance(rows, str | bytes | bytearray | Document) or not isinstance(rows, Iterable):
        raise OptionTypeError(f"rows must be a list of (documents, query) pairs, got {type(rows).__name__}")
    return list(rows)


def _check_row(index: int, row: object) -> tuple[str, list[Document]]:
    """One checked ``(documents, query)`` row; a typed error naming the row otherwise."""
    if isinstance(row, str | bytes | bytearray) or not isinstance(row, Sequence) or len(row) != 2:
        raise OptionTypeError(f"rows[{index}] must be a (documents, query) pair, got {type(row).__name__}")
    documents, query = row
    try:
        return check_query(query), check_documents(documents)
    except QRHeadError as exc:
        raise type(exc)(f"rows[{index}]: {exc}") from exc


QRHEAD_SCORE_KEY = "qrhead_score"
"""Metadata key of the QRHead (attention) score, written beside the ranking score."""


def _with_score(document: Document, key: str, ranked: RankedPassage) -> Document:
    """A copy of ``document`` (same class, id and fields) whose metadata gains the scores; input untouched."""
    scores = {QRHEAD_SCORE_KEY: float(ranked.qrhead_score), key: float(ranked.score)}
    return document.model_copy(update={"metadata": {**document.metadata, **scores}})
