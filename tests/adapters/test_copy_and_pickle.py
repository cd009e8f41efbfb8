"""Copying and pickling a component that holds a shared scorer.

The semantics: ``copy.copy`` and ``copy.deepcopy`` share the scorer by reference (a copy of a pipeline never
copies a model); ``pickle`` leaves the model behind and the unpickled component loads it again from its settings
(model id, heads, dtype, config) on first use; a bare :class:`QRHeadScorer` refuses pickling with a typed error.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, TextNode

from qrhead_integrations import NotPicklableError, QRHeadScorer
from qrhead_integrations.langchain import QRHeadContextCompressor as LCCompressor
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from qrhead_integrations.llama_index import QRHeadContextCompressor as LICompressor
from qrhead_integrations.llama_index import QRHeadRerank

QUERY = "What is the capital of France?"
TEXTS = ["The moon orbits the earth.", "Paris is the capital of France.", "Cats and dogs are animals."]


class _Fixed(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content=t) for t in TEXTS]


def _components(scorer: QRHeadScorer) -> dict[str, tuple[Any, Callable[[Any], Any]]]:
    """Each component over ``scorer`` and a call reading what it returns (texts, in order)."""
    documents = [Document(page_content=t) for t in TEXTS]
    nodes = [NodeWithScore(node=TextNode(id_=f"n{i}", text=t)) for i, t in enumerate(TEXTS)]
    return {
        "langchain reranker": (
            QRHeadReranker(scorer=scorer, top_n=None),
            lambda c: [d.page_content for d in c.compress_documents(documents, QUERY)],
        ),
        "langchain compressor": (
            LCCompressor(scorer=scorer, budget_tokens=20),
            lambda c: [d.page_content for d in c.compress_documents(documents, QUERY)],
        ),
        "langchain retriever": (
            QRHeadRetriever(base_retriever=_Fixed(), reranker=QRHeadReranker(scorer=scorer), top_n=2),
            lambda c: [d.page_content for d in c.invoke(QUERY)],
        ),
        "llama_index rerank": (
            QRHeadRerank(scorer=scorer, top_n=None),
            lambda c: [n.node.get_content() for n in c.postprocess_nodes(nodes, query_str=QUERY)],
        ),
        "llama_index compressor": (
            LICompressor(scorer=scorer, budget_tokens=20),
            lambda c: [n.node.get_content() for n in c.postprocess_nodes(nodes, query_str=QUERY)],
        ),
    }


def _scorer_of(component: Any) -> QRHeadScorer:
    if isinstance(component, QRHeadRetriever):
        return component.reranker.get_scorer()
    if hasattr(component, "get_scorer"):
        return component.get_scorer()  # type: ignore[no-any-return]
    return component.scorer  # type: ignore[no-any-return]


def _loaded(component: Any) -> bool:
    target = component.reranker if isinstance(component, QRHeadRetriever) else component
    return bool(target.scorer_loaded)


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copies_share_the_scorer_by_reference_and_work(tiny_scorer: QRHeadScorer, copier: Callable[[Any], Any]) -> None:
    for name, (component, call) in _components(tiny_scorer).items():
        copied = copier(component)
        assert _scorer_of(copied) is tiny_scorer, name
        assert call(copied) == call(component), name


def test_a_scorer_is_shared_by_copies_and_refuses_pickling_with_a_typed_error(tiny_scorer: QRHeadScorer) -> None:
    assert copy.copy(tiny_scorer) is tiny_scorer and copy.deepcopy(tiny_scorer) is tiny_scorer
    assert copy.deepcopy({"scorer": tiny_scorer})["scorer"] is tiny_scorer
    with pytest.raises(NotPicklableError, match="pickle the adapter") as raised:
        pickle.dumps(tiny_scorer)
    assert isinstance(raised.value, TypeError)


def test_pickling_leaves_the_model_behind_and_reloads_it_from_the_settings(saved_tiny_model: Path) -> None:
    scorer = QRHeadScorer.from_pretrained(saved_tiny_model, heads="1-0,2-3", dtype="float32", max_passage_tokens=48)
    for name, (component, call) in _components(scorer).items():
        data = pickle.dumps(component)
        assert len(data) < 200_000, name  # settings, not weights
        restored = pickle.loads(data)
        assert not _loaded(restored), name  # nothing loaded until first use
        assert call(restored) == call(component), name
        again = _scorer_of(restored)
        assert again is not scorer and str(again.heads) == "1-0,2-3" and again.config == scorer.config, name
        assert again.dtype == scorer.dtype, name


def test_a_component_built_on_an_in_memory_model_pickles_and_names_the_model_at_first_use(
    tiny_scorer: QRHeadScorer, tmp_path: Path
) -> None:
    """A scorer over a model built in memory has a model id that names no folder: the unpickled copy fails to
    load it at first use, with the package's typed error naming it."""
    from qrhead_integrations import ModelLoadError

    gone = str(tmp_path / "model-built-in-memory")
    scorer = QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, heads="1-0", model_id=gone)
    restored = pickle.loads(pickle.dumps(QRHeadReranker(scorer=scorer)))
    with pytest.raises(ModelLoadError, match="model-built-in-memory"):
        restored.rerank([Document(page_content="x")], QUERY)
