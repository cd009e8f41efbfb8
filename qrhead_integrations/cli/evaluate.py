"""``qrhead eval``: evaluate QRHead against BM25, dense, all-heads and fusion baselines (argument handling only).

The harness itself is :mod:`qrhead_integrations.evaluation.runner`; this module reads the data, loads the
model, runs the harness with a progress bar (ETA), prints a table and writes the report, plot and Markdown
table atomically.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import DataFormatError, InvalidInputError, QRHeadError
from ..models import DEFAULT_MODEL
from ._common import (
    FLAG,
    DeviceOption,
    HeadsOption,
    ModelOption,
    QuantizeOption,
    RowsPerForward,
    console,
    fail,
)

eval_app = typer.Typer(
    name="eval",
    help="Evaluate QRHead against BM25, dense, all-heads (ICR) and fusion baselines on BEIR or multi-hop data.",
    no_args_is_help=True,
    add_completion=False,
)
DEFAULT_BASELINE_SPEC = "bm25,dense,fusion,fusion-dense"  # add all-heads (or say "all"): +50-60% model time

Limit = Annotated[int | None, typer.Option(help="How many queries (from the start option); default all.")]
Baselines = Annotated[
    str,
    typer.Option(
        help="Systems besides qrhead, comma-separated: bm25, dense, all-heads (ICR; one deeper forward), fusion "
        "(RRF of qrhead and bm25), fusion-dense (RRF of qrhead and dense), default (what the adapters do with no "
        "options: default heads, cut, order and fusion with the input order; its own forward); or all, or none."
    ),
]
Seed = Annotated[int, typer.Option(help="Seed of the shuffled order (combined with each query id).")]
WithQRHead = Annotated[
    bool,
    typer.Option(
        "--qrhead/--no-qrhead",
        metavar=FLAG,
        help="Score the qrhead system (--no-qrhead saves its forward when only default and model-free "
        "baselines are wanted).",
    ),
]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write the JSON report here.")]
Plot = Annotated[Path | None, typer.Option(help="Write a bar chart (systems × metrics, PNG) here.")]
Markdown = Annotated[Path | None, typer.Option(help="Write the metrics as a Markdown table here.")]


def _passage_cap(value: int) -> int | None:
    if value < 0:
        raise InvalidInputError(f"--max-passage-tokens must be >= 0 (0: no cap), got {value}")
    return value or None


def _check(baselines: str, order: str, qrhead: bool = True) -> None:
    """Reject a bad --baselines, --order or --no-qrhead combination before any data or model is loaded."""
    from ..evaluation.runner import check_qrhead_needs, parse_baselines, prompt_order

    try:
        check_qrhead_needs(parse_baselines(baselines), qrhead)
        prompt_order(0, order)
    except ValueError as exc:
        raise fail(exc) from exc


def _command(kind: str, data: Path, options: dict[str, Any]) -> str:
    """The full command with every option spelled out, so a report says exactly how to reproduce it."""
    words = ["qrhead", "eval", kind, str(data)]
    for name, value in options.items():
        if isinstance(value, bool):
            words.append(f"--{name}" if value else f"--no-{name}")
        elif value is not None:
            words += [f"--{name}", str(value)]
    return shlex.join(words)


def _run(
    kind: str,
    data: Path,
    options: dict[str, Any],
    load_data: Callable[[], Any],
    evaluate: Callable[[Any, Any, str], Any],
    model: str,
    heads: str | None,
    max_passage_tokens: int,
    load: dict[str, Any],
    outputs: tuple[Path | None, Path | None, Path | None],
) -> None:
    """Shared flow: data first (fail fast), then the model, the run, the table and the files."""
    from .._files import check_output_path, write_text_atomic
    from ..evaluation.report import markdown_table, plot_report, write_report
    from ..scorer import QRHeadScorer

    output, plot, markdown = outputs
    command = _command(kind, data, options)
    try:
        for path, option in ((output, "--output"), (plot, "--plot"), (markdown, "--markdown")):
            if path is not None:
                check_output_path(path, option=option)
        cap = _passage_cap(max_passage_tokens)
        payload = load_data()
        if not (payload.queries if hasattr(payload, "queries") else payload):
            raise DataFormatError(f"{data}: no examples to evaluate (an empty file, or --start past its end)")
        console.print(f"Loading [bold]{model}[/bold]…")
        started = time.perf_counter()
        scorer = QRHeadScorer.from_pretrained(model, heads=heads, max_passage_tokens=cap, **load)
        load_seconds = time.perf_counter() - started
        console.print(
            f"heads: {len(scorer.heads)} ({scorer.heads.provenance.get('preset', 'given')}) · loaded in "
            f"{load_seconds:.1f} s · progress and ETA below"
        )
        report = evaluate(scorer, payload, command)
        report.info["load_seconds"] = round(load_seconds, 2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: no report written[/yellow]")
        raise typer.Exit(code=130) from None
    except (QRHeadError, OSError, ValueError, ImportError) as exc:
        raise fail(exc) from exc
    _print(report)
    try:
        if output is not None:
            write_report(report, output)
            console.print(f"report written to {output}")
        if markdown is not None:
            write_text_atomic(markdown, markdown_table(report, comparisons=True))
            console.print(f"table written to {markdown}")
        if plot is not None:
            plot_report(report, plot)
            console.print(f"plot written to {plot}")
    except OSError as exc:
        _rescue(report, exc)
        raise fail(exc) from exc


def _rescue(report: Any, exc: OSError) -> None:
    """The run finished but a file could not be written: keep the report (JSON) where it can be found."""
    import json

    from .._files import rescue_text

    rescued = rescue_text("report.json", json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    console.print(
        f"[yellow]the report is kept in {rescued}[/yellow] (writing failed: {exc})", highlight=False, soft_wrap=True
    )


def _print(report: Any) -> None:
    info = report.info
    title = f"{info.get('data_name', '')} · {info['model']} · {info['n_queries']} queries · {info['order']}"
    table = Table(title=title)
    table.add_column("system", no_wrap=True)
    for name in report.metric_names:
        table.add_column(name, justify="right", overflow="fold")
    for system in report.systems:
        table.add_row(system, *(f"{report.metrics[system][name]:.4f}" for name in report.metric_names))
    console.print(table)
    console.print(
        f"{info['seconds_per_query']:.2f} s/query · wall {info['wall_seconds']:.0f} s · timings {info['seconds']}"
    )


@eval_app.command()
def beir(
    data_dir: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")],
    split: Annotated[str, typer.Option(help="Qrels split: test, dev or train.")] = "test",
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
    top_k: Annotated[int, typer.Option("--top-k", help="BM25 candidates the model re-ranks per query.")] = 20,
    depth: Annotated[int, typer.Option(help="BM25 list length; ranks below --top-k keep BM25's order.")] = 100,
    limit: Limit = None,
    queries_from: Annotated[int, typer.Option("--queries-from", "--start", help="First query, in query-id order.")] = 0,
    max_passage_tokens: Annotated[int, typer.Option(help="Cut passages to this many tokens (0: no cap).")] = 256,
    baselines: Baselines = DEFAULT_BASELINE_SPEC,
    order: Annotated[str, typer.Option(help="Prompt order: retriever-reversed, retriever or shuffled.")] = (
        "retriever-reversed"
    ),
    seed: Seed = 0,
    qrhead: WithQRHead = True,
    output: Output = None,
    plot: Plot = None,
    markdown: Markdown = None,
    device: DeviceOption = None,
    quantize: QuantizeOption = None,
    rows_per_forward: RowsPerForward = None,
) -> None:
    """Re-rank BM25's top-k for BEIR queries; nDCG@10, recall@10/100, MRR@10 for every system."""
    from ..evaluation import read_beir
    from ..evaluation.runner import parse_baselines, run_beir

    options = {
        "split": split,
        "model": model,
        "heads": heads,
        "top-k": top_k,
        "depth": depth,
        "queries-from": queries_from,
        "limit": limit,
        "max-passage-tokens": max_passage_tokens,
        "baselines": baselines,
        "order": order,
        "seed": seed,
        "qrhead": qrhead,
        "quantize": quantize,
    }

    def evaluate(scorer: Any, dataset: Any, command: str) -> Any:
        info = {"data": str(data_dir), "data_name": data_dir.name, "split": split, "command": command}
        return run_beir(
            scorer,
            dataset,
            top_k=top_k,
            depth=depth,
            start=queries_from,
            limit=limit,
            order=order,
            seed=seed,
            baselines=parse_baselines(baselines),
            show_progress=True,
            info=info,
            qrhead=qrhead,
            rows_per_forward=rows_per_forward,
        )

    _check(baselines, order, qrhead)
    _run(
        "beir",
        data_dir,
        options,
        lambda: read_beir(data_dir, split=split),
        evaluate,
        model,
        heads,
        max_passage_tokens,
        {"device": device, "quantize": quantize},
        (output, plot, markdown),
    )


@eval_app.command()
def multihop(
    file: Annotated[Path, typer.Argument(help="JSONL: {question, passages: [{title, text}], gold_idx} per line.")],
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
    start: Annotated[int, typer.Option("--start", "--queries-from", help="First question (file order).")] = 0,
    limit: Limit = None,
    max_passage_tokens: Annotated[int, typer.Option(help="Cut passages to this many tokens (0: no cap).")] = 512,
    baselines: Baselines = DEFAULT_BASELINE_SPEC,
    order: Annotated[str, typer.Option(help="Prompt order: retriever (file order), retriever-reversed, shuffled.")] = (
        "retriever"
    ),
    seed: Seed = 0,
    qrhead: WithQRHead = True,
    output: Output = None,
    plot: Plot = None,
    markdown: Markdown = None,
    device: DeviceOption = None,
    quantize: QuantizeOption = None,
    rows_per_forward: RowsPerForward = None,
) -> None:
    """Rank each question's passages; recall@2/5/10 and all-gold@2/5/10 for every system."""
    from ..evaluation import read_multihop_jsonl
    from ..evaluation.runner import parse_baselines, run_multihop

    options = {
        "model": model,
        "heads": heads,
        "start": start,
        "limit": limit,
        "max-passage-tokens": max_passage_tokens,
        "baselines": baselines,
        "order": order,
        "seed": seed,
        "qrhead": qrhead,
        "quantize": quantize,
    }

    def evaluate(scorer: Any, examples: Any, command: str) -> Any:
        info = {
            "data": str(file),
            "data_name": file.name,
            "split": f"rows {start}..{start + len(examples) - 1}",
            "command": command,
        }
        return run_multihop(
            scorer,
            examples,
            order=order,
            seed=seed,
            baselines=parse_baselines(baselines),
            show_progress=True,
            info=info,
            qrhead=qrhead,
            rows_per_forward=rows_per_forward,
        )

    _check(baselines, order, qrhead)
    _run(
        "multihop",
        file,
        options,
        lambda: read_multihop_jsonl(file, limit=limit, start=start),
        evaluate,
        model,
        heads,
        max_passage_tokens,
        {"device": device, "quantize": quantize},
        (output, plot, markdown),
    )
