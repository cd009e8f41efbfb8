"""LangChain's own standard retriever tests (``langchain-tests``) run against :class:`QRHeadRetriever`.

The base retriever is a real ``InMemoryVectorStore`` over real HotpotQA passages; the re-ranker reads them with
the tiny random model (the suite checks the retriever contract, not ranking quality). ``top_n`` is both the
constructor's result count and, per call, ``invoke(query, top_n=...)`` (``k=`` works too).
"""

from __future__ import annotations

import json
from typing import Any

from langchain_tests.integration_tests import RetrieversIntegrationTests

from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from tests.conftest import SHARED_DATA
from tests.langchain.helpers import lexical_store, row_documents
from tests.tiny_models import tiny_model, tiny_tokenizer


def _components() -> dict[str, Any]:
    from qrhead_integrations import QRHeadScorer

    path = SHARED_DATA / "hotpotqa" / "hotpotqa_dev200.jsonl"
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    scorer = QRHeadScorer(
        tiny_model("llama"), tiny_tokenizer(), heads="1-0,2-3,2-1", model_id="tiny-llama", max_passage_tokens=64
    )
    store = lexical_store(row_documents(row))
    return {"base_retriever": store.as_retriever(), "reranker": QRHeadReranker(scorer=scorer), "fetch_k": 10}


_SHARED = _components()


class TestQRHeadRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[QRHeadRetriever]:
        return QRHeadRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return dict(_SHARED)

    @property
    def retriever_query_example(self) -> str:
        return "Which Canadian rock band released a song called Counterparts?"

    @property
    def num_results_arg_name(self) -> str:
        return "top_n"


def test_k_per_call_matches_top_n() -> None:
    retriever = QRHeadRetriever(**_SHARED)
    query = "Which Canadian rock band released a song called Counterparts?"
    candidates = _SHARED["base_retriever"].model_copy(update={"search_kwargs": {"k": 10}}).invoke(query)
    reranker = _SHARED["reranker"]
    by_k = retriever.invoke(query, k=2)
    by_top_n = retriever.invoke(query, top_n=2)
    assert [d.id for d in by_k] == [d.id for d in by_top_n] == [d.id for d in reranker.rerank(candidates, query)[:2]]
    # more than the reranker's top_n of 3: fetched and returned
    assert retriever.invoke(query, k=7) == reranker.rerank(candidates, query, top_n=7)


def test_bad_per_call_counts() -> None:
    import pytest

    from qrhead_integrations import InvalidInputError

    retriever = QRHeadRetriever(**_SHARED)
    with pytest.raises(InvalidInputError, match="disagree"):
        retriever.invoke("q", k=1, top_n=2)
    with pytest.raises(InvalidInputError, match=">= 1"):
        retriever.invoke("q", k=0)
