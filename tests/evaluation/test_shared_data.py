"""The real shared evaluation data (``../shared/data`` beside the checkout) loads and BM25 behaves on it."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from qrhead_integrations.evaluation import (
    BM25Index,
    all_gold_at_k,
    bm25_rank,
    evaluate_run,
    rank_indices,
    read_beir,
    read_multihop_jsonl,
    recall_at_k,
)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HOTPOTQA = SHARED_DATA / "hotpotqa" / "hotpotqa_dev200.jsonl"
SCIFACT = SHARED_DATA / "scifact"

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")


def test_hotpotqa_dev200_loads() -> None:
    examples = read_multihop_jsonl(HOTPOTQA)
    assert len(examples) == 200
    assert len({e.id for e in examples}) == 200
    assert all(len(e.gold) == 2 for e in examples)
    assert sorted({len(e.passages) for e in examples}) == [2, 10]  # one row has only its two gold passages
    assert all(p.title and p.text for e in examples for p in e.passages)


def test_hotpotqa_detection_and_evaluation_slices_are_disjoint() -> None:
    detect = read_multihop_jsonl(HOTPOTQA, limit=64)
    evaluate = read_multihop_jsonl(HOTPOTQA, start=64)
    assert (len(detect), len(evaluate)) == (64, 136)
    assert not {e.id for e in detect} & {e.id for e in evaluate}


def test_bm25_baseline_on_hotpotqa_beats_chance() -> None:
    examples = [e for e in read_multihop_jsonl(HOTPOTQA, limit=60) if len(e.passages) == 10]
    rankings = [rank_indices(bm25_rank(e.question, e.passages)) for e in examples]
    recall2 = statistics.mean(recall_at_k(r, e.gold, 2) for r, e in zip(rankings, examples, strict=True))
    all5 = statistics.mean(all_gold_at_k(r, e.gold, 5) for r, e in zip(rankings, examples, strict=True))
    # Chance: recall@2 = 2/10 = 0.2; all gold in top 5 = C(8,3)/C(10,5) = 56/252 = 0.22.
    assert recall2 > 0.45
    assert all5 > 0.5


def test_scifact_train_loads() -> None:
    data = read_beir(SCIFACT, split="train")
    assert len(data.corpus) == 5183
    assert len(data.queries) == 809
    assert sum(len(judged) for judged in data.qrels.values()) == 919
    assert set(data.queries) == set(data.qrels)
    assert all(grade == 1 for judged in data.qrels.values() for grade in judged.values())
    with pytest.raises(FileNotFoundError, match="qrels"):
        read_beir(SCIFACT, split="test")  # the shared copy has only the train split


def test_bm25_top100_on_scifact_is_in_the_beir_range() -> None:
    data = read_beir(SCIFACT, split="train")
    queries = dict(list(data.queries.items())[:200])
    run = BM25Index(data.corpus).run(queries, k=100)
    qrels = {qid: data.qrels[qid] for qid in queries}
    result = evaluate_run(run, qrels, ["ndcg@10", "recall@100"])
    # Full train split measures 0.697 nDCG@10 (research/bm25_scifact.py); BEIR reports 0.665 on test.
    assert 0.6 < result["ndcg@10"] < 0.8
    assert result["recall@100"] > 0.85
