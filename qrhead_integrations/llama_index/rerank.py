"""``QRHeadRerank``: a LlamaIndex node postprocessor that re-ranks nodes by their QRHead score.

It mirrors LlamaIndex's own ``SentenceTransformerRerank`` (same ``top_n`` default, same node text, the same
instrumentation and callback events) with two differences: it never mutates the caller's nodes (it returns new
``NodeWithScore`` objects, and copies a node before adding ``retrieval_score`` to its metadata), and its async
path runs the model in a worker thread so the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from ..models import DEFAULT_MODEL
from ..prompt import check_query
from ..scorer import QRHeadScorer

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key under which ``keep_retrieval_score=True`` keeps a node's score from the retriever."""

_BUILD_LOCK = threading.Lock()
"""Guards lazy scorer construction (module-level: a lock in the instance would make it unpicklable)."""


class QRHeadRerank(BaseNodePostprocessor):
    """Re-rank retrieved nodes by the attention a causal LM's query-focused retrieval heads pay them.

    All candidate nodes are read together in one prompt (listwise, like the QRHead paper), so one model call
    scores them all. Scores are calibrated attention mass: higher is more relevant; nodes with no text score
    ``-inf`` and rank last. Ties keep the retriever's order.

    Args:
        top_n: how many nodes to return, best first (``None``: all of them, re-ordered).
        model: the model to load on first use when no ``scorer`` is given: a bundled offline model
            (``"qwen2.5-coder-0.5b-instruct"``, the default, or the faster ``"smollm2-135m-instruct"``), a
            local folder, a ``.gguf`` file or a hub id.
        heads: which heads to read (``None``: the model's preset; see ``QRHeadScorer``).
        device: ``"cpu"``, ``"cuda"``, ``"mps"``... (``None``: chosen automatically).
        keep_retrieval_score: keep each node's retriever score in the returned node's metadata under
            ``"retrieval_score"`` (the node is copied; the caller's node is left untouched).
        scorer: an existing :class:`~qrhead_integrations.QRHeadScorer` to share (no model is loaded). Mutually
            exclusive with ``model``/``heads``/``device``/``scorer_kwargs``.
        scorer_kwargs: further keyword arguments for ``QRHeadScorer.from_pretrained`` (``dtype``,
            ``ScorerConfig`` fields such as ``debias=True``...).
        callback_manager: LlamaIndex callback manager (query engines set their own).

    Example:
        >>> rerank = QRHeadRerank(model="smollm2-135m-instruct", top_n=3)  # doctest: +SKIP
        >>> engine = index.as_query_engine(node_postprocessors=[rerank])  # doctest: +SKIP
    """

    top_n: int | None = Field(
        default=2, ge=0, description="Number of nodes to return, best first (None returns all, re-ordered)."
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description=(
            "QRHead model loaded on first use: a bundled offline model name, a local folder, a .gguf file "
            "or a hub id (the shared scorer's model id when a scorer is passed)."
        ),
    )
    heads: Any = Field(
        default=None,
        description=(
            "Head specification: None (the model's preset), a preset name, 'layer-head,...' pairs, 'all', "
            "or a head-set JSON file."
        ),
    )
    device: str | None = Field(
        default=None, description="Device of the model ('cpu', 'cuda', 'mps'...); automatic if None."
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description="Whether to keep the retrieval score in the returned node's metadata (retrieval_score).",
    )
    scorer_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for QRHeadScorer.from_pretrained (dtype, ScorerConfig fields).",
    )

    _scorer: QRHeadScorer | None = PrivateAttr(default=None)

    def __init__(
        self,
        top_n: int | None = 2,
        model: str | os.PathLike[str] | None = None,
        heads: Any = None,
        device: str | None = None,
        keep_retrieval_score: bool = False,
        scorer: QRHeadScorer | None = None,
        scorer_kwargs: dict[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        if scorer is not None:
            if not isinstance(scorer, QRHeadScorer):
                raise TypeError(f"scorer must be a QRHeadScorer, got {type(scorer).__name__}")
            given = [
                name for name, value in (("model", model), ("heads", heads), ("device", device)) if value is not None
            ] + (["scorer_kwargs"] if scorer_kwargs else [])
            if given:
                raise ValueError(
                    f"pass either scorer= or {'/'.join(given)}= (they describe the model to load), not both"
                )
            model, heads, device = scorer.model_id, str(scorer.heads), str(scorer.device)
        fields: dict[str, Any] = {
            "top_n": top_n,
            "model": DEFAULT_MODEL if model is None else os.fspath(model),
            "heads": heads,
            "device": device,
            "keep_retrieval_score": keep_retrieval_score,
            "scorer_kwargs": dict(scorer_kwargs or {}),
            "callback_manager": callback_manager or CallbackManager([]),
        }
        super().__init__(**fields, **kwargs)
        self._scorer = scorer

    @classmethod
    def class_name(cls) -> str:
        return "QRHeadRerank"

    # ------------------------------------------------------------------------------------------------ scorer
    @property
    def scorer(self) -> QRHeadScorer:
        """The scorer: the one passed in, or loaded from ``model``/``heads``/``device`` on first use."""
        scorer = self._scorer
        if scorer is None:
            with _BUILD_LOCK:
                scorer = self._scorer
                if scorer is None:
                    scorer = QRHeadScorer.from_pretrained(
                        self.model, heads=self.heads, device=self.device, **self.scorer_kwargs
                    )
                    self._scorer = scorer
        return scorer

    # ------------------------------------------------------------------------------------------- postprocess
    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = _query_of(query_bundle)
        if not nodes:
            return []
        texts = _node_texts(nodes)
        self._start_event(nodes, query_bundle)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:
            scores = self._score(query, texts)
            reranked = self._rerank(nodes, scores)
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    async def apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
        query_str: str | None = None,
    ) -> list[NodeWithScore]:
        """Postprocess nodes (async): the model runs in a worker thread, never on the event loop.

        Defined here as well as in LlamaIndex's base class, which only has it from llama-index-core 0.12.31 on.
        """
        if query_str is not None and query_bundle is not None:
            raise ValueError("Cannot specify both query_str and query_bundle")
        if query_str is not None:
            query_bundle = QueryBundle(query_str)
        return await self._apostprocess_nodes(nodes, query_bundle)

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = _query_of(query_bundle)
        if not nodes:
            return []
        texts = _node_texts(nodes)
        self._start_event(nodes, query_bundle)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:
            # model loading and scoring are CPU/GPU-bound: keep them off the event loop
            scores = await asyncio.to_thread(self._score, query, texts)
            reranked = self._rerank(nodes, scores)
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    # ------------------------------------------------------------------------------------------- internals
    def _score(self, query: str, texts: list[str]) -> list[float]:
        return self.scorer.score(query, texts)

    def _rerank(self, nodes: Sequence[NodeWithScore], scores: Sequence[float]) -> list[NodeWithScore]:
        if len(scores) != len(nodes):  # pragma: no cover - the scorer returns one score per passage
            raise RuntimeError(f"got {len(scores)} scores for {len(nodes)} nodes")
        order = sorted(range(len(nodes)), key=lambda i: (-scores[i], i))
        if self.top_n is not None:
            order = order[: self.top_n]
        return [self._scored_copy(nodes[i], float(scores[i])) for i in order]

    def _scored_copy(self, item: NodeWithScore, score: float) -> NodeWithScore:
        """A new ``NodeWithScore``; the node itself is shared unless metadata must be added (then copied)."""
        node = item.node
        if self.keep_retrieval_score:
            node = node.model_copy(update={"metadata": {**node.metadata, RETRIEVAL_SCORE_KEY: item.score}})
        return NodeWithScore(node=node, score=score)

    def _start_event(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> None:
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=nodes,
                top_n=len(nodes) if self.top_n is None else self.top_n,
                model_name=self.model,
            )
        )

    def _payload(self, nodes: list[NodeWithScore], query: str) -> dict[str, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }


def _query_of(query_bundle: QueryBundle | None) -> str:
    if query_bundle is None:
        raise ValueError("Missing query bundle in extra info.")
    return check_query(query_bundle.query_str)


def _node_texts(nodes: Sequence[NodeWithScore]) -> list[str]:
    """Each node's text as the built-in rerankers read it (content plus embed-visible metadata)."""
    return [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in nodes]
