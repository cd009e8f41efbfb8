"""A real LlamaIndex instrumentation handler recording re-rank events, shared by the LlamaIndex tests."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent


class ReRankEvents(BaseEventHandler):
    """Records LlamaIndex's ``ReRankStartEvent`` / ``ReRankEndEvent`` (add it to the root dispatcher)."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "TestReRankEvents"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, ReRankStartEvent | ReRankEndEvent):
            self.events.append(event)
