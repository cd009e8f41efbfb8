"""Every example script runs on a fresh clone: a copy of ``examples/`` alone, with no ``../shared`` beside it.

The scripts read the sample data shipped in ``examples/data/``; each runs in a subprocess from an empty working
directory on the real bundled SmolLM2, and the test checks what the script says it shows. The sample file is
checked against the full HotpotQA copy when ``../shared`` is there (it is rows 0-19, unchanged).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {
    "langchain_rerank.py": "Gold promoted into the top 3 by QRHead:",
    "llamaindex_rerank.py": "Gold passages in the top 2: retriever 0/2, QRHead",
    "compress_long_document.py": "Gold passage",
    "local_rag.py": "Reader tokens: ",
}


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/clone/examples``: the scripts and their data, nothing else of the repository or ../shared."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
    return root / "examples"


def test_the_sample_is_hotpotqa_rows_0_to_19(hotpotqa_rows: list[dict[str, Any]]) -> None:
    lines = (EXAMPLES / "data" / "hotpotqa_sample.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == hotpotqa_rows[:20]


@pytest.mark.real_model
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs_without_shared_data(script: str, fresh_clone: Path, smollm2: object, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["QRHEAD_EXAMPLE_MODEL"] = "smollm2-135m-instruct"  # local_rag.py's default is the default model
    result = subprocess.run(
        [sys.executable, str(fresh_clone / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert SCRIPTS[script] in result.stdout
    assert "shared" not in result.stdout


def test_a_missing_data_file_is_a_clear_message_not_a_traceback(fresh_clone: Path, tmp_path: Path) -> None:
    for script in sorted(SCRIPTS):
        result = subprocess.run(
            [sys.executable, str(fresh_clone / script), "--data", str(tmp_path / "nowhere.jsonl")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode != 0 and "nowhere.jsonl not found" in result.stderr, (script, result.stderr)
        assert "Traceback" not in result.stderr
