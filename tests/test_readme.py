"""README.md works as written: its Python blocks run in order, its command lines exit 0 and do what they say.

Blocks whose info string says ``notest`` are not run: the set-up commands (``.ci/run`` itself runs
``scripts/test.sh``, and the install lines are what it does) and the "your own model" examples, which name a
hub model that cannot be downloaded here. Python blocks run from the repository root (they read the sample
data by a relative path); command lines run in an empty folder that links ``examples/``, with this interpreter's
``qrhead``: what they write must land under ``out/`` (ignored by git), never beside the README.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import ray_lock

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def blocks(language: str) -> list[str]:
    return [body for lang, info, body in BLOCK.findall(README) if lang == language and "notest" not in info]


def test_every_block_is_run_or_marked() -> None:
    """A new block is either runnable (and run below) or says ``notest``: nothing is silently skipped."""
    languages = {lang for lang, _, _ in BLOCK.findall(README)}
    assert languages <= {"python", "bash", "json"}, languages
    assert len(blocks("python")) == 3 and len(blocks("bash")) == 1


@pytest.mark.real_model
def test_the_python_blocks_run_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    namespace: dict[str, object] = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for block in blocks("python"):
            exec(compile(block, "README.md", "exec"), namespace)
    lines = output.getvalue().splitlines()
    assert lines[0].startswith("1 ") and lines[0].endswith("Paris is the capital and largest city of France.")
    by_query = json.loads(lines[4])  # score_many: one row per query
    assert max(range(3), key=lambda i: by_query[1][i]) == 2  # the river question: the Seine passage
    assert lines[5] == "torch.Size([16, 3])"
    batched = json.loads(lines[6])  # rank_batch: one ranking per row, the same as rank row by row
    assert batched[0][0] == 1 and sorted(batched[0]) == [0, 1, 2] and batched[1][0] == 1  # Paris; the Seine
    kept = re.fullmatch(r"kept (\d+) of (\d+) tokens", lines[7])
    assert kept is not None and 0 < int(kept.group(1)) <= 256 < int(kept.group(2))
    answer, tokens = lines[-1].rsplit(" ", 1)  # the reader over the scorer's own model
    assert 0 < int(tokens) < 1000 and answer.strip()


@pytest.mark.real_model
@pytest.mark.slow  # every command line in its own process (about 7 minutes on one busy core)
def test_the_command_lines_run_as_written(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, smollm2: object
) -> None:
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_AUTH_MODE": "disabled",
    }
    (commands,) = blocks("bash")
    for line in (x for x in commands.splitlines() if x.strip() and not x.lstrip().startswith("#")):
        # `qrhead batch` starts a local Ray: one at a time across test workers
        with ray_lock(tmp_path_factory) if "qrhead batch" in line else contextlib.nullcontext():
            result = subprocess.run(
                ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False
            )
        assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-3000:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples", "out"]  # nothing left in the root
    out = tmp_path / "out"
    heads = json.loads((out / "heads.json").read_text(encoding="utf-8"))
    assert heads["provenance"]["examples"] >= 1 and heads["heads"]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["info"]["n_queries"] == 2 and "qrhead" in report["metrics"]
    ranked = [json.loads(x) for x in (out / "ranked.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(ranked) == 20 and all(row["error"] is None and len(row["ranking"]) == 10 for row in ranked)
    qa = json.loads((out / "qa.json").read_text(encoding="utf-8"))
    assert qa["info"]["n_queries"] == 1 and {"full", "gold", "qrhead@25%", "bm25@25%"} <= set(qa["metrics"])


def test_the_getting_started_page_is_the_readme_quick_start() -> None:
    """The site's getting-started page includes the README's section (one text, run by the tests here): both
    markers are in the README, in order, around the set-up and quick start, and the page includes that section."""
    start, end = "--8<-- [start:getting-started]", "--8<-- [end:getting-started]"
    assert README.index(start) < README.index("## Quick start") < README.index(end)
    page = (REPO / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert '--8<-- "README.md:getting-started"' in page


def test_the_output_folder_is_ignored_by_git() -> None:
    """The README's commands write under ``out/``: git must ignore it, or a user's first run dirties the tree."""
    assert "/out/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_committed_reports_record_no_machine_paths() -> None:
    """Reports say where their data was relative to the repository (``../shared/data/...``), never this
    machine's folders, so a command in a report runs on any checkout."""
    for report in sorted((REPO / "reports").glob("*.*")):
        if report.suffix not in (".md", ".json"):
            continue
        text = report.read_text(encoding="utf-8")
        for marker in ("/work/", "/root/", "/home/", "/tmp/"):
            assert marker not in text, (report.name, marker)
