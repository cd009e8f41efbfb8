"""Regression tests for values of the wrong *type* at the public entry points: a package error naming the argument.

Each case escaped as a bare ``TypeError``/``ValueError``/``UnicodeDecodeError`` from deep inside, or was silently
read as something else (``(0.7, 1)`` as layer 0, an infinite first-stage score as no score at all).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qrhead_integrations import ContextCompressor, HeadSet, QRHeadScorer, ScorerConfig
from qrhead_integrations.errors import (
    HeadSpecError,
    InvalidInputError,
    OptionTypeError,
    PassageTypeError,
    QRHeadError,
    UnencodableTextError,
)
from qrhead_integrations.fusion import as_fusion_setting


@pytest.mark.parametrize("spec", [b"0-0", [5], [("a", "b")], [(0.7, 1)], (True, 0), [(True, 0)], [None], [(1, 2, 3)]])
def test_head_specs_of_the_wrong_type_are_head_spec_errors(tiny_scorer: QRHeadScorer, spec: Any) -> None:
    with pytest.raises(HeadSpecError, match="head"):
        tiny_scorer.with_heads(spec)


def test_numpy_ints_are_heads_and_are_stored_as_ints(tiny_scorer: QRHeadScorer) -> None:
    heads = tiny_scorer.with_heads([(np.int64(1), np.int32(2))]).heads
    assert heads.heads == ((1, 2),) and type(heads.heads[0][0]) is int


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"heads": [[0, 0]] \xff}', "not UTF-8"),
        (b'{"heads": [["a", 0]]}', "not a \\(layer, head\\) pair"),
        (b'{"heads": [[0.5, 0]]}', "not a \\(layer, head\\) pair"),
        (b'{"heads": [[true, 0]]}', "not a \\(layer, head\\) pair"),
        (b'{"heads": 5}', "heads must be a list"),
        (b'{"heads": "0-0", "scores": "high"}', "'scores' must be a list"),
        (b'{"heads": "0-0", "scores": ["x"]}', "'scores'\\[0\\] must be a finite number"),
        (b'{"heads": "0-0", "provenance": 3}', "'provenance' must be an object"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_head_set_json_with_bad_bytes_or_field_types_is_a_head_spec_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "heads.json"
    path.write_bytes(content)
    with pytest.raises(HeadSpecError, match=message) as raised:
        HeadSet.load(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "scores",
    [["x", "y"], [None, 1.0], [math.inf, 1.0], [-math.inf, 1.0], [math.nan, 1.0], "ab", 5, [b"1", 2.0], [[1], 2.0]],
)
def test_bad_first_stage_scores_are_refused_before_the_model_runs(tiny_scorer: QRHeadScorer, scores: Any) -> None:
    calls: list[int] = []
    original = tiny_scorer.score
    tiny_scorer.score = lambda *a, **k: calls.append(1) or original(*a, **k)  # type: ignore[method-assign]
    try:
        with pytest.raises(InvalidInputError, match="first_stage_scores") as raised:
            tiny_scorer.rank("q", ["a b", "c d"], first_stage_scores=scores)
    finally:
        del tiny_scorer.score  # type: ignore[method-assign]
    assert not calls
    if isinstance(scores, list) and isinstance(scores[0], float) and math.isnan(scores[0]):
        assert "first-stage score" in str(raised.value)


def test_first_stage_scores_may_be_any_iterable_of_numbers(tiny_scorer: QRHeadScorer) -> None:
    listed = tiny_scorer.rank("q", ["a b", "c d"], first_stage_scores=[1.0, 2.0])
    generated = tiny_scorer.rank("q", ["a b", "c d"], first_stage_scores=(x for x in [1.0, 2.0]))
    as_array = tiny_scorer.rank("q", ["a b", "c d"], first_stage_scores=np.array([1.0, 2.0], dtype=np.float32))
    assert [r.index for r in listed] == [r.index for r in generated] == [r.index for r in as_array]


def test_rank_batch_names_the_row_of_bad_first_stage_scores(tiny_scorer: QRHeadScorer) -> None:
    rows = [("q", ["a", "b"]), ("r", ["c"])]
    with pytest.raises(InvalidInputError, match=r"row 1: first_stage_scores\[0\]"):
        tiny_scorer.rank_batch(rows, first_stage_scores=[None, [math.nan]])
    with pytest.raises(InvalidInputError, match="first_stage_scores must be one list"):
        tiny_scorer.rank_batch(rows, first_stage_scores=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"max_passage_tokens": "10"}, "max_passage_tokens"),
        ({"max_passage_tokens": 2.5}, "max_passage_tokens"),
        ({"fusion": {"bogus": 1}}, "fusion"),
        ({"fusion": {1: 0.5}}, "fusion"),
        ({"seed": "x"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"debias": "yes"}, "debias"),
        ({"show_progress": None}, "show_progress"),
        ({"layout": 5}, "layout"),
        ({"order": None}, "order"),
    ],
)
def test_scorer_config_fields_of_the_wrong_type_name_the_field(fields: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidInputError, match=name):
        ScorerConfig(**fields)


def test_unknown_scorer_options_are_a_package_type_error(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(OptionTypeError, match="bogus") as raised:
        tiny_scorer.with_config(bogus=1)
    assert isinstance(raised.value, TypeError)


def test_a_fusion_mapping_with_an_unknown_field_names_the_valid_ones(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(InvalidInputError, match=r"fusion: unknown field\(s\) \['bogus'\].*'weight'"):
        tiny_scorer.rank("q", ["a", "b"], fusion={"bogus": 1})
    assert as_fusion_setting(np.float32(0.25)).weight == pytest.approx(0.25)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"separator": None}, PassageTypeError, "separator"),
        ({"separator": "\n\udfff\n"}, UnencodableTextError, "separator"),
        ({"show_progress": "yes"}, InvalidInputError, "show_progress"),
        ({"lexical": "0.5"}, InvalidInputError, "lexical"),
    ],
)
def test_compressor_options_of_the_wrong_type(
    tiny_scorer: QRHeadScorer, options: dict[str, Any], error: type[QRHeadError], name: str
) -> None:
    with pytest.raises(error, match=name):
        ContextCompressor(tiny_scorer, **options)


def test_a_compressor_needs_a_scorer_and_a_list_of_queries(tiny_scorer: QRHeadScorer) -> None:
    with pytest.raises(OptionTypeError, match="scorer must be a QRHeadScorer"):
        ContextCompressor(None)  # type: ignore[arg-type]
    with pytest.raises(OptionTypeError, match="queries"):
        ContextCompressor(tiny_scorer).compress_many(None, "text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (None, "rows must be a list"),
        (5, "rows must be a list"),
        ("query", "rows must be a list"),
        ([("q",)], r"rows\[0\] must be a \(documents, query\) pair"),
        ([None], r"rows\[0\] must be"),
        ([([], "q", 1)], r"rows\[0\] must be"),
        ([("not documents", "q")], r"rows\[0\]: documents must be a list"),
        ([([], None)], r"rows\[0\]: the query must be a str"),
    ],
)
def test_langchain_rerank_many_names_the_bad_row(tiny_scorer: QRHeadScorer, rows: Any, match: str) -> None:
    pytest.importorskip("langchain_core")
    from qrhead_integrations.langchain import QRHeadReranker

    with pytest.raises(QRHeadError, match=match) as raised:
        QRHeadReranker(scorer=tiny_scorer).rerank_many(rows)
    assert isinstance(raised.value, TypeError | ValueError)


def test_a_device_that_is_no_device_or_absent_is_refused_naming_it() -> None:
    """Found by the type suite: ``--device x`` escaped as torch's ``RuntimeError`` (exit 1, a traceback)."""
    import torch

    from qrhead_integrations.models import resolve_device

    with pytest.raises(InvalidInputError, match="device must be"):
        resolve_device("x")
    with pytest.raises(InvalidInputError, match="device must be"):
        resolve_device(3.5)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="no cuda device"):
            resolve_device("cuda")


def test_token_counters_named_by_an_unknown_string_or_an_array_are_typed(tiny_scorer: QRHeadScorer) -> None:
    """Found by the type suite: ``token_counter=""`` did not name the option; an array raised numpy's ValueError."""
    from qrhead_integrations.errors import TokenCounterError

    with pytest.raises(TokenCounterError, match="token counter"):
        ContextCompressor(tiny_scorer, token_counter="")
    with pytest.raises(TokenCounterError, match="token counter"):
        ContextCompressor(tiny_scorer, token_counter=np.array([1.0]))  # type: ignore[arg-type]


def test_an_array_as_a_llama_index_loading_option_is_a_package_error(tiny_scorer: QRHeadScorer) -> None:
    """Found by the type suite: ``QRHeadRerank(scorer=..., heads=np.array([]))`` raised numpy's ``ValueError``."""
    pytest.importorskip("llama_index.core")
    from qrhead_integrations.llama_index import QRHeadRerank

    with pytest.raises(InvalidInputError, match="heads"):
        QRHeadRerank(scorer=tiny_scorer, heads=np.array([]))
