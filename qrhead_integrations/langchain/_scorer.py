"""The scorer fields and lazy, thread-safe model loading shared by the LangChain components.

Why one place: the reranker and the context compressor take a model the same way (a shared ``scorer``, or
``model``/``heads``/``device``/``quantize``/``scorer_kwargs`` to load one on first use), reject the same conflicting
combinations, and must load the model exactly once even when first used from several threads at the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.documents import Document
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from typing_extensions import Self

from ..errors import PassageTypeError
from ..models import DEFAULT_MODEL
from ..scorer import QRHeadScorer


class LazyScorerMixin(BaseModel):
    """Pydantic fields choosing the model, and :meth:`get_scorer`, which loads it lazily (once, thread-safe).

    Mixed in before LangChain's base class (``class X(LazyScorerMixin, BaseDocumentCompressor)``), so its fields
    come first in the model's field order.
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
    quantize: Literal["int8"] | None = Field(
        default=None,
        description=(
            "'int8': dynamic int8 Linear layers for the lazily built scorer (CPU only; faster, rankings can "
            "change — see docs/engine.md). None: the weights as loaded."
        ),
    )
    scorer_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments of `QRHeadScorer.from_pretrained` (dtype, ScorerConfig fields).",
    )

    _loaded: QRHeadScorer | None = PrivateAttr(default=None)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _check_source(self) -> Self:
        """Reject a shared scorer combined with loading options: the options would be silently ignored."""
        if self.scorer is not None:
            options = ("model", "heads", "device", "quantize", "scorer_kwargs")
            given = [name for name in options if name in self.model_fields_set]
            if given:
                raise ValueError(
                    f"pass either `scorer` or loading options, not both (got scorer and {', '.join(given)}); "
                    "use scorer.with_heads(...) to read other heads of an already loaded model"
                )
        return self

    def get_scorer(self) -> QRHeadScorer:
        """The shared scorer, or the lazily loaded one (loaded once, even on concurrent first use)."""
        if self.scorer is not None:
            return self.scorer
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    options: dict[str, Any] = dict(self.scorer_kwargs)
                    if self.quantize is not None:
                        options["quantize"] = self.quantize
                    self._loaded = QRHeadScorer.from_pretrained(
                        self.model if self.model is not None else DEFAULT_MODEL,
                        heads=self.heads,
                        device=self.device,
                        **options,
                    )
        return self._loaded


def check_documents(documents: Any) -> list[Document]:
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
        # Fields reassigned after construction skip pydantic's checks; catch them before the model runs.
        if not isinstance(doc.page_content, str):
            raise PassageTypeError(f"documents[{i}].page_content is a {type(doc.page_content).__name__}, not a str")
        if not isinstance(doc.metadata, dict):
            raise PassageTypeError(f"documents[{i}].metadata is a {type(doc.metadata).__name__}, not a dict")
    return list(documents)


def document_title(document: Document, title_key: str | None) -> str:
    """The metadata value shown to the model as the document's title (``""`` without a ``title_key``)."""
    if title_key is None:
        return ""
    value = document.metadata.get(title_key)
    return "" if value is None else str(value)
