"""Helpers for the LangChain tests: HotpotQA rows as Documents, a lexical vector store, an event collector."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.vectorstores import InMemoryVectorStore

from qrhead_integrations import QRHeadScorer
from tests.langchain.lexical import HashedBagOfWords

T = TypeVar("T")


def row_documents(row: dict[str, Any]) -> list[Document]:
    """One Document per HotpotQA passage: text as content, title and gold flag in metadata, a stable id."""
    gold = set(row["gold_idx"])
    return [
        Document(
            page_content=passage["text"],
            metadata={"title": passage["title"], "position": i, "gold": i in gold, "source": {"set": "hotpotqa"}},
            id=f"{row['id']}-{i}",
        )
        for i, passage in enumerate(row["passages"])
    ]


def lexical_store(documents: list[Document]) -> InMemoryVectorStore:
    store = InMemoryVectorStore(HashedBagOfWords())
    store.add_documents(documents)
    return store


def format_docs(documents: list[Document]) -> str:
    return "\n\n".join(f"{doc.metadata['title']}: {doc.page_content}" for doc in documents)


class EventCollector(BaseCallbackHandler):
    """Records retriever and chat-model events (thread-safe: async runs call sync handlers in threads)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _add(self, **event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def on_retriever_start(
        self, serialized: dict[str, Any], query: str, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
    ) -> None:
        self._add(kind="start", name=kw.get("name"), query=query, run_id=run_id, parent_run_id=parent_run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any) -> None:
        self._add(kind="end", documents=list(documents), run_id=run_id, parent_run_id=parent_run_id)

    def on_retriever_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
    ) -> None:
        self._add(kind="error", error=error, run_id=run_id, parent_run_id=parent_run_id)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kw: Any
    ) -> None:
        self._add(kind="chat_start", messages=messages, run_id=run_id)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["kind"] == kind]


class SlowScorer(QRHeadScorer):
    """A real scorer that also sleeps 0.3 s and records which thread ran it (to see the event loop stay free)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: list[int] = []

    def score_many(self, queries: Any, passages: Any, *, uncut: bool = False) -> list[list[float]]:
        self.threads.append(threading.get_ident())
        time.sleep(0.3)
        return super().score_many(queries, passages, uncut=uncut)


async def heartbeats_during(awaitable: Awaitable[T]) -> tuple[T, int]:
    """Await ``awaitable`` while a task ticks every 10 ms: few ticks mean the event loop was blocked."""
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    try:
        result = await awaitable
    finally:
        beat.cancel()
    return result, ticks
