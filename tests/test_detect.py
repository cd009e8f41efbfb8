"""Head detection recovers a retrieval head planted in a tiny model; scores, provenance and the heatmap."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from qrhead_integrations import HeadSet, InvalidInputError, QRHeadScorer
from qrhead_integrations.capture import decoder_of
from qrhead_integrations.detect import detect_heads, mean_recall, plot_head_scores, score_heads
from tests.tiny_models import tiny_model

MARKER = "§"
PLANTED = (0, 2)
WORDS = [
    "the",
    "moon",
    "sun",
    "star",
    "water",
    "fox",
    "dog",
    "cat",
    "city",
    "river",
    "play",
    "book",
    "tree",
    "road",
    "stone",
    "light",
]


@dataclass
class Example:
    question: str
    passages: list[str]
    gold: list[int]


def _planted_model(tokenizer: Any) -> Any:
    """A tiny Llama whose head (0, 2) is a query-focused retrieval head, position-free.

    Like real retrieval heads, its idle rows park their attention on a sink (the prompt's first token) and its
    "query" rows — the marker token — attend to the marker wherever it occurs. Directions: ``u`` (marker) and
    ``s`` (sink) are made exclusive to their tokens; a constant query bias points every row at the sink, and
    the marker's much larger query/key match wins over it.
    """
    model = tiny_model("llama", seed=3, attention_bias=True)
    decoder = decoder_of(model)
    decoder.rotary_emb.inv_freq.zero_()  # no rotation: attention depends on content only
    marker_id = tokenizer(MARKER, add_special_tokens=False)["input_ids"][-1]
    sink_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    with torch.no_grad():
        embeddings = decoder.embed_tokens.weight
        u = embeddings[marker_id] / embeddings[marker_id].norm()
        s = embeddings[sink_id] - (embeddings[sink_id] @ u) * u
        s = s / s.norm()
        for direction, owner in ((u, marker_id), (s, sink_id)):
            others = torch.arange(embeddings.shape[0]) != owner
            embeddings[others] -= (embeddings[others] @ direction)[:, None] * direction[None, :]
        attn = decoder.layers[0].self_attn
        head_dim = attn.head_dim
        q_rows = slice(PLANTED[1] * head_dim, (PLANTED[1] + 1) * head_dim)
        kv_head = PLANTED[1] // (attn.config.num_attention_heads // attn.config.num_key_value_heads)
        k_rows = slice(kv_head * head_dim, (kv_head + 1) * head_dim)
        for proj, rows in ((attn.q_proj, q_rows), (attn.k_proj, k_rows)):
            proj.weight[rows] = 0.0
            proj.bias[rows] = 0.0
        attn.q_proj.weight[q_rows.start] = 1.5 * u  # marker rows ask along u ...
        attn.k_proj.weight[k_rows.start] = 1.5 * u  # ... and marker keys answer: logit 1.5·8·1.5·8/4 = 36
        attn.q_proj.bias[q_rows.start + 1] = 1.5  # every row asks for the sink ...
        attn.k_proj.weight[k_rows.start + 1] = 4.0 * s  # ... which answers with logit 1.5·4·8/4 = 12
    return model


def _examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        passages, gold = [], []
        n_gold = rng.choice([1, 2])
        gold_slots = set(rng.sample(range(6), n_gold))
        for i in range(6):
            words = [rng.choice(WORDS) for _ in range(12)]
            if i in gold_slots:
                words.insert(rng.randrange(len(words)), MARKER)
                gold.append(i)
            passages.append(" ".join(words))
        # Many query tokens carry the signal, as in a real retrieval head (not just one row of the tail).
        out.append(Example(f"which {rng.choice(WORDS)} has the " + f"{MARKER} " * 8 + "?", passages, gold))
    return out


@pytest.fixture(scope="module")
def planted_scorer(tokenizer: Any) -> QRHeadScorer:
    return QRHeadScorer(_planted_model(tokenizer), tokenizer, heads="all", model_id="tiny-planted")


@pytest.mark.parametrize("method", ["qr_score", "ndcg"])
def test_detection_recovers_the_planted_head(planted_scorer: QRHeadScorer, method: str) -> None:
    heads = detect_heads(planted_scorer, _examples(12, seed=1), top_k=4, method=method, data="synthetic")
    assert heads.heads[0] == PLANTED
    assert heads.scores is not None and heads.scores[0] > heads.scores[1]
    assert heads.provenance["method"] == method and heads.provenance["examples"] == 12
    assert heads.provenance["seed"] == 0 and heads.provenance["data"] == "synthetic"


def test_the_planted_head_alone_retrieves_the_gold_passages(planted_scorer: QRHeadScorer) -> None:
    held_out = _examples(10, seed=2)
    planted = planted_scorer.with_heads(HeadSet((PLANTED,)))
    other = planted_scorer.with_heads(HeadSet(((1, 1),)))
    assert mean_recall(planted, held_out, k=2) >= 0.9
    assert mean_recall(planted, held_out, k=2) > mean_recall(other, held_out, k=2)


def test_head_scores_table_layer_set_and_heatmap(planted_scorer: QRHeadScorer, tmp_path: Path) -> None:
    table = score_heads(planted_scorer, _examples(6, seed=4), seed=7)
    assert table.scores.shape == (4, 4) and table.examples == 6
    assert table.top(1).heads == (PLANTED,)
    assert table.layer_set(0).heads[0] == PLANTED
    best = table.best_layer()
    assert table.scores[best].mean() == table.scores.mean(axis=1).max()
    plot_head_scores(table, str(tmp_path / "heads.png"), top_k=3)
    assert (tmp_path / "heads.png").stat().st_size > 1000


def test_shuffle_seed_is_deterministic(planted_scorer: QRHeadScorer) -> None:
    examples = _examples(4, seed=5)
    first = score_heads(planted_scorer, examples, seed=11).scores
    again = score_heads(planted_scorer, examples, seed=11).scores
    assert (first == again).all()


def test_bad_detection_inputs(planted_scorer: QRHeadScorer) -> None:
    with pytest.raises(InvalidInputError, match="no gold"):
        detect_heads(planted_scorer, [Example("q", ["a", "b"], [])])
    with pytest.raises(InvalidInputError, match="method"):
        detect_heads(planted_scorer, _examples(1, 0), method="magic")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="top_k"):
        detect_heads(planted_scorer, _examples(1, 0), top_k=0)
    with pytest.raises(InvalidInputError, match="no usable example"):
        detect_heads(planted_scorer, [])


def test_auto_top_k_chooses_on_held_out_examples(planted_scorer: QRHeadScorer) -> None:
    heads = detect_heads(planted_scorer, _examples(15, seed=6), top_k="auto", validation=0.2, data="synthetic")
    provenance = heads.provenance
    assert provenance["validation_examples"] == 3 and provenance["examples"] == 12
    names = set(provenance["validation"])  # 16 heads in all: top-32 is skipped
    assert {"top-4", "top-8", "top-16"} < names and len(names) == 4
    assert any(name.startswith("layer ") for name in names)
    # The planted head leads every top-k candidate; top-16 is kept unless another beats it by more than 0.02.
    assert heads.heads[0] == PLANTED
    figures = provenance["validation"]
    if provenance["selection"] == "top-16":
        assert max(figures.values()) - figures["top-16"] <= 0.02
    else:
        assert figures[provenance["selection"]] == max(figures.values()) > figures["top-16"] + 0.02


def test_choose_heads_keeps_the_default_unless_clearly_beaten(planted_scorer: QRHeadScorer) -> None:
    from qrhead_integrations.detect import choose_heads, example_head_scores, head_scores_table

    scored = list(example_head_scores(planted_scorer, _examples(12, seed=9)))
    table = head_scores_table(scored[:8], method="qr_score", num_layers=4, num_heads=4)
    strict = choose_heads(table, scored[8:], margin=0.0)
    assert strict.validation[strict.choice] == max(strict.validation.values())
    lenient = choose_heads(table, scored[8:], margin=1.0)
    assert lenient.choice == "top-16" and len(lenient.heads) == 16
    assert lenient.heads.provenance["selection"] == "top-16"


def test_choose_heads_scores_subsets_like_the_scorer(planted_scorer: QRHeadScorer) -> None:
    """A subset's validation metric is computed from all-head scores; it must equal scoring with the subset."""
    from qrhead_integrations.detect import example_head_scores, subset_metric

    examples = _examples(5, seed=8)
    scored = list(example_head_scores(planted_scorer, examples, shuffle=False))
    subset = HeadSet(((0, 2), (1, 1), (3, 0)))
    flat = [layer * planted_scorer.num_heads + head for layer, head in subset]
    from_all = subset_metric(scored, flat, "recall@2")
    subset_scorer = planted_scorer.with_config(heads=subset, order="as_given")  # detection's layout
    direct = mean_recall(subset_scorer, examples, k=2)
    assert from_all == pytest.approx(direct)
    for item, example in zip(scored, examples, strict=True):
        expected = torch.tensor(subset_scorer.score(example.question, example.passages))
        torch.testing.assert_close(item.per_head[flat].mean(0).float(), expected, atol=1e-5, rtol=0)


def test_bad_auto_inputs(planted_scorer: QRHeadScorer) -> None:
    with pytest.raises(InvalidInputError, match="validation"):
        detect_heads(planted_scorer, _examples(4, 0), top_k="auto", validation=1.5)
    with pytest.raises(InvalidInputError, match="at least 2"):
        detect_heads(planted_scorer, _examples(1, 0), top_k="auto")
    with pytest.raises(InvalidInputError, match="top_k"):
        detect_heads(planted_scorer, _examples(1, 0), top_k="many")  # type: ignore[arg-type]


def test_greedy_top_k_starts_from_the_planted_head(planted_scorer: QRHeadScorer) -> None:
    heads = detect_heads(
        planted_scorer, _examples(15, seed=6), top_k="greedy", metric="recall@2", validation=0.2, max_heads=6
    )
    provenance = heads.provenance
    assert heads.heads[0] == PLANTED
    assert provenance["selection"] == f"greedy-{len(heads)}" and 1 <= len(heads) <= 6
    assert provenance["validation_examples"] == 3 and provenance["validation_metric"] == "recall@2"
    # The size kept is the best (and, among equals, the smallest) on the held-out examples.
    stops = provenance["greedy_stop"]
    assert stops[len(heads) - 1] == max(stops) and all(v < max(stops) for v in stops[: len(heads) - 1])


def _synthetic(n: int, seed: int) -> list[Any]:
    """Scored examples for 6 heads over 5 passages (gold = 0): heads 0 and 1 each find the gold passage in
    complementary halves of the examples with a large margin, head 2 gives the gold passage the highest *mean*
    score but ranks it second every time, heads 3-5 are noise."""
    from qrhead_integrations.detect import ExampleHeadScores

    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        rows = torch.rand(6, 5, generator=gen, dtype=torch.float64) * 0.1
        rows[i % 2, 0] = 1.0  # head 0 on even examples, head 1 on odd ones
        rows[2, 1], rows[2, 0] = 3.0, 2.9  # head 2: most mass on gold, but a distractor wins
        out.append(ExampleHeadScores(rows, (0,)))
    return out


def test_greedy_heads_optimise_the_metric_not_the_mean_score() -> None:
    from qrhead_integrations.detect import Objective, greedy_heads, head_scores_table, objective_value

    fit, stop = _synthetic(20, 1), _synthetic(10, 2)
    table = head_scores_table(fit, method="qr_score", num_layers=1, num_heads=6)
    assert table.top(1).heads == ((0, 2),)  # the mean-score table prefers the head that never ranks gold first
    path = greedy_heads([Objective(fit, "recall@1")], [Objective(stop, "recall@1")], n_total=6, max_heads=6)
    assert set(path.heads[:2]) == {0, 1} and path.size == 2
    assert path.stop[1] == 1.0 > objective_value([Objective(stop, "recall@1")], [2])
    for size in range(1, len(path.heads) + 1):  # the recorded figures are the prefixes' real figures
        assert path.fit[size - 1] == pytest.approx(objective_value([Objective(fit, "recall@1")], path.heads[:size]))
    limited = greedy_heads(
        [Objective(fit, "recall@1")], [Objective(stop, "recall@1")], n_total=6, allowed=[2, 3, 4], max_heads=3
    )
    assert set(limited.heads) <= {2, 3, 4}


def test_greedy_heads_bad_inputs() -> None:
    from qrhead_integrations.detect import Objective, greedy_heads

    with pytest.raises(InvalidInputError, match="both"):
        greedy_heads([Objective([], "ndcg@10")], [Objective(_synthetic(2, 0))], n_total=6)
    with pytest.raises(InvalidInputError, match="max_heads"):
        greedy_heads([Objective(_synthetic(2, 0))], [Objective(_synthetic(2, 1))], n_total=6, max_heads=0)
    with pytest.raises(InvalidInputError, match="metric"):
        greedy_heads([Objective(_synthetic(2, 0), "map")], [Objective(_synthetic(2, 1))], n_total=6)


def test_bad_greedy_inputs_fail_before_scoring(planted_scorer: QRHeadScorer) -> None:
    with pytest.raises(InvalidInputError, match="metric"):
        detect_heads(planted_scorer, _examples(4, 0), top_k="greedy", metric="precision")
    with pytest.raises(InvalidInputError, match="at least 2"):
        detect_heads(planted_scorer, _examples(1, 0), top_k="greedy")


def test_max_layer_detects_within_the_depth_budget_with_the_same_scores(planted_scorer: QRHeadScorer) -> None:
    """A depth-budgeted table is the full table's first rows (the shallower forward computes the same attention),
    and the planted layer-0 head is still found first when only layer 0 is allowed."""
    examples = _examples(6, seed=4)
    full = score_heads(planted_scorer, examples, seed=7)
    shallow = score_heads(planted_scorer, examples, seed=7, max_layer=2)
    assert shallow.scores.shape == (2, 4) and shallow.provenance["max_layer"] == 2
    np.testing.assert_allclose(shallow.scores, full.scores[:2], atol=1e-6, rtol=0)
    heads = detect_heads(planted_scorer, examples, top_k=3, max_layer=1)
    assert heads.heads[0] == PLANTED and {layer for layer, _ in heads} == {0}
    auto = detect_heads(planted_scorer, _examples(10, seed=6), top_k="auto", max_layer=2, metric="recall@2")
    assert {layer for layer, _ in auto} <= {0, 1} and auto.provenance["max_layer"] == 2
    for bad in (0, 5, 1.5, True):
        with pytest.raises(InvalidInputError, match=r"max_layer must be an int in 1\.\.4"):
            detect_heads(planted_scorer, examples, max_layer=bad)  # type: ignore[arg-type]


def test_every_detection_entry_point_checks_the_method_and_warns_the_same_way(planted_scorer: QRHeadScorer) -> None:
    from qrhead_integrations.detect import head_scores_table
    from qrhead_integrations.distributed import score_heads_distributed

    examples = _examples(2, 0)
    message = "method must be 'qr_score' or 'ndcg', got 'magic'"
    calls = [
        lambda: score_heads(planted_scorer, examples, method="magic"),  # type: ignore[arg-type]
        lambda: detect_heads(planted_scorer, examples, method="magic"),  # type: ignore[arg-type]
        lambda: head_scores_table([], method="magic", num_layers=1, num_heads=1),  # type: ignore[arg-type]
        lambda: score_heads_distributed(examples, model="unused", method="magic"),  # type: ignore[arg-type]
    ]
    for call in calls:  # the distributed one raises before it needs Ray or a model
        with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
            call()
    uncalibrated = planted_scorer.with_config(calibrate=False)
    with pytest.warns(UserWarning, match="without calibration selects position-tracking heads"):
        score_heads(uncalibrated, examples)
