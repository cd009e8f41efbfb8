"""Property suite over TYPES and SIZES: every public entry point, given arbitrary Python values, either works or
raises a ``qrhead_integrations`` error that names the argument — never another exception.

Where ``tests/test_properties.py`` generates hostile *strings*, this suite generates hostile *values* for one
argument at a time (the others valid): ``None``, ``bool``, huge ints, NaN/inf floats, ``bytes``, numpy scalars and
arrays, ``Fraction``/``Decimal``/``complex``, arbitrary objects, nested lists/tuples/dicts and generators; and
*sizes* simulated by planning only (thousands of passages, 100,000-character texts and titles, long queries),
checking that every planned forward fits the context and every passage its cut.

Derandomised, with a fixed example count per entry point (``QRHEAD_TYPE_EXAMPLES`` raises it), so a CI run takes
the same time and tries the same inputs; the last test prints and checks the figure (inputs tried, untyped 0).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qrhead_integrations import ContextCompressor, HeadSet, Passage, QRHeadScorer
from qrhead_integrations.errors import QRHeadError
from qrhead_integrations.plan import Workload

EXAMPLES = int(os.environ.get("QRHEAD_TYPE_EXAMPLES", "60"))
TYPES = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
FEW = settings(TYPES, max_examples=max(4, EXAMPLES // 4))
"""For entry points that load a model per call (the CLI) or tokenise 100,000-character texts (sizes)."""

TRIED: Counter[str] = Counter()
"""Inputs tried per entry point (each example counts once)."""
UNTYPED: list[str] = []
"""Escapes of any other exception type (each also fails its test)."""


def _generator(items: list[Any]) -> Iterator[Any]:
    return (item for item in items)


ODD = [
    np.int64(2),
    np.int32(-1),
    np.uint8(3),
    np.float32(0.5),
    np.float64("nan"),
    np.bool_(True),
    math.inf,
    -math.inf,
    math.nan,
    1j,
    Fraction(1, 3),
    Decimal("1.5"),
    Decimal("NaN"),
    object(),
    Ellipsis,
    2**70,
    -(2**70),
    "",
    " ",
    "0-0",
    "1-0,2-3",
    "default",
    "all",
    "\udfff",
]
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.floats(),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    st.binary(max_size=8),
    st.sampled_from(ODD),
)
ANY = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 3)), inner, max_size=3),
        st.lists(inner, max_size=3).map(_generator),
        st.lists(st.floats(width=32), max_size=3).map(np.array),
    ),
    max_leaves=6,
)
"""Any Python value: what a determined user may pass for any argument."""


def attempt(entry: str, call: Callable[[], Any], names: tuple[str, ...]) -> Any:
    """``call()``; a ``QRHeadError`` must name one of ``names`` (the argument); any other exception is recorded."""
    TRIED[entry] += 1
    try:
        return call()
    except QRHeadError as exc:
        assert any(name.lower() in str(exc).lower() for name in names), f"{entry}: {exc!r} names none of {names}"
        return None
    except BaseException as exc:
        UNTYPED.append(f"{entry}: {type(exc).__name__}: {exc}")
        raise


def _one_hostile(data: st.DataObject, valid: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The valid arguments with one of them (drawn) replaced by an arbitrary value."""
    which = data.draw(st.sampled_from(sorted(valid)), label="argument")
    value = data.draw(ANY, label=which)
    return which, {**valid, which: value}


NAMES = {
    "query": ("query",),
    "passages": ("passage",),
    "top_n": ("top_n",),
    "first_stage_scores": ("first_stage_scores",),
    "fusion": ("fusion",),
    "rows": ("row",),
    "rows_per_forward": ("rows_per_forward",),
    "documents": ("document",),
    "heads": ("head",),
}


# ------------------------------------------------------------------------------------------------ the scorer
@TYPES
@given(data=st.data())
def test_scorer_rank(tiny_scorer: QRHeadScorer, data: st.DataObject) -> None:
    valid = {"query": "moon?", "passages": ["the moon", "a fox"], "top_n": None, "first_stage_scores": None}
    which, kwargs = _one_hostile(data, {**valid, "fusion": "default"})
    ranked = attempt("QRHeadScorer.rank", lambda: tiny_scorer.rank(**kwargs), NAMES[which])
    if ranked is not None:
        assert all(math.isfinite(r.score) or r.score == -math.inf for r in ranked)


@TYPES
@given(data=st.data())
def test_scorer_score(tiny_scorer: QRHeadScorer, data: st.DataObject) -> None:
    which, kwargs = _one_hostile(data, {"query": "moon?", "passages": ["the moon", ("Title", "text")]})
    attempt("QRHeadScorer.score", lambda: tiny_scorer.score(**kwargs), NAMES[which])


@TYPES
@given(data=st.data())
def test_scorer_rank_batch(tiny_scorer: QRHeadScorer, data: st.DataObject) -> None:
    valid = {"rows": [("moon?", ["the moon", "a fox"])], "top_n": 1, "rows_per_forward": None}
    which, kwargs = _one_hostile(data, {**valid, "first_stage_scores": None})
    attempt("QRHeadScorer.rank_batch", lambda: tiny_scorer.rank_batch(**kwargs), NAMES[which])


@TYPES
@given(data=st.data())
def test_reader_answer(tiny_scorer: QRHeadScorer, data: st.DataObject) -> None:
    from qrhead_integrations.reader import Reader

    reader = Reader.from_scorer(tiny_scorer, max_new_tokens=2)
    which, kwargs = _one_hostile(data, {"question": "moon?", "context": "The moon orbits the earth."})
    names = {"question": ("query", "question"), "context": ("context",)}[which]
    answer = attempt("Reader.answer", lambda: reader.answer(**kwargs), names)
    if answer is not None:
        assert isinstance(answer.text, str) and answer.input_tokens > 0


@TYPES
@given(option=st.sampled_from(["max_new_tokens", "instruction", "closed_book_instruction"]), value=ANY)
def test_reader_options(tiny_scorer: QRHeadScorer, option: str, value: Any) -> None:
    from qrhead_integrations.reader import Reader

    attempt("Reader()", lambda: Reader.from_scorer(tiny_scorer, **{option: value}), (option,))


CONFIG_FIELDS = ["order", "seed", "debias", "max_passage_tokens", "max_length", "layout", "show_progress", "fusion"]


@TYPES
@given(field=st.sampled_from([*CONFIG_FIELDS, "calibrate", "outlier_filter", "query_part"]), value=ANY)
def test_scorer_config_fields(tiny_scorer: QRHeadScorer, field: str, value: Any) -> None:
    attempt("ScorerConfig / with_config", lambda: tiny_scorer.with_config(**{field: value}), (field,))


@TYPES
@given(spec=ANY)
def test_head_specs(tiny_scorer: QRHeadScorer, spec: Any) -> None:
    attempt("heads=", lambda: tiny_scorer.with_heads(spec), ("head",))


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)


@TYPES
@given(
    content=st.one_of(
        st.fixed_dictionaries({"heads": JSON}, optional={"scores": JSON, "provenance": JSON}).map(json.dumps),
        JSON.map(json.dumps),
        st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    )
)
def test_head_set_files(tmp_path_factory: pytest.TempPathFactory, content: str) -> None:
    path = tmp_path_factory.mktemp("heads") / "heads.json"
    path.write_bytes(content.encode("latin-1", "replace") if not content.isascii() else content.encode())
    heads = attempt("HeadSet.load", lambda: HeadSet.load(path), (str(path),))
    assert heads is None or all(type(x) is int for pair in heads for x in pair)


# -------------------------------------------------------------------------------------------- the compressor
COMPRESSOR_OPTIONS = ["budget_tokens", "top_k", "token_counter", "max_chunk_tokens", "keep_neighbors", "min_score"]


@TYPES
@given(
    option=st.sampled_from([*COMPRESSOR_OPTIONS, "separator", "lexical", "show_progress", "scorer"]),
    value=ANY,
)
def test_compressor_options(tiny_scorer: QRHeadScorer, option: str, value: Any) -> None:
    options = {"scorer": tiny_scorer, option: value}
    names = (option, "counter") if option == "token_counter" else (option,)
    attempt("ContextCompressor()", lambda: ContextCompressor(**options), names)


@TYPES
@given(data=st.data())
def test_compressor_compress(tiny_scorer: QRHeadScorer, data: st.DataObject) -> None:
    compressor = ContextCompressor(tiny_scorer, budget_tokens=30, max_chunk_tokens=16)
    which, kwargs = _one_hostile(data, {"query": "moon?", "documents": "The moon.\n\nA fox jumps."})
    result = attempt("ContextCompressor.compress", lambda: compressor.compress(**kwargs), NAMES[which])
    assert result is None or result.kept_tokens <= 30


# ---------------------------------------------------------------------------------------------- the adapters
@TYPES
@given(option=st.sampled_from(["top_n", "score_threshold", "relevance_score_key", "title_key", "fusion"]), value=ANY)
def test_langchain_reranker_options_and_call(tiny_scorer: QRHeadScorer, option: str, value: Any) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from qrhead_integrations.langchain import QRHeadReranker

    built = attempt("QRHeadReranker()", lambda: QRHeadReranker(scorer=tiny_scorer, **{option: value}), (option,))
    if built is not None:
        documents = [Document(page_content="the moon", metadata={"title": value if option == "title_key" else 1})]
        attempt("QRHeadReranker.rerank", lambda: built.rerank(documents, "moon?"), (option, "title"))


@TYPES
@given(data=st.data())
def test_langchain_reranker_calls(tiny_scorer: QRHeadScorer, data: st.DataObject) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from qrhead_integrations.langchain import QRHeadReranker

    reranker = QRHeadReranker(scorer=tiny_scorer, top_n=None)
    documents = [Document(page_content="the moon"), Document(page_content="a fox")]
    which, kwargs = _one_hostile(data, {"documents": documents, "query": "moon?", "top_n": 1})
    attempt("QRHeadReranker.rerank", lambda: reranker.rerank(**kwargs), NAMES[which])
    rows = data.draw(st.one_of(ANY, st.lists(st.tuples(st.just(documents), ANY), max_size=2)), label="rows")
    attempt("QRHeadReranker.rerank_many", lambda: reranker.rerank_many(rows), ("row", "quer", "document"))


@TYPES
@given(
    component=st.sampled_from(["lc-compressor", "li-rerank", "li-compressor", "lc-retriever"]),
    option=st.sampled_from(["top_n", "budget_tokens", "top_k", "max_chunk_tokens", "fusion", "lexical", "heads", "x"]),
    value=ANY,
)
def test_adapter_constructors(tiny_scorer: QRHeadScorer, component: str, option: str, value: Any) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from qrhead_integrations.langchain import QRHeadContextCompressor as LCCompressor
    from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
    from qrhead_integrations.llama_index import QRHeadContextCompressor as LICompressor
    from qrhead_integrations.llama_index import QRHeadRerank

    def build() -> Any:
        if component == "lc-retriever":
            return QRHeadRetriever(base_retriever=value, reranker=QRHeadReranker(scorer=tiny_scorer))
        kind = {"lc-compressor": LCCompressor, "li-rerank": QRHeadRerank, "li-compressor": LICompressor}[component]
        return kind(scorer=tiny_scorer, **{option: value})

    names = ("base_retriever",) if component == "lc-retriever" else (option, "scorer")
    attempt(f"{component} constructor", build, names)


@TYPES
@given(data=st.data())
def test_llama_index_rerank_calls(tiny_scorer: QRHeadScorer, data: st.DataObject) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from qrhead_integrations.llama_index import QRHeadRerank

    rerank = QRHeadRerank(scorer=tiny_scorer, top_n=None)
    nodes = [NodeWithScore(node=TextNode(text="the moon"), score=0.5), NodeWithScore(node=TextNode(text="a fox"))]
    which, kwargs = _one_hostile(data, {"nodes": nodes, "query_str": "moon?"})
    names = ("node",) if which == "nodes" else ("query",)
    try:
        attempt("QRHeadRerank.postprocess_nodes", lambda: rerank.postprocess_nodes(**kwargs), names)
    except ValueError as exc:  # LlamaIndex's own contract for a missing query, kept by the adapter
        UNTYPED.pop()
        assert "query" in str(exc).lower() and which == "query_str"


# ----------------------------------------------------------------------------------------- the CLI and batch
@FEW
@given(
    option=st.sampled_from(["--top-n", "--heads", "--dtype", "--quantize", "--device"]),
    value=st.one_of(st.sampled_from(["x", "-1", "2.5", "nan", "1e9", "0", "bogus.json", "99-99", ""]), st.text()),
)
def test_cli_rank(saved_tiny_model: Path, option: str, value: str) -> None:
    from qrhead_integrations.cli import app

    args = ["rank", "-q", "moon?", "-m", str(saved_tiny_model), "--heads", "1-0", "--json", option, value]
    TRIED["qrhead rank"] += 1
    result = CliRunner().invoke(app, args, input="the moon\na fox\n")
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


@FEW
@given(
    command=st.sampled_from(["batch", "detect", "eval"]),
    option=st.sampled_from(["--top-n", "--workers", "--batch-size", "--limit", "--examples", "--max-layer"]),
    value=st.sampled_from(["x", "-1", "2.5", "nan", "", "\x00"]),
)
def test_cli_commands_refuse_bad_option_values_before_any_work(command: str, option: str, value: str) -> None:
    from qrhead_integrations.cli import app

    args = {"batch": ["batch", "in.jsonl", "-o", "out.jsonl"], "detect": ["detect", "in.jsonl"]}.get(
        command, ["eval", "multihop", "in.jsonl"]
    )
    TRIED[f"qrhead {command}"] += 1
    result = CliRunner().invoke(app, [*args, option, value])
    assert result.exit_code == 2, result.output  # refused by option parsing or as missing input, never run
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


@TYPES
@given(
    lines=st.lists(
        st.one_of(JSON.map(json.dumps), st.fixed_dictionaries({"query": JSON, "passages": JSON}).map(json.dumps)),
        min_size=1,
        max_size=5,
    )
)
def test_batch_reader(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    pytest.importorskip("pyarrow")
    from qrhead_integrations.distributed.jsonl import INPUT_ERROR, read_json_rows

    path = tmp_path_factory.mktemp("rows") / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = attempt("batch reader", lambda: read_json_rows([path], "query", "passages"), ("column",))
    if table is not None:
        assert table.num_rows == len(lines)
        assert all(e is None or e.split(":", 1)[0].endswith("Error") for e in table.column(INPUT_ERROR).to_pylist())


# ------------------------------------------------------------------------------------------------------ sizes
@FEW
@given(
    count=st.sampled_from([1, 50, 2_000]),
    text_chars=st.sampled_from([0, 10, 5_000, 100_000]),
    title_chars=st.sampled_from([0, 10, 100_000]),
    query_words=st.sampled_from([1, 300]),
    cap=st.sampled_from([None, 1, 128]),
)
def test_sizes_are_bounded_by_planning(
    tiny_scorer: QRHeadScorer, count: int, text_chars: int, title_chars: int, query_words: int, cap: int | None
) -> None:
    """Any size plans forwards that fit the context, each passage within its cut; nothing runs."""
    scorer = tiny_scorer.with_config(max_passage_tokens=cap)
    sizes = [(text_chars, title_chars)] + [(10, 0)] * (count - 1)  # one passage of the drawn size
    passages = [Passage(text="ab " * (t // 3), title="Title " * (h // 6)) for t, h in sizes]
    TRIED["planning sizes"] += 1
    try:
        with warnings.catch_warnings():  # a passage longer than the context warns that it is cut
            warnings.simplefilter("ignore")
            planned = scorer.planner.plan_row(0, ["why " * query_words], passages, uncut=False)
    except QRHeadError as exc:
        assert "query" in str(exc)
        return
    if planned is None:  # nothing to score: every passage empty
        assert all(p.is_empty for p in passages)
        return
    work = Workload.of(planned.units)
    assert all(length <= scorer.context_length for length in work.lengths)
    for unit in planned.units:  # each passage within its cut: text to the cap, title to half of it
        room = len(unit.window) * (cap + cap // 2 + 12) if cap is not None else scorer.context_length
        assert len(unit.encoded.prefix_ids) <= 200 + room


def test_zz_the_figure_inputs_tried_and_none_untyped(capsys: pytest.CaptureFixture[str]) -> None:
    """Printed for docs/reliability.md; runs last in this file."""
    if not TRIED:
        pytest.skip("no property test of this file ran")
    with capsys.disabled():
        print(
            f"\ntype/size properties: {sum(TRIED.values())} inputs tried over {len(TRIED)} entry points, "
            f"{len(UNTYPED)} untyped; {dict(TRIED)}"
        )
    assert not UNTYPED, UNTYPED
