"""Planning a scoring call before any forward runs: the cut, the prompt orders, the windows, the encoded prompts.

Every row of a call is planned first (:meth:`Planner.plan_row`), so a bad row fails before the model runs and
rows of similar length can share a forward (:func:`forward_groups`). One :class:`Unit` is one forward's worth of
a row: the passages of one window, in one prompt order, encoded (prefix + one tail per query, and one for the
``"N/A"`` query when calibrating).
"""

from __future__ import annotations

import math
import random
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .assembly import TextIds
from .config import ScorerConfig
from .errors import InvalidInputError
from .prompt import NULL_QUERY, EncodedPrompt, Passage, PromptBuilder, title_limit

BATCH_TOKENS = 32_768
"""Most padded tokens (rows × longest row) per batched forward: bounds activation memory."""

WINDOW_MARGIN = 16
"""Tokens a window leaves free beyond the prompt's counted size (the count is per block, the prompt joined)."""


@dataclass
class Unit:
    """One forward's worth of a row: the passages of one window in one prompt order, encoded."""

    row: int
    window: list[int]
    encoded: EncodedPrompt
    passages: list[Passage]
    """The window's passages as cut, in prompt order (what a passage cache encodes)."""

    @property
    def length(self) -> int:
        """Tokens of the packed sequence: the prefix and every tail."""
        return len(self.encoded.prefix_ids) + sum(len(t) for t in self.encoded.tails)


LONG_TOKENS = 20_000
"""Planned tokens in one call past which it is long work: a usual call (20 passages cut to 128 tokens, the
query, the template and the calibration tail) runs about 3,000."""

LONG_QUERY_TOKENS = 2_000
"""Query tokens past which a call is long work, whatever the passages: every query row attends to the whole
prefix, so a query of thousands of tokens costs far more than its share of the token count."""

CPU_FLOPS = 1.0e11
"""Rough floating-point operations per second of one scoring forward on a CPU: SmolLM2 (135M parameters) read
about 900 prompt tokens per second, i.e. ``2 * 135e6 * 900`` (reports/bench_throughput.md), rounded down to
allow for fewer cores. Only good for an order of magnitude."""

ACCELERATOR_FLOPS = 1.0e13
"""The same rough figure on a GPU (an order of magnitude above a CPU for these short forwards)."""


class LongWorkWarning(UserWarning):
    """A call plans far more work than usual; the message gives the planned tokens and a rough time.

    A category of its own, so a caller who means it can silence it:
    ``warnings.simplefilter("ignore", LongWorkWarning)``.
    """


def outside_stacklevel() -> int:
    """The ``stacklevel`` of a warning raised by the caller that points at the first frame outside this package.

    The same warning is reached through many entry points (``rank``, ``score_many``, the adapters), each at
    another depth; the user's own line is what the warning should name.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).startswith(_PASSED_THROUGH):
        frame, level = frame.f_back, level + 1
    return level


_PASSED_THROUGH = (__name__.partition(".")[0], "torch.", "contextlib")
"""Modules whose frames a warning looks past: the package's own and the decorators around its methods."""


@dataclass(frozen=True)
class ModelSize:
    """What a forward's cost depends on: parameters run, layers run and the hidden width."""

    parameters: int
    layers: int
    hidden: int


@dataclass(frozen=True)
class Workload:
    """The size of a planned call, known before any forward runs.

    Attributes:
        tokens: tokens the forwards run (every unit's prefix and tails).
        forwards: forward passes (units).
        longest_query: tokens of the longest query tail.
        lengths: each forward's tokens (what the attention's cost grows with, squared).
    """

    tokens: int
    forwards: int
    longest_query: int
    lengths: tuple[int, ...]

    @classmethod
    def of(cls, units: Sequence[Unit]) -> Workload:
        """The workload of a call's planned units."""
        lengths = tuple(unit.length for unit in units)
        longest = max((len(tail) for unit in units for tail in unit.encoded.tails), default=0)
        return cls(sum(lengths), len(units), longest, lengths)

    @property
    def is_long(self) -> bool:
        """Far beyond a usual call: more than :data:`LONG_TOKENS` tokens, or a query of :data:`LONG_QUERY_TOKENS`."""
        return self.tokens > LONG_TOKENS or self.longest_query > LONG_QUERY_TOKENS

    def estimate_seconds(self, size: ModelSize, accelerator: bool) -> float:
        """A rough time for the forwards, in seconds.

        The weights' ``2 * parameters`` operations per token, plus attention's ``4 * hidden * length**2`` per
        layer and forward, at :data:`CPU_FLOPS` (or :data:`ACCELERATOR_FLOPS`).
        """
        linear = 2.0 * size.parameters * self.tokens
        attention = 4.0 * size.hidden * size.layers * sum(float(n) ** 2 for n in self.lengths)
        return (linear + attention) / (ACCELERATOR_FLOPS if accelerator else CPU_FLOPS)

    def message(self, size: ModelSize, accelerator: bool) -> str:
        """The warning's text: what is planned, why it is long, and the rough time."""
        seconds = self.estimate_seconds(size, accelerator)
        when = f"about {seconds / 60:.0f} min" if seconds >= 90 else f"about {max(seconds, 1):.0f} s"
        query = f", a {self.longest_query:,}-token query" if self.longest_query > LONG_QUERY_TOKENS else ""
        return (
            f"long work planned: {self.tokens:,} tokens in {self.forwards} forward(s){query} (a usual call runs "
            f"about 3,000); roughly {when} on this device (a rough estimate). Shorter passages "
            "(max_passage_tokens), fewer candidates or a shorter query cut it."
        )


def warn_if_long(units: Sequence[Unit], model: Any, layers_run: int, num_layers: int, accelerator: bool) -> bool:  # noqa: ANN401
    """Warn (:class:`LongWorkWarning`) when a call's planned units are far beyond a usual call; return whether.

    Called after planning and before any forward, so the estimate comes while there is still time to stop.

    Args:
        units: the call's planned units.
        model: the scorer's model (its parameter count and hidden width).
        layers_run: layers a forward runs (it stops after the deepest selected head).
        num_layers: the model's layers.
        accelerator: whether the model is on a GPU (or another accelerator).
    """
    work = Workload.of(units)
    if not work.is_long:
        return False
    config = getattr(model.config, "get_text_config", lambda: model.config)()
    size = ModelSize(
        parameters=int(model.num_parameters()) * layers_run // max(1, num_layers),
        layers=layers_run,
        hidden=int(getattr(config, "hidden_size", 0) or 0),
    )
    warnings.warn(work.message(size, accelerator), LongWorkWarning, stacklevel=outside_stacklevel())
    return True


@dataclass
class RowPlan:
    """What one row needs: its units, the passages that can be scored, and how many prompt orders average."""

    units: list[Unit]
    scorable: list[int]
    n_orders: int


class Planner:
    """Lays rows out as forward units, as a scorer's config says.

    Args:
        builder: the scorer's prompt builder.
        config: the scorer's config (its cut, order, seed, debias and ``study.calibrate``).
        context_length: most prompt tokens per forward.
    """

    def __init__(self, builder: PromptBuilder, config: ScorerConfig, context_length: int) -> None:
        self.builder = builder
        self.config = config
        self.context_length = context_length

    def plan_row(self, row: int, queries: list[str], items: list[Passage], *, uncut: bool) -> RowPlan | None:
        """The units of one row of checked queries and passages, or ``None`` when nothing in it can be scored.

        Empty passages (no text, no title) are left out of the prompt. ``uncut`` reads every passage whole.

        Raises:
            InvalidInputError: the query leaves no room for passages in the context.
        """
        scorable = [i for i, p in enumerate(items) if not p.is_empty]
        if not queries or not scorable:
            return None
        chosen = [items[i] for i in scorable]
        shown, text_tokens, own_ids = (self.cut_titles(chosen), None, None) if uncut else self.cut(chosen)
        cut = dict(zip(scorable, shown, strict=True))
        counted = None if text_tokens is None else dict(zip(scorable, text_tokens, strict=True))
        orders = self.orders(scorable)
        tails = [*queries, NULL_QUERY] if self.config.study.calibrate else list(queries)
        tail_ids = [self.builder.tail_ids(tail) for tail in tails]
        windows = [window for order in orders for window in self.windows(order, cut, tail_ids, counted)]
        # A passage the windows cut again (longer than the context) is a prefix of what its ids read: they hold.
        text_ids = None if own_ids is None else dict(zip(scorable, own_ids, strict=True))
        units = []
        for window in windows:
            own = None if text_ids is None else [text_ids[i] for i in window]
            shown_here = [cut[i] for i in window]
            units.append(Unit(row, window, self.builder.encode(shown_here, tails, tail_ids, own), shown_here))
        return RowPlan(units, scorable, len(orders))

    def cut(self, passages: list[Passage]) -> tuple[list[Passage], list[int] | None, list[TextIds] | None]:
        """The passages cut to ``max_passage_tokens``, their texts' token counts and (maybe) their texts' ids.

        Counts and ids come from the same tokenizer call; the ids are there where the builder assembles prompts
        from them (the prompt is then not tokenised again). Both are ``None`` without a cap: nothing was tokenised.
        """
        limit = self.config.max_passage_tokens
        if limit is None:
            return passages, None, None
        if self.builder.assembles:
            return self.builder.truncate_encoded(passages, limit)
        return (*self.builder.truncate_counted(passages, limit), None)

    def cut_titles(self, passages: list[Passage]) -> list[Passage]:
        """The passages with titles cut to their share of ``max_passage_tokens`` (texts whole: read ``uncut``).

        The compressor's chunks are sized already, but each carries its document's title, which nothing else bounds.
        """
        limit = self.config.max_passage_tokens
        return passages if limit is None else self.builder.cut_titles(passages, title_limit(limit))

    def orders(self, indices: list[int]) -> list[list[int]]:
        """The prompt order(s) of the passages: the configured one, plus its reverse when de-biasing."""
        if self.config.order == "reversed":
            first = indices[::-1]
        elif self.config.order == "shuffled":
            first = list(indices)
            random.Random(self.config.seed).shuffle(first)
        else:
            first = list(indices)
        return [first, first[::-1]] if self.config.debias and len(first) > 1 else [first]

    def windows(
        self,
        order: list[int],
        passages: dict[int, Passage],
        tail_ids: Sequence[list[int]],
        text_tokens: dict[int, int] | None = None,
    ) -> list[list[int]]:
        """Split ``order`` into consecutive windows that fit the context, of about equal token counts.

        With the texts' token counts from the cut (``text_tokens``), a prompt whose upper bound fits is one
        window without tokenising the blocks again — the common case, and the same result, since the blocks
        are only counted to find where to split. A passage longer than the whole budget is cut to fit (in
        ``passages``), with a warning.
        """
        tail_tokens = max(len(t) for t in tail_ids)
        budget = self.context_length - self.builder.fixed_tokens(tail_tokens) - WINDOW_MARGIN
        if budget < 32:
            raise InvalidInputError(
                f"the query needs {tail_tokens} tokens, leaving no room for passages in a "
                f"{self.context_length}-token context"
            )
        if text_tokens is not None:
            bound = sum(self.builder.block_token_bound(passages[i], text_tokens[i]) for i in order)
            if bound <= budget:
                return [order]
        counts = self.builder.block_tokens([passages[i] for i in order])
        for pos, i in enumerate(order):
            if counts[pos] > budget:
                warnings.warn(
                    f"passage {i} has ~{counts[pos]} tokens, more than fits the context with the query "
                    f"({budget}); it is cut to fit for scoring. Set max_passage_tokens to control this.",
                    stacklevel=outside_stacklevel(),
                )
                passages[i] = self.builder.fit(passages[i], max(1, budget - 2 * WINDOW_MARGIN))
                counts[pos] = self.builder.block_tokens([passages[i]])[0]
        total = sum(counts)
        if total <= budget:
            return [order]
        target = total / math.ceil(total / budget)
        windows: list[list[int]] = [[]]
        filled = 0
        for i, count in zip(order, counts, strict=True):
            if windows[-1] and (filled + count > budget or filled + count / 2 > target):
                windows.append([])
                filled = 0
            windows[-1].append(i)
            filled += count
        return windows


def forward_groups(units: list[Unit], rows_per_forward: int) -> list[list[Unit]]:
    """Units grouped for batched forwards: by length (little padding).

    At most ``rows_per_forward`` units and :data:`BATCH_TOKENS` padded tokens go in a group (the caller passes 1
    for a model that cannot pack).
    """
    if rows_per_forward == 1:
        return [[unit] for unit in units]
    groups: list[list[Unit]] = []
    for unit in sorted(units, key=lambda u: u.length):
        group = groups[-1] if groups else None
        if group and len(group) < rows_per_forward and unit.length * (len(group) + 1) <= BATCH_TOKENS:
            group.append(unit)
        else:
            groups.append([unit])
    return groups
