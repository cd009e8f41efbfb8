"""The evaluation harness end to end on a tiny random model: report shape, systems, orders, atomic files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from qrhead_integrations.evaluation import BM25Index, bm25_rank, evaluate_run, read_beir, read_multihop_jsonl
from qrhead_integrations.evaluation.metrics import rank_indices, recall_at_k
from qrhead_integrations.evaluation.report import (
    EvalReport,
    markdown_table,
    plot_report,
    write_report,
    write_text_atomic,
)
from qrhead_integrations.evaluation.runner import (
    SystemScorer,
    parse_baselines,
    prompt_order,
    run_beir,
    run_multihop,
)
from qrhead_integrations.prompt import Passage
from tests.evaluation._fixtures import write_beir, write_multihop

NO_DENSE = ("bm25", "all_heads", "fusion")


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("beir") / "tiny")


@pytest.fixture(scope="module")
def beir_report(tiny_scorer: Any, beir_dir: Path) -> EvalReport:
    return run_beir(tiny_scorer, read_beir(beir_dir), top_k=4, depth=100, baselines=NO_DENSE, info={"split": "test"})


def test_beir_report_shape(beir_report: EvalReport) -> None:
    data = beir_report.to_dict()
    assert set(data) == {"metrics", "per_query", "info"}
    assert list(data["metrics"]) == ["qrhead", "bm25", "all_heads", "fusion"]
    for system, values in data["metrics"].items():
        assert list(values) == ["ndcg@10", "recall@10", "recall@100", "mrr@10"], system
        assert all(0.0 <= v <= 1.0 for v in values.values())
        assert sorted(data["per_query"][system]) == ["q1", "q2", "q3", "q4", "q5"]  # judged queries only
    info = data["info"]
    assert info["n_queries"] == 5 and info["top_k"] == 4 and info["depth"] == 100
    assert info["order"] == "retriever-reversed" and info["split"] == "test"
    assert info["heads"] == "1-0,2-3,2-1" and info["model"] == "tiny-llama"
    assert {"qrhead-integrations", "torch", "transformers"} <= set(info["versions"])
    assert info["seconds_per_query"] > 0 and "qrhead+all_heads" in info["seconds"]
    json.dumps(data)  # serialisable as is


def test_beir_bm25_system_is_plain_bm25(beir_report: EvalReport, beir_dir: Path) -> None:
    dataset = read_beir(beir_dir)
    expected = evaluate_run(BM25Index(dataset.corpus).run(dataset.queries, k=100), dataset.qrels)
    assert beir_report.metrics["bm25"] == pytest.approx(expected)


def test_beir_reranking_one_candidate_changes_nothing(tiny_scorer: Any, beir_dir: Path) -> None:
    """Only the top-k are re-ranked; below them every system keeps BM25's order."""
    report = run_beir(tiny_scorer, read_beir(beir_dir), top_k=1, baselines=NO_DENSE)
    for system in report.systems:
        assert report.metrics[system] == pytest.approx(report.metrics["bm25"]), system


def test_beir_slices_queries_in_id_order(tiny_scorer: Any, beir_dir: Path) -> None:
    report = run_beir(tiny_scorer, read_beir(beir_dir), top_k=3, start=1, limit=2, baselines=())
    assert list(report.metrics) == ["qrhead"]
    assert sorted(report.per_query["qrhead"]) == ["q2", "q3"]
    with pytest.raises(ValueError, match="no queries"):
        run_beir(tiny_scorer, read_beir(beir_dir), start=9, baselines=())
    with pytest.raises(ValueError, match="top_k"):
        run_beir(tiny_scorer, read_beir(beir_dir), top_k=0, baselines=())


def test_shared_all_heads_pass_matches_separate_scorers(tiny_scorer: Any) -> None:
    passages = [Passage("The moon orbits the earth.", "Moon"), Passage("Paris is in France."), Passage("A play.")]
    query = "What orbits the earth?"
    systems = SystemScorer(tiny_scorer, ["all_heads"], order="retriever")
    scores = systems.score("q", query, passages, [])
    in_order = tiny_scorer.with_config(order="as_given")  # the harness lays the prompt out itself
    assert scores["qrhead"] == pytest.approx(in_order.score(query, passages), abs=1e-6)
    assert scores["all_heads"] == pytest.approx(in_order.with_heads("all").score(query, passages), abs=1e-6)


def test_orders_match_the_scorer_options(tiny_scorer: Any) -> None:
    passages = [Passage(f"Passage {i}: the sun is a star and water boils.") for i in range(5)]
    query = "Is the sun a star?"
    reversed_scores = SystemScorer(tiny_scorer, [], order="retriever-reversed").score("q", query, passages, [])
    expected = tiny_scorer.with_config(order="reversed").score(query, passages)
    assert reversed_scores["qrhead"] == pytest.approx(expected, abs=1e-6)
    as_given = SystemScorer(tiny_scorer.with_config(order="reversed"), [], order="retriever")
    expected_given = tiny_scorer.with_config(order="as_given").score(query, passages)
    assert as_given.score("q", query, passages, [])["qrhead"] == pytest.approx(expected_given)


def test_prompt_order() -> None:
    assert prompt_order(4, "retriever") == [0, 1, 2, 3]
    assert prompt_order(4, "retriever-reversed") == [3, 2, 1, 0]
    first = prompt_order(20, "shuffled", seed=0, key="q1")
    assert sorted(first) == list(range(20)) and first == prompt_order(20, "shuffled", seed=0, key="q1")
    assert first != prompt_order(20, "shuffled", seed=0, key="q2")  # a new permutation per query
    assert first != prompt_order(20, "shuffled", seed=1, key="q1")
    with pytest.raises(ValueError, match="order must be one of"):
        prompt_order(3, "random")


def test_parse_baselines() -> None:
    assert parse_baselines("fusion, all-heads,bm25") == ("bm25", "all_heads", "fusion")
    assert parse_baselines("none") == () and parse_baselines("") == ()
    assert parse_baselines("all") == ("bm25", "dense", "all_heads", "fusion", "fusion_dense", "default")
    assert parse_baselines(["fusion_dense", "dense"]) == ("dense", "fusion_dense")
    with pytest.raises(ValueError, match=r"unknown baseline.*rankgpt"):
        parse_baselines("bm25,rankgpt")


def test_multihop_end_to_end(tiny_scorer: Any, tmp_path: Path) -> None:
    examples = read_multihop_jsonl(write_multihop(tmp_path / "mh.jsonl"))
    report = run_multihop(tiny_scorer, examples, baselines=NO_DENSE, order="shuffled", seed=3)
    names = ["recall@2", "recall@5", "recall@10", "all_gold@2", "all_gold@5", "all_gold@10"]
    assert report.metric_names == names
    assert set(report.per_query["qrhead"]) == {"m1", "m2", "m3"}
    for system in ("qrhead", "all_heads", "fusion", "bm25"):
        assert report.metrics[system]["recall@5"] == 1.0  # at most 4 passages: everything is in the top 5
        assert report.metrics[system]["all_gold@10"] == 1.0
    bm25_r2 = [recall_at_k(rank_indices(bm25_rank(e.question, e.passages)), e.gold, 2) for e in examples]
    assert report.metrics["bm25"]["recall@2"] == pytest.approx(sum(bm25_r2) / 3)
    assert report.info["order"] == "shuffled" and report.info["seed"] == 3 and report.info["kind"] == "multihop"
    with pytest.raises(ValueError, match="no examples"):
        run_multihop(tiny_scorer, [], baselines=())


@pytest.mark.parametrize("order", ["retriever", "retriever-reversed", "shuffled"])
def test_default_system_is_the_products_rank(tiny_scorer: Any, tmp_path: Path, order: str) -> None:
    """``default`` = a scorer with every default (heads, cut, order, fusion) ranking the candidates as handed
    over: in the file's order (``retriever-reversed`` only changes the ``qrhead`` system's layout) or shuffled."""
    from qrhead_integrations import QRHeadScorer

    examples = read_multihop_jsonl(write_multihop(tmp_path / "mh.jsonl"))
    capped = tiny_scorer.with_config(max_passage_tokens=16, heads="1-0")
    report = run_multihop(capped, examples, baselines=("default",), order=order, seed=5)
    product = QRHeadScorer(tiny_scorer.model, tiny_scorer.tokenizer, model_id=tiny_scorer.model_id)
    assert product.config.fusion is not None  # the product fuses by default
    for example in examples:
        given = (
            prompt_order(len(example.passages), "shuffled", seed=5, key=example.id)
            if order == "shuffled"
            else (list(range(len(example.passages))))
        )
        ranked = product.rank(example.question, [example.passages[i] for i in given])
        ranking = [given[r.index] for r in ranked]
        expected = recall_at_k(ranking, example.gold, 2)
        assert report.per_query["default"][example.id]["recall@2"] == expected
        unfused = product.rank(example.question, [example.passages[i] for i in given], fusion=None)
        ranking = [given[r.index] for r in unfused]
        assert report.per_query["default_qrhead"][example.id]["recall@2"] == recall_at_k(ranking, example.gold, 2)
    assert "default" in report.info["seconds"]


def test_report_files(beir_report: EvalReport, tmp_path: Path) -> None:
    path = write_report(beir_report, tmp_path / "out" / "report.json")
    assert EvalReport.load(path).to_dict() == json.loads(json.dumps(beir_report.to_dict()))
    table = markdown_table(beir_report)
    assert table.splitlines()[0] == "| system | ndcg@10 | recall@10 | recall@100 | mrr@10 |"
    assert len(table.splitlines()) == 2 + len(beir_report.systems)
    png = plot_report(beir_report, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "report.png"]  # no temporary files left


def test_atomic_write_leaves_the_old_file_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    write_text_atomic(target, "old\n")

    def broken_replace(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C at the worst moment

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "new\n")
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(tmp_path / "fresh.json", "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_paired_comparison_on_hand_made_per_query_values() -> None:
    from qrhead_integrations.evaluation.report import default_comparisons, paired_comparison

    per_query = {
        "qrhead": {"a": {"m": 1.0}, "b": {"m": 0.5}, "c": {"m": 0.2}, "d": {"m": 0.7}},
        "bm25": {"a": {"m": 0.0}, "b": {"m": 0.5}, "c": {"m": 0.4}, "d": {"m": 0.2}},
        "fusion": {"a": {"m": 1.0}, "b": {"m": 0.5}, "c": {"m": 0.2}, "d": {"m": 0.7}},
    }
    report = EvalReport(metrics={s: {"m": 0.0} for s in per_query}, per_query=per_query)
    result = paired_comparison(report, "qrhead", "bm25", "m")
    assert (result.wins, result.losses, result.ties) == (2, 1, 1)
    assert result.diff == pytest.approx((1.0 + 0 - 0.2 + 0.5) / 4)
    assert 0.0 <= result.p_not_better < 0.5 and result == paired_comparison(report, "qrhead", "bm25", "m")
    same = paired_comparison(report, "fusion", "qrhead", "m")
    assert same.ties == 4 and same.p_not_better == 1.0  # no gain at all
    assert [(c.a, c.b) for c in default_comparisons(report)] == [("qrhead", "bm25"), ("fusion", "qrhead")]
    text = markdown_table(report, comparisons=True)
    assert "- qrhead vs bm25 on m: +0.325 (better on 2, worse on 1, equal on 1 queries" in text


def test_batched_forwards_leave_every_report_figure_unchanged(tiny_scorer: Any, beir_dir: Path, tmp_path: Path) -> None:
    """``qrhead eval`` runs several queries per forward; each system's per-query figures are those of one query
    per forward (BEIR and multi-hop, shuffled order, ``default`` included)."""
    examples = read_multihop_jsonl(write_multihop(tmp_path / "mh.jsonl"))
    systems = ("bm25", "all_heads", "fusion", "default")
    for run in (
        lambda n: run_beir(tiny_scorer, read_beir(beir_dir), top_k=4, baselines=systems, rows_per_forward=n),
        lambda n: run_multihop(tiny_scorer, examples, baselines=systems, order="shuffled", rows_per_forward=n),
    ):
        one, many = run(1), run(3)
        assert many.info["rows_per_forward"] == 3 and one.info["rows_per_forward"] == 1
        assert list(one.per_query) == list(many.per_query)
        for system, rows in one.per_query.items():
            for query_id, row in rows.items():
                assert many.per_query[system][query_id] == pytest.approx(row, abs=1e-9), (system, query_id)
