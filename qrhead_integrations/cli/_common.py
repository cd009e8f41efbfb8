"""What every ``qrhead`` command shares: the options typed the same way everywhere, and one error exit."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console()

FLAG = ""
"""The metavar of an on/off option: typer's help would otherwise show ``<bool>``, as if it took a value."""

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Bundled model name (qwen2.5-coder-0.5b-instruct, smollm2-135m-instruct, qwen2.5-coder-1.5b-instruct), "
        "folder, .gguf or hub id.",
    ),
]
HeadsOption = Annotated[
    str | None,
    typer.Option("--heads", help="Heads: a preset name, 'all', 'layer:N', 'l-h,l-h,...' or a head-set JSON file."),
]
DeviceOption = Annotated[str | None, typer.Option(help="cpu, cuda, mps (default: automatic).")]
QuantizeOption = Annotated[
    str | None,
    typer.Option(
        "--quantize",
        help="int8: dynamic int8 Linear layers (CPU only; faster, rankings can change, see docs/engine.md).",
    ),
]
DtypeOption = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        help="float32, bfloat16, float16 (default: bfloat16 on CPUs with AMX bf16 and on GPUs, else float32; "
        "float32 with --quantize).",
    ),
]

RowsPerForward = Annotated[
    int | None,
    typer.Option(
        "--rows-per-forward",
        min=1,
        help="Queries scored in one batched forward (default 8; results do not depend on it; more keeps a GPU busy).",
    ),
]


def fail(exc: BaseException) -> typer.Exit:
    """Print ``exc`` as one unwrapped error line (paths stay whole) and return the exit (code 2) to raise."""
    # escape: a message quotes user text and install hints (``pkg[extra]``), which rich would read as markup.
    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)
