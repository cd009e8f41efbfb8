"""`QRHeadRetriever`: fetch candidates with any LangChain retriever, then re-rank them with QRHead.

Why a retriever and not only the compressor: a ``BaseRetriever`` is a ``Runnable``, so this composes in
LCEL (``retriever | format_docs | prompt | llm``), gets ``invoke``/``batch``/``ainvoke``/``abatch`` for
free, and reports retriever start/end events with the base retriever's run nested under it. It also asks the
base retriever for more candidates (``fetch_k``) than it returns (``top_n``): the point of re-ranking.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManager,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, RetrieverLike
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list, get_executor_for_config, run_in_executor
from pydantic import BaseModel, ConfigDict, Field

from .._checks import check_int
from .._lazy import check_known_options, options_checked
from ..errors import InvalidInputError
from ..prompt import check_query
from ._scorer import check_documents
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

    def __init__(self, **data: object) -> None:
        """Validate as pydantic does; a bad option raises this package's ``InvalidInputError`` (a ``ValueError``)."""
        fields = type(self).model_fields
        check_known_options(type(self).__name__, data, {*fields, *(f.alias for f in fields.values() if f.alias)})
        with options_checked(type(self).__name__):
            super().__init__(**cast("dict[str, Any]", data))  # pydantic validates each field's type

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

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        top_n: int | None = None,
    ) -> list[Document]:
        """Fetch candidates (as a child run, so callbacks nest) and re-rank them.

        ``k`` or ``top_n`` (``invoke(query, k=3)``: LangChain's usual name, or this class's own) overrides how
        many documents this call returns; at least that many candidates are then fetched.
        """
        fetched = self._fetch(query, run_manager, k=k, top_n=top_n)
        return self.reranker.rerank(fetched.documents, fetched.query, top_n=fetched.limit)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **per_call: int | None
    ) -> list[Document]:
        """Async: the base retriever's own ``ainvoke``, then the forward passes in a worker thread.

        ``per_call`` holds the sync hook's ``k`` / ``top_n`` (an unknown keyword raises ``TypeError``, as there).
        """
        query = check_query(query)
        limit = self._top_n(**per_call)
        fetcher = self._candidate_retriever(per_call.get("k") or per_call.get("top_n"))
        candidates = await fetcher.ainvoke(query, config={"callbacks": run_manager.get_child()})
        return await run_in_executor(None, self.reranker.rerank, candidates, query, top_n=limit)

    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: int | None,
    ) -> list[Any]:
        """Re-rank several queries, packing their forwards where the scorer packs rows.

        The scorer packs rows on an accelerator, or when the reranker's ``rows_per_forward`` is above 1;
        otherwise this is LangChain's own ``batch`` (one ``invoke`` per query in threads). ``kwargs`` are
        ``invoke``'s per-call options (``k`` or ``top_n``), the same for every query.

        Packed, each query still gets what ``invoke`` gives it: its own retriever run (start/end/error events,
        tags, metadata, run name), the base retriever's run nested under it, and the ranking
        :meth:`QRHeadReranker.rerank` gives it alone; the base retriever is called for all queries
        concurrently, then every query's candidates are ranked by :meth:`QRHeadReranker.rerank_many`. A query
        whose fetch fails, or whose candidates the reranker refuses, carries its own error (returned with
        ``return_exceptions=True``, else the first one is raised once every run has ended).
        """
        if len(inputs) < 2 or self._rows_per_forward() == 1:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        runs = [self._start_run(query, run_config) for query, run_config in zip(inputs, configs, strict=True)]

        def fetch(query: str, run: CallbackManagerForRetrieverRun) -> _Fetched | Exception:
            try:
                return self._fetch(query, run, **kwargs)
            except Exception as error:  # kept for this query alone, as invoke would raise it
                return error

        with get_executor_for_config(configs[0]) as executor:
            fetched = list(executor.map(fetch, inputs, runs))
        results = self._rerank_fetched(fetched)
        for run, result in zip(runs, results, strict=True):
            if isinstance(result, Exception):
                run.on_retriever_error(result)
            else:
                run.on_retriever_end(result)
        if not return_exceptions:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: int | None,
    ) -> list[Any]:
        """Async :meth:`batch`.

        Packed, the whole batch runs in a worker thread (the forwards are the cost, and the event loop stays
        free); otherwise this is LangChain's own ``abatch`` (one ``ainvoke`` per query).
        """
        if len(inputs) < 2 or self._rows_per_forward() == 1:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        return await run_in_executor(None, self.batch, inputs, config, return_exceptions=return_exceptions, **kwargs)

    def _rows_per_forward(self) -> int:
        """How many rows the reranker's scorer packs per forward (loads the model on first use)."""
        return self.reranker.get_scorer().rows_per_forward(self.reranker.rows_per_forward)

    def _start_run(self, query: str, config: RunnableConfig) -> CallbackManagerForRetrieverRun:
        """The run ``invoke`` would start for ``query`` under ``config`` (same tags, metadata and name)."""
        callback_manager = CallbackManager.configure(
            config.get("callbacks"),
            None,
            inheritable_tags=config.get("tags"),
            local_tags=self.tags,
            inheritable_metadata={**(config.get("metadata") or {}), **self._get_ls_params()},
            local_metadata=self.metadata,
        )
        return callback_manager.on_retriever_start(
            None, query, name=config.get("run_name") or self.get_name(), run_id=config.get("run_id")
        )

    def _fetch(
        self, query: str, run_manager: CallbackManagerForRetrieverRun, *, k: int | None = None, top_n: int | None = None
    ) -> _Fetched:
        """The checked query, this call's result count and the base retriever's candidates (a child run)."""
        query = check_query(query)
        limit = self._top_n(k, top_n)
        candidates = self._candidate_retriever(k or top_n).invoke(query, config={"callbacks": run_manager.get_child()})
        return _Fetched(query, limit, check_documents(candidates))

    def _rerank_fetched(self, fetched: list[_Fetched | Exception]) -> list[list[Document] | Exception]:
        """Re-rank every fetched query in one ``rerank_many`` call; fetch errors stay in place.

        Every query of a batch has the same per-call options, so the same result count. Should that call fail,
        the rows are re-ranked one by one, so only a row that fails alone carries an error.
        """
        good = [row for row in fetched if isinstance(row, _Fetched)]
        ranked: list[list[Document] | Exception] = []
        if good:
            try:
                ranked = list(self.reranker.rerank_many([(r.documents, r.query) for r in good], top_n=good[0].limit))
            except Exception:
                ranked = [self._rerank_alone(row) for row in good]
        next_ranked = iter(ranked)
        return [row if isinstance(row, Exception) else next(next_ranked) for row in fetched]

    def _rerank_alone(self, row: _Fetched) -> list[Document] | Exception:
        try:
            return self.reranker.rerank(row.documents, row.query, top_n=row.limit)
        except Exception as error:
            return error

    # ---------------------------------------------------------------------------------------------- hook
    def _candidate_retriever(self, per_call: int | None = None) -> RetrieverLike:
        """The base retriever set to return ``fetch_k`` documents (a shallow copy), else as it is.

        When a call asks for ``per_call`` results, at least that many are fetched.
        """
        fetch = self.fetch_k if self.fetch_k is None or per_call is None else max(self.fetch_k, per_call)
        return _with_k(self.base_retriever, fetch)

    def _top_n(self, k: int | None = None, top_n: int | None = None) -> int | None:
        """This call's result count: ``k``/``top_n`` given per call, else the field, else the reranker's."""
        if k is not None and top_n is not None and k != top_n:
            raise InvalidInputError(f"k={k!r} and top_n={top_n!r} disagree: pass one of them")
        given = k if k is not None else top_n
        if given is not None:
            return check_int(given, "k (top_n)", minimum=1)
        return self.top_n if self.top_n is not None else self.reranker.top_n


class _Fetched(NamedTuple):
    """One query of a batch after its fetch: the checked query, its result count and its candidates."""

    query: str
    limit: int | None
    documents: list[Document]


def _with_k(retriever: RetrieverLike, k: int | None) -> RetrieverLike:
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
