"""Choosing heads from scored examples: per-head tables, held-out choices and greedy selection — no model.

:mod:`.detect` runs the model once per example (:func:`~qrhead_integrations.detect.example_head_scores`); every
choice here only reads what that produced (:class:`ExampleHeadScores`, :class:`HeadScores`), so a choice can be
re-made, compared or cross-validated on cached scores in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._checks import check_int
from .errors import InvalidInputError
from .headset import HeadSet


@dataclass(frozen=True)
class HeadScores:
    """A detection score for every head of the model, shape ``(num_layers, num_heads)``.

    Attributes:
        scores: mean score per head over the examples used.
        method: ``"qr_score"`` or ``"ndcg"``.
        examples: how many examples contributed.
        provenance: model, data, seed, date... copied into every head set taken from it.
    """

    scores: np.ndarray
    method: str
    examples: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int = 16) -> HeadSet:
        """The ``k`` best heads, best first, with their scores and this table's provenance."""
        flat = self.scores.ravel()
        n_heads = self.scores.shape[1]
        order = sorted(range(flat.size), key=lambda i: (-flat[i], i))[:k]
        heads = tuple((i // n_heads, i % n_heads) for i in order)
        provenance = {**self.provenance, "top_k": k}
        return HeadSet(heads, tuple(float(flat[i]) for i in order), provenance)

    def best_layer(self) -> int:
        """The layer whose heads score highest on average (a whole-layer alternative to top-k)."""
        return int(np.argmax(self.scores.mean(axis=1)))

    def layer_set(self, layer: int | None = None) -> HeadSet:
        """Every head of ``layer`` (the best layer by default), best first."""
        chosen = self.best_layer() if layer is None else layer
        row = self.scores[chosen]
        order = sorted(range(row.size), key=lambda h: (-row[h], h))
        provenance = {**self.provenance, "selection": f"layer {chosen}"}
        return HeadSet(tuple((chosen, h) for h in order), tuple(float(row[h]) for h in order), provenance)


def ndcg_at_10(per_head: torch.Tensor, gold: Sequence[int]) -> torch.Tensor:
    """nDCG@10 of each head's ranking (binary relevance: gold = 1), ties broken by passage index."""
    n = per_head.shape[1]
    k = min(10, n)
    # Stable descending sort = ties keep the lower index first.
    order = torch.sort(-per_head, dim=1, stable=True).indices[:, :k]
    relevant = torch.zeros(n, dtype=torch.float64)
    relevant[list(gold)] = 1.0
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    dcg = (relevant[order] * discounts).sum(dim=1)
    ideal = discounts[: min(len(set(gold)), k)].sum()
    return dcg / ideal


@dataclass(frozen=True)
class ExampleHeadScores:
    """Every head's calibrated scores on one example.

    ``per_head`` is ``(num_layers * num_heads, passages)`` in layer-major head order, passages and ``gold``
    indices in the order they were scored.
    """

    per_head: torch.Tensor
    gold: tuple[int, ...]


@dataclass(frozen=True)
class HeadSelection:
    """What :func:`choose_heads` picked and why.

    Attributes:
        heads: the chosen head set (its provenance names the choice and the validation figures).
        choice: ``"top-16"``, ``"layer 18"``...
        validation: every candidate's mean validation metric.
    """

    heads: HeadSet
    choice: str
    validation: dict[str, float]


def subset_metric(scored: Sequence[ExampleHeadScores], heads: Sequence[int], metric: str = "ndcg@10") -> float:
    """Mean ``metric`` (``"ndcg@10"`` or ``"recall@K"``) of the head subset ``heads`` over scored examples.

    ``heads`` are flat layer-major indices; the subset's score is the mean of its heads' scores, as in the
    scorer.
    """
    if not scored:
        return math.nan
    total = 0.0
    for item in scored:
        total += ranking_metric(item.per_head[list(heads)].mean(dim=0), item.gold, metric)
    return total / len(scored)


def check_metric(metric: str) -> int | None:
    """The cut-off ``K`` of ``"recall@K"`` (``None`` for ``"ndcg@10"``): the one check of a selection metric.

    Raises:
        InvalidInputError: any other metric name.
    """
    if metric == "ndcg@10":
        return None
    name, _, cut = metric.partition("@")
    if name == "recall" and cut.isdigit() and int(cut) >= 1:
        return int(cut)
    raise InvalidInputError(f"metric must be 'ndcg@10' or 'recall@K', got {metric!r}")


def ranking_metric(scores: Sequence[float] | torch.Tensor, gold: Sequence[int], metric: str) -> float:
    """``metric`` (``"ndcg@10"`` or ``"recall@K"``) of one ranking given by ``scores`` (ties: lower index first)."""
    row = torch.as_tensor(scores, dtype=torch.float64).reshape(1, -1)
    return float(_metric_rows(row, gold, metric)[0])


def _metric_rows(scores: torch.Tensor, gold: Sequence[int], metric: str) -> torch.Tensor:
    """``metric`` of every row of ``scores`` (``(rows, passages)``, each row one ranking's scores).

    Ties keep the lower passage index first, as the scorer's ``rank`` does.
    """
    k = check_metric(metric)
    if k is None:
        return ndcg_at_10(scores, gold)
    top = torch.sort(-scores, dim=1, stable=True).indices[:, :k]
    hits = torch.zeros(scores.shape[1], dtype=torch.float64)
    hits[list(gold)] = 1.0
    return hits[top].sum(dim=1) / len(set(gold))


@dataclass(frozen=True)
class Objective:
    """What head selection maximises: the mean ``metric`` over ``examples``, counted ``weight`` times.

    Several objectives (one per task kind) are averaged by weight, so one head set can be chosen for both
    re-ranking (``"ndcg@10"``) and multi-hop retrieval (``"recall@2"``).
    """

    examples: Sequence[ExampleHeadScores]
    metric: str = "ndcg@10"
    weight: float = 1.0


def objective_value(objectives: Sequence[Objective], heads: Sequence[int]) -> float:
    """Weighted mean metric of the head subset ``heads`` (flat layer-major indices) over ``objectives``."""
    total = sum(o.weight for o in objectives if o.examples)
    if not total:
        return math.nan
    return sum(o.weight * subset_metric(o.examples, heads, o.metric) for o in objectives if o.examples) / total


def _gains(objectives: Sequence[Objective], chosen: Sequence[int], n_total: int) -> torch.Tensor:
    """Objective value of ``chosen + [h]`` for every head ``h`` (one vectorised pass per example)."""
    weight = sum(o.weight for o in objectives if o.examples)
    values = torch.zeros(n_total, dtype=torch.float64)
    for objective in objectives:
        if not objective.examples:
            continue
        share = objective.weight / weight / len(objective.examples)
        for item in objective.examples:
            base = item.per_head[list(chosen)].sum(dim=0) if chosen else torch.zeros(item.per_head.shape[1])
            # mean over chosen + h = (base + row_h) / (len + 1): the divisor does not change the ranking.
            values += share * _metric_rows(item.per_head + base.to(item.per_head.dtype), item.gold, objective.metric)
    return values


@dataclass(frozen=True)
class GreedyPath:
    """Forward selection's path: ``heads[:n]`` is the set of size ``n``; ``fit``/``stop`` its two figures."""

    heads: tuple[int, ...]
    fit: tuple[float, ...]
    stop: tuple[float, ...]
    size: int


def greedy_heads(
    fit: Sequence[Objective],
    stop: Sequence[Objective],
    *,
    n_total: int,
    max_heads: int = 32,
    patience: int = 8,
    allowed: Sequence[int] | None = None,
) -> GreedyPath:
    """Greedy forward selection of heads by the ranking metric itself.

    Each step adds the head whose addition gives the best ``fit`` objective (ties: the lower index); the set
    size kept is the one with the best ``stop`` objective (examples not used to add heads; ties: the smaller
    set). It stops after ``max_heads`` heads or ``patience`` steps without a new best on ``stop``.

    Why: ranking heads by their mean QR score on the gold passages is not the same as choosing the set that
    ranks best — heads that all attend to the same evidence add nothing together, and on the bundled models the
    best of ten random 16-head sets beat the top-16 by QR score. Every subset's scores are a mean of per-head
    rows already computed, so this search costs no model forward, and the second split keeps it from fitting
    the first one's noise.

    Args:
        fit: objectives the heads are added by.
        stop: objectives that choose the size (disjoint examples).
        n_total: number of heads of the model (``num_layers * num_heads``).
        max_heads: most heads to add.
        patience: steps without a new best ``stop`` figure before stopping early.
        allowed: the flat head indices that may be chosen (default: all), e.g. heads within a depth budget.
    """
    if not any(o.examples for o in fit) or not any(o.examples for o in stop):
        raise InvalidInputError("greedy head selection needs examples in both the fit and the stop objectives")
    check_int(max_heads, "max_heads", minimum=1)
    mask = torch.zeros(n_total, dtype=torch.bool)
    mask[list(range(n_total)) if allowed is None else list(allowed)] = True
    chosen: list[int] = []
    fit_path: list[float] = []
    stop_path: list[float] = []
    best_size, best_stop = 0, -math.inf
    while len(chosen) < min(max_heads, int(mask.sum())):
        values = _gains(fit, chosen, n_total)
        values[~mask] = -math.inf
        head = int(torch.argmax(values))  # first maximum = lowest index
        chosen.append(head)
        mask[head] = False
        fit_path.append(float(values[head]))
        stop_path.append(objective_value(stop, chosen))
        if stop_path[-1] > best_stop + 1e-12:
            best_size, best_stop = len(chosen), stop_path[-1]
        elif len(chosen) - best_size >= patience:
            break
    return GreedyPath(tuple(chosen), tuple(fit_path), tuple(stop_path), best_size)


def choose_heads(
    table: HeadScores,
    validation: Sequence[ExampleHeadScores],
    *,
    sizes: Sequence[int] = (4, 8, 16, 32),
    layer: bool = True,
    metric: str = "ndcg@10",
    prefer: int = 16,
    margin: float = 0.02,
) -> HeadSelection:
    """Pick a head set on held-out examples.

    The top-``k`` heads of ``table`` for each ``k`` in ``sizes`` and (``layer=True``) every head of the table's
    best layer are scored on ``validation``; the paper's top-``prefer`` is kept unless another candidate beats
    it by more than ``margin``, in which case the best one is taken.

    Why: for small models the paper's fixed top-16 is not automatically best (a prototype saw fewer heads or
    one whole layer do better), and the only honest way to choose is on examples the table was not made from.
    But a few dozen validation examples cannot separate candidates a point or two apart (on the bundled models
    the top-4/8/16/32 figures sat within 0.02 nDCG@10 of each other), so small differences do not override the
    default — which also keeps the head count, and hence the forward's depth, from drifting up on noise.
    """
    if not validation:
        raise InvalidInputError("choose_heads needs at least one validation example")
    n_heads = table.scores.shape[1]
    candidates: dict[str, HeadSet] = {f"top-{k}": table.top(k) for k in sizes if k <= table.scores.size}
    if layer:
        best_layer = table.best_layer()
        candidates[f"layer {best_layer}"] = table.layer_set(best_layer)
    figures = {
        name: subset_metric(validation, [lay * n_heads + h for lay, h in heads], metric)
        for name, heads in candidates.items()
    }
    best = max(figures, key=lambda name: (figures[name], -list(figures).index(name)))
    default = f"top-{prefer}"
    keep_default = default in figures and figures[best] - figures[default] <= margin
    choice = default if keep_default else best
    chosen = candidates[choice]
    provenance = {
        **chosen.provenance,
        "selection": choice,
        "validation_examples": len(validation),
        "validation_metric": metric,
        "validation_rule": f"top-{prefer} unless another candidate beats it by more than {margin}",
        "validation": {name: round(value, 4) for name, value in figures.items()},
    }
    return HeadSelection(HeadSet(chosen.heads, chosen.scores, provenance), choice, figures)


def greedy_head_set(
    table: HeadScores,
    fit: Sequence[ExampleHeadScores],
    stop: Sequence[ExampleHeadScores],
    *,
    metric: str = "ndcg@10",
    max_heads: int = 32,
) -> HeadSet:
    """:func:`greedy_heads` on one task's examples, as a :class:`HeadSet` in the order the heads were added.

    Each head keeps its ``table`` score; the path's figures go in the provenance.
    """
    n_heads = table.scores.shape[1]
    path = greedy_heads(
        [Objective(fit, metric)], [Objective(stop, metric)], n_total=table.scores.size, max_heads=max_heads
    )
    flat = path.heads[: path.size]
    provenance = {
        **table.provenance,
        "selection": f"greedy-{path.size}",
        "validation_examples": len(stop),
        "validation_metric": metric,
        "validation_rule": "greedy forward selection on the fit examples, size by the held-out examples",
        "greedy_fit": [round(v, 4) for v in path.fit],
        "greedy_stop": [round(v, 4) for v in path.stop],
    }
    scores = table.scores.ravel()
    heads = tuple((i // n_heads, i % n_heads) for i in flat)
    return HeadSet(heads, tuple(float(scores[i]) for i in flat), provenance)
