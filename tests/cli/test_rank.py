"""The `qrhead` command: argument handling, input formats, errors (real SmolLM2 for end-to-end runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qrhead_integrations.cli import app
from qrhead_integrations.cli.rank import read_passages
from qrhead_integrations.errors import DataFormatError

runner = CliRunner()


def test_passages_from_jsonl_text_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"title": "T", "text": "one"}\n\n"two"\n', encoding="utf-8")
    assert [(p.title, p.text) for p in read_passages(str(jsonl))] == [("T", "one"), ("", "two")]
    text = tmp_path / "p.txt"
    text.write_text("first line\n\nsecond line\n", encoding="utf-8")
    assert [p.text for p in read_passages(str(text))] == ["first line", "second line"]


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2"):
        read_passages(str(bad))
    bad.write_text('{"text": "ok"\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 1: invalid JSON"):
        read_passages(str(bad))


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "rank" in result.output and "demo" in result.output


@pytest.mark.real_model
def test_rank_from_stdin_prints_json_best_first(smollm2: object) -> None:
    from importlib import resources

    demo = json.loads(resources.files("qrhead_integrations").joinpath("data/demo_hotpotqa.json").read_text("utf-8"))
    stdin = "".join(json.dumps({"title": p["title"], "text": p["text"]}) + "\n" for p in demo["passages"])
    result = runner.invoke(app, ["rank", "-q", demo["question"], "-m", "smollm2-135m-instruct", "--json"], input=stdin)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(10))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert rows[0]["index"] in demo["gold_idx"]  # S. P. L. Sørensen, as in the demo


def test_rank_fuses_by_default_and_no_fusion_ranks_by_qrhead(saved_tiny_model: Path) -> None:
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in ("The moon orbits.", "Paris is in France.", "A fox."))
    args = ["rank", "-q", "capital of France", "-m", str(saved_tiny_model), "--json"]
    fused = [json.loads(line) for line in runner.invoke(app, args, input=stdin).stdout.splitlines()]
    plain = [json.loads(line) for line in runner.invoke(app, [*args, "--no-fusion"], input=stdin).stdout.splitlines()]
    # the default fusion mixes per-query z-scores, each of mean 0: so is their mix, and it is not the QRHead score
    assert sum(r["score"] for r in fused) == pytest.approx(0.0, abs=1e-9)
    assert [r["score"] for r in fused] == sorted((r["score"] for r in fused), reverse=True)
    assert any(r["score"] != pytest.approx(r["qrhead_score"]) for r in fused)
    assert all(r["score"] == r["qrhead_score"] for r in plain)
    assert [r["score"] for r in plain] == sorted((r["score"] for r in plain), reverse=True)
    by_index = {r["index"]: r["qrhead_score"] for r in plain}
    assert {r["index"]: r["qrhead_score"] for r in fused} == pytest.approx(by_index)


def test_rank_takes_a_dtype_and_rejects_an_unknown_one(saved_tiny_model: Path, tmp_path: Path) -> None:
    passages = tmp_path / "p.txt"
    passages.write_text("the moon\nthe sun\n")
    args = ["rank", "-q", "moon?", "-p", str(passages), "-m", str(saved_tiny_model), "--heads", "1-0", "--json"]
    assert runner.invoke(app, [*args, "--dtype", "float32"]).exit_code == 0
    bad = runner.invoke(app, [*args, "--dtype", "int3"])
    assert bad.exit_code == 2 and "unknown dtype" in bad.output


def test_rank_reports_errors_with_exit_code_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["rank", "-q", "x", "-p", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2 and "error" in result.output


def test_a_passage_file_that_is_not_utf8_names_the_line_and_loads_no_model(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("first passage\nsecond: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1.txt, line 2: not UTF-8 text \(byte 0xe9\)"):
        read_passages(str(latin1))
    result = runner.invoke(app, ["rank", "-q", "x", "-p", str(latin1), "--model", "no-such-model"])
    assert result.exit_code == 2 and "line 2: not UTF-8" in result.output and "Traceback" not in result.output


@pytest.mark.real_model
def test_demo_runs_offline_and_finds_a_gold_passage(smollm2: object) -> None:
    result = runner.invoke(app, ["demo", "--model", "smollm2-135m-instruct"])
    assert result.exit_code == 0, result.output
    assert "gold passages (★) in the top 2: 1 of 2" in result.output or "2 of 2" in result.output
    # The heads by their preset's name and what it is, not how it was made.
    assert "heads: the 'multihop' preset (the model's default), 16 heads — heads detected on HotpotQA" in result.output
    assert ".py" not in result.output and "benchmarks" not in result.output


def test_the_heads_line_names_the_preset_in_a_users_words() -> None:
    """Every shipped preset: its name and one line of what it is — no script, cache or split names."""
    from qrhead_integrations.cli.rank import heads_line
    from qrhead_integrations.headset import HeadSet
    from qrhead_integrations.presets import get_preset, known_models, preset_names

    for model in known_models():
        for name in preset_names(model):
            preset = get_preset(model, name)
            assert preset is not None
            line = heads_line(preset)
            assert line.startswith(f"heads: the {name!r} preset") and f"{len(preset)} heads — " in line
            assert not any(word in line for word in (".py", "benchmarks", "study", "cache", "split")), line
            assert len(line) <= 160, line
    assert heads_line(HeadSet.all_heads(2, 3)) == "heads: all 6 heads of the model (it has no preset)"
    assert heads_line(HeadSet.parse("1-2,3-4")) == "heads: 2 heads as given (1-2,3-4)"


def test_empty_inputs_fail_before_any_model_loads(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    out = str(tmp_path / "out.json")
    for args in (
        ["rank", "-q", "x", "-p", str(empty)],
        ["detect", str(empty), "--output", out],
        ["eval", "multihop", str(empty)],
    ):
        result = runner.invoke(app, [*args, "--model", "no-such-model"])
        assert result.exit_code == 2, (args, result.output)
        assert any(f"no {what}" in result.output for what in ("passages", "labelled examples", "examples"))
        assert "no-such-model" not in result.output, args


@pytest.mark.parametrize(
    "content", [b'{"heads": [[0, 0]] \xff}', b'{"heads": [["a", 0]]}', b'{"heads": [[0.7, 1]]}', b"[" * 100_000]
)
def test_a_bad_head_set_file_is_one_error_line_and_exit_2(
    saved_tiny_model: Path, tmp_path: Path, content: bytes
) -> None:
    heads = tmp_path / "bad.json"
    heads.write_bytes(content)
    args = ["rank", "-q", "moon?", "-m", str(saved_tiny_model), "--heads", str(heads)]
    result = runner.invoke(app, args, input="the moon\nthe sun\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert str(heads) in result.output.replace("\n", "")


def test_rank_json_writes_null_for_an_empty_passage_and_lists_it_last(saved_tiny_model: Path) -> None:
    stdin = "".join(json.dumps(t) + "\n" for t in ("The moon orbits.", "   ", "Paris is in France."))
    args = ["rank", "-q", "capital of France", "-m", str(saved_tiny_model), "--heads", "1-0", "--json"]
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    rows = [json.loads(line, parse_constant=refuse) for line in result.stdout.splitlines()]
    assert rows[-1]["index"] == 1 and rows[-1]["score"] is None and rows[-1]["qrhead_score"] is None
    assert all(isinstance(r["score"], float) for r in rows[:-1])


def test_a_plain_text_file_whose_lines_start_with_quotes_or_braces_stays_text(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text('"To be or not to be," he said.\n{draft} a second note\nplain third line\n', encoding="utf-8")
    assert [p.text for p in read_passages(str(notes))] == [
        '"To be or not to be," he said.',
        "{draft} a second note",
        "plain third line",
    ]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text('"a JSON string"\nnot JSON at all\n', encoding="utf-8")  # not every line is JSON: text
    assert [p.text for p in read_passages(str(mixed))] == ['"a JSON string"', "not JSON at all"]
    lines = tmp_path / "lines.txt"
    lines.write_text('\ufeff"a JSON string"\n{"title": "T", "text": "b"}\n', encoding="utf-8")  # every line: JSON
    assert [(p.title, p.text) for p in read_passages(str(lines))] == [("", "a JSON string"), ("T", "b")]


def test_text_that_looks_like_rich_markup_is_printed_as_written(saved_tiny_model: Path, tmp_path: Path) -> None:
    # A stray closing tag used to raise rich's MarkupError, and "[bold]" vanished from the table.
    passages = tmp_path / "markup.txt"
    passages.write_text("Paris [/b] is the capital of [bold]France[/bold].\nthe sun\n")
    args = ["rank", "-q", "capital [x] of France", "-p", str(passages), "-m", str(saved_tiny_model), "--heads", "1-0"]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Paris [/b] is the capital of [bold]France[/bold]." in result.output
    assert "capital [x] of France" in result.output


def test_an_install_hint_keeps_its_extra_in_brackets() -> None:
    # the hint reads "pip install 'qrhead-integrations[...]'": rich must not take "[...]" for a style tag
    result = runner.invoke(app, ["rank", "-q", "x", "-m", "[no-such]-model"], input="a passage\n")
    assert result.exit_code == 2 and "[no-such]-model" in result.output


def test_threads_option_runs_the_command_with_that_many_and_restores_them(
    saved_tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from qrhead_integrations.scorer import QRHeadScorer

    seen: list[int] = []
    rank = QRHeadScorer.rank

    def recording_rank(self: QRHeadScorer, *args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return rank(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(QRHeadScorer, "rank", recording_rank)
    passages = tmp_path / "p.txt"
    passages.write_text("the moon\nthe sun\n")
    args = ["rank", "-q", "moon?", "-p", str(passages), "-m", str(saved_tiny_model), "--heads", "1-0", "--json"]
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2  # a count different from the process's, so that setting it shows
    result = runner.invoke(app, ["--threads", str(wanted), *args])
    assert result.exit_code == 0, result.output
    assert seen == [wanted]
    assert torch.get_num_threads() == before  # restored for the in-process caller
    assert runner.invoke(app, args).exit_code == 0 and seen[-1] == before  # no option: the process's setting
    bad = runner.invoke(app, ["--threads", "0", *args])
    assert bad.exit_code == 2 and "--threads" in bad.output
