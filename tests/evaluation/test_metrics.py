"""Metric values on hand-made qrels, checked against the formulas by hand."""

from __future__ import annotations

import math

import pytest

from qrhead_integrations.evaluation import (
    all_gold_at_k,
    evaluate_run,
    per_query,
    rank_documents,
    rank_indices,
    recall_at_k,
)

LOG2_3 = math.log2(3)  # discount at rank 2; rank 1 divides by log2(2) = 1, rank 3 by log2(4) = 2

# q1: ranked d3 (grade 0), d1 (grade 2), d2 (grade 1); d5 (grade 1) is relevant but never retrieved.
# q2: judged, absent from the run -> 0 on every metric.   q3: in the run, not judged -> ignored.
RUN = {"q1": {"d1": 0.5, "d2": 0.1, "d3": 0.9}, "q3": {"d1": 1.0}}
QRELS = {"q1": {"d1": 2, "d2": 1, "d5": 1, "d9": 0}, "q2": {"a": 1}}

# nDCG@10(q1) = DCG / IDCG, DCG = 0/1 + 2/log2(3) + 1/log2(4) = 1.2619 + 0.5 = 1.7619,
#   IDCG over all judged relevant grades (2, 1, 1) = 2/1 + 1/log2(3) + 1/2 = 3.1309   -> 0.562727
Q1_NDCG10 = (2 / LOG2_3 + 1 / 2) / (2 + 1 / LOG2_3 + 1 / 2)
# nDCG@2(q1) = (0 + 2/log2(3)) / (2 + 1/log2(3)) = 1.2619 / 2.6309 = 0.479625
Q1_NDCG2 = (2 / LOG2_3) / (2 + 1 / LOG2_3)


def test_hand_computed_values_for_one_query() -> None:
    names = ["ndcg@10", "ndcg@2", "ndcg@1", "recall@2", "recall@10", "mrr@10", "mrr@1"]
    row = per_query(RUN, QRELS, names)["q1"]
    assert pytest.approx(0.562727, abs=1e-6) == Q1_NDCG10
    assert row["ndcg@10"] == pytest.approx(Q1_NDCG10)
    assert row["ndcg@2"] == pytest.approx(Q1_NDCG2)
    assert row["ndcg@2"] == pytest.approx(0.479625, abs=1e-6)
    assert row["ndcg@1"] == 0.0  # the top document d3 is not relevant
    assert row["recall@2"] == pytest.approx(1 / 3)  # d1 of {d1, d2, d5}
    assert row["recall@10"] == pytest.approx(2 / 3)  # d1, d2 of {d1, d2, d5}
    assert row["mrr@10"] == pytest.approx(1 / 2)  # first relevant at rank 2
    assert row["mrr@1"] == 0.0


def test_mean_is_over_judged_queries_and_unretrieved_ones_count_as_zero() -> None:
    table = per_query(RUN, QRELS)
    assert set(table) == {"q1", "q2"}  # q3 has no qrels
    assert table["q2"] == {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    means = evaluate_run(RUN, QRELS)
    assert list(means) == ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
    assert means["ndcg@10"] == pytest.approx(Q1_NDCG10 / 2)
    assert means["recall@10"] == pytest.approx((2 / 3) / 2)
    assert means["mrr@10"] == pytest.approx(0.5 / 2)


def test_perfect_ranking_scores_one() -> None:
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    qrels = {"q": {"a": 2, "b": 1}}
    assert evaluate_run(run, qrels, ["ndcg@10", "recall@2", "mrr@10"]) == {
        "ndcg@10": 1.0,
        "recall@2": 1.0,
        "mrr@10": 1.0,
    }


def test_graded_order_matters_for_ndcg_only() -> None:
    # b (grade 1) above a (grade 2): DCG = 1 + 2/log2(3), IDCG = 2 + 1/log2(3).
    run = {"q": {"a": 1.0, "b": 2.0}}
    qrels = {"q": {"a": 2, "b": 1}}
    result = evaluate_run(run, qrels, ["ndcg@10", "recall@10", "mrr@10"])
    assert result["ndcg@10"] == pytest.approx((1 + 2 / LOG2_3) / (2 + 1 / LOG2_3))  # 0.859719
    assert result["recall@10"] == 1.0
    assert result["mrr@10"] == 1.0


def test_ties_are_broken_by_ascending_doc_id_whatever_the_dict_order() -> None:
    qrels = {"q": {"b": 1}}
    for scores in ({"b": 1.0, "a": 1.0, "c": 0.5}, {"c": 0.5, "a": 1.0, "b": 1.0}):
        assert rank_documents(scores) == ["a", "b", "c"]
        # b sits at rank 2 behind its tie a: MRR 1/2, nDCG@10 = (1/log2(3)) / 1 = 0.63093
        assert evaluate_run({"q": scores}, qrels, ["mrr@10", "ndcg@10"]) == pytest.approx(
            {"mrr@10": 0.5, "ndcg@10": 1 / LOG2_3}
        )


def test_non_positive_grades_are_not_relevant() -> None:
    run = {"q": {"neg": 3.0, "zero": 2.0, "rel": 1.0}}
    qrels = {"q": {"neg": -1, "zero": 0, "rel": 1}, "none": {"x": 0}}
    table = per_query(run, qrels, ["mrr@10", "recall@1", "ndcg@10"])
    assert table["q"]["mrr@10"] == pytest.approx(1 / 3)
    assert table["q"]["recall@1"] == 0.0
    assert table["q"]["ndcg@10"] == pytest.approx(1 / 2)  # 1/log2(4) over an ideal of 1
    assert table["none"] == {"mrr@10": 0.0, "recall@1": 0.0, "ndcg@10": 0.0}  # nothing relevant


def test_metric_names_are_case_insensitive_and_keep_their_spelling() -> None:
    assert evaluate_run({"q": {"a": 1.0}}, {"q": {"a": 1}}, ["NDCG@3"]) == {"NDCG@3": 1.0}


@pytest.mark.parametrize("name", ["ndcg", "ndcg@0", "ndcg@x", "map@10", "precision@5"])
def test_unknown_metrics_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_run({}, {"q": {"a": 1}}, [name])


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        evaluate_run({"q": {"a": float("nan")}}, {"q": {"a": 1}})


def test_empty_qrels_give_zero_means() -> None:
    assert evaluate_run({"q": {"a": 1.0}}, {}, ["ndcg@10"]) == {"ndcg@10": 0.0}


def test_multihop_helpers() -> None:
    ranked = rank_indices([0.1, 0.9, 0.9, 0.3])
    assert ranked == [1, 2, 3, 0]  # the 0.9 tie keeps index order
    gold = [0, 2]
    assert recall_at_k(ranked, gold, 1) == 0.0
    assert recall_at_k(ranked, gold, 2) == 0.5
    assert recall_at_k(ranked, gold, 4) == 1.0
    assert all_gold_at_k(ranked, gold, 3) == 0.0
    assert all_gold_at_k(ranked, gold, 4) == 1.0
    assert recall_at_k(ranked, gold, 10) == 1.0  # k beyond the list is the whole list


def test_multihop_helpers_reject_empty_gold_and_bad_k() -> None:
    with pytest.raises(ValueError, match="gold is empty"):
        recall_at_k([0, 1], [], 2)
    with pytest.raises(ValueError, match="k must be"):
        all_gold_at_k([0, 1], [0], 0)
    with pytest.raises(ValueError, match="NaN"):
        rank_indices([0.1, float("nan")])
