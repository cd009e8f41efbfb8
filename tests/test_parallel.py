"""Parallel encoding (the passage cache's layout): re-rotated keys are the keys of that position, and a query over
cached passages reads what one forward of the same tokens reads, against eager attention."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from qrhead_integrations import QRHeadScorer, capture
from qrhead_integrations.parallel import ParallelEncoder, cached_block
from qrhead_integrations.prompt import NULL_QUERY, OPENING, PASSAGE_SEPARATOR, Passage
from qrhead_integrations.scoring import passage_scores, token_scores
from tests.tiny_models import TEST_DEVICE, tiny_model

HEADS = "0-0,1-3,2-1,3-2"
PASSAGE = Passage(text="Paris is the capital of France. Hamlet is a play.", title="Paris")


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def encoder(request: pytest.FixtureRequest, tokenizer: Any) -> ParallelEncoder:
    scorer = QRHeadScorer(tiny_model(request.param), tokenizer, heads=HEADS, model_id=f"tiny-{request.param}")
    return ParallelEncoder(scorer)


def test_rotation_composes_and_undoes(encoder: ParallelEncoder) -> None:
    keys = torch.randn(2, 5, encoder.model.config.hidden_size // encoder.model.config.num_attention_heads)
    assert torch.allclose(encoder.rotate(encoder.rotate(keys, 7), 11), encoder.rotate(keys, 18), atol=1e-5)
    assert torch.allclose(encoder.rotate(encoder.rotate(keys, 40), -40), keys, atol=1e-5)
    assert not torch.allclose(encoder.rotate(keys, 3), keys, atol=1e-3)


def test_moved_keys_are_the_keys_computed_at_that_position(encoder: ParallelEncoder) -> None:
    """Layer 0's keys depend on the token and its position only: moving a cached passage must give exactly them."""
    builder = encoder._builder
    filler = builder._user_ids(" some words before the passage")
    block = builder._user_ids(cached_block(PASSAGE)) + builder._user_ids(PASSAGE_SEPARATOR)
    opening = builder.before_ids + builder._user_ids(OPENING)
    cache = capture.new_cache(encoder.model)
    with torch.inference_mode():
        capture.run_layers(encoder.model, opening + filler + block, cache, start=0, stop_after=encoder.depth)
    direct = cache.layers[0].keys[0, :, len(opening) + len(filler) :]
    moved = encoder.rotate(encoder.encode(PASSAGE).keys[0], len(filler))
    assert torch.allclose(moved, direct, atol=1e-5)


def _eager_scores(kind: str, ids: list[int], rows: list[int], span: tuple[int, int], heads: str) -> torch.Tensor:
    """Per head: a passage's calibrated score from eager attention of full forwards (query rows, then N/A rows)."""
    eager = tiny_model(kind, attn="eager")
    pairs = [tuple(int(x) for x in h.split("-")) for h in heads.split(",")]
    means = []
    for full, n_rows in zip(ids, rows, strict=True):
        with torch.no_grad():
            out = eager(torch.tensor([full], device=TEST_DEVICE), output_attentions=True)
        means.append(torch.stack([out.attentions[la][0, h, -n_rows:, :].mean(0) for la, h in pairs]).cpu())
    length = min(m.shape[1] for m in means)
    return passage_scores(token_scores(means[0][:, :length], means[1][:, :length]), [span])[:, 0]


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_one_cached_passage_scores_as_one_forward_of_the_same_tokens(kind: str, tokenizer: Any) -> None:
    """With one passage nothing is missing from its context: the cached path must equal eager attention."""
    scorer = QRHeadScorer(tiny_model(kind), tokenizer, heads=HEADS, model_id=f"tiny-{kind}")
    encoder = ParallelEncoder(scorer)
    builder = encoder._builder
    query = "Which city is the capital of France?"
    ours = encoder.score_per_head([query], [encoder.encode(PASSAGE)])[0, :, 0]
    body = builder.before_ids + builder._user_ids(OPENING)
    block = builder._user_ids(cached_block(PASSAGE))
    prefix = body + block + builder._user_ids(PASSAGE_SEPARATOR)
    tails = [builder._instruction_ids + builder.tail_ids(q) for q in (query, NULL_QUERY)]
    reference = _eager_scores(
        kind, [prefix + tail for tail in tails], [len(t) for t in tails], (len(body), len(body) + len(block)), HEADS
    )
    assert torch.allclose(ours, reference, atol=1e-5)


def test_a_passage_encodes_the_same_alone_and_beside_others(encoder: ParallelEncoder) -> None:
    first = encoder.encode(PASSAGE)
    encoder.encode(Passage(text="Water boils at one hundred degrees."))
    again = encoder.encode(PASSAGE)
    assert first.length == again.length and first.span == again.span
    assert all(torch.equal(a, b) for a, b in zip(first.keys, again.keys, strict=True))


def test_temperature_changes_scores_and_one_keeps_them(encoder: ParallelEncoder) -> None:
    passages = [encoder.encode(PASSAGE), encoder.encode(Passage(text="The moon orbits the earth."))]
    base = encoder.score_per_head(["capital of France"], passages)
    assert torch.equal(base, encoder.score_per_head(["capital of France"], passages, temperature=1.0))
    assert not torch.allclose(base, encoder.score_per_head(["capital of France"], passages, temperature=0.5))


def test_assembled_layout_holds_every_passages_keys_at_its_slot(encoder: ParallelEncoder) -> None:
    """Layer 0 of the assembled cache equals one forward of the concatenated blocks (keys depend on token and
    position only there): each passage moved by its own offset, in the order given."""
    others = [Passage(text="Water boils at one hundred degrees."), Passage(text="The moon orbits.", title="Moon")]
    passages = [PASSAGE, *others]
    builder = encoder._builder
    separator = builder._user_ids(PASSAGE_SEPARATOR)
    ids = builder.before_ids + builder._user_ids(OPENING)
    for passage in passages:
        ids += builder._user_ids(cached_block(passage)) + separator
    cache = capture.new_cache(encoder.model)
    with torch.inference_mode():
        capture.run_layers(encoder.model, ids, cache, start=0, stop_after=encoder.depth)
    assembled, _, total = encoder._assemble([encoder.encode(p) for p in passages], 1.0)
    assert total == len(ids)
    assert torch.allclose(assembled.layers[0].keys, cache.layers[0].keys, atol=1e-5)
    assert torch.equal(assembled.layers[0].values, cache.layers[0].values)
