"""Fixtures for the LangChain integration: real LangChain components over real HotpotQA passages.

Nothing of LangChain is mocked: the base retriever is an ``InMemoryVectorStore`` with a deterministic lexical
embedding, callbacks are a real ``BaseCallbackHandler``, chains are real LCEL.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from qrhead_integrations import QRHeadScorer
from tests.langchain.helpers import lexical_store, row_documents


@pytest.fixture(scope="session")
def fast_scorer(tiny_scorer: QRHeadScorer) -> QRHeadScorer:
    """The tiny random scorer reading at most 64 tokens per passage: fast enough for many calls."""
    return tiny_scorer.with_config(max_passage_tokens=64)


@pytest.fixture(scope="session")
def row(hotpotqa_rows: list[dict[str, Any]]) -> dict[str, Any]:
    return hotpotqa_rows[0]


@pytest.fixture
def documents(row: dict[str, Any]) -> list[Document]:
    return row_documents(row)


@pytest.fixture
def store(documents: list[Document]) -> InMemoryVectorStore:
    return lexical_store(documents)
