"""Our metrics equal trec_eval's (pytrec_eval) on a random graded run with no score ties.

The metrics are implemented in the package (see the module docstring of ``evaluation.metrics`` for why); this
keeps them honest against the reference implementation BEIR uses. Ties are excluded on purpose: trec_eval
orders tied documents by descending id and we by ascending id, a documented difference.
"""

from __future__ import annotations

import random

import pytest
import pytrec_eval  # pytrec-eval-terrier, in the [dev] extra

from qrhead_integrations.evaluation import per_query


def _random_run_and_qrels(seed: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in range(40):
        docs = [f"d{i}" for i in rng.sample(range(500), 120)]
        scores = rng.sample(range(10_000), len(docs))  # distinct: no ties
        run[f"q{q}"] = {doc: float(score) for doc, score in zip(docs, scores, strict=True)}
        by_score = sorted(run[f"q{q}"], key=lambda d: -run[f"q{q}"][d])
        # judged: a few near the top, a few lower down, one never retrieved; grades 0-3
        judged = rng.sample(by_score[:30], rng.randint(0, 4)) + rng.sample(by_score[30:], rng.randint(0, 6))
        judged.append(f"x{q}")
        qrels[f"q{q}"] = {doc: rng.choice([0, 1, 1, 2, 3]) for doc in judged}
    qrels["q_absent"] = {"d1": 1}  # judged but not in the run: 0 everywhere in both
    return run, qrels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_recall_and_mrr_equal_trec_eval(seed: int) -> None:
    run, qrels = _random_run_and_qrels(seed)
    ours = per_query(run, qrels, ["ndcg@10", "ndcg@100", "recall@10", "recall@100", "mrr@10"])
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10,100", "recall.10,100"})
    theirs = evaluator.evaluate(run)
    # trec_eval's recip_rank is not cut at k: MRR@10 is recip_rank over each query's top 10 documents.
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    compared = 0
    for query, values in ours.items():
        if query not in theirs:  # pytrec_eval leaves out judged queries the run lacks; ours gives them 0
            assert query == "q_absent" and all(v == 0.0 for v in values.values())
            continue
        reference = theirs[query]
        assert values["ndcg@10"] == pytest.approx(reference["ndcg_cut_10"], abs=1e-9)
        assert values["ndcg@100"] == pytest.approx(reference["ndcg_cut_100"], abs=1e-9)
        assert values["recall@10"] == pytest.approx(reference["recall_10"], abs=1e-9)
        assert values["recall@100"] == pytest.approx(reference["recall_100"], abs=1e-9)
        assert values["mrr@10"] == pytest.approx(mrr[query]["recip_rank"], abs=1e-9)
        compared += 1
    assert compared == 40
    # Not a trivial agreement: the metrics spread across queries.
    assert len({round(v["ndcg@10"], 6) for v in ours.values()}) > 10
