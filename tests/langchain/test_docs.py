"""docs/langchain.md works as written: its Python blocks run in order, and print what the comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"


@pytest.mark.real_model
def test_the_python_blocks_of_the_guide_run_as_written() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    lines = output.getvalue().splitlines()
    score, title = lines[0].split("  ")
    assert title == "Hamlet" and float(score) > 0.5, lines  # the fused z-score mix: clearly above the mean
    assert lines[1] == "Hamlet"
    assert "Question: Who wrote Hamlet?" in output.getvalue() and "Hamlet is a tragedy" in output.getvalue()
    assert lines[-5] == "Hamlet"  # the ContextualCompressionRetriever block
    assert lines[-1] == "True"  # the chat model over the reranker's own model: one copy of the weights
    assert lines[-4:-1] == [  # the QRHeadContextCompressor block: the Hamlet sentences only, Paris dropped
        "notes.txt [(93, 209)]",
        "Hamlet is a tragedy written by William Shakespeare sometime between 1599 and 1601. "
        "It is Shakespeare's longest play.",
        "0.54",
    ]
