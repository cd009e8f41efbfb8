"""The contract every framework adapter keeps, run against all of them (tests/adapters/drivers.py drives each).

Adapters: LangChain ``QRHeadReranker`` and ``QRHeadContextCompressor`` (document compressors) and
``QRHeadRetriever``; LlamaIndex ``QRHeadRerank`` and ``QRHeadContextCompressor`` (node postprocessors). Each is
checked against the engine on the same inputs: a re-ranker returns what ``QRHeadScorer.rank`` ranks, a
compressor what ``ContextCompressor.compress`` keeps. Framework-specific behaviour (fusion settings, titles,
serialisation, thread-safe lazy loading, the event loop staying free, pipelines) stays in tests/langchain and
tests/llama_index.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from pathlib import Path
from typing import Any

import pytest

from qrhead_integrations import EmptyQueryError, PassageTypeError, QRHeadScorer
from tests.adapters.drivers import DRIVERS, QUERY, Driver, Item, sources

THRESHOLDED = [d for d in DRIVERS if d.threshold_options is not None]
EVENTFUL = [d for d in DRIVERS if d.record is not None]
SYNC_ASYNC = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


@pytest.fixture(params=DRIVERS, ids=str)
def driver(request: pytest.FixtureRequest) -> Driver:
    chosen: Driver = request.param
    return chosen


@pytest.fixture
def inputs(driver: Driver) -> list[Any]:
    """Fresh caller-owned documents or nodes (metadata with nested values) for each test."""
    return driver.make_inputs(sources())


def run(driver: Driver, component: Any, inputs: Any, query: str = QUERY, *, is_async: bool = False) -> list[Any]:
    if is_async:
        return list(asyncio.run(driver.acall(component, inputs, query)))
    return list(driver.call(component, inputs, query))


def lazy(driver: Driver, model: Path) -> Any:
    """The adapter set to load the saved tiny model on first use (nothing is loaded yet)."""
    component = driver.build(model=model, heads="1-0,2-3", device="cpu")
    assert not driver.loaded(component)
    return component


def compared(items: list[Item]) -> list[tuple[str, str]]:
    return [(item.id, item.text) for item in items]


def assert_same_as_engine(got: list[Item], expected: list[Item]) -> None:
    assert compared(got) == compared(expected)
    assert [item.score for item in got] == pytest.approx([item.score for item in expected], rel=1e-6)
    for mine, engine in zip(got, expected, strict=True):
        assert mine.details == pytest.approx(engine.details, rel=1e-6)


# ------------------------------------------------------------------------------------------------ the caller's objects
@SYNC_ASYNC
def test_caller_inputs_and_their_metadata_are_never_mutated(
    driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer, is_async: bool
) -> None:
    before = copy.deepcopy(inputs)
    items = list(inputs)
    objects = [list(driver.caller_objects(item)) for item in inputs]
    for options in (driver.all_options, driver.limit_options(2)):
        assert run(driver, driver.build(scorer=tiny_scorer, **options), inputs, is_async=is_async)
    assert inputs == before  # every field, nested metadata included
    assert all(a is b for a, b in zip(inputs, items, strict=True))  # the list itself is untouched
    assert [list(driver.caller_objects(item)) for item in inputs] == objects  # no field was replaced


def test_outputs_are_copies_the_caller_never_sees_changed(
    driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer
) -> None:
    out = run(driver, driver.build(scorer=tiny_scorer, **driver.all_options), inputs)
    assert len(out) == len(inputs)
    callers = {id(obj) for item in inputs for obj in driver.caller_objects(item)}
    for item in out:
        assert not any(id(obj) in callers for obj in driver.owned(item))
    before = copy.deepcopy(inputs)
    for item in out:
        driver.scribble(item)
    assert inputs == before


def test_nothing_is_dropped_and_metadata_is_kept_without_a_limit(
    driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer
) -> None:
    out = driver.read(run(driver, driver.build(scorer=tiny_scorer, **driver.all_options), inputs))
    by_id = {s.id: s for s in sources()}
    assert sorted(item.id for item in out) == sorted(by_id)  # each input exactly once
    for item in out:
        source = by_id[item.id]
        assert item.text == source.text  # nothing cut: every chunk of a compressed document is kept
        assert set(item.metadata) == set(source.metadata) | driver.added_keys  # the score keys it documents
        assert {k: v for k, v in item.metadata.items() if k not in driver.added_keys} == source.metadata


# ------------------------------------------------------------------------------------------------ scores and order
@pytest.mark.parametrize("limited", [False, True], ids=["all", "limit"])
def test_scores_and_order_are_the_engines(
    driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer, limited: bool
) -> None:
    options = driver.limit_options(2) if limited else driver.all_options
    got = driver.read(run(driver, driver.build(scorer=tiny_scorer, **options), inputs))
    expected = driver.expected(tiny_scorer, inputs, QUERY, options)
    assert_same_as_engine(got, expected)
    input_order = [s.id for s in sources()]
    if driver.kind == "reranker":
        assert all(a.score >= b.score for a, b in itertools.pairwise(got))  # best first
        assert [item.id for item in got] != input_order[: len(got)], "the ranking must differ from the input"
    else:
        kept = {item.id for item in got}
        assert [item.id for item in got] == [i for i in input_order if i in kept]  # input order
        assert limited == (len(got) < len(inputs))  # a limit drops whole documents that kept nothing


@pytest.mark.parametrize("n", [2, 50])
def test_a_limit_keeps_the_best_n(driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer, n: int) -> None:
    everything = run(driver, driver.build(scorer=tiny_scorer, **driver.limit_options(10_000)), inputs)
    out = run(driver, driver.build(scorer=tiny_scorer, **driver.limit_options(n)), inputs)
    total = driver.units(everything)
    assert total > 2
    assert driver.units(out) == min(n, total)
    if driver.kind == "reranker":  # the first n of the full ranking, with the same scores
        assert driver.read(out) == driver.read(everything)[:n]


@pytest.mark.parametrize("driver", THRESHOLDED, ids=str)
def test_a_threshold_keeps_exactly_what_reaches_it(
    driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer
) -> None:
    assert driver.threshold_options is not None
    reference = run(driver, driver.build(scorer=tiny_scorer, **driver.threshold_options(float("-inf"))), inputs)
    values = driver.thresholded(reference)
    threshold = sorted(values)[len(values) // 2]
    options = driver.threshold_options(threshold)
    out = run(driver, driver.build(scorer=tiny_scorer, **options), inputs)
    kept = driver.thresholded(out)
    assert 0 < len(kept) < len(values)
    assert sorted(kept) == pytest.approx(sorted(v for v in values if v >= threshold))
    assert_same_as_engine(driver.read(out), driver.expected(tiny_scorer, inputs, QUERY, options))


# ------------------------------------------------------------------------------------------------ async and events
@pytest.mark.parametrize("limited", [False, True], ids=["all", "limit"])
def test_async_returns_exactly_the_sync_result(
    driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer, limited: bool
) -> None:
    component = driver.build(scorer=tiny_scorer, **(driver.limit_options(2) if limited else driver.all_options))
    sync = driver.read(run(driver, component, inputs))
    asynchronous = driver.read(run(driver, component, inputs, is_async=True))
    assert sync
    assert [(item, item.metadata) for item in asynchronous] == [(item, item.metadata) for item in sync]


@pytest.mark.parametrize("driver", EVENTFUL, ids=str)
@SYNC_ASYNC
def test_events_report_the_call(driver: Driver, inputs: list[Any], tiny_scorer: QRHeadScorer, is_async: bool) -> None:
    assert driver.record is not None and driver.expected_events is not None
    component = driver.build(scorer=tiny_scorer, **driver.all_options)
    out, events = driver.record(component, inputs, QUERY, is_async)
    assert_same_as_engine(driver.read(out), driver.expected(tiny_scorer, inputs, QUERY, driver.all_options))
    assert events == driver.expected_events(out, inputs, QUERY, is_async)


# ------------------------------------------------------------------------------------------------ empty and bad input
@SYNC_ASYNC
def test_empty_input_returns_empty_and_loads_no_model(
    driver: Driver, tiny_scorer: QRHeadScorer, saved_tiny_model: Path, is_async: bool
) -> None:
    assert run(driver, driver.build(scorer=tiny_scorer), [], is_async=is_async) == []
    component = lazy(driver, saved_tiny_model)
    assert run(driver, component, [], is_async=is_async) == []
    assert not driver.loaded(component)


@SYNC_ASYNC
@pytest.mark.parametrize("query", ["", "   \n"], ids=["empty", "whitespace"])
def test_an_empty_query_raises_the_typed_error_before_the_model_loads(
    driver: Driver, inputs: list[Any], saved_tiny_model: Path, query: str, is_async: bool
) -> None:
    component = lazy(driver, saved_tiny_model)
    for candidates in (inputs, []):
        with pytest.raises(EmptyQueryError, match="query is empty"):
            run(driver, component, candidates, query, is_async=is_async)
    assert not driver.loaded(component)


@SYNC_ASYNC
def test_non_documents_raise_the_typed_error_before_the_model_loads(
    driver: Driver, saved_tiny_model: Path, is_async: bool
) -> None:
    component = lazy(driver, saved_tiny_model)
    for bad, message in driver.bad_inputs:
        with pytest.raises(PassageTypeError, match=message):
            run(driver, component, bad, is_async=is_async)
    assert not driver.loaded(component)


NONE_FOR_THE_LIST = [
    pytest.param(driver, is_async, id=f"{driver}-{'async' if is_async else 'sync'}")
    for driver in DRIVERS
    for is_async in (False, True)
]


@pytest.mark.parametrize(("driver", "is_async"), NONE_FOR_THE_LIST)
def test_none_for_the_list_raises_the_typed_error(driver: Driver, saved_tiny_model: Path, is_async: bool) -> None:
    component = lazy(driver, saved_tiny_model)
    with pytest.raises(PassageTypeError, match="must be a list of"):
        run(driver, component, None, is_async=is_async)
    assert not driver.loaded(component)


def test_fusion_is_set_in_one_place_not_also_in_scorer_kwargs(driver: Driver, saved_tiny_model: Path) -> None:
    """A component's fusion is its own option (``fusion``, or a compressor's ``lexical``); ``scorer_kwargs``
    cannot set a second, competing one — refused when the component is built, before any model loads."""
    from qrhead_integrations.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="scorer_kwargs cannot set fusion"):
        driver.build(model=saved_tiny_model, heads="1-0", scorer_kwargs={"fusion": None})
