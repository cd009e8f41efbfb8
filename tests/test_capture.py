"""Captured attention equals eager attention, for GQA and sliding-window layers, truncated or not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch

from qrhead_integrations import QRHeadScorer, capture
from qrhead_integrations.prompt import PromptBuilder, to_passages
from tests.tiny_models import TEST_DEVICE, tiny_model

PASSAGES = [
    ("Moon", "The moon orbits the earth. The sun is a star."),
    ("Paris", "Paris is the capital of France. Hamlet is a play."),
    ("Water", "Water boils at one hundred degrees. Cats and dogs are animals."),
    ("Fox", "The quick brown fox jumps over the lazy dog, again and again."),
]
HEADS = "0-0,1-3,2-1,3-2,1-0"


def _eager_reference(kind: str, ids: list[int], n_rows: int, heads: list[tuple[int, int]]) -> torch.Tensor:
    eager = tiny_model(kind, attn="eager")
    with torch.no_grad():
        out = eager(torch.tensor([ids], device=TEST_DEVICE), output_attentions=True)
    return torch.stack([out.attentions[layer][0, head, -n_rows:, :].mean(0) for layer, head in heads])


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gemma3"])
def test_captured_attention_matches_eager(kind: str, tokenizer: Any) -> None:
    scorer = QRHeadScorer(tiny_model(kind), tokenizer, heads=HEADS, model_id=f"tiny-{kind}")
    encoded = PromptBuilder(scorer.tokenizer, scorer.config.layout).encode(
        to_passages(PASSAGES), ["Which city is the capital of France?", "N/A"]
    )
    weights = scorer.forwards.capture(encoded)
    prefix_len = len(encoded.prefix_ids)
    assert prefix_len > 40  # far beyond gemma3's 8-token window: the sliding mask and cache matter
    assert encoded.shared_rows > 10  # the instruction's rows are captured in the prefix pass
    for tail, captured in zip(encoded.tails, weights, strict=True):
        # The query part is the instruction (end of the prefix) plus the tail, read in one eager forward.
        rows = encoded.shared_rows + len(tail)
        reference = _eager_reference(kind, encoded.prefix_ids + tail, rows, list(scorer.heads))
        torch.testing.assert_close(captured, reference[:, :prefix_len].cpu(), atol=1e-4, rtol=0)
        # The weights really vary across positions (not uniform), so equality is not trivial.
        visible = captured[captured > 0]
        assert visible.std() > 0.1 * visible.mean()


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
@pytest.mark.parametrize("batch_tokens", [32_768, 1])
def test_many_tails_equal_one_tail_per_call(
    kind: str, batch_tokens: int, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tails of different lengths in one call (packed into the prefix forward for llama; right-padded batches
    on the prefix cache for gemma3's sliding layers; in groups of one with ``batch_tokens=1``) give exactly
    what a call with that tail alone gives."""
    monkeypatch.setattr(capture, "TAIL_BATCH_TOKENS", batch_tokens)
    scorer = QRHeadScorer(tiny_model(kind), tokenizer, heads=HEADS, model_id=f"tiny-{kind}")
    queries = ["Which city is the capital of France and where is it?", "fox", "N/A", "what boils at 100 degrees"]
    encoded = PromptBuilder(scorer.tokenizer, scorer.config.layout).encode(to_passages(PASSAGES), queries)
    assert len({len(t) for t in encoded.tails}) == len(queries)  # every tail a different length
    # llama's cache keeps every position, so its tails are packed; gemma3's sliding layers are not.
    assert capture.can_crop(capture.new_cache(scorer.model)) == (kind == "llama")
    together = scorer.forwards.capture(encoded)
    for tail, many in zip(encoded.tails, together, strict=True):
        (alone,) = scorer.forwards.capture(replace(encoded, tails=[tail]))
        torch.testing.assert_close(many, alone, atol=1e-6, rtol=0)


def test_packing_layout() -> None:
    packing = capture.Packing(prefix_len=3, first_len=2, extra_lens=(2, 1))
    assert packing.total_len == 8 and packing.extra_spans() == [(5, 7), (7, 8)]
    assert packing.positions() == [0, 1, 2, 3, 4, 3, 4, 3]
    allowed = packing.allowed(0).int().tolist()
    assert allowed[4] == [1, 1, 1, 1, 1, 0, 0, 0]  # first tail: causal
    assert allowed[6] == [1, 1, 1, 0, 0, 1, 1, 0]  # second tail: prefix + itself
    assert allowed[7] == [1, 1, 1, 0, 0, 0, 0, 1]  # third tail: prefix + itself


def test_sliding_window_layers_see_only_their_window(tokenizer: Any) -> None:
    scorer = QRHeadScorer(tiny_model("gemma3"), tokenizer, heads="0-1,1-1", model_id="tiny-gemma3")
    encoded = PromptBuilder(scorer.tokenizer, scorer.config.layout).encode(
        to_passages(PASSAGES), ["capital of France?"]
    )
    (weights,) = scorer.forwards.capture(encoded)
    window_layer, full_layer = weights[0], weights[1]
    # Layer 0 slides over 8 tokens: the query part's first row (the instruction's first token) sees the 7
    # tokens before it and nothing earlier; layer 1 is full attention and sees every prefix token.
    seen = encoded.shared_rows + 7
    assert torch.count_nonzero(window_layer[:-seen]) == 0
    assert torch.count_nonzero(window_layer[-seen:]) == seen
    assert torch.count_nonzero(full_layer) == len(encoded.prefix_ids)


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_truncated_forward_gives_the_same_capture_as_the_full_one(kind: str, tokenizer: Any) -> None:
    model = tiny_model(kind)
    scorer = QRHeadScorer(model, tokenizer, heads="1-2,0-1", model_id=f"tiny-{kind}")
    encoded = PromptBuilder(scorer.tokenizer, scorer.config.layout).encode(
        to_passages(PASSAGES), ["the capital of France"]
    )
    prefix, (tail,) = encoded.prefix_ids, encoded.tails

    def run(stop_after: int | None) -> torch.Tensor:
        cache = capture.new_cache(model)
        capture.run_layers(model, prefix, cache, start=0, stop_after=stop_after)
        recorder = capture.HeadRecorder(scorer.heads, n_rows=len(tail), total_length=len(prefix) + len(tail))
        capture.run_layers(
            model,
            tail,
            capture.fork_cache(cache),
            start=len(prefix),
            stop_after=stop_after,
            recorder=recorder,
        )
        return recorder.collect()[0, 0]

    truncated, full = run(1), run(None)
    torch.testing.assert_close(truncated, full, atol=1e-6, rtol=0)


def test_truncated_forward_skips_later_layers(tokenizer: Any) -> None:
    model = tiny_model("llama")
    scorer = QRHeadScorer(model, tokenizer, heads="1-0", model_id="tiny-llama")
    called: list[int] = []
    hooks = [
        layer.register_forward_pre_hook(lambda *_, i=i: called.append(i))
        for i, layer in enumerate(capture.decoder_of(model).layers)
    ]
    mlp_calls: list[int] = []
    hooks += [
        layer.mlp.register_forward_hook(lambda *_, i=i: mlp_calls.append(i))
        for i, layer in enumerate(capture.decoder_of(model).layers)
    ]
    try:
        scorer.score("capital of France", [text for _, text in PASSAGES])
    finally:
        for hook in hooks:
            hook.remove()
    assert set(called) == {0, 1}
    assert set(mlp_calls) == {0}  # the deepest layer stops once its heads are recorded: no MLP


def test_fork_cache_leaves_the_prefix_cache_untouched(tokenizer: Any) -> None:
    model = tiny_model("gemma3")
    capture.prepare_model(model)
    cache = capture.new_cache(model)
    capture.run_layers(model, list(range(5, 40)), cache, start=0, stop_after=None)
    before = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    lengths = [layer.get_seq_length() for layer in cache.layers]
    capture.run_layers(model, [7, 8, 9], capture.fork_cache(cache), start=35, stop_after=None)
    for layer, (keys, values), length in zip(cache.layers, before, lengths, strict=True):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
        assert layer.get_seq_length() == length


def test_model_outputs_unchanged_when_not_recording(tokenizer: Any) -> None:
    plain, patched = tiny_model("qwen2"), tiny_model("qwen2")
    capture.prepare_model(patched)
    ids = torch.tensor([list(range(3, 60))], device=TEST_DEVICE)
    with torch.no_grad():
        torch.testing.assert_close(patched(ids).logits, plain(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_query_part_query_reads_only_the_query_tail(kind: str, tokenizer: Any) -> None:
    """``query_part="query"``: each query's (and the "N/A" query's) mean runs over its own tail rows only, the
    instruction's rows left out — checked against eager attention, one row per call and several per forward."""
    from qrhead_integrations.scoring import passage_scores, token_scores

    scorer = QRHeadScorer(
        tiny_model(kind), tokenizer, heads=HEADS, model_id=f"tiny-{kind}", order="as_given", query_part="query"
    )
    query = "Which city is the capital of France?"
    encoded = scorer._builder.encode(scorer.planner.cut(to_passages(PASSAGES))[0], [query, "N/A"])
    prefix_len = len(encoded.prefix_ids)
    heads = list(scorer.heads)
    own, null = (_eager_reference(kind, encoded.prefix_ids + t, len(t), heads)[:, :prefix_len] for t in encoded.tails)
    expected = passage_scores(token_scores(own.cpu(), null.cpu()), encoded.passage_spans, outlier_filter=False)
    torch.testing.assert_close(scorer.score_per_head(query, PASSAGES), expected, atol=1e-4, rtol=0)
    batched = scorer.score_per_head_batch([(query, PASSAGES), ("fox", PASSAGES[1:])], rows_per_forward=2)
    torch.testing.assert_close(batched[0], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(batched[1], scorer.score_per_head("fox", PASSAGES[1:]), atol=1e-5, rtol=0)
    # The reference's reading (instruction rows included) is a different one.
    everything = scorer.with_config(query_part="all").score_per_head(query, PASSAGES)
    assert (everything - expected).abs().max() > 1e-3


@pytest.mark.parametrize("key_lengths", [(7, 7, 7), (7, 5, 3)], ids=["same-length", "shorter-keys"])
def test_collect_puts_each_head_in_set_order_right_aligned(key_lengths: tuple[int, int, int]) -> None:
    """The heads are gathered back to the set's order (not layer order), each row right-aligned to the total."""
    from qrhead_integrations.heads import HeadSet

    heads = HeadSet(((2, 1), (0, 3), (2, 0), (1, 2)))  # layers 2, 0, 1 interleaved in set order
    recorder = capture.HeadRecorder(heads, n_rows=1, total_length=7)
    per_layer = {layer: len(idx) for layer, idx in heads.by_layer().items()}
    for layer, length in zip((2, 0, 1), key_lengths, strict=True):  # the order the layers first appear in
        # weights (batch 1, group 1, the layer's heads, keys) tagged by layer and head index within the layer
        recorder._per_layer[layer] = torch.stack(
            [torch.full((length,), 10.0 * layer + h + 1) for h in range(per_layer[layer])]
        ).view(1, 1, per_layer[layer], length)
    out = recorder.collect()
    assert out.shape == (1, 1, 4, 7)
    expected_tags = [21.0, 1.0, 22.0, 11.0]  # (2, 1) is layer 2's first head, (0, 3) layer 0's only...
    for position, (layer, tag) in enumerate(zip((2, 0, 2, 1), expected_tags, strict=True)):
        length = key_lengths[(2, 0, 1).index(layer)]
        assert torch.all(out[0, 0, position, 7 - length :] == tag)
        assert torch.all(out[0, 0, position, : 7 - length] == 0)


def test_collect_names_a_layer_the_forward_never_ran() -> None:
    from qrhead_integrations.heads import HeadSet

    recorder = capture.HeadRecorder(HeadSet(((0, 0), (1, 0))), n_rows=1, total_length=3)
    recorder._per_layer[0] = torch.ones(1, 1, 1, 3)
    with pytest.raises(RuntimeError, match="layer 1 was not captured"):
        recorder.collect()
