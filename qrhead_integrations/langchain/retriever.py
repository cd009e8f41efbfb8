"""`QRHeadRetriever`: fetch candidates with any LangChain retriever, then re-rank them with QRHead.

Why a retriever and not only the compressor: a ``BaseRetriever`` is a ``Runnable``, so this composes in
LCEL (``retriever | format_docs | prompt | llm``), gets ``invoke``/``batch``/``ainvoke``/``abatch`` for
free, and reports retriever start/end events with the base retriever's run nested under it. It also asks the
base retriever for more candidates (``fetch_k``) than it returns (``top_n``): the point of re-ranking.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, RetrieverLike
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field

from ..prompt import check_query
from .reranker import QRHeadReranker

_MMR_DEFAULT_FETCH_K = 20
"""LangChain's default ``fetch_k`` for maximal-marginal-relevance search (``VectorStore`` methods)."""


class QRHeadRetriever(BaseRetriever):
    """A base retriever's candidates, re-ranked by a :class:`QRHeadReranker`.

    ``fetch_k`` candidates are requested from the base retriever when it exposes how many it returns: a
    ``search_kwargs`` dict (vector-store retrievers: its ``"k"`` is set) or an integer ``k`` field (BM25 and
    many others). The base retriever is never modified: each call uses a shallow copy with the new count. Any
    other retriever or runnable (e.g. a ``RunnableLambda``) is invoked as is and all it returns is re-ranked.

    Example:
        .. code-block:: python

            from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever

            retriever = QRHeadRetriever(
                base_retriever=vector_store.as_retriever(),
                reranker=QRHeadReranker(model="smollm2-135m-instruct"),
                fetch_k=20,
                top_n=3,
            )
            docs = retriever.invoke("Who wrote Hamlet?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_retriever: RetrieverLike = Field(
        description="Retriever (or any runnable: str -> list[Document]) that supplies the candidates."
    )
    reranker: QRHeadReranker = Field(description="The reranker that orders and cuts the candidates.")
    fetch_k: int | None = Field(
        default=20,
        ge=1,
        description=(
            "Candidates to request from the base retriever where it supports `search_kwargs['k']` or a `k` "
            "field (None: leave its own setting)."
        ),
    )
    top_n: int | None = Field(default=None, ge=1, description="Documents to return (None: the reranker's own `top_n`).")

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        """Fetch candidates (as a child run, so callbacks nest) and re-rank them."""
        query = check_query(query)
        candidates = self._candidate_retriever().invoke(query, config={"callbacks": run_manager.get_child()})
        return self.reranker.rerank(candidates, query, top_n=self._top_n())

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        """Async: the base retriever's own ``ainvoke``, then the forward passes in a worker thread."""
        query = check_query(query)
        candidates = await self._candidate_retriever().ainvoke(query, config={"callbacks": run_manager.get_child()})
        return await run_in_executor(None, self.reranker.rerank, candidates, query, top_n=self._top_n())

    # ---------------------------------------------------------------------------------------------- hook
    def _candidate_retriever(self) -> RetrieverLike:
        """The base retriever set to return ``fetch_k`` documents (a shallow copy), else as it is."""
        return _with_k(self.base_retriever, self.fetch_k)

    def _top_n(self) -> int | None:
        return self.top_n if self.top_n is not None else self.reranker.top_n


def _with_k(retriever: Any, k: int | None) -> Any:
    """A shallow copy of ``retriever`` returning ``k`` documents, for the two conventions LangChain uses."""
    if k is None or not isinstance(retriever, BaseModel):
        return retriever
    fields = type(retriever).model_fields
    search_kwargs = getattr(retriever, "search_kwargs", None)
    if "search_kwargs" in fields and isinstance(search_kwargs, dict):
        updated = {**search_kwargs, "k": k}
        if getattr(retriever, "search_type", None) == "mmr":
            # MMR picks k of fetch_k nearest neighbours: fetch_k below k would silently return fewer.
            updated["fetch_k"] = max(int(search_kwargs.get("fetch_k", _MMR_DEFAULT_FETCH_K)), k)
        return retriever.model_copy(update={"search_kwargs": updated})
    current = getattr(retriever, "k", None)
    if "k" in fields and isinstance(current, int) and not isinstance(current, bool):
        return retriever.model_copy(update={"k": k})
    return retriever
