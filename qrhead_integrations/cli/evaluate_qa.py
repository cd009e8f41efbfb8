"""``qrhead eval qa``: answers and tokens from each context strategy (argument handling only).

The harness is :mod:`qrhead_integrations.evaluation.qa`. This module reads the rows (fail fast), loads the scoring
model once and the reader (the same model unless ``--reader`` names another), runs with a progress bar,
keeps finished questions in ``OUTPUT.partial.jsonl`` so Ctrl-C or a crash loses at most one question (the same
command resumes), prints the table and writes the JSON report and Markdown table atomically.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import DataFormatError, QRHeadError
from ..models import DEFAULT_MODEL
from ._common import FLAG, DeviceOption, DtypeOption, HeadsOption, ModelOption, QuantizeOption, console, fail
from .evaluate import eval_app

if TYPE_CHECKING:
    from ..evaluation.qa import QAReport

ReaderOption = Annotated[
    str | None,
    typer.Option(help="The reader LM (bundled name, folder, .gguf, hub id); default: --model, sharing its weights."),
]


def _shares(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"--budgets takes comma-separated shares such as 0.25,0.5, got {text!r}") from None


@eval_app.command("qa")
def qa(
    file: Annotated[
        Path, typer.Argument(help="JSONL: {question, answer, answer_aliases?, passages|paragraphs, gold_idx?}.")
    ],
    model: ModelOption = DEFAULT_MODEL,
    reader: ReaderOption = None,
    heads: HeadsOption = None,
    start: Annotated[int, typer.Option("--start", help="First row (file order).")] = 0,
    limit: Annotated[int | None, typer.Option(help="How many rows (from --start); default all.")] = None,
    budgets: Annotated[str, typer.Option(help="Budgets as shares of the full context, comma-separated.")] = "0.25,0.5",
    top_k: Annotated[int, typer.Option("--top-k", help="Passages kept by qrhead_top{k} and bm25_top{k}.")] = 2,
    strategies: Annotated[
        str | None, typer.Option(help="Comma-separated strategies to run (default: all; names as in the report).")
    ] = None,
    max_new_tokens: Annotated[
        int, typer.Option(help="Most tokens per answer (generation also stops at the line end).")
    ] = 24,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSON report (and OUTPUT.partial.jsonl to resume).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown here.")] = None,
    answered_only: Annotated[
        bool,
        typer.Option(
            "--answered-only",
            metavar=FLAG,
            help="Report only the questions OUTPUT.partial.jsonl already holds, answering none (a partial report; "
            "the checkpoint is kept to resume).",
        ),
    ] = False,
    device: DeviceOption = None,
    quantize: QuantizeOption = None,
    dtype: DtypeOption = None,
) -> None:
    """Answer each question from full, closed-book, gold, QRHead and BM25 contexts; EM, F1, tokens, seconds."""
    from .._files import check_output_path, write_text_atomic
    from ..evaluation.qa import Checkpoint, ContextBuilder, QASettings, qa_markdown, run_qa
    from ..evaluation.qa_data import read_qa_jsonl
    from ..evaluation.report import versions, write_report
    from ..reader import Reader
    from ..scorer import QRHeadScorer

    try:
        settings = QASettings(
            budgets=_shares(budgets),
            top_k=top_k,
            strategies=None if strategies is None else tuple(s.strip() for s in strategies.split(",") if s.strip()),
        )
        if answered_only and output is None:
            raise typer.BadParameter("--answered-only reports from OUTPUT.partial.jsonl: give --output")
        for path, option in ((output, "--output"), (markdown, "--markdown")):
            if path is not None:
                check_output_path(path, option=option)
        examples = read_qa_jsonl(file, limit=limit, start=start)
        if not examples:
            raise DataFormatError(f"{file}: no rows to evaluate (an empty file, or --start past its end)")
        console.print(f"Loading [bold]{escape(model)}[/bold]…")
        started = time.perf_counter()
        scorer = QRHeadScorer.from_pretrained(model, heads=heads, device=device, quantize=quantize, dtype=dtype)
        shared = reader is None or reader == model
        if reader is None or shared:  # the scorer's own weights answer: one model in memory
            answerer = Reader.from_scorer(scorer, max_new_tokens=max_new_tokens)
        else:
            answerer = Reader.from_pretrained(
                reader, device=device, quantize=quantize, dtype=dtype, max_new_tokens=max_new_tokens
            )
        load_seconds = time.perf_counter() - started
        ran_dtype = str(scorer.dtype).removeprefix("torch.")
        command = _command(
            file, model, reader, heads, start, limit, budgets, top_k, strategies, max_new_tokens, ran_dtype
        )
        console.print(
            f"heads: {len(scorer.heads)} ({scorer.heads.provenance.get('preset', 'given')}) · reader: "
            f"{'the same model' if shared else escape(str(reader))} · loaded in {load_seconds:.1f} s"
        )
        checkpoint = None
        if output is not None:
            # Rows are kept by id, so the answers' identity is the command without the row slice: a resumed or
            # widened run (another --start/--limit) reuses every row a run with the same settings answered.
            identity = _command(
                file, model, reader, heads, 0, None, budgets, top_k, strategies, max_new_tokens, ran_dtype
            )
            checkpoint = Checkpoint(output.with_name(output.name + ".partial.jsonl"), {"answers_from": identity})
            checkpoint.load()
            if checkpoint.done:
                resuming = f"resuming: {len(checkpoint.done)} questions already answered in {checkpoint.path}"
                console.print(escape(resuming))
        info = {
            "model": scorer.model_id,
            "reader": scorer.model_id if shared else reader,
            "shared_model": shared,
            "heads": str(scorer.heads),
            "dtype": ran_dtype,
            "data": str(file),
            "data_name": file.name,
            "split": f"rows {start}..{start + len(examples) - 1}",
            "command": command,
            "load_seconds": round(load_seconds, 2),
            "versions": versions(),
            "date": time.strftime("%Y-%m-%d"),
        }
        report = run_qa(
            ContextBuilder(scorer, answerer, settings),
            examples,
            info=info,
            checkpoint=checkpoint,
            show_progress=not answered_only,
            answered_only=answered_only,
        )
    except KeyboardInterrupt:
        kept = (
            ""
            if output is None
            else f"; answered questions are kept in {output}.partial.jsonl: run the same command to resume"
        )
        console.print(f"[yellow]interrupted: no report written{escape(kept)}[/yellow]", highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    except (QRHeadError, OSError, ValueError, ImportError) as exc:
        raise fail(exc) from exc
    _print(report)
    try:
        if output is not None:
            write_report(report, output)
            console.print(escape(f"report written to {output}"))
            if checkpoint is not None and not report.info["unanswered"]:
                checkpoint.path.unlink(missing_ok=True)  # complete: nothing left to resume
        if markdown is not None:
            write_text_atomic(markdown, qa_markdown(report))
            console.print(escape(f"table written to {markdown}"))
    except OSError as exc:
        raise fail(exc) from exc


def _command(
    file: Path,
    model: str,
    reader: str | None,
    heads: str | None,
    start: int,
    limit: int | None,
    budgets: str,
    top_k: int,
    strategies: str | None,
    max_new_tokens: int,
    dtype: str,
) -> str:
    """The command with every option that changes the answers spelled out (the checkpoint's identity too)."""
    words = ["qrhead", "eval", "qa", str(file), "--model", model]
    for name, value in (("reader", reader), ("heads", heads), ("limit", limit), ("strategies", strategies)):
        if value is not None:
            words += [f"--{name}", str(value)]
    words += ["--start", str(start), "--budgets", budgets, "--top-k", str(top_k)]
    words += ["--max-new-tokens", str(max_new_tokens), "--dtype", dtype]
    return shlex.join(words)


def _print(report: QAReport) -> None:
    info = report.info
    title = f"{info.get('data_name', '')} · reader {info['reader']} · {info['n_queries']} questions"
    table = Table(title=escape(title))
    table.add_column("strategy", no_wrap=True)
    for name in ("EM", "F1", "reader tokens", "context tokens", "s/question"):
        table.add_column(name, justify="right")
    for name, values in report.metrics.items():
        table.add_row(
            name,
            f"{values['em']:.3f}",
            f"{values['f1']:.3f}",
            f"{values['reader_tokens']:.0f}",
            f"{values['context_tokens']:.0f}",
            f"{values['seconds']:.2f}",
        )
    console.print(table)
    for comparison in report.comparisons:
        console.print(escape(f"- {comparison['text']}"), highlight=False, soft_wrap=True)
