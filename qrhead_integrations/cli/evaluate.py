"""``qrhead eval``: evaluate QRHead against BM25, dense, all-heads and fusion baselines (argument handling only).

The harness itself is :mod:`qrhead_integrations.evaluation.runner`; this module reads the data, loads the
model, runs the harness with a progress bar (ETA), prints a table and writes the report, plot and Markdown
table atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer
from rich.markup import escape
from rich.table import Table
from typing_extensions import TypedDict

from .._checks import check_int
from ..errors import DataFormatError, QRHeadError
from ..models import DEFAULT_MODEL
from ._common import (
    FLAG,
    DeviceOption,
    DtypeOption,
    HeadsOption,
    ModelOption,
    QuantizeOption,
    RowsPerForward,
    console,
    fail,
)

if TYPE_CHECKING:
    from ..evaluation.data import BeirDataset, MultihopExample
    from ..evaluation.report import EvalReport
    from ..scorer import QRHeadScorer

eval_app = typer.Typer(
    name="eval",
    help="Evaluate QRHead against BM25, dense, all-heads (ICR) and fusion baselines on BEIR or multi-hop data.",
    no_args_is_help=True,
    add_completion=False,
)
DEFAULT_BASELINE_SPEC = "bm25,dense,fusion,fusion-dense"  # add all-heads (or say "all"): +50-60% model time

Limit = Annotated[int | None, typer.Option(help="How many queries (from the start option); default all.")]
PassageTokens = Annotated[int, typer.Option(help="Cut passages to this many tokens (0: no cap).")]
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


@dataclass(frozen=True)
class RunOptions:
    """The options every ``qrhead eval`` command takes after its own, declared once: type, option and default.

    :func:`_with_run_options` adds them to a command's signature (so typer shows them, in this order) and hands
    them to the command as one ``run`` argument.
    """

    seed: Seed = 0
    qrhead: WithQRHead = True
    output: Output = None
    plot: Plot = None
    markdown: Markdown = None
    device: DeviceOption = None
    quantize: QuantizeOption = None
    dtype: DtypeOption = None
    rows_per_forward: RowsPerForward = None


def _with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with :class:`RunOptions`' fields as options after its own, passed to it as ``run``.

    typer reads a command's options from its signature: the wrapper's signature is the command's own without
    ``run``, followed by one keyword parameter per field (its annotated type, which holds the typer option, and
    its default); the wrapper gathers the values back into a :class:`RunOptions`.
    """
    own = inspect.signature(command, eval_str=True)
    hints = get_type_hints(RunOptions, include_extras=True)
    shared = [
        inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=hints[field.name]
        )
        for field in dataclasses.fields(RunOptions)
    ]

    @functools.wraps(command)
    def with_run_options(**values: object) -> None:
        run: dict[str, Any] = {field.name: values.pop(field.name) for field in dataclasses.fields(RunOptions)}
        command(**values, run=RunOptions(**run))

    parameters = [parameter for name, parameter in own.parameters.items() if name != "run"]
    with_run_options.__signature__ = own.replace(parameters=[*parameters, *shared])  # type: ignore[attr-defined]
    return with_run_options


class Harness(TypedDict):
    """The harness arguments both ``run_beir`` and ``run_multihop`` take from the shared options."""

    order: str
    seed: int
    baselines: Sequence[str]
    show_progress: bool
    qrhead: bool
    rows_per_forward: int | None


_Data = TypeVar("_Data", "BeirDataset", "list[MultihopExample]")


def _passage_cap(value: int) -> int | None:
    return check_int(value, "--max-passage-tokens", hint="0: no cap") or None


def _check(baselines: str, order: str, qrhead: bool = True) -> None:
    """Reject a bad --baselines, --order or --no-qrhead combination before any data or model is loaded."""
    from ..evaluation.runner import check_qrhead_needs, parse_baselines, prompt_order

    try:
        check_qrhead_needs(parse_baselines(baselines), qrhead)
        prompt_order(0, order)
    except ValueError as exc:
        raise fail(exc) from exc


def _command(kind: str, data: Path, options: Mapping[str, object]) -> str:
    """The full command with every option spelled out, so a report says exactly how to reproduce it."""
    words = ["qrhead", "eval", kind, str(data)]
    for name, value in options.items():
        if isinstance(value, bool):
            words.append(f"--{name}" if value else f"--no-{name}")
        elif value is not None:
            words += [f"--{name}", str(value)]
    return shlex.join(words)


@dataclass(frozen=True)
class _Evaluation:
    """One ``qrhead eval`` command's data and the options every command has (with its own help and default)."""

    kind: str
    data: Path
    model: str
    heads: str | None
    limit: int | None
    max_passage_tokens: int
    baselines: str
    order: str

    def run(
        self,
        own: Mapping[str, object],
        load_data: Callable[[], _Data],
        evaluate: Callable[[QRHeadScorer, _Data, str, Harness], EvalReport],
        run: RunOptions,
    ) -> None:
        """The shared flow: options checked, data first (fail fast), then the model, the run, the table, the files.

        Args:
            own: the command's own options (and ``model``/``heads`` where it lists them), in its order, for the
                reproduction command.
            load_data: reads the data.
            evaluate: runs the harness on the loaded scorer and data, given the reproduction command and the
                harness options every command passes.
            run: the options every command takes last.
        """
        from .._files import check_output_path, write_text_atomic
        from ..evaluation.data import BeirDataset
        from ..evaluation.report import markdown_table, plot_report, write_report
        from ..evaluation.runner import parse_baselines
        from ..scorer import QRHeadScorer

        _check(self.baselines, self.order, run.qrhead)
        shared = {"limit": self.limit, "max-passage-tokens": self.max_passage_tokens, "baselines": self.baselines}
        options = {
            **own,
            **shared,
            "order": self.order,
            "seed": run.seed,
            "qrhead": run.qrhead,
            "quantize": run.quantize,
        }
        try:
            for path, option in ((run.output, "--output"), (run.plot, "--plot"), (run.markdown, "--markdown")):
                if path is not None:
                    check_output_path(path, option=option)
            cap = _passage_cap(self.max_passage_tokens)
            payload = load_data()
            if not (payload.queries if isinstance(payload, BeirDataset) else payload):
                raise DataFormatError(f"{self.data}: no examples to evaluate (an empty file, or --start past its end)")
            console.print(f"Loading [bold]{escape(self.model)}[/bold]…")
            started = time.perf_counter()
            scorer = QRHeadScorer.from_pretrained(
                self.model,
                heads=self.heads,
                max_passage_tokens=cap,
                device=run.device,
                quantize=run.quantize,
                dtype=run.dtype,
            )
            load_seconds = time.perf_counter() - started
            # The dtype that ran, spelled out: the default depends on the machine (resolve_dtype).
            command = _command(self.kind, self.data, {**options, "dtype": str(scorer.dtype).removeprefix("torch.")})
            console.print(
                f"heads: {len(scorer.heads)} ({scorer.heads.provenance.get('preset', 'given')}) · loaded in "
                f"{load_seconds:.1f} s · progress and ETA below"
            )
            harness: Harness = {
                "order": self.order,
                "seed": run.seed,
                "baselines": parse_baselines(self.baselines),
                "show_progress": True,
                "qrhead": run.qrhead,
                "rows_per_forward": run.rows_per_forward,
            }
            report = evaluate(scorer, payload, command, harness)
            report.info["load_seconds"] = round(load_seconds, 2)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: no report written[/yellow]")
            raise typer.Exit(code=130) from None
        except (QRHeadError, OSError, ValueError, ImportError) as exc:
            raise fail(exc) from exc
        _print(report)
        try:
            if run.output is not None:
                write_report(report, run.output)
                console.print(escape(f"report written to {run.output}"))
            if run.markdown is not None:
                write_text_atomic(run.markdown, markdown_table(report, comparisons=True))
                console.print(escape(f"table written to {run.markdown}"))
            if run.plot is not None:
                plot_report(report, run.plot)
                console.print(escape(f"plot written to {run.plot}"))
        except OSError as exc:
            _rescue(report, exc)
            raise fail(exc) from exc


def _rescue(report: EvalReport, exc: OSError) -> None:
    """The run finished but a file could not be written: keep the report (JSON) where it can be found."""
    import json

    from .._files import rescue_text

    rescued = rescue_text("report.json", json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    console.print(
        f"[yellow]the report is kept in {escape(str(rescued))}[/yellow] (writing failed: {escape(str(exc))})",
        highlight=False,
        soft_wrap=True,
    )


def _print(report: EvalReport) -> None:
    """The metrics table and the timings."""
    info = report.info
    title = f"{info.get('data_name', '')} · {info['model']} · {info['n_queries']} queries · {info['order']}"
    table = Table(title=escape(title))
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
@_with_run_options
def beir(
    data_dir: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")],
    split: Annotated[str, typer.Option(help="Qrels split: test, dev or train.")] = "test",
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
    top_k: Annotated[int, typer.Option("--top-k", help="BM25 candidates the model re-ranks per query.")] = 20,
    depth: Annotated[int, typer.Option(help="BM25 list length; ranks below --top-k keep BM25's order.")] = 100,
    limit: Limit = None,
    queries_from: Annotated[int, typer.Option("--queries-from", "--start", help="First query, in query-id order.")] = 0,
    max_passage_tokens: PassageTokens = 256,
    baselines: Baselines = DEFAULT_BASELINE_SPEC,
    order: Annotated[str, typer.Option(help="Prompt order: retriever-reversed, retriever or shuffled.")] = (
        "retriever-reversed"
    ),
    *,
    run: RunOptions,
) -> None:
    """Re-rank BM25's top-k for BEIR queries; nDCG@10, recall@10/100, MRR@10 for every system."""
    from ..evaluation import read_beir
    from ..evaluation.runner import run_beir

    def evaluate(scorer: QRHeadScorer, dataset: BeirDataset, command: str, harness: Harness) -> EvalReport:
        info = {"data": str(data_dir), "data_name": data_dir.name, "split": split, "command": command}
        return run_beir(
            scorer, dataset, top_k=top_k, depth=depth, start=queries_from, limit=limit, info=info, **harness
        )

    own = {"split": split, "model": model, "heads": heads, "top-k": top_k, "depth": depth, "queries-from": queries_from}
    job = _Evaluation("beir", data_dir, model, heads, limit, max_passage_tokens, baselines, order)
    job.run(own, lambda: read_beir(data_dir, split=split), evaluate, run)


@eval_app.command()
@_with_run_options
def multihop(
    file: Annotated[Path, typer.Argument(help="JSONL: {question, passages: [{title, text}], gold_idx} per line.")],
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
    start: Annotated[int, typer.Option("--start", "--queries-from", help="First question (file order).")] = 0,
    limit: Limit = None,
    max_passage_tokens: PassageTokens = 512,
    baselines: Baselines = DEFAULT_BASELINE_SPEC,
    order: Annotated[str, typer.Option(help="Prompt order: retriever (file order), retriever-reversed, shuffled.")] = (
        "retriever"
    ),
    *,
    run: RunOptions,
) -> None:
    """Rank each question's passages; recall@2/5/10 and all-gold@2/5/10 for every system."""
    from ..evaluation import read_multihop_jsonl
    from ..evaluation.runner import run_multihop

    def evaluate(scorer: QRHeadScorer, examples: list[MultihopExample], command: str, harness: Harness) -> EvalReport:
        rows = f"rows {start}..{start + len(examples) - 1}"
        info = {"data": str(file), "data_name": file.name, "split": rows, "command": command}
        return run_multihop(scorer, examples, info=info, **harness)

    job = _Evaluation("multihop", file, model, heads, limit, max_passage_tokens, baselines, order)
    job.run(
        {"model": model, "heads": heads, "start": start},
        lambda: read_multihop_jsonl(file, limit=limit, start=start),
        evaluate,
        run,
    )
