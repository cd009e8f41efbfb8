"""One "driver" per framework adapter: how the contract tests build it, call it and read back what it returned.

A driver knows, for its adapter: how to build it from the shared tiny scorer (or lazily from a saved model), how
to turn the shared sources into the caller's objects (``Document`` / ``NodeWithScore``), how to call it sync and
async, how to read each output item back as an :class:`Item` (id, text, score, details, metadata), and what the
engine (``QRHeadScorer.rank`` / ``ContextCompressor.compress``) says the result must be for the same inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.schema import MetadataMode, NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode

from qrhead_integrations import ContextCompressor, QRHeadScorer
from qrhead_integrations.chunking import SourceDocument
from qrhead_integrations.langchain import QRHeadContextCompressor as LCCompressor
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from qrhead_integrations.llama_index import QRHeadContextCompressor as LICompressor
from qrhead_integrations.llama_index import QRHeadRerank
from qrhead_integrations.llama_index.context_compressor import CHUNKS_METADATA_KEY
from qrhead_integrations.prompt import Passage
from tests.langchain.helpers import EventCollector
from tests.llama_index.events import ReRankEvents

QUERY = "What is the capital of France?"

TEXTS = [
    "The moon orbits the earth. The sun is a star.\n\nParis is the capital of France. Hamlet is a play.",
    "Water boils at one hundred degrees.\n\nCats and dogs are animals. The quick brown fox jumps.",
    "Hamlet is a play. Paris is the capital of France.\n\nThe sun is a star.",
    "The quick brown fox jumps. Cats and dogs are animals. Water boils at one hundred degrees.",
    "Paris is the capital of France.",
    "Cats and dogs are animals.\n\nThe moon orbits the earth.",
]


@dataclass(frozen=True)
class Source:
    """One caller document: id, title, text and metadata with nested values (to catch shallow copies)."""

    id: str
    text: str
    metadata: dict[str, Any]


def sources() -> list[Source]:
    return [
        Source(
            id=f"doc-{i}",
            text=text,
            metadata={"title": f"Doc {i}", "position": i, "source": {"set": "contract", "tags": ["a", str(i)]}},
        )
        for i, text in enumerate(TEXTS)
    ]


@dataclass(frozen=True)
class Item:
    """One output item read back: the caller's id it came from, its text, the adapter's documented score, the
    per-chunk scores of a compressor (empty for a re-ranker) and its full metadata."""

    id: str
    text: str
    score: float
    details: tuple[float, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


class ListRetriever(BaseRetriever):
    """A real LangChain retriever returning exactly the object it holds (the caller's documents, or bad input)."""

    docs: Any

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> Any:
        return self.docs


@dataclass(frozen=True)
class Driver:
    """How the contract tests drive one adapter; see the module docstring."""

    name: str
    kind: str  # "reranker" (returns inputs best first) or "compressor" (returns cut copies in input order)
    framework: str  # "langchain" or "llama_index"
    added_keys: frozenset[str]  # metadata keys the adapter documents writing to each output item
    build: Callable[..., Any]  # (scorer=... | model=..., **options) -> component
    make_inputs: Callable[[list[Source]], list[Any]]
    call: Callable[[Any, Any, str], list[Any]]
    acall: Callable[[Any, Any, str], Any]  # -> coroutine
    read: Callable[[list[Any]], list[Item]]
    expected: Callable[[QRHeadScorer, list[Any], str, dict[str, Any]], list[Item]]
    owned: Callable[[Any], list[Any]]  # objects of an output item that must be new (never the caller's)
    caller_objects: Callable[[Any], list[Any]]  # the mutable objects of one caller item
    scribble: Callable[[Any], None]  # writes into an output item's owned objects
    loaded: Callable[[Any], bool]
    all_options: dict[str, Any]  # nothing cut (top_n=None, or every chunk kept)
    limit_options: Callable[[int], dict[str, Any]]  # keep n units (documents, or chunks)
    units: Callable[[list[Any]], int]  # how many units an output holds
    threshold_options: Callable[[float], dict[str, Any]] | None  # None: the adapter has no threshold
    thresholded: Callable[[list[Any]], list[float]]  # the values a threshold applies to, in output order
    bad_inputs: list[tuple[Any, str]]  # (caller input that is not documents/nodes, message regex)
    record: Callable[[Any, Any, str, bool], tuple[list[Any], list[Any]]] | None = None  # events, if any
    expected_events: Callable[[Any, list[Any], str, bool], list[Any]] | None = None

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------------- LangChain
def _documents(items: list[Source]) -> list[Document]:
    return [Document(page_content=s.text, metadata=s.metadata, id=s.id) for s in items]


def _lc_passages(documents: list[Document]) -> list[Passage]:
    return [Passage(text=d.page_content, title=str(d.metadata["title"])) for d in documents]


def _lc_reranker_items(documents: list[Document]) -> list[Item]:
    return [
        Item(str(d.id), d.page_content, d.metadata["relevance_score"], (d.metadata["qrhead_score"],), d.metadata)
        for d in documents
    ]


def _lc_reranker_expected(
    scorer: QRHeadScorer, documents: list[Document], query: str, options: dict[str, Any]
) -> list[Item]:
    top_n = options.get("top_n", 3)
    ranked = scorer.rank(query, _lc_passages(documents), top_n=top_n, fusion=options.get("fusion", "default"))
    threshold = options.get("score_threshold")
    if threshold is not None:
        ranked = [r for r in ranked if r.qrhead_score >= threshold]
    return [
        Item(str(documents[r.index].id), documents[r.index].page_content, r.score, (r.qrhead_score,)) for r in ranked
    ]


def _lc_compressor_items(documents: list[Document]) -> list[Item]:
    return [
        Item(
            str(d.id),
            d.page_content,
            d.metadata["qrhead_max_score"],
            tuple(d.metadata["qrhead_chunk_scores"]),
            d.metadata,
        )
        for d in documents
    ]


def _engine_options(options: dict[str, Any]) -> dict[str, Any]:
    names = ("budget_tokens", "top_k", "max_chunk_tokens", "keep_neighbors", "min_score", "separator", "lexical")
    return {name: options[name] for name in names if name in options}


def _lc_compressor_expected(
    scorer: QRHeadScorer, documents: list[Document], query: str, options: dict[str, Any]
) -> list[Item]:
    sources = [SourceDocument(d.page_content, str(d.metadata["title"]), d.id) for d in documents]
    result = ContextCompressor(scorer, **_engine_options(options)).compress(query, sources)
    out = []
    for i, doc in enumerate(documents):
        kept = result.kept_for(i)
        if kept:
            best = max(c.score for c in result.chunks if c.chunk.doc_index == i)
            text = options.get("separator", "\n\n").join(k.chunk.text for k in kept)
            out.append(Item(str(doc.id), text, best, tuple(k.score for k in kept)))
    return out


def _lc_scribble(document: Document) -> None:
    document.metadata["written"] = True
    document.page_content = "overwritten"


def _lc_record(component: Any, documents: Any, query: str, is_async: bool) -> tuple[list[Any], list[Any]]:
    collector = EventCollector()
    config: Any = {"callbacks": [collector]}
    runnable = _over(component, documents)
    out = asyncio.run(runnable.ainvoke(query, config=config)) if is_async else runnable.invoke(query, config=config)
    names = {e["run_id"]: e["name"] for e in collector.of_kind("start")}
    events = [
        ("start", e["name"], names.get(e["parent_run_id"]), e["query"])
        if e["kind"] == "start"
        else ("end", names[e["run_id"]], [d.id for d in e["documents"]])
        for e in collector.events
    ]
    return out, events


def _lc_expected_events(out: list[Document], documents: list[Document], query: str, is_async: bool) -> list[Any]:
    """The retriever's run, the base retriever's nested under it, each ending with the documents it returned."""
    return [
        ("start", "QRHeadRetriever", None, query),
        ("start", "ListRetriever", "QRHeadRetriever", query),
        ("end", "ListRetriever", [d.id for d in documents]),
        ("end", "QRHeadRetriever", [d.id for d in out]),
    ]


def _over(retriever: QRHeadRetriever, documents: Any) -> QRHeadRetriever:
    """The retriever with a base retriever that returns exactly ``documents`` (the caller's objects)."""
    return retriever.model_copy(update={"base_retriever": ListRetriever(docs=documents)})


def _retriever(*, top_n: Any = 3, score_threshold: Any = None, retriever_top_n: Any = None, **source: Any) -> Any:
    reranker = QRHeadReranker(top_n=top_n, score_threshold=score_threshold, title_key="title", **source)
    return QRHeadRetriever(base_retriever=ListRetriever(docs=[]), reranker=reranker, top_n=retriever_top_n)


def _retriever_expected(
    scorer: QRHeadScorer, documents: list[Document], query: str, options: dict[str, Any]
) -> list[Item]:
    limit = options.get("retriever_top_n") or options.get("top_n", 3)
    return _lc_reranker_expected(scorer, documents, query, {**options, "top_n": limit})


_LC_BAD = [
    (["plain text"], r"documents\[0\] is a str, not a langchain_core Document"),
    ([Document(page_content="ok"), {"page_content": "x"}], r"documents\[1\] is a dict"),
    (Document(page_content="one"), "must be a list of langchain_core Document"),
]

_LC_COMMON: dict[str, Any] = dict(
    framework="langchain",
    make_inputs=_documents,
    owned=lambda d: [d, d.metadata],
    caller_objects=lambda d: [d, d.metadata],
    scribble=_lc_scribble,
    bad_inputs=_LC_BAD,
)

_LC_COMPRESSOR_CALLS: dict[str, Any] = dict(
    call=lambda c, docs, q: list(c.compress_documents(docs, q)),
    acall=lambda c, docs, q: c.acompress_documents(docs, q),
    loaded=lambda c: c.scorer_loaded,
)
"""How both LangChain document compressors are called and checked for a loaded model."""

LC_RERANKER = Driver(
    name="langchain-reranker",
    kind="reranker",
    added_keys=frozenset({"relevance_score", "qrhead_score"}),
    build=lambda **kw: QRHeadReranker(title_key="title", **kw),
    read=_lc_reranker_items,
    expected=_lc_reranker_expected,
    all_options={"top_n": None},
    limit_options=lambda n: {"top_n": n},
    units=len,
    threshold_options=lambda t: {"top_n": None, "score_threshold": t},
    thresholded=lambda out: [d.metadata["qrhead_score"] for d in out],
    **_LC_COMMON,
    **_LC_COMPRESSOR_CALLS,
)

LC_COMPRESSOR = Driver(
    name="langchain-compressor",
    kind="compressor",
    added_keys=frozenset({"qrhead_chunk_scores", "qrhead_chunk_spans", "qrhead_max_score", "qrhead_compression_ratio"}),
    build=lambda **kw: LCCompressor(title_key="title", **kw),
    read=_lc_compressor_items,
    expected=_lc_compressor_expected,
    all_options={"budget_tokens": None, "top_k": 10_000},
    limit_options=lambda n: {"budget_tokens": None, "top_k": n, "max_chunk_tokens": 8},
    units=lambda out: sum(len(d.metadata["qrhead_chunk_scores"]) for d in out),
    threshold_options=lambda t: {"budget_tokens": None, "top_k": 10_000, "max_chunk_tokens": 8, "min_score": t},
    thresholded=lambda out: [s for d in out for s in d.metadata["qrhead_chunk_scores"]],
    **_LC_COMMON,
    **_LC_COMPRESSOR_CALLS,
)

LC_RETRIEVER = Driver(
    name="langchain-retriever",
    kind="reranker",
    added_keys=frozenset({"relevance_score", "qrhead_score"}),
    build=_retriever,
    call=lambda c, docs, q: _over(c, docs).invoke(q),
    acall=lambda c, docs, q: _over(c, docs).ainvoke(q),
    read=_lc_reranker_items,
    expected=_retriever_expected,
    loaded=lambda c: c.reranker.scorer_loaded,
    all_options={"top_n": None},
    limit_options=lambda n: {"top_n": None, "retriever_top_n": n},
    units=len,
    threshold_options=lambda t: {"top_n": None, "score_threshold": t},
    thresholded=lambda out: [d.metadata["qrhead_score"] for d in out],
    record=_lc_record,
    expected_events=_lc_expected_events,
    **_LC_COMMON,
)


# ---------------------------------------------------------------------------------------------------- LlamaIndex
def _nodes(items: list[Source]) -> list[NodeWithScore]:
    """Caller-owned nodes as a retriever returns them: a score each, metadata, relationships."""
    return [
        NodeWithScore(
            node=TextNode(
                id_=s.id,
                text=s.text,
                metadata=s.metadata,
                excluded_embed_metadata_keys=["source", "position"],
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"file-{s.id}", metadata={"f": 1})},
            ),
            score=1.0 - i / 10,
        )
        for i, s in enumerate(items)
    ]


def _score(item: NodeWithScore) -> float:
    assert item.score is not None, "every returned node carries a score"
    return item.score


def _li_rerank_items(nodes: list[NodeWithScore]) -> list[Item]:
    return [
        Item(n.node.node_id, n.node.get_content(metadata_mode=MetadataMode.NONE), _score(n), (), n.node.metadata)
        for n in nodes
    ]


def _li_rerank_expected(
    scorer: QRHeadScorer, nodes: list[NodeWithScore], query: str, options: dict[str, Any]
) -> list[Item]:
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    first_stage = [float(n.score) for n in nodes]  # type: ignore[arg-type]
    fusion = options.get("fusion", "default")
    ranked = scorer.rank(query, texts, top_n=options.get("top_n", 2), first_stage_scores=first_stage, fusion=fusion)
    return [
        Item(nodes[r.index].node.node_id, nodes[r.index].node.get_content(metadata_mode=MetadataMode.NONE), r.score)
        for r in ranked
    ]


def _li_compressor_items(nodes: list[NodeWithScore]) -> list[Item]:
    return [
        Item(
            str(n.node.ref_doc_id),
            n.node.get_content(metadata_mode=MetadataMode.NONE),
            _score(n),
            tuple(c["score"] for c in n.node.metadata[CHUNKS_METADATA_KEY]),
            n.node.metadata,
        )
        for n in nodes
    ]


def _li_compressor_expected(
    scorer: QRHeadScorer, nodes: list[NodeWithScore], query: str, options: dict[str, Any]
) -> list[Item]:
    sources = [
        SourceDocument(
            n.node.get_content(metadata_mode=MetadataMode.NONE),
            n.node.get_metadata_str(mode=MetadataMode.EMBED),
            n.node.node_id,
        )
        for n in nodes
    ]
    result = ContextCompressor(scorer, **_engine_options(options)).compress(query, sources)
    out = []
    for i, item in enumerate(nodes):
        kept = result.kept_for(i)
        if kept:
            text = options.get("separator", "\n\n").join(k.chunk.text for k in kept)
            out.append(Item(item.node.node_id, text, max(k.score for k in kept), tuple(k.score for k in kept)))
    return out


def _li_objects(item: NodeWithScore) -> list[Any]:
    return [item, item.node, item.node.metadata, item.node.relationships]


def _li_rerank_scribble(item: NodeWithScore) -> None:
    item.score = -123.0


def _li_compressor_scribble(item: NodeWithScore) -> None:
    item.score = -123.0
    item.node.metadata["written"] = True
    item.node.metadata["source"] = "replaced"
    item.node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="elsewhere")
    item.node.excluded_llm_metadata_keys.append("written")


def _li_call(component: Any, nodes: Any, query: str, is_async: bool) -> list[NodeWithScore]:
    if is_async:
        return list(asyncio.run(component.apostprocess_nodes(nodes, query_str=query)))
    return list(component.postprocess_nodes(nodes, query_str=query))


def _li_rerank_record(component: Any, nodes: Any, query: str, is_async: bool) -> tuple[list[Any], list[Any]]:
    handler = ReRankEvents()
    debug = LlamaDebugHandler()
    root = get_dispatcher()
    root.add_event_handler(handler)
    component.callback_manager = CallbackManager([debug])
    try:
        out = _li_call(component, nodes, query, is_async)
    finally:
        root.event_handlers.remove(handler)
    events: list[Any] = []
    for event in handler.events:
        if isinstance(event, ReRankStartEvent):
            query_str = getattr(event.query, "query_str", event.query)
            ids = [n.node.node_id for n in event.nodes]
            events.append(("ReRankStartEvent", query_str, ids, event.top_n, event.model_name))
        elif isinstance(event, ReRankEndEvent):
            events.append(("ReRankEndEvent", [(n.node.node_id, n.score) for n in event.nodes]))
    for start, end in debug.get_event_pairs(CBEventType.RERANKING):
        assert start.payload is not None and end.payload is not None
        ids = [n.node.node_id for n in start.payload[EventPayload.NODES]]
        events.append(("RERANKING", start.payload[EventPayload.QUERY_STR], ids, start.payload[EventPayload.TOP_K]))
        events.append(("RERANKING end", [(n.node.node_id, n.score) for n in end.payload[EventPayload.NODES]]))
    return out, events


def _li_rerank_expected_events(out: list[Any], nodes: list[NodeWithScore], query: str, is_async: bool) -> list[Any]:
    ids = [n.node.node_id for n in nodes]
    returned = [(n.node.node_id, n.score) for n in out]
    return [
        ("ReRankStartEvent", query, ids, len(nodes), "tiny-llama"),  # top_n=None reports every node
        ("ReRankEndEvent", returned),
        ("RERANKING", query, ids, None),
        ("RERANKING end", returned),
    ]


def _li_compressor_record(component: Any, nodes: Any, query: str, is_async: bool) -> tuple[list[Any], list[Any]]:
    """LlamaIndex has no compression event: the compressor's work runs inside its instrumentation spans. The
    names of its outermost spans (those not nested in another of its spans) tell which entry point ran."""
    handler = SimpleSpanHandler()
    root = get_dispatcher()
    root.add_span_handler(handler)
    try:
        out = _li_call(component, nodes, query, is_async)
    finally:
        root.span_handlers.remove(handler)
    spans = [s for s in handler.completed_spans if s.id_.startswith("QRHeadContextCompressor.")]
    ids = {s.id_ for s in spans}
    return out, [s.id_.rsplit("-", 5)[0] for s in spans if s.parent_id not in ids]


def _li_compressor_expected_events(out: list[Any], nodes: Any, query: str, is_async: bool) -> list[Any]:
    return ["QRHeadContextCompressor._apostprocess_nodes" if is_async else "QRHeadContextCompressor._postprocess_nodes"]


_LI_BAD = [
    ([None], r"nodes\[0\] is a NoneType, not a NodeWithScore"),
    (["text"], r"nodes\[0\] is a str, not a NodeWithScore"),
    ([TextNode(text="bare")], r"nodes\[0\] is a TextNode, not a NodeWithScore; wrap it"),
    ("text", "nodes must be a list of NodeWithScore"),
]

_LI_COMMON: dict[str, Any] = dict(
    framework="llama_index",
    make_inputs=_nodes,
    caller_objects=_li_objects,
    call=lambda c, nodes, q: c.postprocess_nodes(nodes, query_str=q),
    acall=lambda c, nodes, q: c.apostprocess_nodes(nodes, query_str=q),
    loaded=lambda c: c.scorer_loaded,
    bad_inputs=_LI_BAD,
)


def _li_build(cls: Any) -> Callable[..., Any]:
    def build(*, model: str | Path | None = None, **kw: Any) -> Any:
        return cls(**kw) if model is None else cls(model=str(model), **kw)

    return build


LI_RERANK = Driver(
    name="llama_index-rerank",
    kind="reranker",
    added_keys=frozenset(),  # the score is NodeWithScore.score
    build=_li_build(QRHeadRerank),
    read=_li_rerank_items,
    expected=_li_rerank_expected,
    owned=lambda n: [n],  # documented: a new NodeWithScore, the node itself shared (no metadata to add)
    scribble=_li_rerank_scribble,
    all_options={"top_n": None},
    limit_options=lambda n: {"top_n": n},
    units=len,
    threshold_options=None,
    thresholded=lambda out: [],
    record=_li_rerank_record,
    expected_events=_li_rerank_expected_events,
    **_LI_COMMON,
)

LI_COMPRESSOR = Driver(
    name="llama_index-compressor",
    kind="compressor",
    added_keys=frozenset({CHUNKS_METADATA_KEY}),
    build=_li_build(LICompressor),
    read=_li_compressor_items,
    expected=_li_compressor_expected,
    owned=_li_objects,
    scribble=_li_compressor_scribble,
    all_options={"budget_tokens": None, "top_k": 10_000},
    limit_options=lambda n: {"budget_tokens": None, "top_k": n, "max_chunk_tokens": 8},
    units=lambda out: sum(len(n.node.metadata[CHUNKS_METADATA_KEY]) for n in out),
    threshold_options=lambda t: {"budget_tokens": None, "top_k": 10_000, "max_chunk_tokens": 8, "min_score": t},
    thresholded=lambda out: [c["score"] for n in out for c in n.node.metadata[CHUNKS_METADATA_KEY]],
    record=_li_compressor_record,
    expected_events=_li_compressor_expected_events,
    **_LI_COMMON,
)

DRIVERS = [LC_RERANKER, LC_COMPRESSOR, LC_RETRIEVER, LI_RERANK, LI_COMPRESSOR]
