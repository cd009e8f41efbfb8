"""What the LlamaIndex postprocessors share: the model fields, lazy thread-safe scorer loading, the query check.

:class:`QRHeadPostprocessor` is a private base class (not exported): :class:`QRHeadRerank` and
:class:`QRHeadContextCompressor` both take either an existing scorer or the description of a model to load on
first use, and both answer a missing query the way LlamaIndex's built-in postprocessors do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from .._lazy import ScorerLoader, check_source, options_checked
from ..errors import PassageTypeError
from ..models import DEFAULT_MODEL
from ..prompt import check_query
from ..scorer import QRHeadScorer


class QRHeadPostprocessor(BaseNodePostprocessor):
    """Base of the QRHead node postprocessors: a shared or lazily loaded :class:`QRHeadScorer`.

    Subclasses implement ``_postprocess_nodes`` (and ``_apostprocess_nodes``) and call ``super().__init__`` with
    ``model``/``heads``/``device``/``quantize``/``scorer``/``scorer_kwargs``/``callback_manager`` and their own
    fields.
    """

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
    quantize: Literal["int8"] | None = Field(
        default=None,
        description=(
            "'int8': dynamic int8 Linear layers (CPU only; faster, rankings can change — see docs/engine.md). "
            "None: the weights as loaded."
        ),
    )
    scorer_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for QRHeadScorer.from_pretrained (dtype, ScorerConfig fields).",
    )

    _loader: ScorerLoader = PrivateAttr()

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        heads: Any = None,
        device: str | None = None,
        quantize: Literal["int8"] | None = None,
        scorer: QRHeadScorer | None = None,
        scorer_kwargs: dict[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        **fields: Any,
    ) -> None:
        given = {"model": model, "heads": heads, "device": device, "quantize": quantize, "scorer_kwargs": scorer_kwargs}
        check_source(scorer, {name: v for name, v in given.items() if v is not None and v != {}})
        if scorer is not None:
            model, heads, device = scorer.model_id, str(scorer.heads), str(scorer.device)
        shared: dict[str, Any] = {
            "model": DEFAULT_MODEL if model is None else os.fspath(model),
            "heads": heads,
            "device": device,
            "quantize": quantize,
            "scorer_kwargs": dict(scorer_kwargs or {}),
            "callback_manager": callback_manager or CallbackManager([]),
        }
        with options_checked(type(self).__name__):
            super().__init__(**shared, **fields)
        self._loader = ScorerLoader(
            scorer,
            model=self.model,
            heads=self.heads,
            device=self.device,
            quantize=self.quantize,
            scorer_kwargs=self.scorer_kwargs,
        )

    @property
    def scorer_loaded(self) -> bool:
        """Whether a scorer is at hand without loading one (a shared scorer, or one loaded by an earlier call)."""
        return self._loader.loaded

    @property
    def scorer(self) -> QRHeadScorer:
        """The scorer: the one passed in, or loaded from ``model``/``heads``/``device`` on first use."""
        return self._loader.get()

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


def query_of(query_bundle: QueryBundle | None) -> str:
    """The query text; a missing query raises the built-in postprocessors' ``ValueError``."""
    if query_bundle is None:
        raise ValueError("Missing query bundle in extra info.")
    return check_query(query_bundle.query_str)


def check_nodes(nodes: Any) -> list[NodeWithScore]:
    """The nodes as a list, or a :class:`PassageTypeError` naming the first item that is no ``NodeWithScore``
    (a bare ``TextNode``, a string, ``None``) — before any model work, instead of an ``AttributeError`` later."""
    if isinstance(nodes, str | bytes | NodeWithScore) or not isinstance(nodes, Sequence):
        raise PassageTypeError(f"nodes must be a list of NodeWithScore, got {type(nodes).__name__}")
    for i, item in enumerate(nodes):
        if not isinstance(item, NodeWithScore):
            hint = "; wrap it as NodeWithScore(node=...)" if isinstance(item, BaseNode) else ""
            raise PassageTypeError(f"nodes[{i}] is a {type(item).__name__}, not a NodeWithScore{hint}")
    return list(nodes)
