"""The scorer's forward passes: encoded prompts in, each query's attention over its prefix out.

:mod:`.capture` knows how one forward records heads; this module knows which forwards a set of prompts needs and
how their recordings become per-query means:

* models whose cache keeps every position: **one forward** per prompt, prefix + all tails packed
  (:class:`~qrhead_integrations.packing.Packing`: every tail sees the prefix and itself, at its own positions),
  or several prompts in one right-padded forward (:class:`~qrhead_integrations.packing.BatchPacking`);
* sliding-window models (their windowed layers drop old keys, so packed tails could not see the prefix window
  they need): the prefix forward, then the tails as right-padded batches on a fork of its cache (under causal
  attention a tail's real tokens never see the padding after them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from . import capture
from .capture import HeadRecorder
from .headset import HeadSet
from .packing import BatchPacking, Packing
from .prompt import EncodedPrompt

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.cache_utils import Cache


class Forwards:
    """Runs a model's forwards for encoded prompts, recording ``heads``.

    Args:
        model: the causal LM, already switched to the capturing attention (:func:`capture.prepare_model`).
        heads: the heads to record; the forward stops inside the deepest one's layer.
        instruction_rows: whether each query's mean includes the instruction's rows (the prefix's last
            ``EncodedPrompt.shared_rows`` tokens; ``StudyOptions.query_part == "all"``) or not.
    """

    def __init__(self, model: PreTrainedModel, heads: HeadSet, *, instruction_rows: bool = True) -> None:
        self.model = model
        self.heads = heads
        self.instruction_rows = instruction_rows
        self._blank_cache = capture.new_cache(model)
        self.can_pack = capture.can_crop(self._blank_cache)
        """Whether this model's cache keeps every position, as the packed layouts need."""

    def new_cache(self) -> Cache:
        """An empty key/value cache for one forward: a copy of a blank one (building one reads the config)."""
        return capture.empty_copy(self._blank_cache)

    def shared_rows(self, prompt: EncodedPrompt) -> int:
        """How many of the prefix's last rows (the instruction) join each query's query part."""
        return prompt.shared_rows if self.instruction_rows else 0

    def capture_many(self, prompts: Sequence[EncodedPrompt]) -> list[list[torch.Tensor]]:
        """:meth:`capture` for several prompts in one right-padded forward (:class:`BatchPacking`).

        Each prompt's result is what :meth:`capture` gives it alone.
        """
        if len(prompts) == 1:
            return [self.capture(prompts[0])]
        packings, recorders, rows = [], [], []
        for prompt in prompts:
            packing, recorder = self._packed_recorder(
                len(prompt.prefix_ids), self.shared_rows(prompt), prompt.tails, own=True
            )
            packings.append(packing)
            recorders.append(recorder)
            rows.append(prompt.prefix_ids + [token for tail in prompt.tails for token in tail])
        batch = BatchPacking(tuple(packings))
        padded = [row + [row[-1]] * (batch.width - len(row)) for row in rows]
        capture.run_layers(
            self.model,
            padded,
            self.new_cache(),
            start=0,
            stop_after=self.heads.deepest_layer,
            recorder=capture.BatchRecorder(recorders),
            packing=batch,
        )
        return [
            tail_means(recorder.collect()[0, :, :, : len(prompt.prefix_ids)], self.shared_rows(prompt), prompt.tails)
            for prompt, recorder in zip(prompts, recorders, strict=True)
        ]

    def capture(self, prompt: EncodedPrompt) -> list[torch.Tensor]:
        """The selected heads' attention over the prefix, averaged over each query's query-part rows.

        The query part is the prefix's last :meth:`shared_rows` tokens (the instruction, identical for every
        query and captured once) plus the tail. Returns one ``(heads, prefix_len)`` tensor per tail — exactly the
        row mean a single forward of prefix + tail would give (the module docstring says how the tails run).
        """
        prefix_ids, tails, shared_rows = prompt.prefix_ids, prompt.tails, self.shared_rows(prompt)
        stop = self.heads.deepest_layer
        prefix_len = len(prefix_ids)
        cache = self.new_cache()
        if self.can_pack:
            packing, recorder = self._packed_recorder(prefix_len, shared_rows, tails)
            ids = prefix_ids + [token for tail in tails for token in tail]
            capture.run_layers(self.model, ids, cache, start=0, stop_after=stop, recorder=recorder, packing=packing)
            return tail_means(recorder.collect()[0, :, :, :prefix_len], shared_rows, tails)
        shared = capture.HeadRecorder(self.heads, n_rows=shared_rows, total_length=prefix_len) if shared_rows else None
        capture.run_layers(self.model, prefix_ids, cache, start=0, stop_after=stop, recorder=shared)
        shared_sum = shared.collect()[0, 0] if shared is not None else 0.0
        out: list[torch.Tensor] = []
        for group in tail_groups(tails, prefix_len):
            width = max(len(tail) for tail in group)
            padded = [tail + [tail[-1]] * (width - len(tail)) for tail in group]  # right padding is never seen
            real = torch.zeros(len(group), 1, width)
            for b, tail in enumerate(group):
                real[b, 0, : len(tail)] = 1
            recorder = capture.HeadRecorder(self.heads, width, prefix_len + width, row_groups=real)
            capture.run_layers(
                self.model,
                padded,
                capture.fork_cache(cache, batch=len(group)),
                start=prefix_len,
                stop_after=stop,
                recorder=recorder,
            )
            row_sums = recorder.collect()[:, 0, :, :prefix_len] + shared_sum
            out.extend((row_sums[b] / (shared_rows + len(tail))).cpu() for b, tail in enumerate(group))
        return out

    def _packed_recorder(
        self, prefix_len: int, shared_rows: int, tails: list[list[int]], *, own: bool = False
    ) -> tuple[Packing, HeadRecorder]:
        """The packed layout of prefix + tails, and a recorder for it.

        The recorder sums the instruction rows (group 0) and each tail's rows (group ``i``) apart; ``own`` ties
        it to this layout (a row of a batch).
        """
        packing = Packing(prefix_len, len(tails[0]), tuple(len(t) for t in tails[1:]))
        n_rows = shared_rows + sum(len(t) for t in tails)
        groups = torch.zeros(1, 1 + len(tails), n_rows)
        groups[0, 0, :shared_rows] = 1
        start = shared_rows
        for i, tail in enumerate(tails, start=1):
            groups[0, i, start : start + len(tail)] = 1
            start += len(tail)
        recorder = HeadRecorder(
            self.heads, n_rows, packing.total_len, row_groups=groups, packing=packing if own else None
        )
        return packing, recorder


def tail_means(sums: torch.Tensor, shared_rows: int, tails: list[list[int]]) -> list[torch.Tensor]:
    """Per tail: (instruction rows + its own rows) summed weights over the prefix, divided by its row count."""
    return [((sums[0] + sums[i]) / (shared_rows + len(t))).cpu() for i, t in enumerate(tails, start=1)]


def tail_groups(tails: list[list[int]], prefix_len: int) -> list[list[list[int]]]:
    """Consecutive groups of tails to run as one right-padded batch each (bounded broadcast copies)."""
    if not tails:
        return []
    per_group = max(1, capture.TAIL_BATCH_TOKENS // (prefix_len + max(len(t) for t in tails)))
    return [tails[i : i + per_group] for i in range(0, len(tails), per_group)]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (``None``: as set), then restore the process's setting.

    torch's thread count is process-wide; the scorer's lock keeps its own calls from interleaving, but another
    thread of the application running torch meanwhile runs with this count too.
    """
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
