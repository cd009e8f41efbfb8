"""The scorer fields of the LangChain components, declared once.

They sit over the framework-free :class:`~qrhead_integrations._lazy.ScorerLoader` (lazy, thread-safe loading;
the same for LlamaIndex).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from typing_extensions import Self

from .._fields import DeviceField, DtypeField, HeadsField, QuantizeField, ScorerKwargsField
from .._lazy import ScorerLoader, check_known_options, check_source, options_checked
from ..errors import PassageTypeError
from ..scorer import QRHeadScorer


class LazyScorerMixin(BaseModel):
    """Pydantic fields choosing the model, and :meth:`get_scorer`, which loads it lazily (once, thread-safe).

    Mixed in before LangChain's base class (``class X(LazyScorerMixin, BaseDocumentCompressor)``), so its fields
    come first in the model's field order.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, **data: object) -> None:
        """Validate the options as pydantic does, reporting a bad one as this package's ``InvalidInputError``.

        That is still a ``ValueError``, as pydantic's ``ValidationError`` is, so bad input has one error family.
        """
        fields = type(self).model_fields
        known = {*fields, *(f.alias for f in fields.values() if f.alias)}
        check_known_options(type(self).__name__, data, known)
        with options_checked(type(self).__name__):
            super().__init__(**data)

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
    heads: HeadsField = None
    device: DeviceField = None
    dtype: DtypeField = None
    quantize: QuantizeField = None
    scorer_kwargs: ScorerKwargsField

    _loader: ScorerLoader | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_source(self) -> Self:
        """Reject a shared scorer combined with loading options: the options would be silently ignored."""
        check_source(self.scorer, {name: getattr(self, name) for name in self.model_fields_set})
        return self

    def __getstate__(self) -> dict[Any, Any]:
        """Pickle the settings, not a model: a shared scorer is left behind and its recipe loads it on first use.

        Copies (``copy.copy``, ``copy.deepcopy``) share the scorer by reference instead: see
        :class:`~qrhead_integrations._lazy.ScorerLoader`.
        """
        state = super().__getstate__()
        if self.scorer is None:
            return state
        private = dict(state.get("__pydantic_private__") or {})
        private["_loader"] = ScorerLoader.recipe(self.scorer)
        return {**state, "__dict__": {**state["__dict__"], "scorer": None}, "__pydantic_private__": private}

    @property
    def scorer_loaded(self) -> bool:
        """Whether a scorer is at hand without loading one (a shared scorer, or one loaded by an earlier call)."""
        return self.scorer is not None or (self._loader is not None and self._loader.loaded)

    def get_scorer(self) -> QRHeadScorer:
        """The shared scorer, or the lazily loaded one.

        It is loaded once, even on concurrent first use; the loading options are read at first use.
        """
        if self.scorer is not None:
            return self.scorer
        if self._loader is None:
            with _LOADER_LOCK:
                if self._loader is None:
                    self._loader = ScorerLoader(
                        model=self.model,
                        heads=self.heads,
                        device=self.device,
                        dtype=self.dtype,
                        quantize=self.quantize,
                        scorer_kwargs=self.scorer_kwargs,
                    )
        return self._loader.get()


_LOADER_LOCK = threading.Lock()
"""Guards creating a component's loader (the loader's own lock guards loading the model)."""


class DocumentStep(LazyScorerMixin, BaseDocumentCompressor):
    """LangChain's document-compressor interface over one QRHead step (the reranker's, the context compressor's).

    ``compress_documents`` is the entry point LangChain's post-retrieval pipelines call; each component says in
    :meth:`_process` what its step does.
    """

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Run this component's step on ``documents`` for ``query``.

        Inputs are checked before the model is touched, so a bad call never pays for a lazy model load.

        Args:
            documents: the retrieved documents.
            query: the query they were retrieved for.
            callbacks: accepted for the compressor interface; scoring runs no LangChain component, so it
                emits no events.

        Returns:
            :class:`QRHeadReranker`: the best ``top_n`` documents as scored copies, highest score first;
            :class:`QRHeadContextCompressor`: compressed copies of the documents that kept a chunk, in input order.

        Raises:
            EmptyQueryError: ``query`` is empty or whitespace (a ``ValueError``).
            PassageTypeError: ``documents`` is not a sequence of ``Document`` (a ``TypeError``).
        """
        return self._process(documents, query)

    @abstractmethod
    def _process(self, documents: Sequence[Document], query: str) -> list[Document]:
        """The component's step: what ``compress_documents`` returns."""


def check_documents(documents: object) -> list[Document]:
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
