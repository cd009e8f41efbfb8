"""Passages encoded one at a time, read together by each query: the layout a reusable passage cache needs.

In-context scoring (the default) runs every candidate through the model in one sequence, so a passage's keys and
values depend on the candidates before it and nothing can be reused by the next query. Here each passage is
encoded **alone**, right after the prompt's fixed opening (template head + ``"Here are some paragraphs:"``, so
every passage sees the same attention sink), at the slot that follows the opening (its *canonical* position). A
query lays the encoded passages out in its order by rotating each passage's keys (rotary position embedding) from
the canonical slot to the one it takes — rotations compose, so this equals keys computed at that position from the
same hidden states — then runs only the instruction and its tail (and the ``"N/A"`` tail) over them, capturing the
selected heads exactly as the in-context path does. A query's forward is then its own few dozen tokens instead of
every passage's.

What changes against in-context: a passage's hidden states never saw the other candidates, and its block carries
no ``[i]`` number (a number would tie the encoding to a slot). Whether the heads still rank well that way is
measured in ``research/study_passage_cache.py``.

``temperature`` (APE, Yang et al., ICLR 2025): the query's logits on passage keys are divided by it (the keys are
scaled), sharpening (< 1) or flattening (> 1) the attention over independently encoded blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from . import capture
from .errors import UnsupportedModelError
from .prompt import NULL_QUERY, OPENING, PASSAGE_SEPARATOR, Passage
from .scoring import passage_scores, token_scores

if TYPE_CHECKING:
    from transformers.cache_utils import Cache

    from .scorer import QRHeadScorer


def cached_block(passage: Passage) -> str:
    r"""A passage's block in the cached layout: ``title\ntext`` (or the text alone) — no slot number."""
    return f"{passage.title.strip()}\n{passage.text}" if passage.title.strip() else passage.text


@dataclass(frozen=True)
class EncodedPassage:
    """One passage's keys and values at its canonical position, for layers ``0..depth``.

    Attributes:
        length: tokens held (the block, then the separator).
        span: the first ``span`` of them are the passage's own tokens (its score sums over them).
        keys: per layer, ``(kv_heads, length, head_dim)``, rotary-embedded at the canonical slot.
        values: per layer, shaped as ``keys``.
    """

    length: int
    span: int
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]


class ParallelEncoder:
    """Encode passages once, alone after the shared opening, and score queries over any list of them.

    Args:
        scorer: the scorer whose model, tokenizer, heads and passage cut are used (its model must keep every
            position in its cache: no sliding-window layers).
    """

    def __init__(self, scorer: QRHeadScorer) -> None:
        self._scorer = scorer
        self.model = scorer.model
        self.heads = scorer.heads
        self.depth = scorer.heads.deepest_layer
        builder = scorer._builder
        self._builder = builder
        self._separator = builder._user_ids(PASSAGE_SEPARATOR)
        opening_ids = builder.before_ids + builder._user_ids(OPENING)
        self._opening = capture.new_cache(self.model)
        with torch.inference_mode():
            capture.run_layers(self.model, opening_ids, self._opening, start=0, stop_after=self.depth)
        if not capture.can_crop(self._opening):
            raise UnsupportedModelError(
                f"{type(self.model).__name__}: sliding-window layers cannot hold a passage cache"
            )
        self.opening_length = len(opening_ids)
        rotary = getattr(capture.decoder_of(self.model), "rotary_emb", None)
        inv_freq = getattr(rotary, "inv_freq", None)
        if not isinstance(inv_freq, torch.Tensor):
            raise NotImplementedError(f"{type(self.model).__name__}: no rotary embedding to re-position keys with")
        self._inv_freq = inv_freq.detach().to(torch.float64)

    # -------------------------------------------------------------------------------------------- passages
    def encode(self, passage: Passage) -> EncodedPassage:
        """The passage's keys and values, cut to the scorer's ``max_passage_tokens`` as in-context scoring cuts."""
        limit = self._scorer.config.max_passage_tokens
        if limit is not None:
            passage = self._builder.truncate_many([passage], limit)[0]
        return self.encode_cut(passage)

    @torch.inference_mode()
    def encode_cut(self, passage: Passage) -> EncodedPassage:
        """The keys and values of ``passage`` as it is (already cut)."""
        block = self._builder._user_ids(cached_block(passage))
        ids = block + self._separator
        cache = capture.fork_cache(self._opening)
        capture.run_layers(self.model, ids, cache, start=self.opening_length, stop_after=self.depth)
        layers = _layers(cache)[: self.depth + 1]
        start = self.opening_length
        return EncodedPassage(
            length=len(ids),
            span=len(block),
            keys=tuple(layer.keys[0, :, start:].clone() for layer in layers),
            values=tuple(layer.values[0, :, start:].clone() for layer in layers),
        )

    # ------------------------------------------------------------------------------------------------ query
    @torch.inference_mode()
    def score_per_head(
        self, queries: Sequence[str], passages: Sequence[EncodedPassage], *, temperature: float = 1.0
    ) -> torch.Tensor:
        """``(queries, heads, passages)`` calibrated scores of ``passages`` laid out in the given order."""
        if not passages:
            return torch.zeros(len(queries), len(self.heads), 0)
        cache, spans, total = self._assemble(passages, temperature)
        # The instruction reads the passages the same way whatever the query: run once, then every tail on a fork.
        instruction = self._builder._instruction_ids
        shared = capture.HeadRecorder(self.heads, n_rows=len(instruction), total_length=total + len(instruction))
        capture.run_layers(self.model, instruction, cache, start=total, stop_after=self.depth, recorder=shared)
        shared_sum = shared.collect()[0, 0, :, :total].float().cpu()
        start = total + len(instruction)
        tails = [self._builder.tail_ids(q) for q in [*queries, NULL_QUERY]]
        width = max(len(tail) for tail in tails)
        padded = [tail + [tail[-1]] * (width - len(tail)) for tail in tails]  # right padding is never seen
        real = torch.zeros(len(tails), 1, width)
        for b, tail in enumerate(tails):
            real[b, 0, : len(tail)] = 1
        recorder = capture.HeadRecorder(self.heads, width, start + width, row_groups=real)
        capture.run_layers(
            self.model,
            padded,
            capture.fork_cache(cache, batch=len(tails)),
            start=start,
            stop_after=self.depth,
            recorder=recorder,
        )
        sums = recorder.collect()[:, 0, :, :total].float().cpu() + shared_sum
        rows = torch.tensor([len(instruction) + len(tail) for tail in tails], dtype=sums.dtype)
        means = sums / rows.view(-1, 1, 1)
        null = means[-1]
        return torch.stack([passage_scores(token_scores(means[q], null), spans) for q in range(len(queries))])

    def _assemble(
        self, passages: Sequence[EncodedPassage], temperature: float
    ) -> tuple[Cache, list[tuple[int, int]], int]:
        """A cache of the opening and the passages re-rotated to their slots; the passages' spans; its length."""
        starts, spans = [], []
        cursor = self.opening_length
        for passage in passages:
            starts.append(cursor)
            spans.append((cursor, cursor + passage.span))
            cursor += passage.length
        cache = capture.new_cache(self.model)
        opening_layers = _layers(self._opening)
        like = opening_layers[0].keys  # entries may be stored 16-bit on the CPU: read in the model's dtype and device
        # One rotation table for every layer: each passage token moves by its passage's slot offset.
        deltas = torch.cat(
            [
                torch.full((p.length,), start - self.opening_length, dtype=torch.float64)
                for p, start in zip(passages, starts, strict=True)
            ]
        )
        cos, sin = self._rotation(deltas, like)
        for layer in range(self.depth + 1):
            keys = torch.cat([p.keys[layer] for p in passages], dim=1).to(like)
            values = torch.cat([p.values[layer] for p in passages], dim=1).to(like)
            moved = _rotated(keys, cos, sin)
            if temperature != 1.0:
                moved = moved / temperature
            cache.update(
                torch.cat([opening_layers[layer].keys[0], moved], dim=1)[None],
                torch.cat([opening_layers[layer].values[0], values], dim=1)[None],
                layer,
            )
        return cache, spans, cursor

    def rotate(self, keys: torch.Tensor, delta: int) -> torch.Tensor:
        """``keys`` (``(..., length, head_dim)``, rotary-embedded) moved ``delta`` positions later."""
        if delta == 0:
            return keys
        cos, sin = self._rotation(torch.full((keys.shape[-2],), delta, dtype=torch.float64), keys)
        return _rotated(keys, cos, sin)

    def _rotation(self, deltas: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positions, rotary_dim)`` cosines and sines of moving each position by its delta."""
        angles = deltas[:, None] * self._inv_freq[None, :]
        cos, sin = angles.cos(), angles.sin()
        return torch.cat([cos, cos], dim=-1).to(like), torch.cat([sin, sin], dim=-1).to(like)


def _rotated(keys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` dims of ``keys`` (``(..., positions, head_dim)``) position by position."""
    width = cos.shape[-1]
    half = width // 2
    rotary, rest = keys[..., :width], keys[..., width:]
    turned = torch.cat([-rotary[..., half:], rotary[..., :half]], dim=-1)
    moved = rotary * cos + turned * sin
    return torch.cat([moved, rest], dim=-1) if rest.shape[-1] else moved


def _layers(cache: Cache) -> list[Any]:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise NotImplementedError(f"{type(cache).__name__}: no per-layer key/value tensors")
    return list(layers)
