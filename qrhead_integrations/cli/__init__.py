"""The ``qrhead`` command line: thin wrappers that parse arguments and call the public API (no scoring here).

One module per command (``rank``/``demo``, ``detect``, ``eval``, ``batch``); the options every command types the
same way (``--model``, ``--heads``, ``--device``, ``--quantize``) and the error exit live in ``_common``; the one
option before any command, ``--threads``, is this app's callback.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .batch import batch
from .detect import detect
from .evaluate import eval_app
from .evaluate_qa import qa as _qa  # noqa: F401 - registers `qrhead eval qa` on eval_app
from .rank import demo, rank

app = typer.Typer(
    name="qrhead",
    help="Re-rank passages with a language model's query-focused retrieval heads (QRHead).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _threads(
    context: typer.Context,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="torch threads for this command (default: torch's, one per core the process may use; 1 leaves the "
            "other cores to another busy process). Goes before the command: qrhead --threads 1 rank ...; "
            "batch workers take --cpus-per-worker.",
        ),
    ] = None,
) -> None:
    """Set torch's threads for the command that follows and restore them when it ends.

    torch's thread count is process-wide, so the whole command (loading, scoring, answering, baselines) runs with
    it; it is restored on exit so that an in-process caller (a test's CliRunner, a notebook) keeps its own.
    """
    if threads is not None:
        from ..forward import torch_threads  # imports torch: only here, so `qrhead --help` stays fast

        context.with_resource(torch_threads(threads))  # left when the command's context closes


app.command()(rank)
app.command()(demo)
app.command()(detect)
app.add_typer(eval_app, name="eval")
app.command("batch")(batch)

__all__ = ["app"]
