"""Writing a benchmark's report files: one place for every script in this folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def relative(value: object) -> object:
    """Paths as the repository sees them (``../shared/data/...``): a report must not record this machine's
    folders. Other values unchanged."""
    if isinstance(value, Path):
        return os.path.relpath(value.resolve(), REPO)
    return value


def write_reports(report: dict[str, Any], markdown: str, json_path: Path | None, markdown_path: Path | None) -> None:
    """Write ``report`` as JSON and ``markdown`` as Markdown where a path is given (folders created)."""
    for target, text in ((json_path, json.dumps(report, indent=2) + "\n"), (markdown_path, markdown)):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
