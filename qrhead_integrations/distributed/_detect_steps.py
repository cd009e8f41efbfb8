"""The driver's share of distributed detection: the candidate shuffle of ``detect.example_head_scores``.

``detect.example_head_scores`` shuffles each example's candidates with one ``random.Random(seed)`` (one draw
per example, in input order), skips examples whose gold passage is empty, then scores. Distributed detection
does the cheap shuffle here, on the driver, and the scoring in the actors (``shuffle=False`` on candidates
already in order). The loop below is ``example_head_scores``' own loop without the scoring; it calls
``detect``'s private ``_shuffled`` rather than copying it. A public ``detect.shuffled_examples`` with this
signature, used by ``example_head_scores`` itself, would make this module a one-line import.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from ..detect import LabelledExample, _shuffled
from ..errors import InvalidInputError
from ..prompt import Passage, to_passages


@dataclass(frozen=True)
class PreparedExample:
    """One usable example: its candidates in scoring order and its gold indices in that order.

    Attributes:
        index: 0-based position in the input (where the reduction puts it).
        question: the query.
        passages: the candidates, shuffled (or as given).
        gold: the gold indices into ``passages``.
    """

    index: int
    question: str
    passages: list[Passage]
    gold: list[int]


def shuffled_examples(
    examples: Iterable[LabelledExample], *, seed: int = 0, shuffle: bool = True
) -> list[PreparedExample]:
    """The examples ``example_head_scores`` would score, in its order and with its shuffles (same RNG draws)."""
    rng = random.Random(seed)
    prepared: list[PreparedExample] = []
    skipped = 0
    for index, example in enumerate(examples):
        if not example.gold:
            raise InvalidInputError(f"example {example.question[:60]!r} has no gold passage")
        passages, gold = _shuffled(example, rng) if shuffle else (to_passages(example.passages), list(example.gold))
        if any(passages[g].is_empty for g in gold):
            skipped += 1
            continue
        prepared.append(PreparedExample(index, example.question, passages, gold))
    if skipped:
        warnings.warn(f"{skipped} examples skipped: a gold passage was empty", stacklevel=3)
    return prepared
