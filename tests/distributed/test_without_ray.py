"""The distributed package without a Ray session: lazy import, the install hint, resources and file formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qrhead_integrations.distributed import session
from qrhead_integrations.distributed.io import _finite, _format_of, _JsonLinesSink
from qrhead_integrations.errors import InvalidInputError


def test_importing_the_package_and_cli_does_not_import_ray() -> None:
    code = (
        "import sys, qrhead_integrations, qrhead_integrations.distributed, qrhead_integrations.cli; "
        "assert 'ray' not in sys.modules, 'ray imported'; "
        "assert callable(qrhead_integrations.distributed.rerank_dataset); "
        "assert 'ray' not in sys.modules, 'ray imported by the lazy export'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_missing_ray_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "qrhead-integrations\[ray\]"'):
        session.require_ray()


class _FakeRay:
    def __init__(self, cpus: float) -> None:
        self.cpus = cpus

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": self.cpus}


@pytest.mark.parametrize(
    ("cpus", "workers", "per_worker", "reserved", "threads"),
    [
        (16, 2, 4, 4, 4),  # room to spare: as asked
        (2, 2, 1, 0.5, 1),  # two workers on a 2-core laptop: one CPU stays free for Ray Data's tasks
        (2, 1, 2, 1.0, 2),  # one worker using both cores
        (1, 1, 1, 0.0, 1),
    ],
)
def test_worker_plan_leaves_a_cpu_for_ray_data(
    cpus: float, workers: int, per_worker: float, reserved: float, threads: int
) -> None:
    plan = session.plan_workers(_FakeRay(cpus), workers, 0, per_worker)  # type: ignore[arg-type]
    assert (plan.workers, plan.num_cpus, plan.threads) == (workers, reserved, threads)


@pytest.mark.parametrize(("workers", "gpus", "cpus"), [(0, 0, 1), (1, -1, 1), (1, 0, 0)])
def test_worker_plan_rejects_bad_settings(workers: int, gpus: float, cpus: float) -> None:
    with pytest.raises(InvalidInputError):
        session.plan_workers(_FakeRay(8), workers, gpus, cpus)  # type: ignore[arg-type]


def test_formats_from_suffix_or_folder(tmp_path: Path) -> None:
    assert _format_of("rows.parquet") == "parquet"
    assert _format_of("s3://bucket/rows.JSONL") == "json"
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text("{}\n", encoding="utf-8")
    assert _format_of(str(folder)) == "json"
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        _format_of(str(tmp_path / "rows.csv"))


def test_json_lines_carry_empty_passage_scores_as_null(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    table: Any = pa.table({"scores": [[0.5, float("-inf")]], "meta": [{"x": float("nan")}]})
    sink = _JsonLinesSink(tmp_path / "out.jsonl")
    sink.write(table)
    sink.close()
    assert json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8")) == {
        "scores": [0.5, None],
        "meta": {"x": None},
    }
    assert _finite([1.0, float("inf")]) == [1.0, None]


def test_a_worker_ranks_its_batch_in_batched_forwards_and_a_bad_row_gets_its_own_error(
    saved_tiny_model: Path,
) -> None:
    """The actor's batch goes through ``rank_batch`` (the same rankings as ``rank`` row by row); a bad row makes
    the worker fall back to row by row, so only that row carries an error."""
    from qrhead_integrations.distributed.rerank import RerankWorker

    worker = RerankWorker(str(saved_tiny_model), "1-0,2-3", None, "query", "passages", None, 1)
    good = [("the moon?", ["the moon orbits", "paris is a city", "cats"]), ("water?", ["water boils", "fox"])]
    for rows in (good, [good[0], ("  ", ["x"]), None, good[1]]):
        results = worker.rank_rows(list(rows))
        for row, (scores, ranking, error) in zip(rows, results, strict=True):
            if row is None:
                assert (scores, ranking, error) == (None, None, None)
            elif not row[0].strip():
                assert scores is None and ranking is None and error is not None and "EmptyQueryError" in error
            else:
                expected = worker.scorer.rank(*row)
                assert ranking == [item.index for item in expected] and error is None
                assert scores is not None
                assert scores == pytest.approx([item.score for item in sorted(expected, key=lambda r: r.index)])


def test_rays_core_lines_are_dropped_from_stderr_and_every_other_line_passes(capfd: pytest.CaptureFixture[str]) -> None:
    """Ray's C++ core writes to file descriptor 2 directly; the quiet mode filters the descriptor itself."""
    import os
    import sys

    from qrhead_integrations.distributed.session import _core_lines_dropped

    with _core_lines_dropped():
        os.write(2, b"[2026-12-07 06:34:37,085 E 22267 22267] core_worker.cc:2465: Actor with class name: ...\n")
        os.write(2, b"a line of our own\n")
        os.write(2, b"[2026-12-07 07:09:13,248 I 27309 27309] logging.cc:303: Set ray log level ...\n")
        os.write(2, b"error: a message of the command's own\n")
    print("after the block", file=sys.stderr)
    err = capfd.readouterr().err
    assert err.splitlines() == ["a line of our own", "error: a message of the command's own", "after the block"]


def test_verbose_leaves_rays_output_alone() -> None:
    from qrhead_integrations.distributed.session import quiet_ray

    with quiet_ray(False) as options:
        assert options == {}
