"""A deterministic, offline bag-of-words embedding: a real LangChain ``Embeddings`` for real vector stores.

``DeterministicFakeEmbedding`` gives random vectors, so its "retrieval" order is noise. Hashed word counts make
the base retriever a plain lexical one (like BM25 without IDF): meaningful, reproducible across processes
(``zlib.crc32``, not the salted ``hash``), and needing no model or network.
"""

from __future__ import annotations

import math
import re
import zlib

from langchain_core.embeddings import Embeddings

_WORD = re.compile(r"[a-z0-9]+")
# fmt: off
_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has", "have",
    "he", "her", "his", "how", "in", "is", "it", "its", "of", "on", "or", "she", "that", "the", "their", "they",
    "this", "to", "was", "were", "what", "when", "where", "which", "who", "whom", "why", "with",
))
# fmt: on


class HashedBagOfWords(Embeddings):
    """Unit-length vectors of hashed, log-scaled word counts (stop words dropped)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.size
        for word in _WORD.findall(text.lower()):
            if word not in _STOPWORDS:
                vector[zlib.crc32(word.encode()) % self.size] += 1.0
        vector = [math.log1p(v) for v in vector]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)
