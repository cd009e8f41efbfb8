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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import InvalidInputError
from .heads import HeadSet
from .prompt import Passage, to_passages
from .scorer import QRHeadScorer

Method = Literal["qr_score", "ndcg"]


class LabelledExample(Protocol):
    """What detection reads from an example (``evaluation.MultihopExample`` fits)."""

    question: str
    passages: Sequence[Any]
    gold: Sequence[int]


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


def _ndcg_at_10(per_head: torch.Tensor, gold: Sequence[int]) -> torch.Tensor:
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


def _shuffled(example: LabelledExample, rng: random.Random) -> tuple[list[Passage], list[int]]:
    passages = to_passages(example.passages)
    order = list(range(len(passages)))
    rng.shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    return [passages[i] for i in order], sorted(position[g] for g in example.gold)


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
    """
    if method not in ("qr_score", "ndcg"):
        raise InvalidInputError(f"method must be 'qr_score' or 'ndcg', got {method!r}")
    if not scorer.config.calibrate:
        warnings.warn("detecting heads without calibration selects position-tracking heads", stacklevel=2)
    all_heads = scorer.with_config(heads="all", order="as_given", debias=False)
    rng = random.Random(seed)
    sums = torch.zeros(len(all_heads.heads), dtype=torch.float64)
    used = skipped = 0
    for example in tqdm(examples, total=total, disable=not show_progress, desc=f"detect ({method})", unit="ex"):
        if not example.gold:
            raise InvalidInputError(f"example {example.question[:60]!r} has no gold passage")
        passages, gold = _shuffled(example, rng) if shuffle else (to_passages(example.passages), list(example.gold))
        if any(passages[g].is_empty for g in gold):
            skipped += 1
            continue
        per_head = all_heads.score_per_head(example.question, passages).double()
        sums += per_head[:, gold].sum(dim=1) if method == "qr_score" else _ndcg_at_10(per_head, gold)
        used += 1
    if used == 0:
        raise InvalidInputError("no usable example: detection needs at least one example with a non-empty gold")
    if skipped:
        warnings.warn(f"{skipped} examples skipped: a gold passage was empty", stacklevel=2)
    provenance = {
        "model": scorer.model_id,
        "method": method,
        "examples": used,
        "seed": seed if shuffle else None,
        "candidate_order": "shuffled" if shuffle else "as_given",
        "data": data,
        "date": _dt.date.today().isoformat(),
        "calibrated": scorer.config.calibrate,
    }
    table = (sums / used).reshape(scorer.num_layers, scorer.num_heads).numpy()
    if not np.all(np.isfinite(table)):
        raise InvalidInputError("non-finite head scores: check the examples' passages")
    return HeadScores(table, method, used, provenance)


def detect_heads(
    scorer_or_model: QRHeadScorer | str,
    examples: Iterable[LabelledExample],
    *,
    top_k: int = 16,
    method: Method = "qr_score",
    seed: int = 0,
    shuffle: bool = True,
    data: str | None = None,
    show_progress: bool = False,
    total: int | None = None,
) -> HeadSet:
    """Detect the ``top_k`` query-focused retrieval heads of a model from labelled examples.

    Args:
        scorer_or_model: a :class:`QRHeadScorer`, or a model name/path loaded with ``QRHeadScorer.from_pretrained``.
        examples: labelled examples (``question``, ``passages``, ``gold`` indices) — a few dozen suffice
            (the paper used 70-256; see docs/detection.md for how many we measured to be enough).
        top_k: heads to keep (16 in the paper; 32 for 70B models).
        method: ``"qr_score"`` (the paper's) or ``"ndcg"``.
        seed: seed of the per-example candidate shuffle, recorded in the provenance.
        shuffle: shuffle candidates (recommended).
        data: a description of the data for the provenance.
        show_progress: progress bar with an ETA.
        total: number of examples when ``examples`` is a generator (for the progress bar).

    Returns:
        A :class:`HeadSet`, best head first, with every kept head's score and the provenance.
    """
    if top_k < 1:
        raise InvalidInputError(f"top_k must be >= 1, got {top_k}")
    scorer = (
        scorer_or_model
        if isinstance(scorer_or_model, QRHeadScorer)
        else QRHeadScorer.from_pretrained(scorer_or_model, heads="all")
    )
    table = score_heads(
        scorer, examples, method=method, seed=seed, shuffle=shuffle, data=data, show_progress=show_progress,
        total=total,
    )
    return table.top(min(top_k, table.scores.size))


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
    ax.set_title(title or f"{model}: head {table.method} over {table.examples} examples (top {top_k} outlined)")
    fig.colorbar(image, ax=ax, label=table.method)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def mean_recall(scorer: QRHeadScorer, examples: Sequence[LabelledExample], k: int = 2) -> float:
    """Mean fraction of gold passages in the top ``k`` (the multi-hop recall@k used to compare head sets)."""
    if not examples:
        return math.nan
    total = 0.0
    for example in examples:
        top = {r.index for r in scorer.rank(example.question, example.passages, top_n=k)}
        total += len(top & set(example.gold)) / len(example.gold)
    return total / len(examples)
