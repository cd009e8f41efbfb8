"""Both frameworks' re-rankers take a passage cache: through a shared scorer or the loading options, and a second
query over the same documents reads every passage from the cache."""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.langchain import QRHeadReranker
from qrhead_integrations.llama_index import QRHeadRerank
from qrhead_integrations.passage_cache import PassageCache

TEXTS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Seine flows through Paris and Normandy.",
]


def test_langchain_reranker_reads_a_shared_scorers_cache(saved_tiny_model: Path) -> None:
    cache = PassageCache()
    scorer = QRHeadScorer.from_pretrained(saved_tiny_model, heads="1-0,2-3", device="cpu", passage_cache=cache)
    reranker = QRHeadReranker(scorer=scorer, top_n=3)
    documents = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(TEXTS)]
    first = reranker.compress_documents(documents, "capital of France")
    assert cache.misses == 3 and cache.hits == 0
    second = reranker.compress_documents(documents, "capital of France")
    assert cache.hits == 3
    assert [d.metadata for d in first] == [d.metadata for d in second]
    assert [d.metadata["i"] for d in documents] == [0, 1, 2]  # the caller's documents untouched


def test_llamaindex_rerank_takes_a_cache_through_its_loading_options(saved_tiny_model: Path, tmp_path: Path) -> None:
    cache = PassageCache(directory=tmp_path)
    rerank = QRHeadRerank(
        model=saved_tiny_model, heads="1-0,2-3", device="cpu", top_n=2, scorer_kwargs={"passage_cache": cache}
    )
    nodes = [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0 - i / 10) for i, t in enumerate(TEXTS)]
    kept = rerank.postprocess_nodes(nodes, query_bundle=QueryBundle("Which river flows through Paris?"))
    assert len(kept) == 2 and cache.misses == 3
    rerank.postprocess_nodes(nodes, query_bundle=QueryBundle("Which city is the capital of Germany?"))
    assert cache.hits == 3 and len(list(tmp_path.glob("*/*.safetensors"))) == 3
