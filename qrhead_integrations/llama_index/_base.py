"""What the LlamaIndex postprocessors share: the model fields, construction, lazy loading, the input checks.

:class:`QRHeadPostprocessor` is a private base class (not exported): :class:`QRHeadRerank` and
:class:`QRHeadContextCompressor` both take either an existing scorer or the description of a model to load on
first use, both check their input the same way before any model work, and both answer a missing query the way
LlamaIndex's built-in postprocessors do.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from .._fields import DeviceField, DtypeField, HeadsField, QuantizeField, ScorerKwargsField
from .._lazy import LOADING_OPTIONS, ScorerLoader, check_known_options, check_source, options_checked
from ..errors import PassageTypeError
from ..models import DEFAULT_MODEL
from ..prompt import check_query
from ..scorer import QRHeadScorer

_Init = TypeVar("_Init", bound=Callable[..., None])


def _given(value: object) -> bool:
    """Whether a loading option was set: not ``None`` nor an empty mapping (never compared by ``==``: arrays)."""
    return value is not None and not (isinstance(value, dict) and not value)


dispatcher = get_dispatcher(__name__)


class QRHeadPostprocessor(BaseNodePostprocessor):
    """Base of the QRHead node postprocessors: a shared or lazily loaded :class:`QRHeadScorer`.

    A subclass declares its constructor's arguments with :func:`constructor` (the shared construction is
    :meth:`_construct`) and implements :meth:`_process`, which :meth:`_postprocess_nodes` calls on checked input.
    """

    model: str = Field(
        default=DEFAULT_MODEL,
        description=(
            "QRHead model loaded on first use: a bundled offline model name, a local folder, a .gguf file "
            "or a hub id (the shared scorer's model id when a scorer is passed)."
        ),
    )
    heads: HeadsField = None
    device: DeviceField = None
    dtype: DtypeField = None
    quantize: QuantizeField = None
    scorer_kwargs: ScorerKwargsField

    _loader: ScorerLoader = PrivateAttr()

    def _construct(self, arguments: dict[str, Any]) -> None:
        """Build the postprocessor from its constructor's arguments, by name (see :func:`constructor`).

        ``scorer`` and the loading options (``model``, ``heads``, ``device``, ``quantize``, ``scorer_kwargs``)
        are mutually exclusive; with a scorer, ``model``/``heads``/``device`` describe it. Every other argument
        is a field, validated by pydantic (a bad one raises :class:`~qrhead_integrations.errors.InvalidInputError`).
        """
        scorer = arguments.pop("scorer", None)
        check_known_options(type(self).__name__, arguments, type(self).model_fields)
        check_source(scorer, {name: arguments[name] for name in LOADING_OPTIONS if _given(arguments.get(name))})
        if scorer is not None:
            arguments.update(model=scorer.model_id, heads=str(scorer.heads), device=str(scorer.device))
        model = arguments.get("model")
        arguments["model"] = DEFAULT_MODEL if model is None else os.fspath(model)
        arguments["scorer_kwargs"] = dict(arguments.get("scorer_kwargs") or {})
        arguments["callback_manager"] = arguments.get("callback_manager") or CallbackManager([])
        with options_checked(type(self).__name__):
            BaseNodePostprocessor.__init__(self, **arguments)
        self._loader = ScorerLoader(
            scorer,
            model=self.model,
            heads=self.heads,
            device=self.device,
            dtype=self.dtype,
            quantize=self.quantize,
            scorer_kwargs=self.scorer_kwargs,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from the pickled settings (LlamaIndex's way), then keep the pickled loader: its recipe.

        A shared scorer is pickled as :meth:`ScorerLoader.recipe` (model id, heads, dtype, config, passage cache),
        which loads the model again on first use; copies share the scorer by reference instead.
        """
        super().__setstate__(state)
        loader = (state.get("__pydantic_private__") or {}).get("_loader")
        if isinstance(loader, ScorerLoader):
            self._loader = loader

    @property
    def scorer_loaded(self) -> bool:
        """Whether a scorer is at hand without loading one (a shared scorer, or one loaded by an earlier call)."""
        return self._loader.loaded

    @property
    def scorer(self) -> QRHeadScorer:
        """The scorer: the one passed in, or loaded from ``model``/``heads``/``device`` on first use."""
        return self._loader.get()

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Check the query and the nodes (before any model work), then :meth:`_process` them unless empty."""
        query = query_of(query_bundle)
        nodes = check_nodes(nodes)
        if not nodes:
            return []
        return self._process(query, nodes, query_bundle)

    @dispatcher.span
    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """The sync path whole (same checks, same result) in a worker thread, never on the event loop.

        Model loading and scoring are CPU/GPU-bound; ``to_thread`` carries the context, so instrumentation spans
        and events nest under this call's span as in the sync call.
        """
        query_of(query_bundle)  # a missing query fails here, on the caller's side
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)

    def _process(self, query: str, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> list[NodeWithScore]:
        """The subclass's work on checked, non-empty ``nodes`` for ``query`` (``query_bundle`` as given)."""
        raise NotImplementedError

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


def check_nodes(nodes: object) -> list[NodeWithScore]:
    """The nodes as a list, or a :class:`PassageTypeError` naming the first item that is no ``NodeWithScore``.

    Such an item (a bare ``TextNode``, a string, ``None``) is refused before any model work, instead of raising
    an ``AttributeError`` later.
    """
    if isinstance(nodes, str | bytes | NodeWithScore) or not isinstance(nodes, Sequence):
        raise PassageTypeError(f"nodes must be a list of NodeWithScore, got {type(nodes).__name__}")
    for i, item in enumerate(nodes):
        if not isinstance(item, NodeWithScore):
            hint = "; wrap it as NodeWithScore(node=...)" if isinstance(item, BaseNode) else ""
            raise PassageTypeError(f"nodes[{i}] is a {type(item).__name__}, not a NodeWithScore{hint}")
    return list(nodes)


def constructor(init: _Init) -> _Init:
    """Make ``init`` — a subclass ``__init__`` that declares its arguments — construct the postprocessor.

    ``init`` runs first (its body checks the arguments, if it needs to), then every argument, by name, goes to
    :meth:`QRHeadPostprocessor._construct`. Why: like LlamaIndex's own postprocessors, each subclass shows its
    options in its signature (positional too, in its order), and the construction they share is written once.
    """
    signature = inspect.signature(init)
    extra = next((p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    @functools.wraps(init)
    def __init__(self: QRHeadPostprocessor, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments[next(iter(signature.parameters))]  # self
        if extra is not None:
            arguments.update(arguments.pop(extra))
        self._construct(arguments)

    return cast(_Init, __init__)
