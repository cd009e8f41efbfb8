"""``QRHeadRerank``: a LlamaIndex node postprocessor that re-ranks nodes by their QRHead score.

It mirrors LlamaIndex's own ``SentenceTransformerRerank`` (same ``top_n`` default, same node text, the same
instrumentation and callback events) with two differences: it never mutates the caller's nodes (it returns new
``NodeWithScore`` objects, and copies a node before adding ``retrieval_score`` to its metadata), and its async
path runs the model in a worker thread so the event loop is never blocked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field, field_validator
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from ..fusion import FUSION_HELP, MODEL_DEFAULT, Fusion, as_fusion_setting
from ..heads import HeadSpec
from ..scorer import QRHeadScorer, RankedPassage
from ._base import QRHeadPostprocessor, constructor

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key under which ``keep_retrieval_score=True`` keeps a node's score from the retriever."""


class QRHeadRerank(QRHeadPostprocessor):
    """Re-rank retrieved nodes by the attention a causal LM's query-focused retrieval heads pay them.

    All candidate nodes are read together in one prompt (listwise, like the QRHead paper), so one model call
    scores them all. By default QRHead is not the only judge: its ranking is fused with the retriever's (by the
    nodes' scores when every node has one, else by their order) and with a BM25 ranking of the nodes' text
    (a weighted sum of per-query z-scores, or weighted reciprocal ranks; weights in ``fusion``; see
    :mod:`qrhead_integrations.fusion`; the default was chosen on dev data, "Defaults and why" in
    docs/results.md). The returned nodes' scores are the fused scores (a z-score mix centred near 0 for the
    default ``form="scores"``, in ``(0, 1]`` for ``form="ranks"``); ``fusion=None`` ranks by QRHead alone and
    returns its calibrated attention scores.
    Nodes with no text score ``-inf`` and rank last. Ties keep the retriever's order.

    Args:
        top_n: how many nodes to return, best first (``None``: all of them, re-ordered).
        model: the model to load on first use when no ``scorer`` is given: a bundled offline model
            (``"qwen2.5-coder-0.5b-instruct"``, the default, or the faster ``"smollm2-135m-instruct"``), a
            local folder, a ``.gguf`` file or a hub id.
        heads: which heads to read (``None``: the model's preset; see ``QRHeadScorer``).
        device: ``"cpu"``, ``"cuda"``, ``"mps"``... (``None``: chosen automatically).
        quantize: ``"int8"`` for dynamic int8 Linear layers (CPU only; faster, rankings can change).
        keep_retrieval_score: keep each node's retriever score in the returned node's metadata under
            ``"retrieval_score"`` (the node is copied; the caller's node is left untouched).
        fusion: ``"default"`` (the scorer's setting: the model's own dev-chosen fusion, ``Fusion(weight=0.1,
            lexical=0.5, form="scores")`` for a model without one), a :class:`~qrhead_integrations.Fusion` (the
            retriever's and BM25's weights; ``form=`` z-scores or ranks; ``agreement=`` counts the retriever's
            order only where it agrees with BM25 over the nodes), a number (the retriever's weight alone) or
            ``None`` (QRHead alone).
        scorer: an existing :class:`~qrhead_integrations.QRHeadScorer` to share (no model is loaded). Mutually
            exclusive with ``model``/``heads``/``device``/``quantize``/``scorer_kwargs``.
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
    keep_retrieval_score: bool = Field(
        default=False,
        description="Whether to keep the retrieval score in the returned node's metadata (retrieval_score).",
    )
    fusion: Fusion | Literal["default"] | None = Field(default=MODEL_DEFAULT, description=FUSION_HELP)
    fusion_from_any = field_validator("fusion", mode="before")(staticmethod(as_fusion_setting))

    @constructor
    def __init__(
        self,
        top_n: int | None = 2,
        model: str | os.PathLike[str] | None = None,
        heads: HeadSpec = None,
        device: str | None = None,
        quantize: Literal["int8"] | None = None,
        keep_retrieval_score: bool = False,
        fusion: Fusion | float | Literal["default"] | None = MODEL_DEFAULT,
        scorer: QRHeadScorer | None = None,
        scorer_kwargs: dict[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        **kwargs: object,
    ) -> None:
        """Take the options by name or in this order (as LlamaIndex's ``SentenceTransformerRerank``)."""

    @classmethod
    def class_name(cls) -> str:
        """The class name LlamaIndex serialises the component under."""
        return "QRHeadRerank"

    # ------------------------------------------------------------------------------------------- postprocess
    def _process(self, query: str, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> list[NodeWithScore]:
        texts = _node_texts(nodes)
        with self._reranking(nodes, query_bundle, query) as finish:
            return finish(self._rank(query, texts, _first_stage(nodes)))

    @contextmanager
    def _reranking(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None, query: str
    ) -> Iterator[Callable[[Sequence[RankedPassage]], list[NodeWithScore]]]:
        """One re-rank inside LlamaIndex's events (shared by the sync and async paths).

        Emits ``ReRankStartEvent``, opens a ``CBEventType.RERANKING`` callback event and yields ``finish``,
        which turns the ranking into the re-ranked nodes and closes the callback event with them;
        ``ReRankEndEvent`` follows. If scoring raises, the callback event records the exception and no end
        event is emitted.
        """
        self._start_event(nodes, query_bundle)
        reranked: list[NodeWithScore] = []
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:

            def finish(ranked: Sequence[RankedPassage]) -> list[NodeWithScore]:
                reranked.extend(self._rerank(nodes, ranked))
                event.on_end(payload={EventPayload.NODES: reranked})
                return reranked

            yield finish
        dispatcher.event(ReRankEndEvent(nodes=reranked))

    # ------------------------------------------------------------------------------------------- internals
    def _rank(self, query: str, texts: list[str], first_stage: list[float] | None) -> list[RankedPassage]:
        return self.scorer.rank(query, texts, first_stage_scores=first_stage, fusion=self.fusion)

    def _rerank(self, nodes: Sequence[NodeWithScore], ranked: Sequence[RankedPassage]) -> list[NodeWithScore]:
        chosen = ranked if self.top_n is None else ranked[: self.top_n]
        return [self._scored_copy(nodes[r.index], float(r.score)) for r in chosen]

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


def _first_stage(nodes: Sequence[NodeWithScore]) -> list[float] | None:
    """The retriever's scores when every node has a finite one (else ``None``: fuse by the input order)."""
    scores = [item.score for item in nodes]
    if all(isinstance(s, int | float) and math.isfinite(s) for s in scores):
        return [float(s) for s in scores]  # type: ignore[arg-type]
    return None


def _node_texts(nodes: Sequence[NodeWithScore]) -> list[str]:
    """Each node's text as the built-in rerankers read it (content plus embed-visible metadata)."""
    return [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in nodes]
