"""`QRHeadReranker`: a LangChain document compressor that re-ranks documents with QRHead scores.

Why a compressor: ``BaseDocumentCompressor`` is the interface LangChain's post-retrieval steps share
(``ContextualCompressionRetriever``, ``DocumentCompressorPipeline``), so the reranker drops into any of
them. The model is loaded lazily on first use and never serialised: a reranker can be declared in a config or
shared between threads without paying for (or copying) the model until it first scores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from ..errors import PassageTypeError
from ..models import DEFAULT_MODEL
from ..prompt import Passage, check_query
from ..scorer import QRHeadScorer

_UNSET: Any = object()
"""Marks "use the field's value" for per-call overrides, where ``None`` is itself a meaningful value."""


class QRHeadReranker(BaseDocumentCompressor):
    """Re-ranks documents by the attention a causal LM's query-focused retrieval heads pay them.

    All documents are read in **one** prompt, so their scores are relative to each other: a document's
    score depends on which other documents it was ranked with. Scores are comparable within one call, not
    across calls; set ``score_threshold`` with that in mind (0 separates "more attention than a content-free
    query pays it" from "less").

    Each returned document is a **copy** of the input (same class, ``id`` and ``page_content``, all metadata
    kept) whose metadata gains the score under ``relevance_score_key``; the caller's documents are never
    modified. Duplicate documents (same content) are each scored and kept: they compete for the attention the
    model pays that text, so deduplicate upstream (e.g. ``EmbeddingsRedundantFilter``) if your base retriever
    returns duplicates.

    Either pass a loaded ``scorer`` (to share one model between rerankers, retrievers and threads), or
    ``model`` (plus optional ``heads``, ``device``, ``scorer_kwargs``) to load one lazily on first use.

    Example:
        .. code-block:: python

            from qrhead_integrations.langchain import QRHeadReranker

            reranker = QRHeadReranker(model="smollm2-135m-instruct", top_n=3)
            best = reranker.compress_documents(documents, "Who wrote Hamlet?")
            best[0].metadata["relevance_score"]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    scorer: QRHeadScorer | None = Field(
        default=None,
        exclude=True,
        description="A loaded scorer to share (not serialised); None: one is built from `model`.",
    )
    model: str | Path | None = Field(
        default=None,
        description=(
            "Model to load lazily when no `scorer` is given: a bundled name (e.g. 'smollm2-135m-instruct'), "
            "a local folder, a .gguf file or a hub id. None: the package's default bundled model."
        ),
    )
    heads: Any = Field(
        default=None,
        description="Head specification for the lazily built scorer (None: the model's preset).",
    )
    device: str | None = Field(
        default=None, description="Device for the lazily built scorer ('cpu', 'cuda', ...; None: automatic)."
    )
    scorer_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments of `QRHeadScorer.from_pretrained` (dtype, ScorerConfig fields).",
    )
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

    _loaded: QRHeadScorer | None = PrivateAttr(default=None)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _check_source(self) -> QRHeadReranker:
        """Reject a shared scorer combined with loading options: the options would be silently ignored."""
        if self.scorer is not None:
            options = ("model", "heads", "device", "scorer_kwargs")
            given = [name for name in options if name in self.model_fields_set]
            if given:
                raise ValueError(
                    f"pass either `scorer` or loading options, not both (got scorer and {', '.join(given)}); "
                    "use scorer.with_heads(...) to read other heads of an already loaded model"
                )
        return self

    # ------------------------------------------------------------------------------------------- the model
    def get_scorer(self) -> QRHeadScorer:
        """The shared scorer, or the lazily loaded one (loaded once, even on concurrent first use)."""
        if self.scorer is not None:
            return self.scorer
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    self._loaded = QRHeadScorer.from_pretrained(
                        self.model if self.model is not None else DEFAULT_MODEL,
                        heads=self.heads,
                        device=self.device,
                        **self.scorer_kwargs,
                    )
        return self._loaded

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
        if limit is not None and limit < 1:
            raise ValueError(f"top_n must be >= 1 or None, got {limit}")
        query = check_query(query)
        docs = _check_documents(documents)
        if not docs:
            return []
        scores = self._score(query, docs)
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        if self.score_threshold is not None:
            order = [i for i in order if scores[i] >= self.score_threshold]
        if limit is not None:
            order = order[:limit]
        return [_with_score(docs[i], self.relevance_score_key, scores[i]) for i in order]

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Re-rank ``documents`` for ``query`` (see :meth:`rerank`).

        Args:
            documents: the retrieved documents.
            query: the query they were retrieved for.
            callbacks: accepted for the compressor interface; scoring runs no LangChain component, so it
                emits no events.

        Returns:
            The best ``top_n`` documents as scored copies, highest score first.
        """
        return self.rerank(documents, query)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: the forward passes run in a worker thread, off the event loop.

        Concurrent calls are safe: the scorer serialises its model calls, so they queue in threads while the
        loop keeps serving other tasks.
        """
        return await run_in_executor(None, self.rerank, documents, query)

    # ---------------------------------------------------------------------------------------------- hook
    def _score(self, query: str, documents: list[Document]) -> list[float]:
        """One QRHead score per document, input order: the hook to override to change what the model reads."""
        passages = [Passage(text=doc.page_content, title=self._title(doc)) for doc in documents]
        return self.get_scorer().score(query, passages)

    def _title(self, document: Document) -> str:
        if self.title_key is None:
            return ""
        value = document.metadata.get(self.title_key)
        return "" if value is None else str(value)


def _check_documents(documents: Any) -> list[Document]:
    """The documents as a list, or a :class:`PassageTypeError` naming the first item that is no Document."""
    if isinstance(documents, Document | str | bytes) or not isinstance(documents, Sequence):
        raise PassageTypeError(
            f"documents must be a list of langchain_core Document objects, got {type(documents).__name__}"
        )
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise PassageTypeError(
                f"documents[{i}] is a {type(doc).__name__}, not a langchain_core Document; "
                "wrap text as Document(page_content=...)"
            )
    return list(documents)


def _with_score(document: Document, key: str, score: float) -> Document:
    """A copy of ``document`` (same class, id and fields) whose metadata gains the score; input untouched."""
    return document.model_copy(update={"metadata": {**document.metadata, key: float(score)}})
