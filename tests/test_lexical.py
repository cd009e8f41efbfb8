"""BM25 (``qrhead_integrations.lexical``, also the evaluation's candidates): a planted relevant passage must come
first, with deterministic ties."""

from __future__ import annotations

import pytest

from qrhead_integrations.errors import EmptyQueryError, PassageTypeError
from qrhead_integrations.evaluation import evaluate_run
from qrhead_integrations.lexical import BM25Index, bm25_rank, load_stemmer
from qrhead_integrations.prompt import Passage

DISTRACTORS = {
    "d1": Passage("The stock market fell sharply on Monday after weak earnings reports.", "Markets"),
    "d2": Passage("A recipe for sourdough bread needs flour, water, salt and a starter.", "Baking"),
    "d3": Passage("The football season opens in August with twenty teams in the league.", "Sport"),
    "d4": Passage("Volcanic eruptions can inject ash high into the stratosphere.", "Geology"),
    "d5": Passage("Insulin is a hormone that lowers the concentration of glucose in blood.", "Physiology"),
}
PLANTED = Passage("Mitochondria produce ATP through oxidative phosphorylation in eukaryotic cells.", "Cell biology")
QUERY = "Which organelle makes ATP by oxidative phosphorylation?"


def test_search_puts_the_planted_passage_first() -> None:
    index = BM25Index({**DISTRACTORS, "gold": PLANTED})
    hits = index.search(QUERY, k=3)
    assert hits[0][0] == "gold"
    assert hits[0][1] > 0
    assert all(score > 0 for _, score in hits)  # only documents sharing a term are returned
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)


def test_bm25_rank_scores_the_planted_passage_highest_over_mixed_inputs() -> None:
    passages = [
        "The stock market fell sharply on Monday.",
        ("Cell biology", PLANTED.text),
        {"title": "Baking", "text": "Sourdough needs a starter."},
        Passage("Insulin lowers blood glucose.", "Physiology"),
    ]
    scores = bm25_rank(QUERY, passages)
    assert len(scores) == 4
    assert max(range(4), key=scores.__getitem__) == 1
    assert scores[0] == scores[2] == scores[3] == 0.0  # no shared term


def test_titles_are_indexed() -> None:
    scores = bm25_rank("volcano geology", [Passage("Ash clouds rose.", "Geology"), Passage("Ash clouds rose.")])
    assert scores[0] > scores[1] == 0.0


def test_stopword_only_query_matches_nothing() -> None:
    index = BM25Index(DISTRACTORS)
    assert index.search("the of and is", k=5) == []
    assert index.scores("the of and is").tolist() == [0.0] * 5


def test_search_returns_at_most_k_and_breaks_ties_by_doc_id() -> None:
    twins = {
        "b": Passage("blue whale"),
        "a": Passage("blue whale"),
        "c": Passage("grey whale"),
        "z": Passage("x"),
    }
    index = BM25Index(twins)
    assert [doc for doc, _ in index.search("blue whale", k=10)] == ["a", "b", "c"]  # "z" shares no term
    assert [doc for doc, _ in index.search("whale", k=2)] == ["a", "b"]  # three-way tie, cut by id
    assert index.search("whale", k=0) == []
    with pytest.raises(ValueError, match="k must be"):
        index.search("whale", k=-1)


def test_batch_search_and_run_feed_the_metrics() -> None:
    index = BM25Index({**DISTRACTORS, "gold": PLANTED})
    queries = {"q1": QUERY, "q2": "sourdough bread recipe"}
    batch = index.search_batch(queries.values(), k=2)
    assert [hits[0][0] for hits in batch] == ["gold", "d2"]
    run = index.run(queries, k=2)
    assert run["q1"] == dict(batch[0])
    assert evaluate_run(run, {"q1": {"gold": 1}, "q2": {"d2": 1}}, ["ndcg@10", "mrr@10"]) == {
        "ndcg@10": 1.0,
        "mrr@10": 1.0,
    }


def test_sequence_corpus_gets_positional_ids() -> None:
    index = BM25Index(["red apple", "green pear", "red cherry"])
    assert len(index) == 3
    assert [doc for doc, _ in index.search("red", k=5)] == ["0", "2"]


def test_stemming_matches_inflections_when_pystemmer_is_installed() -> None:
    pytest.importorskip("Stemmer")
    corpus = ["The runner was running in the races.", "A quiet library."]
    assert BM25Index(corpus, stem=True).search("runs race", k=2)[0][0] == "0"
    assert BM25Index(corpus, stem=False).search("runs race", k=2) == []
    assert load_stemmer(False) is None


def test_degenerate_inputs() -> None:
    assert bm25_rank("anything", []) == []
    assert bm25_rank("anything", ["the", "of"]) == [0.0, 0.0]  # only stopwords: nothing indexed
    with pytest.raises(EmptyQueryError):
        bm25_rank("  ", ["text"])
    with pytest.raises(PassageTypeError):
        bm25_rank("q", [3])
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Index({})


def test_bm25_rank_passes_the_stemming_choice_through() -> None:
    pytest.importorskip("Stemmer")
    passages = ["A quiet library.", "The runner was running in the races."]
    stemmed = bm25_rank("runs race", passages, stem=True)
    assert stemmed[1] > stemmed[0] == 0.0
    assert bm25_rank("runs race", passages, stem=False) == [0.0, 0.0]
