"""BM25 with ``bm25s``: the re-rankers' lexical signal, BEIR's first stage and the multi-hop lexical baseline.

Three uses of one analysis: the re-rankers fuse a BM25 ranking of the candidates themselves with QRHead's
(:mod:`qrhead_integrations.fusion`: a small model's attention and word overlap err on different passages);
BEIR evaluation needs a first stage (BM25's top 100, as in the BEIR paper); and every re-ranking number needs
the BM25 number beside it. Analysis follows the
Lucene/Elasticsearch English setup that BEIR's BM25 used: lowercase, words of two or more characters,
Lucene's 33 English stopwords, Porter-style Snowball stemming when PyStemmer is installed, and Lucene's BM25
(``k1=1.2``, ``b=0.75``, the Elasticsearch defaults). A document is its title and text joined by a newline.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._checks import check_int
from .errors import InvalidInputError
from .prompt import Passage, check_query, to_passage, to_passages

_WORD = re.compile(r"(?u)\b\w\w+\b")
Stemmer = Callable[[list[str]], list[str]]


def load_stemmer(stem: bool | None = None) -> Stemmer | None:
    """The English Snowball stemmer from PyStemmer, or ``None``.

    Args:
        stem: ``None`` uses the stemmer when PyStemmer is installed (a dependency of the package, so normally
            always), ``True`` requires it, ``False`` disables stemming.

    Raises:
        ImportError: ``stem=True`` and PyStemmer is not installed.
    """
    if stem is False:
        return None
    try:
        module = importlib.import_module("Stemmer")
    except ImportError:
        if stem:
            raise ImportError("stemming needs PyStemmer: pip install PyStemmer") from None
        return None
    stem_words: Stemmer = module.Stemmer("english").stemWords
    return stem_words


class _Analyzer:
    """Text -> index terms; one instance serves both documents and queries so their terms always agree.

    Each distinct word is filtered and stemmed once and remembered: a corpus repeats its vocabulary far more
    often than it grows it, and stemming word by word dominated indexing time.
    """

    def __init__(self, stemmer: Stemmer | None) -> None:
        from bm25s.stopwords import STOPWORDS_EN

        self._stopwords = frozenset(STOPWORDS_EN)
        self._stemmer = stemmer
        self._terms: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        terms = []
        for word in _WORD.findall(text.lower()):
            term = self._terms.get(word)
            if term is None:
                term = self._term(word)
                self._terms[word] = term
            if term:
                terms.append(term)
        return terms

    def _term(self, word: str) -> str:
        """The index term for one word, ``""`` for a stopword."""
        if word in self._stopwords:
            return ""
        return self._stemmer([word])[0] if self._stemmer is not None else word


def _document_text(passage: Passage) -> str:
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text


class BM25Index:
    """A BM25 index over a corpus, searched by query text.

    Args:
        corpus: document id -> passage (e.g. :attr:`BeirDataset.corpus`), or a sequence of passages whose ids
            become ``"0"``, ``"1"``, ... Passages may be ``str``, ``(title, text)``, mappings or
            :class:`~qrhead_integrations.prompt.Passage`.
        k1: term-frequency saturation.
        b: document-length normalisation.
        stem: see :func:`load_stemmer`.

    Raises:
        ValueError: the corpus is empty.
    """

    def __init__(
        self,
        corpus: Mapping[str, Any] | Sequence[Any],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        stem: bool | None = None,
    ) -> None:
        import bm25s

        if isinstance(corpus, Mapping):
            ids = [str(doc_id) for doc_id in corpus]
            passages = [to_passage(item, i) for i, item in enumerate(corpus.values())]
        else:
            passages = to_passages(corpus)
            ids = [str(i) for i in range(len(passages))]
        if not passages:
            raise InvalidInputError("cannot index an empty corpus")
        self.ids = ids
        self.stemmed = (stemmer := load_stemmer(stem)) is not None
        self._analyze = _Analyzer(stemmer)
        tokens = [self._analyze(_document_text(passage)) for passage in passages]
        # bm25s cannot build a vocabulary from no terms at all; such a corpus matches nothing.
        self._bm25: Any = None
        if any(tokens):
            self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
            self._bm25.index(tokens, show_progress=False)
        # Position of each document in ascending-id order: the tie-break shared with the metrics module.
        self._id_rank = np.empty(len(ids), dtype=np.int64)
        self._id_rank[np.argsort(np.array(ids, dtype=object), kind="stable")] = np.arange(len(ids))

    def __len__(self) -> int:
        """How many documents the index holds."""
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document, in corpus order (0 for documents sharing no term with the query)."""
        terms = self._analyze(query)
        if self._bm25 is None:
            return np.zeros(len(self.ids), dtype=np.float32)
        term_ids = self._bm25.get_tokens_ids(terms)
        if not term_ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(term_ids), dtype=np.float32)

    def search(self, query: str, k: int = 100) -> list[tuple[str, float]]:
        """The top ``k`` ``(doc id, score)`` pairs, best first, ties by ascending doc id.

        Only documents sharing at least one term with the query are returned, as Lucene does, so the list
        can be shorter than ``k``.

        Raises:
            ValueError: ``k`` is negative.
        """
        check_int(k, "k")
        scores = self.scores(query)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            # Keep every document tied with the k-th score so the id tie-break, not argpartition, decides.
            kth = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k] if k else np.inf
            candidates = candidates[scores[candidates] >= kth]
        order = candidates[np.lexsort((self._id_rank[candidates], -scores[candidates]))][:k]
        return [(self.ids[i], float(scores[i])) for i in order]

    def search_batch(self, queries: Iterable[str], k: int = 100) -> list[list[tuple[str, float]]]:
        """:meth:`search` for each query, in order."""
        return [self.search(query, k) for query in queries]

    def run(self, queries: Mapping[str, str], k: int = 100) -> dict[str, dict[str, float]]:
        """A run ``{query id: {doc id: score}}`` of the top ``k`` per query, ready for ``evaluate_run``."""
        return {query_id: dict(self.search(text, k)) for query_id, text in queries.items()}


def bm25_rank(
    query: str, passages: Iterable[Any], *, k1: float = 1.2, b: float = 0.75, stem: bool | None = None
) -> list[float]:
    """BM25 scores of a small candidate list against one query, in input order.

    The index (and so the IDF) is built from these passages alone: this is the lexical baseline for a
    multi-hop question ranked over its own ten passages, the same input the QRHead scorer sees.

    Args:
        query: the question.
        passages: ``str``, ``(title, text)``, mappings or :class:`~qrhead_integrations.prompt.Passage`.
        k1: term-frequency saturation.
        b: document-length normalisation.
        stem: see :func:`load_stemmer`.

    Raises:
        EmptyQueryError: the query is empty or whitespace.
        PassageTypeError: a passage is not text.
    """
    check_query(query)
    items = to_passages(passages)
    if not items:
        return []
    return [float(score) for score in BM25Index(items, k1=k1, b=b, stem=stem).scores(query)]
