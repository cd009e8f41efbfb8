"""Property-based checks of the public entry points on the tiny random model (hypothesis).

Arbitrary text (lone surrogates, chat-template control tokens, NUL, CRLF, U+2029 included), arbitrary passage
lists and budgets go through the scorer, the compressor, both frameworks' re-rankers and the CLI/batch readers.
Whatever comes in, each entry point either returns a result or raises a documented ``qrhead_integrations`` error
(never another exception type), leaves the caller's objects unchanged, and keeps its documented guarantees:
rankings are permutations of the input, scores are finite or the documented ``-inf``, budgets are never exceeded,
chunk offsets map back exactly.

The example count is fixed and the search derandomised (profile ``ci``, the default), so a run takes the same
time and finds the same cases every time; ``HYPOTHESIS_PROFILE=deep`` searches more.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.compress import ContextCompressor
from qrhead_integrations.errors import QRHeadError

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("deep", max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SPECIAL = [
    "<|im_start|>system\nignore this<|im_end|>",
    "<|endoftext|>",
    "<s></s>[INST]",
    "\x00",
    "\r\n\r\n",
    "\r\r",
    "\u2029",
    "\ud800",
    "Paris \udfff",
    "   ",
    "",
    "N/A",
]
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # every code point, surrogates included
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.sampled_from(SPECIAL),
    st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(max_size=20)), max_size=4).map("".join),
)
PASSAGE = st.one_of(
    TEXT,
    st.tuples(TEXT, TEXT),
    st.fixed_dictionaries({"text": TEXT}, optional={"title": TEXT}),
    st.sampled_from([None, 3, 2.5, b"bytes", ["a", "b", "c"]]),
)
QUERY = st.one_of(TEXT, st.sampled_from([None, 7, b"q"]))


def _is_rank_order(ranked: list[Any], n: int) -> bool:
    return sorted(item.index for item in ranked) == list(range(n))


def _ok_score(value: float) -> bool:
    return math.isfinite(value) or value == float("-inf")


@given(query=QUERY, passages=st.lists(PASSAGE, max_size=6))
def test_scorer_rank_returns_a_permutation_or_a_documented_error(
    tiny_scorer: QRHeadScorer, query: Any, passages: list[Any]
) -> None:
    before = copy.deepcopy(passages)
    try:
        ranked = tiny_scorer.rank(query, passages)
    except QRHeadError:
        pass
    else:
        assert _is_rank_order(ranked, len(passages))
        assert all(_ok_score(item.score) and _ok_score(item.qrhead_score) for item in ranked)
        scores = [item.score for item in ranked]
        assert scores == sorted(scores, reverse=True)
    assert passages == before


@given(
    query=QUERY,
    document=st.one_of(TEXT, st.lists(TEXT, max_size=3).map("\n\n".join)),
    budget=st.one_of(st.integers(min_value=-3, max_value=400), st.sampled_from([None, 0.5, float("nan"), "10"])),
    top_k=st.one_of(st.none(), st.integers(min_value=-1, max_value=5)),
)
def test_compressor_keeps_its_budget_and_exact_offsets(
    tiny_scorer: QRHeadScorer, query: Any, document: str, budget: Any, top_k: Any
) -> None:
    try:
        compressor = ContextCompressor(tiny_scorer, budget_tokens=budget, top_k=top_k, max_chunk_tokens=16)
        result = compressor.compress(query, document)
    except QRHeadError:
        return
    if isinstance(budget, int):
        assert result.kept_tokens <= budget
    if top_k is not None:
        assert len(result.kept) <= top_k
    for item in result.kept:
        assert document[item.chunk.start : item.chunk.end] == item.chunk.text
        assert _ok_score(item.score)
    starts = [item.chunk.start for item in result.kept]
    assert starts == sorted(starts)  # kept chunks stay in their original order
    whole = len(result.kept) == len(result.chunks) > 0 and not any(item.truncated for item in result.kept)
    if whole and (budget is None or result.original_tokens <= budget):
        assert result.text == document  # nothing removed: the input exactly, not a re-joined copy


@given(query=QUERY, texts=st.lists(TEXT, max_size=5), titles=st.lists(st.one_of(TEXT, st.none()), max_size=5))
def test_langchain_reranker_never_drops_or_changes_the_callers_documents(
    tiny_scorer: QRHeadScorer, query: Any, texts: list[str], titles: list[Any]
) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from qrhead_integrations.langchain import QRHeadReranker

    documents = [
        Document(page_content=text, metadata={"title": title, "n": i} if title is not None else {"n": i})
        for i, (text, title) in enumerate(zip(texts, titles + [None] * len(texts), strict=False))
    ]
    before = [(d.page_content, copy.deepcopy(d.metadata)) for d in documents]
    reranker = QRHeadReranker(scorer=tiny_scorer, top_n=None, title_key="title")
    try:
        out = reranker.compress_documents(documents, query)
    except QRHeadError:
        pass
    else:
        assert sorted(d.metadata["n"] for d in out) == list(range(len(documents)))
        assert all(_ok_score(d.metadata["relevance_score"]) for d in out)
    assert [(d.page_content, d.metadata) for d in documents] == before


@given(query=TEXT, texts=st.lists(TEXT, max_size=5))
def test_llamaindex_rerank_never_drops_or_changes_the_callers_nodes(
    tiny_scorer: QRHeadScorer, query: str, texts: list[str]
) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from qrhead_integrations.llama_index import QRHeadRerank

    nodes = [
        NodeWithScore(node=TextNode(id_=f"n{i}", text=t, metadata={"k": i}), score=None) for i, t in enumerate(texts)
    ]
    before = [(n.node.get_content(), dict(n.node.metadata), n.score) for n in nodes]
    rerank = QRHeadRerank(scorer=tiny_scorer, top_n=None)
    try:
        out = rerank.postprocess_nodes(nodes, query_str=query)
    except QRHeadError:
        pass
    except ValueError as exc:  # LlamaIndex's own contract for a missing query, kept by the adapter
        assert "query" in str(exc).lower() and not query.strip()
    else:
        assert sorted(n.node.node_id for n in out) == sorted(n.node.node_id for n in nodes)
        assert all(n.score is not None and _ok_score(n.score) for n in out)
    assert [(n.node.get_content(), dict(n.node.metadata), n.score) for n in nodes] == before


@given(data=st.binary(max_size=300))
def test_the_rank_commands_passage_reader_reads_or_names_the_line(tmp_path_factory: Any, data: bytes) -> None:
    from qrhead_integrations.cli.rank import read_passages
    from qrhead_integrations.errors import DataFormatError
    from qrhead_integrations.prompt import Passage

    path = Path(tmp_path_factory.mktemp("passages")) / "p.txt"
    path.write_bytes(data)
    try:
        passages = read_passages(str(path))
    except DataFormatError as exc:
        assert "line " in str(exc)
    else:
        assert all(isinstance(p, Passage) for p in passages)


@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [
                    b'{"query": "q", "passages": ["a", {"title": "t", "text": "b"}, ["t", "c"]]}',
                    b'{"query": 1, "passages": []}',
                    b'{"query": "q", "passages": [1, 2]}',
                    b"[1, 2]",
                    b'{"query": "q", "passages": "x", "extra": {"a": 1}}',
                    b'{"query": "q", "passages": [], "extra": 5}',
                    b"\xff\xfe",
                ]
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_batch_jsonl_reader_turns_every_line_into_one_row(tmp_path_factory: Any, lines: list[bytes]) -> None:
    pytest.importorskip("pyarrow")
    from qrhead_integrations.distributed.jsonl import INPUT_ERROR, read_json_rows
    from qrhead_integrations.errors import InvalidInputError

    cleaned = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    path = Path(tmp_path_factory.mktemp("rows")) / "rows.jsonl"
    path.write_bytes(b"\n".join(cleaned) + b"\n")
    try:
        table = read_json_rows([path], "query", "passages")
    except InvalidInputError as exc:  # only when no row has the column at all
        assert "no column" in str(exc)
        return
    expected = sum(1 for line in cleaned if line.strip()) if not cleaned[0].lstrip().startswith(b"[") else None
    if expected is not None:
        assert table.num_rows == expected
    errors = table.column(INPUT_ERROR).to_pylist()
    queries = table.column("query").to_pylist()
    assert all(e is None or e.split(":", 1)[0].endswith("Error") for e in errors)
    assert all(e is not None or isinstance(q, str) for e, q in zip(errors, queries, strict=True))


def test_bad_adapter_options_raise_the_package_error(tiny_scorer: Any) -> None:
    """Every adapter's constructor reports a bad option as ``InvalidInputError`` (a ``ValueError``, chained to
    pydantic's ``ValidationError``), naming the component — the one error family of bad input."""
    from langchain_core.retrievers import BaseRetriever

    from qrhead_integrations import InvalidInputError
    from qrhead_integrations.langchain import QRHeadContextCompressor as LCCompressor
    from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
    from qrhead_integrations.llama_index import QRHeadContextCompressor as LICompressor
    from qrhead_integrations.llama_index import QRHeadRerank

    class Empty(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Any]:
            return []

    cases: list[tuple[Any, dict[str, Any], str]] = [
        (QRHeadReranker, {"scorer": tiny_scorer, "top_n": 0}, "top_n"),
        (LCCompressor, {"scorer": tiny_scorer, "max_chunk_tokens": 2}, "max_chunk_tokens"),
        (LCCompressor, {"scorer": tiny_scorer, "budget_tokens": None}, "budget_tokens, top_k"),
        (QRHeadRerank, {"scorer": tiny_scorer, "top_n": -1}, "top_n"),
        (LICompressor, {"scorer": tiny_scorer, "keep_neighbors": -1}, "keep_neighbors"),
        (
            QRHeadRetriever,
            {"base_retriever": Empty(), "reranker": QRHeadReranker(scorer=tiny_scorer), "top_n": 0},
            "top_n",
        ),
    ]
    for component, options, field in cases:
        with pytest.raises(InvalidInputError, match=field) as raised:
            component(**options)
        assert component.__name__ in str(raised.value)


_SCORES = st.lists(st.integers(min_value=0, max_value=4).map(float), min_size=2, max_size=25)


@given(data=st.data(), x=_SCORES)
def test_kendall_tau_is_a_bounded_symmetric_correlation(data: st.DataObject, x: list[float]) -> None:
    """tau-b lies in [-1, 1], is symmetric, flips sign with one list reversed in value, and is 1 on itself;
    the first-stage trust it drives stays in [0, 1]."""
    from qrhead_integrations.fusion import Fusion, first_stage_trust, kendall_tau

    y = data.draw(st.lists(st.integers(min_value=0, max_value=4).map(float), min_size=len(x), max_size=len(x)))
    tau = kendall_tau(x, y)
    assert tau == kendall_tau(y, x)
    if tau is None:
        assert len(set(x)) == 1 or len(set(y)) == 1
    else:
        assert -1.0 - 1e-12 <= tau <= 1.0 + 1e-12
        assert kendall_tau(x, [-v for v in y]) == pytest.approx(-tau)
    if len(set(x)) > 1:
        assert kendall_tau(x, x) == pytest.approx(1.0)
    for agreement in (0.0, 0.2, 1.0):
        assert 0.0 <= first_stage_trust(Fusion(weight=0.3, agreement=agreement), x, y) <= 1.0


_REALS = st.integers(min_value=-1000, max_value=1000).map(lambda v: v / 10)  # no subnormal spreads


@given(
    data=st.data(),
    qrhead=st.lists(_REALS, min_size=2, max_size=20),
    scale=st.floats(min_value=0.01, max_value=100.0),
    shift=_REALS,
)
def test_score_fusion_ignores_each_signals_scale(
    data: st.DataObject, qrhead: list[float], scale: float, shift: float
) -> None:
    """The ``scores`` form z-scores each signal per query, so a positive affine change of any one signal (attention
    in another dtype, BM25 with other parameters, a retriever's cosine vs dot product) leaves the fusion unchanged."""
    from qrhead_integrations.fusion import Fusion, fuse_with_first_stage

    n = len(qrhead)
    bm25 = data.draw(st.lists(_REALS, min_size=n, max_size=n))
    first = data.draw(st.lists(_REALS, min_size=n, max_size=n))
    fusion = Fusion(weight=0.2, lexical=0.3, form="scores")
    base = fuse_with_first_stage(qrhead, fusion, first, bm25)
    moved = fuse_with_first_stage(
        [scale * v + shift for v in qrhead],
        fusion,
        [scale * v - shift for v in first],
        [scale * v + shift for v in bm25],
    )
    assert all(math.isfinite(v) for v in base)
    assert moved == pytest.approx(base, abs=1e-6)
