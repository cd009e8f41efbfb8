"""``qrhead detect``: find a model's query-focused retrieval heads from labelled examples and save them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import DataFormatError, QRHeadError
from ..models import DEFAULT_MODEL
from ._common import DeviceOption, ModelOption, console, fail


def detect(
    data: Annotated[Path, typer.Argument(help="Multi-hop JSONL file, or a BEIR folder (with --format beir).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the head set (JSON).")],
    model: ModelOption = DEFAULT_MODEL,
    data_format: Annotated[str, typer.Option("--format", help="multihop or beir.")] = "multihop",
    split: Annotated[str, typer.Option(help="BEIR qrels split.")] = "train",
    start: Annotated[int, typer.Option(help="First example (keep detection and evaluation disjoint).")] = 0,
    limit: Annotated[int | None, typer.Option(help="How many examples from --start.")] = None,
    candidates: Annotated[int, typer.Option(help="BEIR: BM25 candidates per query.")] = 20,
    top_k: Annotated[
        str,
        typer.Option(
            "--top-k",
            help="Heads to keep; 'auto': hold out --validation of the examples and keep the best of the top "
            "4/8/16/32 heads and the best layer on them; 'greedy': add heads one by one by --metric and keep "
            "the size that scores best on the held-out examples.",
        ),
    ] = "16",
    validation: Annotated[
        float, typer.Option(help="With --top-k auto or greedy: fraction of examples held out.")
    ] = 0.2,
    metric: Annotated[
        str, typer.Option(help="Held-out metric: ndcg@10 (re-ranking) or recall@K (multi-hop, e.g. recall@2).")
    ] = "ndcg@10",
    max_heads: Annotated[int, typer.Option(help="With --top-k greedy: most heads to add.")] = 32,
    max_layer: Annotated[
        int | None,
        typer.Option(
            "--max-layer",
            help="Depth budget: choose only heads of layers 0..N-1 (a shallower set scores faster; detection "
            "also stops there).",
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="qr_score (the paper's) or ndcg.")] = "qr_score",
    seed: Annotated[int, typer.Option(help="Seed of the per-example candidate shuffle.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Also write a layers × heads heatmap (PNG).")] = None,
    device: DeviceOption = None,
) -> None:
    """Detect a model's query-focused retrieval heads from labelled examples and save them as JSON."""
    from .._files import check_output_path, rescue_text
    from ..detect import (
        check_held_out,
        check_max_layer,
        check_method,
        check_metric,
        detection_provenance,
        example_head_scores,
        plot_head_scores,
        select_heads,
    )
    from ..scorer import QRHeadScorer

    choice = top_k.strip().lower()
    if choice not in ("auto", "greedy") and not (choice.isdigit() and int(choice) >= 1):
        raise fail(ValueError(f"--top-k must be a positive integer, 'auto' or 'greedy', got {top_k!r}"))
    spec: Any = int(choice) if choice.isdigit() else choice
    if not isinstance(spec, int) and not 0 < validation < 1:
        raise fail(ValueError(f"--validation must be a fraction in (0, 1), got {validation}"))
    try:
        scoring_method = check_method(method)
        check_metric(metric)
        check_output_path(output)
        if plot is not None:
            check_output_path(plot, option="--plot")
    except QRHeadError as exc:
        raise fail(exc) from exc
    try:
        examples, description = labelled_examples(data, data_format, split, start, limit, candidates)
        if not examples:
            raise DataFormatError(f"{data}: no labelled examples (an empty file, or --start past its end)")
        check_held_out(spec, validation, len(examples))  # before the model loads, not after detection
        scorer = QRHeadScorer.from_pretrained(model, heads="all", device=device)
        check_max_layer(max_layer, scorer.num_layers)
        scored = list(
            example_head_scores(
                scorer, examples, seed=seed, show_progress=True, total=len(examples), max_layer=max_layer
            )
        )
        detection = select_heads(
            scored,
            top_k=spec,
            shape=(scorer.num_layers, scorer.num_heads),
            method=scoring_method,
            validation=validation,
            metric=metric,
            max_heads=max_heads,
            provenance=detection_provenance(scorer, seed, description),
            max_layer=max_layer,
        )
    except (QRHeadError, OSError) as exc:
        raise fail(exc) from exc
    heads, table = detection.heads, detection.table
    if detection.validation:
        figures = ", ".join(f"{name} {value:.3f}" for name, value in detection.validation.items())
        label = "nDCG@10" if metric == "ndcg@10" else metric
        console.print(f"validation {label} on {detection.held_out} held-out examples: {figures}")
    try:
        heads.save(output)  # atomic: an interrupted run leaves no half-written file
    except OSError as exc:
        rescued = rescue_text(output.name, json.dumps(heads.to_dict(), indent=2) + "\n")
        console.print(
            f"[red]error:[/red] {escape(f'could not write {output} ({exc}); the head set is kept in {rescued}')}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1) from exc
    console.print(escape(f"{len(heads)} heads ({method}, {table.examples} examples): {heads}"))
    console.print(escape(f"best single layer: {table.best_layer()} · written to {output}"))
    if plot is not None:
        plot_head_scores(table, str(plot), top_k=len(heads))
        console.print(escape(f"heatmap written to {plot}"))


def labelled_examples(
    data: Path, data_format: str, split: str, start: int, limit: int | None, candidates: int
) -> tuple[list[Any], str]:
    """The labelled examples of ``data`` (multi-hop rows, or BEIR queries with BM25 candidates) and a description.

    Args:
        data: a multi-hop JSONL file or a BEIR folder.
        data_format: ``"multihop"`` or ``"beir"``.
        split: the BEIR qrels split.
        start: the first example (file order, or query-id order).
        limit: how many examples (``None``: all).
        candidates: BM25 candidates per BEIR query.
    """
    from ..evaluation import beir_candidates, read_beir, read_multihop_jsonl

    if data_format == "multihop":
        examples = read_multihop_jsonl(data, limit=limit, start=start)
        end = start + len(examples) - 1
        return examples, f"{data.name} rows {start}..{end} (multihop)"
    if data_format == "beir":
        dataset = read_beir(data, split=split)
        examples = beir_candidates(dataset, top_k=candidates, start=start, limit=limit)
        return examples, f"{data.name} {split} queries {start}..+{limit} (BM25 top-{candidates}, judged gold)"
    raise DataFormatError(f"--format must be multihop or beir, got {data_format!r}")
