"""docs/llamaindex.md works as written: its Python blocks run in order, and a block that shows its output in
comments (``# ...`` lines after the code) prints exactly those lines."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "llamaindex.md"


def _expected_output(block: str) -> list[str]:
    """The trailing comment lines of a block (its documented output), without the ``# `` prefix."""
    lines = block.rstrip("\n").splitlines()
    shown: list[str] = []
    while lines and lines[-1].startswith("# "):
        shown.insert(0, lines.pop()[2:])
    return shown


@pytest.mark.real_model
def test_the_python_blocks_of_the_guide_run_and_print_what_they_show(smollm2: object) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 3
    checked = 0
    for block in blocks:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(block, str(DOC), "exec"), {})
        expected = _expected_output(block)
        if expected:
            assert output.getvalue().splitlines() == expected
            checked += 1
    assert checked >= 1
