"""The ``qrhead`` command: thin wrappers that parse arguments and call the public API (no scoring logic here)."""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .cli_batch import batch
from .cli_eval import eval_app
from .errors import DataFormatError, QRHeadError
from .models import DEFAULT_MODEL
from .prompt import Passage

app = typer.Typer(
    name="qrhead",
    help="Re-rank passages with a language model's query-focused retrieval heads (QRHead).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Bundled model name (qwen2.5-coder-0.5b-instruct, smollm2-135m-instruct), folder, .gguf or hub id.",
    ),
]
HeadsOption = Annotated[
    str | None,
    typer.Option(
        "--heads", help="Heads: a preset name, 'all', 'layer:N', 'l-h,l-h,...' or a head-set JSON file."
    ),
]


def _read_passages(source: str) -> list[Passage]:
    """Passages from a JSONL file (``{"text", "title"?}`` or a JSON string per line), a text file (one passage per
    non-blank line) or ``-`` for standard input in either format."""
    name = "<stdin>" if source == "-" else source
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{name}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x})") from exc
    passages: list[Passage] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith(("{", '"')):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{name}, line {number}: invalid JSON ({exc.msg})") from exc
            if isinstance(item, str):
                passages.append(Passage(text=item))
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                passages.append(Passage(text=item["text"], title=str(item.get("title") or "")))
            else:
                raise DataFormatError(f"{name}, line {number}: expected a string or an object with 'text'")
        else:
            passages.append(Passage(text=line.strip()))
    return passages


def _ranking_table(title: str, ranked: list[Any], gold: set[int] | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("rank", justify="right")
    table.add_column("input #", justify="right")
    table.add_column("score", justify="right")
    if gold is not None:
        table.add_column("gold")
    table.add_column("passage")
    for rank, item in enumerate(ranked, start=1):
        label = f"{item.passage.title}: " if item.passage.title else ""
        snippet = (label + item.passage.text).replace("\n", " ")
        row = [str(rank), str(item.index), f"{item.score:+.4f}"]
        if gold is not None:
            row.append("★" if item.index in gold else "")
        row.append(snippet[:90] + ("…" if len(snippet) > 90 else ""))
        table.add_row(*row)
    return table


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)  # paths stay whole
    return typer.Exit(code=2)


@app.command()
def rank(
    query: Annotated[str, typer.Option("--query", "-q", help="The query.")],
    passages: Annotated[
        str, typer.Option("--passages", "-p", help="JSONL or text file of passages, or '-' for stdin.")
    ] = "-",
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", help="Show only the best N.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, mps (default: automatic).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
    fusion: Annotated[
        bool,
        typer.Option(
            "--fusion/--no-fusion",
            help="Fuse QRHead's ranking with the passages' order and BM25 (the default fusion), or rank by "
            "QRHead alone.",
        ),
    ] = True,
) -> None:
    """Rank passages for a query and print them best first (the file's order is taken as a first stage's)."""
    from .scorer import QRHeadScorer

    try:
        items = _read_passages(passages)
        scorer = QRHeadScorer.from_pretrained(model, heads=heads, device=device)
        ranked = scorer.rank(query, items, top_n=top_n, **({} if fusion else {"fusion": None}))
    except (QRHeadError, OSError) as exc:
        raise _fail(exc) from exc
    if as_json:
        for item in ranked:
            record = {
                "index": item.index,
                "score": item.score,
                "qrhead_score": item.qrhead_score,
                "title": item.passage.title,
                "text": item.passage.text,
            }
            print(json.dumps(record, ensure_ascii=False))
        return
    console.print(_ranking_table(f"Query: {query}", ranked))


@app.command()
def demo(
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
) -> None:
    """Offline demo: rank the 10 passages of a real HotpotQA question with a bundled model."""
    from .scorer import QRHeadScorer

    example = json.loads(resources.files(__package__).joinpath("data/demo_hotpotqa.json").read_text("utf-8"))
    passages = [Passage(text=p["text"], title=p["title"]) for p in example["passages"]]
    gold = set(example["gold_idx"])
    console.print(f"Loading [bold]{model}[/bold] (first use converts the bundled GGUF once and caches it)…")
    try:
        started = time.perf_counter()
        scorer = QRHeadScorer.from_pretrained(model, heads=heads)
        loaded = time.perf_counter()
        ranked = scorer.rank(example["question"], passages)
        done = time.perf_counter()
    except QRHeadError as exc:
        raise _fail(exc) from exc
    console.print(
        f"heads: {scorer.heads} ({len(scorer.heads)} heads, {scorer.heads.provenance.get('source', '')})"
    )
    console.print(_ranking_table(f"Query: {example['question']}", ranked, gold))
    found = sum(1 for item in ranked[: len(gold)] if item.index in gold)
    console.print(
        f"gold passages (★) in the top {len(gold)}: {found} of {len(gold)} · load {loaded - started:.1f} s · "
        f"scoring {done - loaded:.1f} s · data: {example['_source']}"
    )


@app.command()
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
    method: Annotated[str, typer.Option(help="qr_score (the paper's) or ndcg.")] = "qr_score",
    seed: Annotated[int, typer.Option(help="Seed of the per-example candidate shuffle.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Also write a layers × heads heatmap (PNG).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, mps (default: automatic).")] = None,
) -> None:
    """Detect a model's query-focused retrieval heads from labelled examples and save them as JSON."""
    from ._files import check_output_path, rescue_text
    from .detect import check_metric, detection_provenance, example_head_scores, plot_head_scores, select_heads
    from .scorer import QRHeadScorer

    if method not in ("qr_score", "ndcg"):
        raise _fail(ValueError(f"--method must be qr_score or ndcg, got {method!r}"))
    choice = top_k.strip().lower()
    if choice not in ("auto", "greedy") and not (choice.isdigit() and int(choice) >= 1):
        raise _fail(ValueError(f"--top-k must be a positive integer, 'auto' or 'greedy', got {top_k!r}"))
    spec: Any = int(choice) if choice.isdigit() else choice
    if not isinstance(spec, int) and not 0 < validation < 1:
        raise _fail(ValueError(f"--validation must be a fraction in (0, 1), got {validation}"))
    try:
        check_metric(metric)
        check_output_path(output)
        if plot is not None:
            check_output_path(plot, option="--plot")
    except QRHeadError as exc:
        raise _fail(exc) from exc
    try:
        examples, description = _labelled_examples(data, data_format, split, start, limit, candidates)
        scorer = QRHeadScorer.from_pretrained(model, heads="all", device=device)
        scored = list(example_head_scores(scorer, examples, seed=seed, show_progress=True, total=len(examples)))
        detection = select_heads(
            scored,
            top_k=spec,
            shape=(scorer.num_layers, scorer.num_heads),
            method=method,  # type: ignore[arg-type]
            validation=validation,
            metric=metric,
            max_heads=max_heads,
            provenance=detection_provenance(scorer, seed, description),
        )
    except (QRHeadError, OSError) as exc:
        raise _fail(exc) from exc
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
            f"[red]error:[/red] could not write {output} ({exc}); the head set is kept in {rescued}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1) from exc
    console.print(f"{len(heads)} heads ({method}, {table.examples} examples): {heads}")
    console.print(f"best single layer: {table.best_layer()} · written to {output}")
    if plot is not None:
        plot_head_scores(table, str(plot), top_k=len(heads))
        console.print(f"heatmap written to {plot}")


def _labelled_examples(
    data: Path, data_format: str, split: str, start: int, limit: int | None, candidates: int
) -> tuple[list[Any], str]:
    from .evaluation import beir_candidates, read_beir, read_multihop_jsonl

    if data_format == "multihop":
        examples = read_multihop_jsonl(data, limit=limit, start=start)
        end = start + len(examples) - 1
        return examples, f"{data.name} rows {start}..{end} (multihop)"
    if data_format == "beir":
        dataset = read_beir(data, split=split)
        examples = beir_candidates(dataset, top_k=candidates, start=start, limit=limit)
        return examples, f"{data.name} {split} queries {start}..+{limit} (BM25 top-{candidates}, judged gold)"
    raise DataFormatError(f"--format must be multihop or beir, got {data_format!r}")


app.add_typer(eval_app, name="eval")

app.command("batch")(batch)

if __name__ == "__main__":  # pragma: no cover
    app()
