"""`qrhead detect`: writes a valid head-set file (and a heatmap); bad data files name file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from qrhead_integrations import HeadSet
from qrhead_integrations.cli import app

runner = CliRunner()


def _write_examples(path: Path, n: int = 3) -> None:
    rows = []
    for i in range(n):
        passages = [{"title": f"T{j}", "text": f"The moon and the sun, passage {i}.{j}."} for j in range(4)]
        rows.append({"id": f"q{i}", "question": f"what about passage {i}.1?", "passages": passages, "gold_idx": [1]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_detect_round_trip_writes_a_valid_head_set(saved_tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    _write_examples(data)
    out = tmp_path / "heads" / "tiny.json"
    plot = tmp_path / "heads.png"
    result = runner.invoke(
        app,
        [
            "detect",
            str(data),
            "--model",
            str(saved_tiny_model),
            "--top-k",
            "5",
            "--output",
            str(out),
            "--plot",
            str(plot),
            "--limit",
            "2",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    heads = HeadSet.load(out)
    assert len(heads) == 5 and heads.scores is not None and list(heads.scores) == sorted(heads.scores, reverse=True)
    heads.validate(4, 4)
    assert heads.provenance["examples"] == 2 and heads.provenance["seed"] == 3
    assert heads.provenance["data"] == "train.jsonl rows 0..1 (multihop)"
    assert plot.stat().st_size > 1000
    assert not list(out.parent.glob("*.tmp"))


def test_detect_reports_the_bad_line(saved_tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    _write_examples(data, n=1)
    with data.open("a", encoding="utf-8") as fh:
        fh.write('{"question": "q", "passages": [{"title": "a", "text": "b"}], "gold_idx": [5]}\n')
    out = tmp_path / "heads.json"
    result = runner.invoke(app, ["detect", str(data), "--model", str(saved_tiny_model), "--output", str(out)])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output.replace("\n", "")
    assert not out.exists()


def test_detect_rejects_an_unknown_method(tmp_path: Path) -> None:
    result = runner.invoke(app, ["detect", str(tmp_path), "--output", str(tmp_path / "h.json"), "--method", "x"])
    assert result.exit_code == 2 and "method must be 'qr_score' or 'ndcg', got 'x'" in result.output


def test_detect_auto_top_k_records_the_choice(saved_tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    _write_examples(data, n=5)
    out = tmp_path / "auto.json"
    result = runner.invoke(
        app,
        [
            "detect",
            str(data),
            "--model",
            str(saved_tiny_model),
            "--top-k",
            "auto",
            "--validation",
            "0.4",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    heads = HeadSet.load(out)
    provenance = heads.provenance
    assert provenance["examples"] == 3 and provenance["validation_examples"] == 2
    assert provenance["selection"] in provenance["validation"]
    assert len(heads) in (4, 8, 16) or provenance["selection"].startswith("layer ")
    assert "validation nDCG@10" in result.output


def test_detect_greedy_top_k_records_the_path(saved_tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    _write_examples(data, n=5)
    out = tmp_path / "greedy.json"
    result = runner.invoke(
        app,
        [
            "detect",
            str(data),
            "--model",
            str(saved_tiny_model),
            "--top-k",
            "greedy",
            "--validation",
            "0.4",
            "--metric",
            "recall@2",
            "--max-heads",
            "3",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    heads = HeadSet.load(out)
    provenance = heads.provenance
    assert provenance["selection"] == f"greedy-{len(heads)}" and 1 <= len(heads) <= 3
    assert provenance["validation_examples"] == 2 and len(provenance["greedy_stop"]) <= 3
    assert "validation recall@2 on 2 held-out examples: size 1" in result.output


def test_detect_rejects_a_bad_metric(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["detect", str(tmp_path), "--output", str(tmp_path / "h.json"), "--top-k", "greedy", "--metric", "map"]
    )
    assert result.exit_code == 2 and "recall@K" in result.output


def test_detect_rejects_a_bad_top_k(tmp_path: Path) -> None:
    result = runner.invoke(app, ["detect", str(tmp_path), "--output", str(tmp_path / "h.json"), "--top-k", "x"])
    assert result.exit_code == 2 and "--top-k" in result.output


def test_detect_checks_the_output_paths_before_any_work(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    _write_examples(data)
    taken = tmp_path / "heads.json"
    taken.mkdir()
    # A model that does not exist: the path check must fail first, before any loading or scoring.
    result = runner.invoke(app, ["detect", str(data), "--model", "no-such-model", "--output", str(taken)])
    assert result.exit_code == 2
    assert "is a directory" in result.output and "no-such-model" not in result.output
    result = runner.invoke(
        app,
        [
            "detect",
            str(data),
            "--model",
            "no-such-model",
            "--output",
            str(tmp_path / "ok.json"),
            "--plot",
            str(data / "under-a-file.png"),
        ],
    )
    assert result.exit_code == 2 and "--plot" in result.output and "not a directory" in result.output


def test_detect_keeps_the_head_set_when_the_final_write_fails(
    saved_tiny_model: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    data = tmp_path / "train.jsonl"
    _write_examples(data)

    def failing_save(self: HeadSet, path: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(HeadSet, "save", failing_save)
    out = tmp_path / "heads.json"
    result = runner.invoke(
        app, ["detect", str(data), "--model", str(saved_tiny_model), "--top-k", "3", "--output", str(out)]
    )
    assert result.exit_code == 1 and not out.exists()
    text = result.output
    rescued = Path(text[text.index("kept in ") + len("kept in ") :].split()[0])
    heads = HeadSet.from_dict(json.loads(rescued.read_text(encoding="utf-8")))
    rescued.unlink()
    assert len(heads) == 3


def test_detect_max_layer_keeps_every_head_within_the_depth_budget(saved_tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    _write_examples(data, n=5)
    out = tmp_path / "fast.json"
    result = runner.invoke(
        app,
        [
            "detect",
            str(data),
            "--model",
            str(saved_tiny_model),
            "--top-k",
            "auto",
            "--validation",
            "0.4",
            "--max-layer",
            "2",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    heads = HeadSet.load(out)
    assert heads.provenance["max_layer"] == 2 and {layer for layer, _ in heads} <= {0, 1}
    result = runner.invoke(
        app, ["detect", str(data), "--model", str(saved_tiny_model), "--max-layer", "9", "--output", str(out)]
    )
    assert result.exit_code == 2 and "max_layer must be an int in 1..4" in result.output


def test_detect_auto_with_one_example_fails_before_the_model_loads(tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    _write_examples(data, n=1)
    result = runner.invoke(
        app, ["detect", str(data), "--model", "no-such-model", "--top-k", "auto", "--output", str(tmp_path / "h.json")]
    )
    assert result.exit_code == 2 and "needs at least 2 usable examples" in result.output
    assert "no-such-model" not in result.output  # failed on the data, not after loading (or failing to load)
