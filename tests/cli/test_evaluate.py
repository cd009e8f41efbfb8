"""``qrhead eval``: end to end on a tiny saved model, and data errors as clean exit-code-2 messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qrhead_integrations.cli import app
from qrhead_integrations.evaluation import runner as runner_module
from tests.evaluation._fixtures import write_beir, write_multihop

cli = CliRunner()
TINY = ["--heads", "1-0,2-3", "--baselines", "bm25,all-heads,fusion"]


def test_help_lists_eval_commands() -> None:
    result = cli.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0 and "beir" in result.output and "multihop" in result.output


def test_eval_beir_writes_report_plot_and_table(saved_tiny_model: Path, tmp_path: Path) -> None:
    data = write_beir(tmp_path / "tiny")
    out = tmp_path / "reports"
    args = ["eval", "beir", str(data), "--model", str(saved_tiny_model), *TINY, "--top-k", "3", "--limit", "4"]
    args += ["--output", str(out / "r.json"), "--plot", str(out / "r.png"), "--markdown", str(out / "r.md")]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "r.json").read_text())
    assert list(report["metrics"]) == ["qrhead", "bm25", "all_heads", "fusion"]
    assert set(report["metrics"]["qrhead"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    info = report["info"]
    assert info["n_queries"] == 4 and info["split"] == "test" and info["top_k"] == 3
    assert info["max_passage_tokens"] == 256 and info["order"] == "retriever-reversed"
    assert info["heads"] == "1-0,2-3" and info["data"] == str(data)
    assert info["command"].startswith("qrhead eval beir ") and "--top-k 3" in info["command"]
    assert "--dtype " in info["command"]  # the dtype that ran, spelled out (the default depends on the CPU)
    assert (out / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "r.md").read_text().startswith("| system | ndcg@10")
    assert "s/query" in result.output and "qrhead" in result.output


def test_eval_multihop_end_to_end(saved_tiny_model: Path, tmp_path: Path) -> None:
    data = write_multihop(tmp_path / "mh.jsonl")
    out = tmp_path / "mh.json"
    args = ["eval", "multihop", str(data), "--model", str(saved_tiny_model), *TINY, "--start", "1", "--limit", "2"]
    options = ["--order", "shuffled", "--max-passage-tokens", "0", "--dtype", "bfloat16", "--output", str(out)]
    result = cli.invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert "--dtype bfloat16" in report["info"]["command"]
    assert sorted(report["per_query"]["qrhead"]) == ["m2", "m3"]
    assert report["info"]["order"] == "shuffled" and report["info"]["max_passage_tokens"] is None
    assert "recall@2" in report["metrics"]["fusion"] and "all_gold@2" in report["metrics"]["bm25"]


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        (lambda root: (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n"), "test.tsv:2:"),
        (lambda root: (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": 2'), "corpus.jsonl:2:"),
        (lambda root: (root / "queries.jsonl").unlink(), "no queries file"),
    ],
)
def test_malformed_beir_folder_is_a_clean_error(tmp_path: Path, damage: Any, where: str) -> None:
    data = write_beir(tmp_path / "bad")
    damage(data)
    # The model does not exist: the data error must come first, before any model is loaded.
    result = cli.invoke(app, ["eval", "beir", str(data), "--model", str(tmp_path / "no-model"), "--baselines", "none"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and where in result.output
    assert "Traceback" not in result.output


def test_malformed_multihop_line_is_a_clean_error(tmp_path: Path) -> None:
    data = write_multihop(tmp_path / "mh.jsonl")
    with data.open("a", encoding="utf-8") as handle:
        handle.write('{"question": "q", "passages": [{"text": "a"}], "gold_idx": [3]}\n')
    result = cli.invoke(app, ["eval", "multihop", str(data), "--model", str(tmp_path / "no-model")])
    assert result.exit_code == 2
    assert f"{data}:4: gold index 3 is out of range" in result.output


def test_missing_data_and_bad_options(tmp_path: Path) -> None:
    result = cli.invoke(app, ["eval", "beir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "folder not found" in result.output
    result = cli.invoke(app, ["eval", "beir", str(tmp_path), "--baselines", "bm25,rankgpt"])
    assert result.exit_code == 2 and "unknown baseline" in result.output
    result = cli.invoke(app, ["eval", "multihop", str(tmp_path / "x.jsonl"), "--order", "random"])
    assert result.exit_code == 2 and "order must be one of" in result.output


def test_interrupted_run_leaves_no_report(
    saved_tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_beir(tmp_path / "tiny")
    calls = {"n": 0}
    real_score = runner_module.SystemScorer.score_many

    def score_then_interrupt(self: Any, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_score(self, *args)

    monkeypatch.setattr(runner_module.SystemScorer, "score_many", score_then_interrupt)
    out = tmp_path / "out"
    out.mkdir()
    args = ["eval", "beir", str(data), "--model", str(saved_tiny_model), *TINY, "--output", str(out / "r.json")]
    result = cli.invoke(app, [*args, "--plot", str(out / "r.png")])
    assert result.exit_code == 130 and "no report written" in result.output
    assert list(out.iterdir()) == []


def test_no_qrhead_runs_only_the_requested_systems(tmp_path: Path, saved_tiny_model: Path) -> None:
    data = write_multihop(tmp_path / "mh.jsonl")
    out = tmp_path / "r.json"
    result = cli.invoke(
        app,
        [
            "eval",
            "multihop",
            str(data),
            "--model",
            str(saved_tiny_model),
            "--baselines",
            "bm25,default",
            "--no-qrhead",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    # Without the qrhead system there is no QRHead-alone row, not even the default's unfused scores.
    assert list(report["metrics"]) == ["default", "bm25"]
    assert "default_qrhead" not in result.output
    assert "--no-qrhead" in report["info"]["command"]
    bad = cli.invoke(app, ["eval", "multihop", str(data), "--baselines", "fusion", "--no-qrhead"])
    assert bad.exit_code != 0 and "need the qrhead system" in bad.output


def test_an_output_path_that_cannot_be_written_fails_before_the_model_loads(tmp_path: Path) -> None:
    data = write_beir(tmp_path / "tiny")
    (tmp_path / "taken.json").mkdir()
    bad = (("--output", "taken.json"), ("--markdown", "taken.json"), ("--plot", "tiny/corpus.jsonl/p.png"))
    for option, path in bad:
        args = ["eval", "beir", str(data), "--model", "no-such-model", option, str(tmp_path / path)]
        result = cli.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert option in result.output and "no-such-model" not in result.output


def test_a_finished_report_is_kept_when_its_file_cannot_be_written(
    saved_tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qrhead_integrations.evaluation import report as report_module

    data = write_beir(tmp_path / "tiny")

    def full_disk(report: Any, path: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module, "write_report", full_disk)
    out = tmp_path / "r.json"
    result = cli.invoke(app, ["eval", "beir", str(data), "--model", str(saved_tiny_model), *TINY, "--output", str(out)])
    assert result.exit_code == 2 and not out.exists()
    text = result.output
    rescued = Path(text[text.index("report is kept in ") + len("report is kept in ") :].split()[0])
    kept = json.loads(rescued.read_text(encoding="utf-8"))
    rescued.unlink()
    assert kept["info"]["n_queries"] >= 1 and "qrhead" in kept["metrics"]
