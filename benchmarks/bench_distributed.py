"""Batch re-ranking throughput on Ray Data: one process vs 1 and 2 Ray workers (`rerank_dataset`).

Rows are HotpotQA dev questions with their 10 passages (default rows 100-139; rows 0-99 are kept for head
detection). Configurations: the plain scorer in this process (every core as torch threads), then
``rerank_dataset`` on a local Ray with 1 worker × all cores, 1 worker × 1 core and N workers × 1 core each.

For each Ray run: wall time from the call to the last result (actor start, model load, scoring), the time
to the first result on the driver, and rows/s after the first result (steady state: the model is loaded).
Results are checked against the single-process scores.

    python benchmarks/bench_distributed.py --json reports/bench_distributed.json \
        --markdown reports/bench_distributed.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _report import write_reports

from qrhead_integrations import QRHeadScorer

REPO = Path(__file__).resolve().parents[1]
HOTPOTQA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"


def _rows(path: Path, start: int, limit: int) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [json.loads(line) for line in lines[start : start + limit]]
    return [{"id": r["id"], "query": r["question"], "passages": r["passages"]} for r in rows]


def _single_process(model: str, rows: list[dict[str, Any]], threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    torch.set_num_threads(threads)
    began = time.perf_counter()
    scorer = QRHeadScorer.from_pretrained(model)
    loaded = time.perf_counter()
    scores = {row["id"]: scorer.score(row["query"], row["passages"]) for row in rows}
    done = time.perf_counter()
    result = {
        "config": f"single process, {threads} threads",
        "workers": 0,
        "threads_per_worker": threads,
        "wall_s": round(done - began, 2),
        "first_result_s": None,
        "load_s": round(loaded - began, 2),
        "rows_per_s": round(len(rows) / (done - began), 3),
        "steady_rows_per_s": round(len(rows) / (done - loaded), 3),
    }
    return result, scores


def _ray_run(
    ray: Any,
    model: str,
    rows: list[dict[str, Any]],
    workers: int,
    threads: int,
    batch_size: int,
    reference: dict[str, list[float]],
) -> dict[str, Any]:
    from qrhead_integrations.distributed import rerank_dataset

    began = time.perf_counter()
    result = rerank_dataset(
        ray.data.from_items(rows),
        model=model,
        num_workers=workers,
        num_cpus_per_worker=threads,
        batch_size=batch_size,
    )
    arrivals: list[tuple[float, int]] = []
    worst = 0.0
    for table in result.iter_batches(batch_size=None, batch_format="pyarrow"):
        arrivals.append((time.perf_counter(), table.num_rows))
        for row in table.select(["id", "scores"]).to_pylist():
            diffs = [abs(a - b) for a, b in zip(row["scores"], reference[row["id"]], strict=True)]
            worst = max(worst, *diffs)
    done = arrivals[-1][0]
    first, first_rows = arrivals[0]
    return {
        "config": f"Ray, {workers} worker{'s' if workers > 1 else ''} × {threads} thread{'s' if threads > 1 else ''}",
        "workers": workers,
        "threads_per_worker": threads,
        "wall_s": round(done - began, 2),
        "first_result_s": round(first - began, 2),
        "load_s": None,
        "rows_per_s": round(len(rows) / (done - began), 3),
        "steady_rows_per_s": round((len(rows) - first_rows) / (done - first), 3) if done > first else None,
        "max_abs_diff_vs_single": worst,
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Batch re-ranking, {report['rows']} HotpotQA rows × 10 passages, {report['model']}, "
        f"{report['cores']} cores, batch size {report['batch_size']}",
        "",
        "| configuration | wall s | first result s | rows/s (wall) | rows/s (after first result) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        first = "—" if r["first_result_s"] is None else f"{r['first_result_s']:.1f}"
        lines.append(
            f"| {r['config']} | {r['wall_s']:.1f} | {first} | {r['rows_per_s']:.2f} | {r['steady_rows_per_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", type=Path, default=HOTPOTQA)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="the largest pool (1 core per worker)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    cores = os.cpu_count() or 1
    rows = _rows(args.data, args.start, args.limit)
    single, reference = _single_process(args.model, rows, cores)
    print(single)
    results = [single]
    temp_dir = tempfile.mkdtemp(prefix="qrbench")
    began = time.perf_counter()
    ray.init(
        num_cpus=cores,
        object_store_memory=200 * 1024 * 1024,
        _temp_dir=temp_dir,
        include_dashboard=False,
        log_to_driver=False,
    )
    ray_start = time.perf_counter() - began
    try:
        for workers, threads in ((1, cores), (1, 1), (args.workers, max(1, cores // args.workers))):
            results.append(_ray_run(ray, args.model, rows, workers, threads, args.batch_size, reference))
            print(results[-1])
    finally:
        began = time.perf_counter()
        ray.shutdown()
        ray_stop = time.perf_counter() - began
        shutil.rmtree(temp_dir, ignore_errors=True)
    report = {
        "model": args.model,
        "rows": len(rows),
        "data": f"{args.data.name} rows {args.start}..{args.start + len(rows) - 1}",
        "batch_size": args.batch_size,
        "cores": cores,
        "ray_version": ray.__version__,
        "torch_version": torch.__version__,
        "machine": platform.platform(),
        "ray_init_s": round(ray_start, 2),
        "ray_shutdown_s": round(ray_stop, 2),
        "load_average_at_end": os.getloadavg(),
        "results": results,
    }
    markdown = _markdown(report)
    print(markdown)
    write_reports(report, markdown, args.json, args.markdown)


if __name__ == "__main__":
    main()
