"""A deterministic, offline bag-of-words embedding for LlamaIndex tests (no model, no download)."""

from __future__ import annotations

import hashlib
import math
import re

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field

_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by for from has he her his in is it its of on or she that the their this to "
        "was were which who with what when where how did does do title",
    )
)


class HashingEmbedding(BaseEmbedding):
    """Hashed word counts (log-scaled, L2-normalised): a weak lexical retriever, stable across processes."""

    dim: int = Field(default=1024, description="Embedding size (number of hash buckets).")

    @classmethod
    def class_name(cls) -> str:
        return "HashingEmbedding"

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"\w+", text.lower()):
            if word not in _STOPWORDS:
                bucket = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % self.dim
                vector[bucket] += 1.0
        vector = [math.log1p(v) for v in vector]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)
