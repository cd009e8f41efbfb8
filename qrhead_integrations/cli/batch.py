"""``qrhead batch``: re-rank a Parquet / JSON Lines file of (query, passages) rows on Ray (laptop or cluster)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import QRHeadError
from ..models import DEFAULT_MODEL
from ._common import FLAG, DtypeOption, QuantizeOption

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

console = Console(stderr=True)


def batch(
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="Parquet or JSONL file, or a folder of them.")],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="A .parquet or .jsonl file (one file), or a folder / s3:// prefix (Parquet parts)."
        ),
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Bundled model name, folder, .gguf or hub id.")
    ] = DEFAULT_MODEL,
    heads: Annotated[
        str | None, typer.Option("--heads", help="Heads: preset, 'all', 'layer:N', 'l-h,...' or a head-set JSON.")
    ] = None,
    quantize: QuantizeOption = None,
    dtype: DtypeOption = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Actors, one model replica each.")] = 1,
    gpus_per_worker: Annotated[
        float, typer.Option("--gpus-per-worker", help="GPUs per worker (1 = one replica per GPU).")
    ] = 0.0,
    cpus_per_worker: Annotated[
        float | None,
        typer.Option(
            "--cpus-per-worker",
            help="CPUs (and torch threads) per worker; default: this machine's cores / workers on a local Ray, "
            "1 on a cluster or with GPUs.",
        ),
    ] = None,
    query_column: Annotated[str, typer.Option("--query-column", help="Column holding the query.")] = "query",
    passages_column: Annotated[
        str, typer.Option("--passages-column", help="Column holding the passages (strings or {title, text}).")
    ] = "passages",
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", help="Keep the best N indices in 'ranking'.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per batch handed to a worker.")] = 4,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray started here)."),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            metavar=FLAG,
            help="Show Ray's own output (its INFO lines, Ray Data's progress, the workers' output); by default "
            "only this command's summary and errors are printed.",
        ),
    ] = False,
) -> None:
    """Re-rank every row of INPUT on Ray and write scores, ranking and error columns to OUTPUT."""
    from ..distributed.rerank import ERROR, rerank_dataset
    from ..distributed.session import ensure_ray, quiet_ray

    with quiet_ray(not verbose) as init_options:
        try:
            ray, started = ensure_ray(address, **init_options)
        except (ImportError, ConnectionError) as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from exc
        try:
            local = started and not (address or os.environ.get("RAY_ADDRESS"))
            cpus = cpus_per_worker or _default_cpus(ray, local, workers, gpus_per_worker)
            began = time.perf_counter()
            written = rerank_dataset(
                input_path,
                model=model,
                heads=heads,
                query_column=query_column,
                passages_column=passages_column,
                top_n=top_n,
                num_workers=workers,
                num_gpus_per_worker=gpus_per_worker,
                num_cpus_per_worker=cpus,
                batch_size=batch_size,
                output=output,
                scorer_kwargs={key: value for key, value in (("quantize", quantize), ("dtype", dtype)) if value}
                or None,
            )
            elapsed = time.perf_counter() - began
            rows, errors = _count(written, ERROR)
        except (QRHeadError, OSError) as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from exc
        finally:
            if started:
                ray.shutdown()
    print(
        f"{rows} rows, {errors} with errors, written to {Path(output)} in {elapsed:.1f} s "
        f"({rows / elapsed:.2f} rows/s, {workers} worker{'s' if workers != 1 else ''})"
    )


def _default_cpus(ray: ModuleType, local: bool, workers: int, gpus_per_worker: float) -> float:
    """Every core of a Ray started here, shared by the workers; one per worker on a cluster or with GPUs."""
    if not local or gpus_per_worker > 0:
        return 1.0
    return float(max(1, int(ray.cluster_resources().get("CPU", 1)) // workers))


def _count(dataset: Dataset, error_column: str) -> tuple[int, int]:
    """Rows and rows with an error in the written results."""
    rows = errors = 0
    for batch in dataset.select_columns([error_column]).iter_batches(batch_size=None, batch_format="pyarrow"):
        column = cast("pa.Table", batch).column(error_column)  # batch_format="pyarrow": a pyarrow Table
        rows += len(column)
        errors += len(column) - column.null_count
    return rows, errors
