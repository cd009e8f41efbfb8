"""docs/results.md works as written on a fresh clone: its Python block runs on the sample data and prints a report.

The page's shell commands read the full data sets (``../shared/data``) and take hours; what a fresh clone can run
is this block, on ``examples/data/``, and the page's command lines are the ones ``benchmarks/results.sh`` runs.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "results.md"


@pytest.mark.real_model
def test_the_python_block_runs_on_the_sample_and_prints_a_report(monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    monkeypatch.chdir(REPO)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(block, str(DOC), "exec"), {})
    first, *table = output.getvalue().splitlines()
    default, bm25 = (float(x) for x in first.split())
    assert 0.0 <= default <= 1.0 and 0.0 <= bm25 <= 1.0
    assert table[0].startswith("| system | recall@2") and any(row.startswith("| default |") for row in table)


def test_the_commands_read_the_data_the_page_says_how_to_build() -> None:
    """Every data path a command on the page reads is one the Reproduce section builds, or the shipped samples."""
    page = DOC.read_text(encoding="utf-8")
    for path in re.findall(r"(?:\.\./shared/data|examples/data)/[\w./-]+\w", page):
        if path.startswith("examples/"):
            assert (REPO / path).exists(), path
        else:
            assert path.removeprefix("../shared/data/") in page.split("## Reproduce", 1)[1], path
