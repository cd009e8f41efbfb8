"""``qrhead rank`` and ``qrhead demo``: rank passages read from a file or stdin, or the bundled demo question."""

from __future__ import annotations

import json
import math
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import DataFormatError, QRHeadError
from ..headset import HeadSet
from ..models import DEFAULT_MODEL
from ..passages import Passage, to_passage
from ..presets import default_preset
from ._common import FLAG, DeviceOption, DtypeOption, HeadsOption, ModelOption, QuantizeOption, console, fail

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
"""A passage file with one of these suffixes is JSON lines whatever its lines hold: a bad line is an error."""


def read_passages(source: str) -> list[Passage]:
    """Passages from a JSONL file, a text file or ``-`` for standard input in either format.

    The format is decided for the whole file, never line by line, so a plain-text line that happens to start
    with ``"`` or ``{`` stays text: the file is JSON lines when its name ends in ``.jsonl``/``.json``/``.ndjson``
    or when *every* non-blank line parses as a JSON string or object; otherwise every non-blank line is one
    passage of plain text. In JSON lines each line is a JSON object (``{"text", "title"?}``) or a JSON string,
    read by the package's one passage parser (:func:`~qrhead_integrations.passages.to_passage`).

    Raises:
        DataFormatError: bytes that are not UTF-8, or (JSON lines) a line that is not a passage, naming the line.
    """
    name = "<stdin>" if source == "-" else source
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{name}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x})") from exc
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    parsed = [_json_passage(line) for _, line in lines]
    if Path(source).suffix.lower() not in JSON_SUFFIXES and not all(isinstance(p, str | dict) for p in parsed):
        return [Passage(text=line.strip()) for _, line in lines]
    return [_checked_passage(name, number, item) for (number, _), item in zip(lines, parsed, strict=True)]


def _json_passage(line: str) -> object:
    """A line's JSON value, or the error that parsing it raised (returned, so the caller decides the format)."""
    try:
        return json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        return exc


def _checked_passage(name: str, number: int, item: object) -> Passage:
    """One JSON line's passage, or a :class:`DataFormatError` naming the file and line."""
    if isinstance(item, json.JSONDecodeError):
        raise DataFormatError(f"{name}, line {number}: invalid JSON ({item.msg})")
    if isinstance(item, RecursionError):
        raise DataFormatError(f"{name}, line {number}: invalid JSON (nested too deeply)")
    if not isinstance(item, str | dict):
        raise DataFormatError(f"{name}, line {number}: expected a string or an object with 'text'")
    try:
        return to_passage(item, label="the passage")
    except QRHeadError as exc:
        raise DataFormatError(f"{name}, line {number}: {exc}") from exc


def json_score(value: float) -> float | None:
    """A score as JSON can carry it: ``None`` (``null``) for the ``-inf`` of an empty passage, else the number.

    ``-Infinity`` is not JSON; ``qrhead batch`` writes the same ``null``.
    """
    return value if math.isfinite(value) else None


def heads_line(heads: HeadSet) -> str:
    """One line saying which heads a scorer reads, in a user's words: the preset's name and what it is.

    How a preset was detected (scripts, caches, splits) stays in its provenance, for maintainers.
    """
    provenance = heads.provenance
    count = f"{len(heads)} heads"
    preset = provenance.get("preset")
    if preset:
        default = default_preset(provenance.get("model"))
        own = " (the model's default)" if default is not None and default.provenance.get("preset") == preset else ""
        about = provenance.get("about")
        return f"heads: the {preset!r} preset{own}, {count}" + (f" — {about}" if about else "")
    method = provenance.get("method")
    if method == "all":
        return f"heads: all {count} of the model (it has no preset)"
    if method == "layers":
        return f"heads: every head of layer(s) {', '.join(map(str, heads.layers))}, {count}"
    return f"heads: {count} as given ({heads})"


def ranking_table(title: str, ranked: list[Any], gold: set[int] | None = None) -> Table:
    """The ranking as a table: rank, input number, score and passage (gold ones marked when ``gold`` is given)."""
    table = Table(title=escape(title), show_lines=False)
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
        row.append(escape(snippet[:90] + ("…" if len(snippet) > 90 else "")))
        table.add_row(*row)
    return table


def rank(
    query: Annotated[str, typer.Option("--query", "-q", help="The query.")],
    passages: Annotated[
        str,
        typer.Option(
            "--passages",
            "-p",
            help="JSONL or text file of passages, or '-' for stdin (JSON lines when the name ends in .jsonl or every "
            "line is a JSON string or object; else one passage per line).",
        ),
    ] = "-",
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", help="Show only the best N.")] = None,
    device: DeviceOption = None,
    quantize: QuantizeOption = None,
    dtype: DtypeOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print JSON lines (an empty passage's score: null) instead of a table.", metavar=FLAG
        ),
    ] = False,
    fusion: Annotated[
        bool,
        typer.Option(
            "--fusion/--no-fusion",
            metavar=FLAG,
            help="Fuse QRHead's ranking with the passages' order and BM25 (the default fusion), or rank by "
            "QRHead alone.",
        ),
    ] = True,
) -> None:
    """Rank passages for a query and print them best first (the file's order is taken as a first stage's)."""
    from ..scorer import QRHeadScorer

    try:
        items = read_passages(passages)
        if not items:
            raise DataFormatError(f"{'<stdin>' if passages == '-' else passages}: no passages to rank")
        scorer = QRHeadScorer.from_pretrained(model, heads=heads, device=device, quantize=quantize, dtype=dtype)
        ranked = scorer.rank(query, items, top_n=top_n, **({} if fusion else {"fusion": None}))
    except (QRHeadError, OSError) as exc:
        raise fail(exc) from exc
    if as_json:
        for item in ranked:
            record = {
                "index": item.index,
                "score": json_score(item.score),
                "qrhead_score": json_score(item.qrhead_score),
                "title": item.passage.title,
                "text": item.passage.text,
            }
            print(json.dumps(record, ensure_ascii=False))
        return
    console.print(ranking_table(f"Query: {query}", ranked))


def demo(
    model: ModelOption = DEFAULT_MODEL,
    heads: HeadsOption = None,
) -> None:
    """Offline demo: rank the 10 passages of a real HotpotQA question with a bundled model."""
    from ..scorer import QRHeadScorer

    example = json.loads(resources.files("qrhead_integrations").joinpath("data/demo_hotpotqa.json").read_text("utf-8"))
    passages = [to_passage(p) for p in example["passages"]]
    gold = set(example["gold_idx"])
    from ..models import needs_conversion

    if needs_conversion(model):
        console.print(
            f"Converting [bold]{escape(model)}[/bold]'s bundled GGUF once (a minute or more; later runs load it)…"
        )
    else:
        console.print(f"Loading [bold]{escape(model)}[/bold]…")
    try:
        started = time.perf_counter()
        scorer = QRHeadScorer.from_pretrained(model, heads=heads)
        loaded = time.perf_counter()
        ranked = scorer.rank(example["question"], passages)
        done = time.perf_counter()
    except QRHeadError as exc:
        raise fail(exc) from exc
    console.print(escape(heads_line(scorer.heads)), highlight=False, soft_wrap=True)
    console.print(ranking_table(f"Query: {example['question']}", ranked, gold))
    found = sum(1 for item in ranked[: len(gold)] if item.index in gold)
    console.print(
        f"gold passages (★) in the top {len(gold)}: {found} of {len(gold)} · load {loaded - started:.1f} s · "
        f"scoring {done - loaded:.1f} s · data: {escape(str(example['_source']))}"
    )
