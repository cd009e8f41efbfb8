"""docs/passage-cache.md works as written: its example runs on the bundled SmolLM2, the second query reads both
passages from the cache, and each query ranks its own capital first."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "passage-cache.md"


@pytest.mark.real_model
def test_the_example_runs_and_the_second_query_hits_the_cache(smollm2: object) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(block, str(DOC), "exec"), {})
    france, germany, counts = output.getvalue().splitlines()
    assert counts == "2 2"  # two misses (the cold call), then two hits
    assert france == "[0, 1]" and germany == "[1, 0]"  # each capital's own passage first (attention + BM25 agree)
