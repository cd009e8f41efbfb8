"""The ``qrhead`` command line: thin wrappers that parse arguments and call the public API (no scoring here).

One module per command (``rank``/``demo``, ``detect``, ``eval``, ``batch``); the options every command types the
same way (``--model``, ``--heads``, ``--device``, ``--quantize``) and the error exit live in ``_common``.
"""

from __future__ import annotations

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
app.command()(rank)
app.command()(demo)
app.command()(detect)
app.add_typer(eval_app, name="eval")
app.command("batch")(batch)

__all__ = ["app"]
