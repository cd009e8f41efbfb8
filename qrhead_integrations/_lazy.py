"""The scorer an adapter reads: a shared one, or one loaded on first use — framework-free, for every adapter.

Why one place: every framework component (LangChain's reranker and compressor, LlamaIndex's postprocessors)
takes a model the same way — a loaded ``scorer`` to share, or ``model``/``heads``/``device``/``quantize``/
``scorer_kwargs`` describing one to load — rejects the same conflicting combination, and must load the model
exactly once even when first used from several threads at the same time. The frameworks' classes only declare
those fields and hand them to :class:`ScorerLoader`.
"""

from __future__ import annotations

import copy
import difflib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .errors import InvalidInputError, OptionTypeError
from .heads import HeadSpec
from .models import DEFAULT_MODEL
from .scorer import QRHeadScorer

LOADING_OPTIONS = ("model", "heads", "device", "dtype", "quantize", "scorer_kwargs")
"""The options that describe a model to load (meaningless next to a shared scorer)."""


@contextmanager
def options_checked(component: str) -> Iterator[None]:
    """Turn pydantic's ``ValidationError`` for a component's options into this package's error.

    A bad option (``top_n=0``, an unknown field...) raises
    :class:`~qrhead_integrations.errors.InvalidInputError` naming the component, chained to the original: bad
    input to any public entry point raises this package's errors (both are ``ValueError``).
    """
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        raise InvalidInputError(f"{component}: {exc}") from exc


def check_known_options(component: str, given: Iterable[str], known: Iterable[str]) -> None:
    """Refuse an option the component does not have (a misspelt ``topn=2`` would otherwise be ignored silently).

    Raises:
        InvalidInputError: naming the unknown option, the closest known one and every valid option.
    """
    valid = sorted(set(known))
    unknown = [name for name in given if name not in valid]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise InvalidInputError(f"{component} has no option {name!r}{hint}; its options: {', '.join(valid)}")


def check_source(scorer: object, given: Mapping[str, object]) -> None:
    """Refuse a shared scorer combined with loading options, or a ``scorer`` that is not a :class:`QRHeadScorer`.

    Loading options next to a shared scorer would be silently ignored.

    Args:
        scorer: the shared scorer, or ``None``.
        given: the loading options the caller set (name → value), unset ones left out.

    Also refuse ``fusion`` in ``scorer_kwargs``: a component's fusion is set in one place, its own option.

    Raises:
        InvalidInputError: both a scorer and loading options, or ``fusion`` in ``scorer_kwargs`` (a ``ValueError``).
        OptionTypeError: ``scorer`` is not a :class:`QRHeadScorer` (a ``TypeError`` too).
    """
    kwargs = given.get("scorer_kwargs")
    if isinstance(kwargs, Mapping) and "fusion" in kwargs:
        raise InvalidInputError(
            "scorer_kwargs cannot set fusion: a component's fusion is set in one place, its own `fusion` option "
            "(a compressor's: `lexical`)"
        )
    if scorer is None:
        return
    if not isinstance(scorer, QRHeadScorer):
        raise OptionTypeError(f"scorer must be a QRHeadScorer, got {type(scorer).__name__}")
    named = [name for name in LOADING_OPTIONS if name in given]
    if named:
        raise InvalidInputError(
            f"pass either `scorer` or loading options, not both (got scorer and {', '.join(named)}); "
            "use scorer.with_heads(...) to read other heads of an already loaded model"
        )


class ScorerLoader:
    """Hands out a shared scorer, or loads one from the given options on first use (once, thread-safe).

    Copies share the scorer by reference (``copy.deepcopy`` too: copying a model is never what a copy of a
    pipeline means). Pickled, it carries its loading options and no model — a shared scorer is replaced by its
    :meth:`recipe` — and the unpickled loader loads its own on first use.

    Args:
        scorer: a loaded scorer to share, or ``None``.
        model: what ``QRHeadScorer.from_pretrained`` loads (``None``: the package's default bundled model).
        heads: head specification for the loaded scorer.
        device: its device (``None``: automatic).
        dtype: the model's dtype (``None``: automatic).
        quantize: ``"int8"`` or ``None``.
        scorer_kwargs: further ``from_pretrained`` keyword arguments.
    """

    def __init__(
        self,
        scorer: QRHeadScorer | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        heads: HeadSpec = None,
        device: str | None = None,
        dtype: str | None = None,
        quantize: str | None = None,
        scorer_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._shared = scorer
        self._options: dict[str, Any] = dict(scorer_kwargs or {})
        if quantize is not None:
            self._options["quantize"] = quantize
        if dtype is not None:
            self._options["dtype"] = dtype
        self._model = DEFAULT_MODEL if model is None else model
        self._heads = heads
        self._device = device
        self._loaded: QRHeadScorer | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether a scorer is at hand without loading (shared, or already loaded)."""
        return self._shared is not None or self._loaded is not None

    def get(self) -> QRHeadScorer:
        """The shared scorer, or the lazily loaded one (loaded once, even on concurrent first use)."""
        if self._shared is not None:
            return self._shared
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = QRHeadScorer.from_pretrained(
                        self._model, heads=self._heads, device=self._device, **self._options
                    )
        return self._loaded

    @classmethod
    def recipe(cls, scorer: QRHeadScorer) -> ScorerLoader:
        """A loader that loads ``scorer``'s like again: its model id, heads, dtype, config and passage cache.

        What a pickled component carries instead of a shared scorer. The model id must be loadable where it is
        unpickled (a bundled name, a folder, a hub id); one built from an in-memory model fails to load there
        with :class:`~qrhead_integrations.errors.ModelLoadError`. The device is chosen again on that machine.
        """
        options: dict[str, Any] = {"config": scorer.config, "dtype": str(scorer.dtype).removeprefix("torch.")}
        if scorer.passage_cache is not None:
            options["passage_cache"] = scorer.passage_cache
        return cls(model=scorer.model_id, heads=scorer.heads, scorer_kwargs=options)

    def __deepcopy__(self, memo: dict[int, object]) -> ScorerLoader:
        """A copy sharing the scorer (shared or already loaded) by reference, with its own lock."""
        copied = ScorerLoader.__new__(ScorerLoader)
        copied.__dict__.update(self.__dict__)  # not copy.copy: that would pickle (see __getstate__)
        copied._options = copy.deepcopy(self._options, memo)
        copied._lock = threading.Lock()
        return copied

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the options, not the lock nor a model: a shared scorer becomes its :meth:`recipe`."""
        source = self if self._shared is None else ScorerLoader.recipe(self._shared)
        state = dict(source.__dict__)
        state["_lock"] = None
        state["_loaded"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the options with a new lock (a model is loaded again on first use)."""
        self.__dict__.update(state)
        self._lock = threading.Lock()


def scorer_behind(source: object, kinds: str) -> QRHeadScorer:
    """The scorer a component holds (loaded now if it was lazy), or ``source`` itself when it is a scorer.

    What the framework LLM helpers share a model through: a LangChain component has ``get_scorer()`` (a retriever
    holds a ``reranker`` that has it), a LlamaIndex postprocessor a ``scorer`` property.

    Raises:
        OptionTypeError: ``source`` is none of these; the message lists ``kinds``, what the caller accepts.
    """
    if isinstance(source, QRHeadScorer):
        return source
    holder = getattr(source, "reranker", None) or source
    get_scorer = getattr(holder, "get_scorer", None)
    found = get_scorer() if callable(get_scorer) else getattr(holder, "scorer", None)
    if isinstance(found, QRHeadScorer):
        return found
    raise OptionTypeError(f"expected a QRHeadScorer or {kinds}, got {type(source).__name__}")
