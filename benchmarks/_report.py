"""Writing a report's files: one place for every script in this folder and in ``research/``.

A report is a JSON file (what a doc cites and a test reads) and a Markdown rendering of it. The JSON records the
command that made it, so anyone can re-run it from a checkout; a report that carries its own (``info.command``,
as ``qrhead eval``'s do) keeps that one.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def relative(value: object) -> object:
    """Paths as the repository sees them (``../shared/data/...``): a report must not record this machine's
    folders. Other values unchanged."""
    if isinstance(value, Path):
        return os.path.relpath(value.resolve(), REPO)
    return value


def command(argv: list[str] | None = None) -> str:
    """The running script's command line as a checkout repeats it: ``python <script> <arguments>``, every path
    relative to the repository root."""
    script, *arguments = sys.argv if argv is None else argv
    parts = [os.path.relpath(Path(script).resolve(), REPO)]
    parts += [str(relative(Path(a))) if os.path.isabs(a) else a for a in arguments]
    return shlex.join(["python", *parts])


def write_reports(report: dict[str, Any], markdown: str, json_path: Path | None, markdown_path: Path | None) -> None:
    """Write ``report`` as JSON (with its ``command`` first, unless it records one) and ``markdown`` as Markdown
    where a path is given (folders created)."""
    if "command" not in report and "command" not in report.get("info", {}):
        report = {"command": command(), **report}
    for target, text in ((json_path, json.dumps(report, indent=2) + "\n"), (markdown_path, markdown)):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
