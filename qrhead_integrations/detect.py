"""Detect a model's query-focused retrieval heads from a handful of labelled examples (QRHead, paper §3).

An example is a query, its candidate passages and which of them are gold (relevant); no answers are needed.
Every head of the model is scored on every example in one pass per example (the engine's ``"all"`` head set:
prefix once, the query tail and the ``"N/A"`` tail, all heads captured), one example at a time so memory stays
flat. Two rankings of the heads:

* ``"qr_score"`` (the paper's): the average over examples of the head's calibrated attention mass on the gold
  passages, ``Σ_{d gold} QRscore_h(q, d)``;
* ``"ndcg"`` (the paper's BEIR script): the average nDCG@10 of the head's own ranking of the candidates.

Candidates are shuffled per example with a fixed seed before scoring, because attention favours passages at the
start and next to the query; the seed is recorded in the head set's provenance.
"""

from __future__ import annotations

import datetime as _dt
import math
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from ._checks import check_int
from .errors import InvalidInputError
from .head_selection import (
    ExampleHeadScores,
    GreedyPath,
    HeadScores,
    HeadSelection,
    Objective,
    check_metric,
    choose_heads,
    greedy_head_set,
    greedy_heads,
    ndcg_at_10,
    objective_value,
    ranking_metric,
    subset_metric,
)
from .heads import HeadSet
from .prompt import Passage, to_passages
from .scorer import QRHeadScorer

__all__ = [  # the choosing half lives in .head_selection; re-exported here, where callers found it
    "METHODS",
    "Detection",
    "ExampleHeadScores",
    "GreedyPath",
    "HeadScores",
    "HeadSelection",
    "LabelledExample",
    "Method",
    "Objective",
    "PreparedExample",
    "check_held_out",
    "check_max_layer",
    "check_method",
    "check_metric",
    "choose_heads",
    "detect_heads",
    "detection_provenance",
    "example_head_scores",
    "greedy_head_set",
    "greedy_heads",
    "head_scores_table",
    "mean_recall",
    "objective_value",
    "plot_head_scores",
    "prepare_examples",
    "ranking_metric",
    "score_heads",
    "select_heads",
    "subset_metric",
    "warn_if_uncalibrated",
]

Method = Literal["qr_score", "ndcg"]


class LabelledExample(Protocol):
    """What detection reads from an example (``evaluation.MultihopExample`` fits)."""

    question: str
    passages: Sequence[Any]
    gold: Sequence[int]


def _shuffled(example: LabelledExample, rng: random.Random) -> tuple[list[Passage], list[int]]:
    passages = to_passages(example.passages)
    order = list(range(len(passages)))
    rng.shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    return [passages[i] for i in order], sorted(position[g] for g in example.gold)


@dataclass(frozen=True)
class PreparedExample:
    """One usable example as detection scores it: candidates in scoring order, gold indices in that order.

    Attributes:
        index: 0-based position in the input.
        question: the query.
        passages: the candidates, shuffled (or as given).
        gold: the gold indices into ``passages``.
    """

    index: int
    question: str
    passages: list[Passage]
    gold: list[int]


def prepare_examples(
    examples: Iterable[LabelledExample], *, seed: int = 0, shuffle: bool = True
) -> Iterator[PreparedExample]:
    """The examples detection scores, lazily, their candidates shuffled with one ``random.Random(seed)``.

    One shuffle per example, in input order, so a seed and an example list always give the same prompts — also
    on distributed workers. Examples whose gold passages are empty are skipped with a warning at the end.
    """
    rng = random.Random(seed)
    skipped = 0
    for index, example in enumerate(examples):
        if not example.gold:
            raise InvalidInputError(f"example {example.question[:60]!r} has no gold passage")
        passages, gold = _shuffled(example, rng) if shuffle else (to_passages(example.passages), list(example.gold))
        if any(passages[g].is_empty for g in gold):
            skipped += 1
            continue
        yield PreparedExample(index, example.question, passages, gold)
    if skipped:
        warnings.warn(f"{skipped} examples skipped: a gold passage was empty", stacklevel=2)


def example_head_scores(
    scorer: QRHeadScorer,
    examples: Iterable[LabelledExample],
    *,
    seed: int = 0,
    shuffle: bool = True,
    show_progress: bool = False,
    total: int | None = None,
    max_layer: int | None = None,
) -> Iterator[ExampleHeadScores]:
    """Score every head of ``scorer``'s model on each example, one example at a time.

    The expensive step of detection: :func:`head_scores_table` and :func:`choose_heads` only read its output.

    With ``max_layer`` only the heads of layers ``0 .. max_layer - 1`` are scored (``per_head`` then has
    ``max_layer * num_heads`` rows) and the forward stops there, so a depth-budgeted detection is also cheaper.

    Examples whose gold passages are all empty are skipped with a warning at the end. Candidates are shuffled
    with ``random.Random(seed)``, one shuffle per example in order, so a given seed and example list always give
    the same prompts (and distributed workers can reproduce them).
    """
    warn_if_uncalibrated(scorer.config.study.calibrate)
    depth = check_max_layer(max_layer, scorer.num_layers)
    heads: Any = "all"
    if depth < scorer.num_layers:
        heads = [(layer, head) for layer in range(depth) for head in range(scorer.num_heads)]
    all_heads = scorer.with_config(heads=heads, order="as_given", debias=False)
    prepared = prepare_examples(examples, seed=seed, shuffle=shuffle)
    for item in tqdm(prepared, total=total, disable=not show_progress, desc="detect", unit="ex"):
        yield ExampleHeadScores(all_heads.score_per_head(item.question, item.passages).double(), tuple(item.gold))


METHODS: tuple[Method, ...] = ("qr_score", "ndcg")
"""The head-scoring methods detection knows."""


def check_method(method: object) -> Method:
    """``method`` if it is one of :data:`METHODS` (every detection entry point checks here, before any work).

    Raises:
        InvalidInputError: any other value.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be 'qr_score' or 'ndcg', got {method!r}")
    return method


def warn_if_uncalibrated(calibrate: bool) -> None:
    """Warn when heads are detected without the ``"N/A"`` calibration (every detection entry point calls this).

    Without it, the heads that score best are the ones tracking position, not relevance.
    """
    if not calibrate:
        warnings.warn("detecting heads without calibration selects position-tracking heads", stacklevel=3)


def check_max_layer(max_layer: int | None, num_layers: int) -> int:
    """The depth budget as a layer count: ``None`` is the whole model; otherwise an int in ``1..num_layers``."""
    if max_layer is None:
        return num_layers
    return check_int(max_layer, "max_layer", minimum=1, maximum=num_layers, hint="heads from layers 0..max_layer-1")


def head_scores_table(
    scored: Iterable[ExampleHeadScores],
    *,
    method: Method,
    num_layers: int,
    num_heads: int,
    provenance: dict[str, Any] | None = None,
) -> HeadScores:
    """Reduce per-example head scores into the per-head detection table (mean over examples)."""
    check_method(method)
    sums = torch.zeros(num_layers * num_heads, dtype=torch.float64)
    used = 0
    for item in scored:
        gold = list(item.gold)
        sums += item.per_head[:, gold].sum(dim=1) if method == "qr_score" else ndcg_at_10(item.per_head, gold)
        used += 1
    if used == 0:
        raise InvalidInputError("no usable example: detection needs at least one example with a non-empty gold")
    table = (sums / used).reshape(num_layers, num_heads).numpy()
    if not np.all(np.isfinite(table)):
        raise InvalidInputError("non-finite head scores: check the examples' passages")
    return HeadScores(table, method, used, {**(provenance or {}), "method": method, "examples": used})


def score_heads(
    scorer: QRHeadScorer,
    examples: Iterable[LabelledExample],
    *,
    method: Method = "qr_score",
    seed: int = 0,
    shuffle: bool = True,
    data: str | None = None,
    show_progress: bool = False,
    total: int | None = None,
    max_layer: int | None = None,
) -> HeadScores:
    """Score every head of ``scorer``'s model on ``examples`` (see the module docstring).

    Args:
        scorer: a scorer for the model (its head set is ignored; all heads are read). Its calibration stays
            on: detecting without it picks early-layer heads that track position, not relevance.
        examples: labelled examples (``question``, ``passages``, ``gold`` indices).
        method: ``"qr_score"`` or ``"ndcg"``.
        seed: seed of the per-example candidate shuffle (a local RNG).
        shuffle: shuffle candidates (recommended); ``False`` keeps the given order.
        data: a description of the data, recorded in the provenance.
        show_progress: show a progress bar with an ETA.
        total: number of examples, for the progress bar when ``examples`` is a generator.
        max_layer: score only the heads of layers ``0 .. max_layer - 1`` (the table has ``max_layer`` rows).
    """
    check_method(method)
    depth = check_max_layer(max_layer, scorer.num_layers)
    scored = example_head_scores(
        scorer, examples, seed=seed, shuffle=shuffle, show_progress=show_progress, total=total, max_layer=max_layer
    )
    provenance = detection_provenance(scorer, seed if shuffle else None, data)
    if max_layer is not None:
        provenance["max_layer"] = depth
    return head_scores_table(scored, method=method, num_layers=depth, num_heads=scorer.num_heads, provenance=provenance)


def detection_provenance(scorer: QRHeadScorer, seed: int | None, data: str | None) -> dict[str, Any]:
    """What a detected head set records of how it was found: model, seed, candidate order, data, date..."""
    return {
        "model": scorer.model_id,
        "seed": seed,
        "candidate_order": "shuffled" if seed is not None else "as_given",
        "data": data,
        "date": _dt.date.today().isoformat(),
        "calibrated": scorer.config.study.calibrate,
        "max_passage_tokens": scorer.config.max_passage_tokens,
    }


def detect_heads(
    scorer_or_model: QRHeadScorer | str,
    examples: Iterable[LabelledExample],
    *,
    top_k: int | Literal["auto", "greedy"] = 16,
    method: Method = "qr_score",
    seed: int = 0,
    shuffle: bool = True,
    validation: float = 0.2,
    metric: str = "ndcg@10",
    max_heads: int = 32,
    data: str | None = None,
    show_progress: bool = False,
    total: int | None = None,
    max_layer: int | None = None,
) -> HeadSet:
    """Detect a model's query-focused retrieval heads from labelled examples.

    Args:
        scorer_or_model: a :class:`QRHeadScorer`, or a model name/path loaded with ``QRHeadScorer.from_pretrained``.
        examples: labelled examples (``question``, ``passages``, ``gold`` indices) — a few dozen suffice
            (the paper used 70-256; see docs/detection.md for how many we measured to be enough).
        top_k: heads to keep (16 in the paper; 32 for 70B models), or ``"auto"``: hold out the last
            ``validation`` fraction of the examples and let :func:`choose_heads` pick among the top 4/8/16/32
            and the best layer by validation nDCG@10 (top-16 unless another beats it by more than 0.02), or
            ``"greedy"``: add heads one at a time by ``metric`` on the first examples and keep the set size
            that scores best on the held-out ``validation`` fraction (:func:`greedy_heads`; ``method`` is then
            only used for the per-head table recorded in the provenance).
        method: ``"qr_score"`` (the paper's) or ``"ndcg"``.
        seed: seed of the per-example candidate shuffle, recorded in the provenance.
        shuffle: shuffle candidates (recommended).
        validation: with ``top_k="auto"`` or ``"greedy"``, the fraction of examples held out (at least one).
        metric: the validation metric: ``"ndcg@10"`` (re-ranking) or ``"recall@K"`` (multi-hop, e.g. ``recall@2``).
        max_heads: with ``top_k="greedy"``, the most heads to add.
        data: a description of the data for the provenance.
        show_progress: progress bar with an ETA.
        total: number of examples when ``examples`` is a generator (for the progress bar).
        max_layer: a depth budget: choose only among heads of layers ``0 .. max_layer - 1``. The scorer's
            forward stops inside the deepest layer it reads, so a shallower set is a faster scorer (detection
            itself runs only that deep too); whether quality survives is measured per model (docs/engine.md).

    Returns:
        A :class:`HeadSet`, best head first, with every kept head's score and the provenance.
    """
    if top_k not in ("auto", "greedy"):
        check_int(top_k, "top_k", minimum=1, hint="or 'auto' or 'greedy'")
    check_metric(metric)  # before any work
    check_held_out(top_k, validation, len(examples) if isinstance(examples, Sequence) else None)
    scorer = (
        scorer_or_model
        if isinstance(scorer_or_model, QRHeadScorer)
        else QRHeadScorer.from_pretrained(scorer_or_model, heads="all")
    )
    check_max_layer(max_layer, scorer.num_layers)
    if isinstance(top_k, int):
        table = score_heads(
            scorer,
            examples,
            method=method,
            seed=seed,
            shuffle=shuffle,
            data=data,
            show_progress=show_progress,
            total=total,
            max_layer=max_layer,
        )
        return table.top(min(top_k, table.scores.size))
    scored = list(
        example_head_scores(
            scorer,
            examples,
            seed=seed,
            shuffle=shuffle,
            show_progress=show_progress,
            total=total,
            max_layer=max_layer,
        )
    )
    return select_heads(
        scored,
        top_k=top_k,
        method=method,
        validation=validation,
        metric=metric,
        max_heads=max_heads,
        shape=(scorer.num_layers, scorer.num_heads),
        provenance=detection_provenance(scorer, seed if shuffle else None, data),
        max_layer=max_layer,
    ).heads


@dataclass(frozen=True)
class Detection:
    """A detected head set with the table it came from and the held-out figures that chose it.

    Attributes:
        heads: the chosen heads.
        table: per-head scores over the examples the heads were scored on (the held-out ones excluded).
        validation: ``{candidate: held-out metric}`` (``"auto"``) or ``{"size N": figure}`` (``"greedy"``).
        held_out: examples held out to choose (0 for a fixed ``top_k``).
    """

    heads: HeadSet
    table: HeadScores
    validation: dict[str, float]
    held_out: int


def select_heads(
    scored: Sequence[ExampleHeadScores],
    *,
    top_k: int | Literal["auto", "greedy"],
    shape: tuple[int, int],
    method: Method = "qr_score",
    validation: float = 0.2,
    metric: str = "ndcg@10",
    max_heads: int = 32,
    provenance: dict[str, Any] | None = None,
    max_layer: int | None = None,
) -> Detection:
    """Choose heads from scored examples (the step after :func:`example_head_scores`).

    See :func:`detect_heads` for the options. The one place the table, the held-out split and the choice are
    made, for the API, the CLI and distributed detection alike. With ``max_layer``, examples scored deeper are
    cut to its layers.
    """
    check_held_out(top_k, validation, len(scored))
    if max_layer is not None:
        depth = check_max_layer(max_layer, shape[0])
        rows = depth * shape[1]
        scored = [replace(x, per_head=x.per_head[:rows]) if x.per_head.shape[0] > rows else x for x in scored]
        shape = (depth, shape[1])
        provenance = {**(provenance or {}), "max_layer": depth}
    held_out = 0 if isinstance(top_k, int) else min(len(scored) - 1, max(1, round(len(scored) * validation)))
    fit, stop = list(scored[: len(scored) - held_out]), list(scored[len(scored) - held_out :])
    table = head_scores_table(fit, method=method, num_layers=shape[0], num_heads=shape[1], provenance=provenance)
    if isinstance(top_k, int):
        return Detection(table.top(min(top_k, table.scores.size)), table, {}, 0)
    if top_k == "greedy":
        heads = greedy_head_set(table, fit, stop, metric=metric, max_heads=max_heads)
        figures = {f"size {n}": v for n, v in enumerate(heads.provenance["greedy_stop"], start=1)}
        return Detection(heads, table, figures, held_out)
    selection = choose_heads(table, stop, metric=metric)
    return Detection(selection.heads, table, selection.validation, held_out)


def check_held_out(top_k: int | str, validation: float, count: int | None) -> None:
    """A choice on held-out examples (``"auto"``/``"greedy"``) needs a fraction in (0, 1) and 2+ examples."""
    if isinstance(top_k, int):
        return
    if not 0 < validation < 1:
        raise InvalidInputError(f"validation must be a fraction in (0, 1), got {validation}")
    if count is not None and count < 2:
        raise InvalidInputError(f"top_k={top_k!r} needs at least 2 usable examples (detection + validation)")


def plot_head_scores(table: HeadScores, path: str, *, top_k: int = 16, title: str | None = None) -> None:
    """Write a layers × heads heatmap of ``table`` (PNG), outlining the ``top_k`` heads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    scores = table.scores
    n_layers, n_heads = scores.shape
    width = max(4.0, min(14.0, 0.35 * n_heads + 2.5))
    height = max(4.0, min(14.0, 0.22 * n_layers + 1.5))
    fig, ax = plt.subplots(figsize=(width, height))
    limit = float(np.max(np.abs(scores))) or 1.0
    image = ax.imshow(scores, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower")
    for layer, head in table.top(top_k).heads:
        ax.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    model = table.provenance.get("model", "")
    default_title = f"{model}\n{table.method} over {table.examples} examples, top {top_k} outlined"
    ax.set_title(title or default_title, fontsize=10)
    fig.colorbar(image, ax=ax, label=table.method)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def mean_recall(scorer: QRHeadScorer, examples: Sequence[LabelledExample], k: int = 2) -> float:
    """Mean fraction of gold passages in the top ``k``: the multi-hop recall@k used to compare head sets.

    The heads' own ranking, no fusion.
    """
    if not examples:
        return math.nan
    total = 0.0
    for example in examples:
        top = {r.index for r in scorer.rank(example.question, example.passages, top_n=k, fusion=None)}
        total += len(top & set(example.gold)) / len(example.gold)
    return total / len(examples)
