"""Fixtures for the LlamaIndex tests: real LlamaIndex components, offline (no LLM, no embedding download)."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore, TextNode

from tests.llama_index.embeddings import HashingEmbedding

PROMOTED_QUESTION = 15
"""A HotpotQA question (among the first 20 of hotpotqa_dev200) where the lexical retriever's top 2 hold
neither gold passage and SmolLM2's QRHead heads put both there (see test_real_pipeline.py)."""

FACTS = [
    "The moon orbits the earth.",
    "Paris is the capital of France.",
    "Water boils at one hundred degrees.",
    "Hamlet is a play.",
    "Cats and dogs are animals.",
]


def hotpot_nodes(row: dict[str, Any], question: int) -> list[TextNode]:
    """One node per passage, id ``hotpot-{question}-{passage}``, its title in metadata (embedded too)."""
    return [
        TextNode(id_=f"hotpot-{question}-{i}", text=p["text"], metadata={"title": p["title"]})
        for i, p in enumerate(row["passages"])
    ]


def gold_ids(row: dict[str, Any], question: int) -> set[str]:
    return {f"hotpot-{question}-{i}" for i in row["gold_idx"]}


@pytest.fixture(scope="session")
def embed_model() -> HashingEmbedding:
    return HashingEmbedding()


@pytest.fixture(scope="session")
def promoted_row(hotpotqa_rows: list[dict[str, Any]]) -> dict[str, Any]:
    return hotpotqa_rows[PROMOTED_QUESTION]


@pytest.fixture(scope="session")
def hotpot_index(promoted_row: dict[str, Any], embed_model: HashingEmbedding) -> VectorStoreIndex:
    """A real in-memory vector index over the promoted question's 10 HotpotQA passages."""
    return VectorStoreIndex(hotpot_nodes(promoted_row, PROMOTED_QUESTION), embed_model=embed_model)


@pytest.fixture(scope="session")
def facts_index(embed_model: HashingEmbedding) -> VectorStoreIndex:
    """A small index for the tiny-model tests."""
    nodes = [TextNode(id_=f"fact-{i}", text=text, metadata={"source": "facts"}) for i, text in enumerate(FACTS)]
    return VectorStoreIndex(nodes, embed_model=embed_model)


@pytest.fixture
def fact_nodes() -> list[NodeWithScore]:
    """Fresh caller-owned nodes with retrieval scores, as a retriever would return them."""
    return [
        NodeWithScore(node=TextNode(id_=f"fact-{i}", text=text, metadata={"source": "facts"}), score=1.0 - i / 10)
        for i, text in enumerate(FACTS)
    ]
