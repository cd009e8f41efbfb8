"""docs/llamaindex.md works as written: its Python blocks run in order, and a block that shows its output in
comments (``# ...`` lines after the code) prints those lines — the same text, and numbers equal to within one
unit of their last printed digit (float32 and bf16 matrix kernels differ between CPUs, with and without AMX, in
the last bits, which can move a printed fourth decimal)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "llamaindex.md"


_NUMBER = re.compile(r"-?\d+\.\d+")


def _same_line(printed: str, shown: str) -> bool:
    """``printed`` reads as ``shown``: equal text between the numbers, each decimal within one last-digit unit."""
    if _NUMBER.split(printed) != _NUMBER.split(shown):
        return False
    pairs = zip(_NUMBER.findall(printed), _NUMBER.findall(shown), strict=True)
    return all(abs(float(a) - float(b)) <= 1.01 * 10 ** -len(b.split(".")[1]) for a, b in pairs)


def test_line_comparison_allows_only_the_last_digit() -> None:
    assert _same_line("    0 35 0.0040", "    0 35 0.0039")
    assert not _same_line("    0 35 0.0042", "    0 35 0.0039")
    assert not _same_line("    1 35 0.0039", "    0 35 0.0039")
    assert not _same_line("    0 35 0.0039 extra", "    0 35 0.0039")


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
            printed = output.getvalue().splitlines()
            assert len(printed) == len(expected), (printed, expected)
            for got, shown in zip(printed, expected, strict=True):
                assert _same_line(got, shown), (got, shown)
            checked += 1
    assert checked >= 1
