"""Head detection on Ray Data: per-example head scores in an actor pool, reduced into ``score_heads``' table.

The driver shuffles the candidates (``detect.prepare_examples``), the actors run ``detect.example_head_scores`` on
candidates already in order, and the driver reduces the results in input order with ``detect.head_scores_table``
— the same functions ``detect.score_heads`` chains in one process.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from typing_extensions import Required, TypedDict, Unpack

from .._checks import check_int
from ..detect import (
    ExampleHeadScores,
    HeadScores,
    LabelledExample,
    Method,
    check_method,
    detection_provenance,
    example_head_scores,
    head_scores_table,
    prepare_examples,
    warn_if_uncalibrated,
)
from ..errors import InvalidInputError, QRHeadError
from ..heads import HeadSet
from ..prompt import to_passages
from .session import check_batch_size, ensure_ray, plan_workers, set_threads

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class _Candidates:
    """A :class:`LabelledExample` whose candidates are already in scoring order."""

    question: str
    passages: Sequence[Any]
    gold: Sequence[int]


class DetectionWorker:
    """The callable class of the actor pool: loads the model once (every head), then scores examples.

    Each input row is ``{index, question, passages: [{title, text}], gold: [int]}`` with the candidates in
    scoring order; each output row carries every head's float64 scores on the example (flattened
    ``(heads, passages)``), or an error, and the provenance ``score_heads`` would record.

    Args:
        model: model name, folder, ``.gguf`` file or hub id (every head is read).
        scorer_kwargs: further ``QRHeadScorer.from_pretrained`` arguments.
        seed: the shuffle seed recorded in the provenance (``None``: not shuffled).
        data: a description of the data for the provenance.
        threads: torch threads in this actor.
    """

    def __init__(
        self, model: str, scorer_kwargs: Mapping[str, Any] | None, seed: int | None, data: str | None, threads: int
    ) -> None:
        from ..scorer import QRHeadScorer

        set_threads(threads)
        self.scorer = QRHeadScorer.from_pretrained(model, heads="all", **dict(scorer_kwargs or {}))
        self.provenance = json.dumps(detection_provenance(self.scorer, seed, data))

    def score_row(self, row: dict[str, Any]) -> tuple[list[float] | None, str | None]:
        """One example's per-head scores, flattened, or ``None`` and the error message."""
        try:
            example = _Candidates(row["question"], to_passages(row["passages"]), list(row["gold"]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the driver has already warned (calibration, skipped examples)
                (scored,) = example_head_scores(self.scorer, [example], shuffle=False)
        except QRHeadError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return scored.per_head.flatten().tolist(), None

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Score every example of ``batch``: its rows, plus the scores (or error) and provenance columns."""
        import pyarrow as pa

        results = [self.score_row(row) for row in batch.to_pylist()]
        n = batch.num_rows
        return pa.table(
            {
                "index": batch.column("index"),
                "gold": batch.column("gold"),
                "per_head": pa.array([r[0] for r in results], type=pa.list_(pa.float64())),
                "error": pa.array([r[1] for r in results], type=pa.string()),
                "num_layers": pa.array([self.scorer.num_layers] * n, type=pa.int64()),
                "num_heads": pa.array([self.scorer.num_heads] * n, type=pa.int64()),
                "provenance": pa.array([self.provenance] * n, type=pa.string()),
            }
        )


def score_heads_distributed(
    examples: Iterable[LabelledExample],
    *,
    model: str | os.PathLike[str],
    method: Method = "qr_score",
    seed: int = 0,
    shuffle: bool = True,
    data: str | None = None,
    num_workers: int = 1,
    num_gpus_per_worker: float = 0,
    num_cpus_per_worker: float = 1,
    batch_size: int = 2,
    scorer_kwargs: Mapping[str, Any] | None = None,
) -> HeadScores:
    """:func:`qrhead_integrations.detect.score_heads` with the examples spread over a pool of Ray actors.

    The driver shuffles the candidates exactly as ``score_heads`` does (one seeded RNG, examples in input
    order), the actors score every head on each example, and the driver reduces the results in input order
    with ``detect.head_scores_table``: the table equals ``score_heads``' for the same examples (up to float
    rounding across thread counts, ~1e-8).

    Args:
        examples: labelled examples (``question``, ``passages``, ``gold`` indices); read once, on the driver.
        model: model name, folder, ``.gguf`` file or hub id (loaded once per worker, every head read).
        method: ``"qr_score"`` (the paper's) or ``"ndcg"``.
        seed: seed of the per-example candidate shuffle.
        shuffle: shuffle candidates (recommended).
        data: a description of the data for the provenance.
        num_workers: actors in the pool.
        num_gpus_per_worker: GPUs per actor.
        num_cpus_per_worker: CPUs reserved per actor; also its torch thread count (at least 1).
        batch_size: examples per batch (and per block) handed to an actor.
        scorer_kwargs: further ``QRHeadScorer.from_pretrained`` arguments (``device``, ``dtype``, config fields).

    Raises:
        InvalidInputError: an unknown method, an example without gold passage, no usable example, or an
            example that could not be scored (the message names its 0-based position).
    """
    check_method(method)
    check_batch_size(batch_size)
    kwargs = dict(scorer_kwargs or {})
    warn_if_uncalibrated(kwargs.get("calibrate") is not False)
    prepared = list(prepare_examples(examples, seed=seed, shuffle=shuffle))
    if not prepared:
        raise InvalidInputError("no usable example: detection needs at least one example with a non-empty gold")
    ray, _ = ensure_ray()
    plan = plan_workers(ray, num_workers, num_gpus_per_worker, num_cpus_per_worker)
    rows = [
        {
            "index": ex.index,
            "question": ex.question,
            "passages": [{"title": p.title, "text": p.text} for p in ex.passages],
            "gold": ex.gold,
        }
        for ex in prepared
    ]
    dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch_size))
    worker = {"model": os.fspath(model), "scorer_kwargs": kwargs, "seed": seed if shuffle else None, "data": data}
    results = plan.map_batches(ray, dataset, DetectionWorker, worker, batch_size)
    return _reduce(results.take_all(), len(rows), method)


class DistributedOptions(TypedDict, total=False):
    """The keyword arguments of :func:`score_heads_distributed` (``model`` required).

    :func:`detect_heads_distributed` takes them as they are and passes them on.
    """

    model: Required[str | os.PathLike[str]]
    method: Method
    seed: int
    shuffle: bool
    data: str | None
    num_workers: int
    num_gpus_per_worker: float
    num_cpus_per_worker: float
    batch_size: int
    scorer_kwargs: Mapping[str, Any] | None


def _reduce(rows: list[dict[str, Any]], expected: int, method: Method) -> HeadScores:
    """Rebuild each example's head scores in input order and reduce them as ``score_heads`` does."""
    rows = sorted(rows, key=lambda row: row["index"])
    if len(rows) != expected:
        raise RuntimeError(f"expected {expected} scored examples from the workers, got {len(rows)}")
    for row in rows:
        if row["error"] is not None:
            raise InvalidInputError(f"example {row['index']}: {row['error']}")
    first = rows[0]
    n_heads = first["num_layers"] * first["num_heads"]
    scored = [
        ExampleHeadScores(torch.tensor(row["per_head"], dtype=torch.float64).reshape(n_heads, -1), tuple(row["gold"]))
        for row in rows
    ]
    return head_scores_table(
        scored,
        method=method,
        num_layers=first["num_layers"],
        num_heads=first["num_heads"],
        provenance=json.loads(first["provenance"]),
    )


def detect_heads_distributed(
    examples: Iterable[LabelledExample], *, top_k: int = 16, **options: Unpack[DistributedOptions]
) -> HeadSet:
    """:func:`qrhead_integrations.detect.detect_heads` on a pool of Ray actors: the ``top_k`` heads, best first.

    The head set equals ``detect_heads``' for the same examples, seed and method.

    Args:
        examples: labelled examples, as for :func:`score_heads_distributed`.
        top_k: heads to keep.
        **options: :func:`score_heads_distributed`'s keyword arguments (``model`` required; ``method``, ``seed``,
            ``shuffle``, ``data``, ``num_workers``, ``num_gpus_per_worker``, ``num_cpus_per_worker``,
            ``batch_size``, ``scorer_kwargs``), with its defaults.
    """
    check_int(top_k, "top_k", minimum=1)
    table = score_heads_distributed(examples, **options)
    return table.top(min(top_k, table.scores.size))
