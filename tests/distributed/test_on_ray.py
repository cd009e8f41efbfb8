"""Batch re-ranking and head detection on a local Ray session started by this module (tiny random model).

One ``ray.init`` for the whole module: 2 CPUs, a 100 MB object store, its own temp dir, no dashboard.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from qrhead_integrations import InvalidInputError, QRHeadScorer  # noqa: E402
from qrhead_integrations.cli import app  # noqa: E402
from qrhead_integrations.detect import detect_heads, score_heads  # noqa: E402
from qrhead_integrations.distributed import (  # noqa: E402
    detect_heads_distributed,
    rerank_dataset,
    score_heads_distributed,
)
from tests.workers import ray_lock  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

HEADS = "1-0,2-3,2-1"
ROWS: list[dict[str, Any]] = [
    {
        "id": 0,
        "query": "Where is Paris?",
        "passages": [
            {"title": "France", "text": "Paris is the capital of France."},
            {"title": "", "text": "The moon orbits the earth."},
            {"title": "Pets", "text": "Cats and dogs are animals."},
        ],
    },
    {"id": 1, "query": "", "passages": [{"title": "", "text": "Water boils at one hundred degrees."}]},
    {
        "id": 2,
        "query": "What is a star?",
        "passages": [
            {"title": "", "text": "The quick brown fox jumps."},
            {"title": "Sun", "text": "The sun is a star."},
            {"title": "", "text": ""},
        ],
    },
    {"id": 3, "query": "Who wrote Hamlet?", "passages": [{"title": "Play", "text": None}]},
    {
        "id": 4,
        "query": "What boils?",
        "passages": [
            {"title": "", "text": "Water boils at one hundred degrees."},
            {"title": "", "text": "Hamlet is a play."},
        ],
    },
]
BAD = {1: "EmptyQueryError", 3: "PassageTypeError"}


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Ray for the module, torn down at the end (holding the test workers' Ray lock meanwhile)."""
    with ray_lock(tmp_path_factory):
        yield from _local_ray()


def _local_ray() -> Iterator[Any]:
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp_dir = tempfile.mkdtemp(prefix="qrray")  # short: Ray's socket paths must stay under ~107 characters
    ray.init(
        num_cpus=2,
        object_store_memory=100 * 1024 * 1024,
        _temp_dir=temp_dir,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if previous is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = previous


@pytest.fixture(scope="module")
def local_scorer(saved_tiny_model: Path) -> QRHeadScorer:
    """The single-process reference: the same folder and heads, in this process."""
    return QRHeadScorer.from_pretrained(saved_tiny_model, heads=HEADS)


def _check_rows(results: list[dict[str, Any]], scorer: QRHeadScorer, top_n: int | None = None) -> None:
    """Every good row equals the single-process scorer's ranking; every bad row carries its error."""
    by_id = {row["id"]: row for row in results}
    assert sorted(by_id) == [row["id"] for row in ROWS]
    for row in ROWS:
        got = by_id[row["id"]]
        if row["id"] in BAD:
            assert got["scores"] is None and got["ranking"] is None
            assert got["error"].startswith(BAD[row["id"]])
            continue
        expected = scorer.rank(row["query"], row["passages"])
        scores = [float("-inf") if s is None else s for s in got["scores"]]  # JSON Lines carry -inf as null
        want = [0.0] * len(expected)
        for item in expected:
            want[item.index] = item.score
        np.testing.assert_allclose(scores, want, atol=1e-5, rtol=0)
        assert got["ranking"] == [item.index for item in expected][:top_n]
        assert got["error"] is None
        assert got["query"] == row["query"]  # other columns pass through


def test_rerank_equals_the_single_process_scorer_and_bad_rows_get_errors(
    ray_session: Any, saved_tiny_model: Path, local_scorer: QRHeadScorer
) -> None:
    results = rerank_dataset(
        ray_session.data.from_items(ROWS), model=saved_tiny_model, heads=HEADS, batch_size=2
    ).take_all()
    _check_rows(results, local_scorer)


def test_a_missing_column_fails_before_any_worker_starts(ray_session: Any, saved_tiny_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="no column 'question'"):
        rerank_dataset(ray_session.data.from_items(ROWS), model=saved_tiny_model, query_column="question")


def test_two_workers_from_a_jsonl_file_to_one_parquet_file(
    ray_session: Any, saved_tiny_model: Path, local_scorer: QRHeadScorer, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    output = tmp_path / "out" / "ranked.parquet"
    written = rerank_dataset(
        source, model=saved_tiny_model, heads=HEADS, num_workers=2, batch_size=1, top_n=1, output=output
    )
    rows = pq.read_table(output).to_pylist()
    assert [row["id"] for row in rows] == [row["id"] for row in ROWS]  # a path input keeps its order
    _check_rows(rows, local_scorer, top_n=1)
    assert written.count() == len(ROWS)
    assert [p.name for p in output.parent.iterdir()] == ["ranked.parquet"]  # no temporary file left behind


def test_cli_batch_writes_the_output_file(
    ray_session: Any, saved_tiny_model: Path, local_scorer: QRHeadScorer, tmp_path: Path
) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text(
        "".join(json.dumps({"qid": r["id"], "question": r["query"], "docs": r["passages"]}) + "\n" for r in ROWS),
        encoding="utf-8",
    )
    output = tmp_path / "ranked.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "batch",
            str(source),
            "--output",
            str(output),
            "--model",
            str(saved_tiny_model),
            "--heads",
            HEADS,
            "--workers",
            "1",
            "--query-column",
            "question",
            "--passages-column",
            "docs",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5 rows" in result.output and "2 with errors" in result.output
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    renamed = [{"id": r["qid"], "query": r["question"], **r} for r in lines]
    _check_rows(renamed, local_scorer)


def test_cli_batch_prints_only_its_summary_unless_verbose(
    ray_session: Any, saved_tiny_model: Path, tmp_path: Path
) -> None:
    """Redirected to a file, ``qrhead batch`` writes its summary and nothing of Ray's: no INFO lines, no progress
    logged line by line, no C++ core lines (the ``E`` one about actor restarts); ``--verbose`` shows Ray's detail.

    Run as a user runs it (its own process, output to a file), on this module's Ray cluster (``--address``)."""
    import subprocess
    import sys

    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    address = ray_session.get_runtime_context().gcs_address
    root = Path(__file__).resolve().parents[2]

    def run(*extra: str) -> list[str]:
        output, log = tmp_path / f"ranked{len(extra)}.jsonl", tmp_path / f"log{len(extra)}.txt"
        command = [sys.executable, "-m", "qrhead_integrations.cli", "batch", str(source), "--output", str(output)]
        command += ["--model", str(saved_tiny_model), "--heads", HEADS, "--address", address, *extra]
        with log.open("w") as handle:
            done = subprocess.run(command, cwd=root, stdout=handle, stderr=subprocess.STDOUT, timeout=600, check=False)
        lines = log.read_text(encoding="utf-8").splitlines()
        assert done.returncode == 0, lines
        return lines

    quiet = run()
    assert len(quiet) == 1 and quiet[0].startswith("5 rows, 2 with errors, written to"), quiet
    verbose = run("--verbose")
    assert any("\tINFO " in line for line in verbose), verbose  # Ray's own lines, as Ray prints them
    assert verbose[-1].startswith("5 rows, 2 with errors")


def test_a_jsonl_file_with_bad_lines_and_mixed_passage_shapes_finishes_with_one_error_row_per_bad_line(
    ray_session: Any, saved_tiny_model: Path, local_scorer: QRHeadScorer, tmp_path: Path
) -> None:
    # Ray's JSON reader would die on line 2 (or on the mixed shapes); every line here must become one row.
    good = [
        {"id": "strings", "query": "Where is Paris?", "passages": ["Paris is in France.", "The moon is far."]},
        {"id": "objects", "query": "What is a star?", "passages": [{"title": "Sun", "text": "The sun is a star."}]},
        {"id": "pairs", "query": "What boils?", "passages": [["Water", "Water boils."], ["Cats", "Cats purr."]]},
    ]
    lines = [
        json.dumps(good[0]),
        '{"id": "broken", "query": "no closing brace"',
        json.dumps(good[1]),
        json.dumps({"id": "numbers", "query": "Any?", "passages": [1, 2]}),
        "",
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "no-query", "passages": ["text"], "extra": {"nested": True}}),
        json.dumps(good[2]),
    ]
    source = tmp_path / "rows.jsonl"
    source.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + b'{"id": "latin1", "query": "caf\xe9"}\n')
    output = tmp_path / "ranked.jsonl"
    result = CliRunner().invoke(
        app, ["batch", str(source), "--output", str(output), "--model", str(saved_tiny_model), "--heads", HEADS]
    )
    assert result.exit_code == 0, result.output
    assert "8 rows, 5 with errors" in result.output  # line 5 is blank: not a row
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8 and all("_qrhead_input_error" not in row for row in rows)
    errors = [row["error"] for row in rows]
    assert [errors[i] for i in (0, 2, 6)] == [None, None, None]
    assert errors[1].startswith("DataFormatError:") and f"{source}:2: not JSON" in errors[1]
    assert errors[3].startswith("PassageTypeError:") and f"{source}:4: passage 0 is int" in errors[3]
    assert errors[4].startswith("DataFormatError:") and f"{source}:6: a row must be a JSON object" in errors[4]
    assert errors[5].startswith("InvalidInputError:") and f"{source}:7: 'query' must be a string" in errors[5]
    assert errors[7].startswith("DataFormatError:") and f"{source}:9: not UTF-8" in errors[7]
    for got, row in zip([rows[0], rows[2], rows[6]], good, strict=True):
        expected = local_scorer.rank(row["query"], row["passages"])
        by_index = {item.index: item.score for item in expected}
        assert got["id"] == row["id"] and got["ranking"] == [item.index for item in expected]
        np.testing.assert_allclose(got["scores"], [by_index[k] for k in range(len(expected))], atol=1e-5, rtol=0)
    assert rows[5]["extra"] == {"nested": True}  # other fields pass through, bad rows included


def test_an_output_path_that_is_a_folder_fails_before_ray_reads_anything(
    saved_tiny_model: Path, tmp_path: Path
) -> None:
    from qrhead_integrations.errors import OutputPathError

    (tmp_path / "taken.jsonl").mkdir()
    with pytest.raises(OutputPathError, match="is a directory"):
        rerank_dataset(tmp_path / "missing.jsonl", model=saved_tiny_model, output=tmp_path / "taken.jsonl")


@dataclass
class _Example:
    question: str
    passages: list[Any]
    gold: list[int]


def _examples() -> list[_Example]:
    texts = [
        "Paris is the capital of France.",
        "The moon orbits the earth.",
        "The sun is a star.",
        "Water boils at one hundred degrees.",
        "Cats and dogs are animals.",
        "Hamlet is a play.",
    ]
    questions = ["Where is Paris?", "What is a star?", "What boils?", "Who wrote Hamlet?", "Is a cat an animal?"]
    gold = [[0], [2], [3], [5], [4, 1]]
    examples = [
        _Example(q, [{"title": f"T{i}", "text": t} for i, t in enumerate(texts)], g)
        for q, g in zip(questions, gold, strict=True)
    ]
    examples.append(_Example("Skipped?", ["", "The moon orbits the earth."], [0]))  # empty gold: skipped
    return examples


def test_distributed_detection_equals_score_heads(ray_session: Any, saved_tiny_model: Path) -> None:
    examples = _examples()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = score_heads_distributed(examples, model=saved_tiny_model, seed=3, num_workers=2, batch_size=1)
    assert any("1 examples skipped" in str(w.message) for w in caught)
    reference = QRHeadScorer.from_pretrained(saved_tiny_model, heads="all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = score_heads(reference, examples, seed=3)
        expected_set = detect_heads(reference, examples, seed=3, top_k=5)
    np.testing.assert_allclose(table.scores, expected.scores, atol=1e-6, rtol=0)
    assert (table.method, table.examples) == (expected.method, expected.examples) == ("qr_score", 5)
    assert table.provenance == expected.provenance
    assert table.top(5).heads == expected_set.heads
    np.testing.assert_allclose(table.top(5).scores, expected_set.scores, atol=1e-6, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        distributed_set = detect_heads_distributed(
            examples[:3], model=saved_tiny_model, method="ndcg", seed=1, top_k=4, num_workers=1
        )
        ndcg = score_heads(reference, examples[:3], method="ndcg", seed=1)
    np.testing.assert_allclose(distributed_set.scores, ndcg.top(4).scores, atol=1e-6, rtol=0)
    assert distributed_set.heads == ndcg.top(4).heads
