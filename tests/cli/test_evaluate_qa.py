"""``qrhead eval qa`` end to end on the example HotpotQA rows with a tiny saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qrhead_integrations.cli import app
from tests.tiny_models import tiny_model, tiny_tokenizer

cli = CliRunner()


@pytest.fixture(scope="module")
def long_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with an 8K window saved to a folder: the example rows' full context fits its reader."""
    folder = tmp_path_factory.mktemp("tiny-llama-8k")
    model = tiny_model("llama")
    model.config.max_position_embeddings = 8192
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "hotpotqa_sample.jsonl"
STRATEGIES = ["full", "closed_book", "gold", "qrhead@25%", "qrhead@50%", "bm25@25%", "bm25@50%"]


def test_eval_qa_runs_every_strategy_and_writes_the_report(long_tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa.json"
    args = ["eval", "qa", str(SAMPLE), "--model", str(long_tiny_model), "--heads", "1-0,2-3", "--start", "1"]
    args += ["--limit", "2", "--max-new-tokens", "3", "--output", str(out), "--markdown", str(tmp_path / "qa.md")]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report["metrics"]) == [*STRATEGIES, "qrhead_top2", "bm25_top2"]
    assert set(report["metrics"]["qrhead@25%"]) >= {"em", "f1", "reader_tokens", "seconds"}
    info = report["info"]
    assert info["n_queries"] == 2 and info["shared_model"] is True and info["split"] == "rows 1..2"
    assert info["command"].startswith("qrhead eval qa ") and "--dtype " in info["command"]
    assert not (tmp_path / "qa.json.partial.jsonl").exists()  # removed once the report is written
    assert (tmp_path / "qa.md").read_text().startswith("| strategy | EM | F1 |")
    assert "qrhead@25% vs bm25@25% on f1" in result.output
    assert info["too_long"] == {}


def test_eval_qa_bad_options_and_data_exit_2(saved_tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?"}\n', encoding="utf-8")
    for args in (
        [str(bad), "--model", str(saved_tiny_model)],
        [str(SAMPLE), "--model", str(saved_tiny_model), "--budgets", "0.25,2"],
        [str(SAMPLE), "--model", str(saved_tiny_model), "--strategies", "full,nope"],
    ):
        result = cli.invoke(app, ["eval", "qa", *args])
        assert result.exit_code == 2, result.output
        assert "error" in result.output


def test_eval_qa_reuses_rows_a_run_with_the_same_settings_answered(long_tiny_model: Path, tmp_path: Path) -> None:
    """Rows are kept by id under the settings without the row slice: a checkpoint written by a run over other
    rows (another --start/--limit) is reused, and one with other settings is refused."""
    from qrhead_integrations.cli.evaluate_qa import _command
    from qrhead_integrations.evaluation.qa_data import read_qa_jsonl

    out = tmp_path / "qa.json"
    options = ["--heads", "1-0,2-3", "--max-new-tokens", "2", "--strategies", "full", "--dtype", "float32"]
    identity = _command(SAMPLE, str(long_tiny_model), None, "1-0,2-3", 0, None, "0.25,0.5", 2, "full", 2, "float32")
    row_id = read_qa_jsonl(SAMPLE, limit=1)[0].id
    done = {"answer": "kept from before", "em": 0.0, "f1": 0.0, "reader_tokens": 9, "context_tokens": 3, "seconds": 1}
    partial = tmp_path / "qa.json.partial.jsonl"
    lines = [{"settings": {"answers_from": identity}}, {"id": row_id, "results": {"full": done}}]
    partial.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    args = ["eval", "qa", str(SAMPLE), "--model", str(long_tiny_model), *options, "--output", str(out)]
    result = cli.invoke(app, [*args, "--start", "0", "--limit", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["answers"]["full"][row_id] == "kept from before" and len(report["answers"]["full"]) == 2
    assert report["info"]["resumed_rows"] == 1 and not partial.exists()
    partial.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    only = cli.invoke(app, [*args, "--start", "0", "--limit", "3", "--answered-only"])
    assert only.exit_code == 0, only.output
    report = json.loads(out.read_text())
    assert list(report["answers"]["full"]) == [row_id] and report["info"]["unanswered"] == 2
    assert partial.exists()  # kept: the run can still be completed
    partial.write_text(json.dumps({"settings": {"answers_from": "other"}}) + "\n", encoding="utf-8")
    refused = cli.invoke(app, [*args, "--limit", "1"])
    assert refused.exit_code == 2 and "other settings" in refused.output
