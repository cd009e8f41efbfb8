"""Fusion of QRHead's ranking with the first stage's: weighted reciprocal-rank fusion (RRF) or z-score interpolation.

A re-ranker is handed candidates that a first stage (BM25, a vector store, a hybrid retriever) has already
ranked, and that order is evidence: on the dev data of docs/results.md a small model's attention alone ranked
SciFact's BM25 top 20 *below* BM25's own order, while fusing the two beat both. Scores of the two stages live
on unrelated scales (attention mass vs BM25 or cosine), so they are fused by rank:

    fused(d) = (k + 1) · [ (1 − w) / (k + rank_qrhead(d)) + w / (k + rank_first_stage(d)) ]

with 1-based ranks, ``w`` the first stage's weight and ``k = 60`` (Cormack, Clarke and Büttcher 2009). The
factor ``k + 1`` puts a passage first in both rankings at 1.0, so fused scores lie in (0, 1]. When no
first-stage scores are given, the input order is the first stage's ranking (LangChain and LlamaIndex hand
candidates over best first).

**By score** (``Fusion(form="scores")``): each signal is z-scored over the query's candidates and the z-scores
are mixed with the same weights, ``(1 − w − l)·z(qrhead) + w·z(first stage) + l·z(bm25)``, the input order
entering as ``−position``. Ranks throw away the *size* of a gap — a passage far ahead in attention or in BM25
counts as much as one a hair ahead — scores keep it. A signal that ties every candidate contributes nothing.
Fused scores are then unbounded (a z-score mix), not in (0, 1].

**When the input order is not a ranking.** A list handed over in a document's own chunk order, a file's order or
shuffled carries no evidence, and fusing it costs quality (HotpotQA's file order: docs/results.md). With
``Fusion(agreement=a)`` the first stage's weight is scaled, per query, by how much its order agrees with BM25
over the candidates (Kendall's tau-b, ``tau``): in full when ``tau >= a``, linearly less down to nothing at
``tau <= 0``; the weight it loses goes to QRHead. A retriever's ranking agrees with the candidates' own words
(SciFact dev, BM25 first stage: median tau 0.42); an arbitrary order does not (HotpotQA file order: median
-0.02). Where the agreement is undefined (fewer than two candidates, or BM25 ties them all: no lexical evidence
to test the order against) the order keeps its full weight.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, TypeVar

import numpy as np

from . import presets
from ._checks import check_int
from .errors import InvalidInputError

RRF_K = 60
"""The usual RRF constant: it damps the weight of the very first ranks."""

FusionForm = Literal["ranks", "scores"]
FUSION_FORMS: Final[tuple[FusionForm, ...]] = ("ranks", "scores")
"""How the signals are combined: weighted reciprocal ranks, or a weighted sum of per-query z-scores."""


Key = TypeVar("Key", bound=Hashable)

DEFAULT_LEXICAL = 0.5
"""The default BM25 share (:attr:`Fusion.lexical`), named for the message that a weight alone is too large."""


@dataclass(frozen=True)
class Fusion:
    """How much the first stage's order counts next to QRHead's.

    Attributes:
        weight: the first stage's share, in ``[0, 1]`` (0: QRHead alone; 1: the first stage alone).
        lexical: the share of a BM25 ranking of the candidates themselves (computed by the re-ranker from the
            query and the passages' words), in ``[0, 1]``; ``weight + lexical <= 1``, QRHead gets the rest.
        k: the RRF constant (>= 0): larger values flatten the difference between the top ranks.
        agreement: the Kendall tau between the first stage's order and BM25 over the candidates at which the
            first stage's weight counts in full (in ``(0, 1]``; ``0``: in full whenever tau > 0); below it the
            weight shrinks linearly to nothing at tau <= 0 (module docstring). ``None``: always in full.
        form: ``"scores"`` (weighted sum of per-query z-scores; ``k`` unused) or ``"ranks"`` (weighted RRF):
            see the module docstring.

    ``Fusion()`` is the default fusion (:data:`DEFAULT_FUSION`): every field's default is the dev-chosen value,
    so a model preset's ``"_fusion"`` entry, a mapping and a keyword call all fill unnamed fields the same way.
    """

    weight: float = 0.1
    lexical: float = DEFAULT_LEXICAL
    k: int = RRF_K
    agreement: float | None = None
    form: FusionForm = "scores"

    def __post_init__(self) -> None:
        """Check the weights (each in ``[0, 1]``, together at most 1), ``k`` and ``agreement``."""
        for name in ("weight", "lexical") if self.agreement is None else ("weight", "lexical", "agreement"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidInputError(f"fusion {name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= float(value) <= 1.0:  # also rejects NaN
                raise InvalidInputError(f"fusion {name} must be in [0, 1], got {value!r}")
        if float(self.weight) + float(self.lexical) > 1.0:
            raise InvalidInputError(
                f"fusion weight + lexical must be <= 1, got {self.weight} + {self.lexical} (lexical defaults to "
                f"{DEFAULT_LEXICAL}: give it too, e.g. Fusion(weight={self.weight}, lexical=0))"
            )
        check_int(self.k, "fusion k")
        if self.form not in FUSION_FORMS:
            raise InvalidInputError(f"fusion form must be 'ranks' or 'scores', got {self.form!r}")

    @property
    def needs_lexical(self) -> bool:
        """Whether fusing needs BM25 scores of the candidates (a lexical share, or an agreement to test)."""
        return bool(self.lexical) or (self.agreement is not None and bool(self.weight))


DEFAULT_FUSION: Fusion = Fusion()
"""The default fusion of a model without its own: ``Fusion(weight=0.1, lexical=0.5, form="scores")``.

Chosen on dev data disjoint from the published evaluation rows, with each small model's default heads, on queries
those heads were not detected on (the defaults page of the docs): the best mean of the cells at or above both
model-free baselines on both tasks for both models. Scaling the weight by its agreement with BM25 qualified more
cells but did not raise the best one; z-scores chose the same weights as ranks and, cross-validated, were at or
above them on both tasks for both models."""

MODEL_DEFAULT: Final = "default"
"""The one ``fusion`` value meaning "the model's own": what a model's head presets carry (:func:`model_fusion`),
else :data:`DEFAULT_FUSION`. A scorer resolves it once, when it is built; a ranking call or an adapter given it
uses the scorer's configured fusion (which is the model's own unless the scorer was built with another)."""

FusionSetting = Fusion | float | Mapping[str, object] | Literal["default"] | None
"""Every value a ``fusion=`` argument takes (see :func:`as_fusion_setting`)."""


FUSION_HELP = (
    "How QRHead's ranking is fused with the input (retriever) order and with BM25 over the candidates (weighted "
    "z-scores or weighted reciprocal ranks): 'default' (the scorer's setting: the model's dev-chosen fusion unless "
    "the scorer was built with another), a Fusion(weight=..., lexical=..., agreement=..., form=...) (agreement: the "
    "input order counts in full only where it agrees with BM25 over the candidates; form: 'scores' or 'ranks'), a "
    "number (the input order's weight alone) or None (QRHead alone). The defaults were chosen on dev data "
    "(docs/results.md)."
)
"""The adapters' field description of ``fusion`` (one text for every framework)."""

LEXICAL_HELP = (
    "Share of a BM25 ranking of the chunks fused with QRHead's to choose what is kept (weighted reciprocal-rank "
    "fusion); None or 0: QRHead alone. The default was chosen on dev data (docs/results.md)."
)
"""The compressor adapters' field description of ``lexical``."""


def as_fusion_setting(value: object) -> Fusion | Literal["default"] | None:
    """Any ``fusion=`` value, normalised where it enters: :data:`MODEL_DEFAULT`, a :class:`Fusion` or ``None``.

    Accepted: :data:`MODEL_DEFAULT`, ``None`` (QRHead alone), a :class:`Fusion`, a mapping of its fields (unnamed
    fields take :class:`Fusion`'s defaults, as in a preset's ``"_fusion"`` entry), or a number ``w``: the first
    stage's weight alone, ``Fusion(weight=w, lexical=0, form="ranks")``.

    Raises:
        InvalidInputError: anything else, or out-of-range weights.
    """
    return MODEL_DEFAULT if isinstance(value, str) and value == MODEL_DEFAULT else as_fusion(value)


def as_fusion(value: object) -> Fusion | None:
    """:func:`as_fusion_setting` for a value that cannot be the sentinel: a :class:`Fusion` or ``None``.

    Raises:
        InvalidInputError: anything else (:data:`MODEL_DEFAULT` too), or out-of-range weights.
    """
    if value is None or isinstance(value, Fusion):
        return value
    if isinstance(value, Mapping):
        return Fusion(**_fusion_fields(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return Fusion(weight=float(value), lexical=0.0, form="ranks")
    raise InvalidInputError(f"fusion must be 'default', None, a Fusion, a mapping or a number in [0, 1], got {value!r}")


def _fusion_fields(value: Mapping[object, object]) -> dict[str, Any]:
    """A ``fusion`` mapping's fields, or a typed error naming the unknown ones and the valid ones."""
    known = [f.name for f in fields(Fusion)]
    unknown = [key for key in value if key not in known]
    if unknown:
        raise InvalidInputError(f"fusion: unknown field(s) {unknown!r}; a fusion mapping takes {known}")
    return {str(key): item for key, item in value.items()}


def check_first_stage(scores: object, count: int, *, row: int | None = None) -> list[float] | None:
    """One finite first-stage score per passage as a list (any iterable of numbers is read once), or ``None``.

    Checked before the model runs: a string, ``None`` entry, NaN or infinity has no place in a ranking, and an
    infinity would be silently dropped by the z-scores of fusion.

    Raises:
        InvalidInputError: anything else, naming ``first_stage_scores`` (and the row of a batch).
    """
    if scores is None:
        return None
    where = "first_stage_scores" if row is None else f"row {row}: first_stage_scores"
    if isinstance(scores, str | bytes | bytearray | Mapping) or not isinstance(scores, Iterable):
        raise InvalidInputError(f"{where} must be a list of numbers (one per passage), got {type(scores).__name__}")
    values = list(scores)
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise InvalidInputError(
                f"{where}[{i}] must be a finite number, got {value!r}: first-stage scores are the retriever's "
                "scores of each passage (higher = better)"
            )
    if len(values) != count:
        raise InvalidInputError(f"{where}: {len(values)} first-stage scores for {count} passages")
    return [float(value) for value in values]


def check_first_stage_rows(scores: object, counts: list[int]) -> list[list[float] | None]:
    """:func:`check_first_stage` for each row of a batch (``None``: no first-stage scores for any row)."""
    if scores is None:
        return [None] * len(counts)
    if isinstance(scores, str | bytes | bytearray | Mapping) or not isinstance(scores, Iterable):
        raise InvalidInputError(f"first_stage_scores must be one list (or None) per row, got {type(scores).__name__}")
    rows = list(scores)
    if len(rows) != len(counts):
        raise InvalidInputError(f"first_stage_scores: {len(rows)} first-stage score lists for {len(counts)} rows")
    return [check_first_stage(row, count, row=i) for i, (row, count) in enumerate(zip(rows, counts, strict=True))]


def model_fusion(model_id: str | None) -> Fusion | None:
    """The fusion a model's rankings use by default (:data:`MODEL_DEFAULT` resolved), chosen on its dev data.

    Its presets' ``"_fusion"`` entry, read as any mapping is (:func:`as_fusion`: ``None`` for QRHead alone); else
    :data:`DEFAULT_FUSION`.
    """
    entry = presets.fusion_entry(model_id)
    return DEFAULT_FUSION if entry is presets.NO_ENTRY else as_fusion(entry)


def rank_order(scores: Sequence[float]) -> list[int]:
    """Indices by descending score, ties by ascending index (the input order decides ties).

    Raises:
        InvalidInputError: a score is NaN.
    """
    for i, score in enumerate(scores):
        if math.isnan(score):
            raise InvalidInputError(f"passage {i} has a NaN score")
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two score lists (ties counted as in tau-b), or ``None`` where it is undefined.

    Undefined: fewer than two items, or every pair tied in one of the lists. O(n²) pairs, one vectorised row at a
    time (a 1,000-candidate list takes milliseconds).

    Raises:
        InvalidInputError: the lists differ in length.
    """
    if len(x) != len(y):
        raise InvalidInputError(f"{len(x)} and {len(y)} scores cannot be compared")
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    concordance, untied_a, untied_b = 0.0, 0, 0
    for i in range(len(a) - 1):
        da, db = np.sign(a[i + 1 :] - a[i]), np.sign(b[i + 1 :] - b[i])
        concordance += float(np.dot(da, db))
        untied_a += int(np.count_nonzero(da))
        untied_b += int(np.count_nonzero(db))
    if not untied_a or not untied_b:
        return None
    return concordance / math.sqrt(untied_a * untied_b)


def first_stage_trust(fusion: Fusion, first_stage: Sequence[float], lexical_scores: Sequence[float] | None) -> float:
    """The share of ``fusion.weight`` the first stage gets for one query: 1.0 unless ``fusion.agreement`` is set.

    Args:
        fusion: the weights (its ``agreement`` decides).
        first_stage: the first stage's scores, higher = better (``-position`` for an input order).
        lexical_scores: BM25 scores of the candidates, input order.

    Raises:
        InvalidInputError: an agreement is set and no lexical scores are given.
    """
    if fusion.agreement is None or not fusion.weight:
        return 1.0
    if lexical_scores is None:
        raise InvalidInputError("fusion.agreement needs the candidates' lexical scores")
    tau = kendall_tau(first_stage, lexical_scores)
    if tau is None:
        return 1.0
    if not fusion.agreement:
        return 1.0 if tau > 0 else 0.0
    return min(max(tau / fusion.agreement, 0.0), 1.0)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Key]], *, k: int = RRF_K, weights: Sequence[float] | None = None
) -> dict[Key, float]:
    """Fused scores of the items of several rankings (best first each); higher is better.

    An item missing from a ranking gets nothing from it, so items found by more rankings rise.

    Args:
        rankings: each a sequence of distinct items, best first.
        k: the RRF constant (>= 0).
        weights: one weight per ranking (default 1 each).

    Returns:
        ``{item: fused score}`` for every item in any ranking, in first-seen order.

    Raises:
        InvalidInputError: ``k`` is negative, the weights do not match the rankings, or a ranking repeats an item.
    """
    check_int(k, "k")
    chosen = [1.0] * len(rankings) if weights is None else list(weights)
    if len(chosen) != len(rankings):
        raise InvalidInputError(f"{len(chosen)} weights for {len(rankings)} rankings")
    fused: dict[Key, float] = {}
    for weight, ranking in zip(chosen, rankings, strict=True):
        if len(set(ranking)) != len(ranking):
            raise InvalidInputError("a ranking lists the same item twice")
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def fuse_with_first_stage(
    qrhead_scores: Sequence[float],
    fusion: Fusion,
    first_stage_scores: Sequence[float] | None = None,
    lexical_scores: Sequence[float] | None = None,
) -> list[float]:
    """Fused score of each passage (input order), see the module docstring.

    Args:
        qrhead_scores: QRHead's scores, input order. ``-inf`` (a passage with nothing to score) stays ``-inf``:
            an empty passage is never lifted by the first stage.
        fusion: the weights.
        first_stage_scores: the first stage's scores (higher = better), input order; ``None``: the input
            order is the first stage's ranking.
        lexical_scores: BM25 scores of the candidates (needed when ``fusion.needs_lexical``).

    Raises:
        InvalidInputError: lengths differ, a score is NaN, or lexical scores are missing.
    """
    n = len(qrhead_scores)
    for name, given in (("first-stage", first_stage_scores), ("lexical", lexical_scores)):
        if given is not None and len(given) != n:
            raise InvalidInputError(f"{len(given)} {name} scores for {n} passages")
    first = list(range(n)) if first_stage_scores is None else rank_order(first_stage_scores)
    positions = [-float(i) for i in range(n)] if first_stage_scores is None else list(first_stage_scores)
    weight = fusion.weight * first_stage_trust(fusion, positions, lexical_scores)
    if fusion.lexical and lexical_scores is None:
        raise InvalidInputError("fusion.lexical > 0 needs the candidates' lexical scores")
    if fusion.form == "scores":
        return _interpolated(qrhead_scores, positions, lexical_scores, weight, float(fusion.lexical))
    rankings, weights = [rank_order(qrhead_scores), first], [1.0 - weight - fusion.lexical, weight]
    if fusion.lexical and lexical_scores is not None:
        rankings.append(rank_order(lexical_scores))
        weights.append(float(fusion.lexical))
    fused = reciprocal_rank_fusion(rankings, k=fusion.k, weights=weights)
    scale = fusion.k + 1
    return [-math.inf if qrhead_scores[i] == -math.inf else fused[i] * scale for i in range(n)]


def z_scores(values: Sequence[float]) -> np.ndarray:
    """Per-query z-scores of ``values`` over their finite entries (non-finite ones and a zero spread give 0).

    Raises:
        InvalidInputError: a value is NaN.
    """
    array = np.asarray(values, dtype=float)
    if np.isnan(array).any():
        raise InvalidInputError("a score is NaN")
    finite = np.isfinite(array)
    out = np.zeros_like(array)
    if finite.sum() > 1:
        kept = array[finite]
        spread = kept.std()
        if spread > 0:
            out[finite] = (kept - kept.mean()) / spread
    return out


def _interpolated(
    qrhead_scores: Sequence[float],
    first_stage: Sequence[float],
    lexical_scores: Sequence[float] | None,
    weight: float,
    lexical: float,
) -> list[float]:
    """The ``"scores"`` form: ``(1 - w - l) z(qrhead) + w z(first stage) + l z(bm25)``, ``-inf`` kept."""
    fused = (1.0 - weight - lexical) * z_scores(qrhead_scores) + weight * z_scores(first_stage)
    if lexical and lexical_scores is not None:
        fused = fused + lexical * z_scores(lexical_scores)
    return [-math.inf if qrhead_scores[i] == -math.inf else float(fused[i]) for i in range(len(qrhead_scores))]
