"""The LlamaIndex example's premise holds without running its model: same retriever, same candidates."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from llama_index.core.schema import MetadataMode

from tests.llama_index.conftest import PROMOTED_QUESTION, gold_ids, hotpot_nodes
from tests.llama_index.embeddings import HashingEmbedding

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llamaindex_rerank.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llamaindex_rerank_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_finds_the_data(example: ModuleType, hotpotqa_rows: list[dict[str, Any]]) -> None:
    assert example.DATA.is_file()
    assert example.load_rows(example.DATA)[PROMOTED_QUESTION] == hotpotqa_rows[PROMOTED_QUESTION]


def test_example_embedding_matches_the_tests(example: ModuleType, promoted_row: dict[str, Any]) -> None:
    """Same retrieval as test_real_pipeline, so its QRHead result (gold promoted) is the example's too."""
    ours, theirs = HashingEmbedding(), example.WordHashEmbedding()
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in hotpot_nodes(promoted_row, PROMOTED_QUESTION)]
    texts.append(promoted_row["question"])
    assert [ours.get_text_embedding(t) for t in texts] == [theirs.get_text_embedding(t) for t in texts]


def test_example_retriever_misses_gold(example: ModuleType, promoted_row: dict[str, Any]) -> None:
    index = example.index_for(promoted_row, embed_model=example.WordHashEmbedding())
    retrieved = index.as_retriever(similarity_top_k=10).retrieve(promoted_row["question"])
    assert len(retrieved) == 10
    assert not example.gold_of(promoted_row) & {r.node.node_id for r in retrieved[:2]}
    assert len(gold_ids(promoted_row, PROMOTED_QUESTION)) == len(example.gold_of(promoted_row)) == 2
