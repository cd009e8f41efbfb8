"""``rerank_dataset``: score and rank the passages of every row of a Ray Dataset, one scorer per actor."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._checks import check_int
from ..errors import InvalidInputError, QRHeadError
from ..heads import HeadSpec
from ..models import DEFAULT_MODEL
from ..prompt import PassageLike
from .io import check_output, read_input, write_output
from .jsonl import INPUT_ERROR
from .session import check_batch_size, ensure_ray, plan_workers, set_threads

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

    from ..scorer import RankedPassage

SCORES, RANKING, ERROR = "scores", "ranking", "error"
"""The columns added to every row (an existing column of the same name is replaced)."""


class RerankWorker:
    """The callable class of the actor pool: one :class:`QRHeadScorer`, then the rows of each batch ranked.

    The scorer is loaded in ``__init__``; each batch it is given is a ``pyarrow.Table``.

    Args:
        model: model name, folder, ``.gguf`` file or hub id, as for ``QRHeadScorer.from_pretrained``.
        heads: head specification (``None`` = the model's default).
        scorer_kwargs: further ``from_pretrained`` keyword arguments (``device``, ``dtype``, config fields).
        query_column: the column holding the query.
        passages_column: the column holding the list of passages (strings or ``{title, text}`` mappings).
        top_n: keep only the best ``top_n`` indices in the ranking column (scores keep every passage).
        threads: torch threads in this actor.
    """

    def __init__(
        self,
        model: str,
        heads: HeadSpec,
        scorer_kwargs: Mapping[str, Any] | None,
        query_column: str,
        passages_column: str,
        top_n: int | None,
        threads: int,
    ) -> None:
        from ..scorer import QRHeadScorer

        set_threads(threads)
        self.scorer = QRHeadScorer.from_pretrained(model, heads=heads, **dict(scorer_kwargs or {}))
        self.query_column = query_column
        self.passages_column = passages_column
        self.top_n = top_n

    def rank_row(
        self, query: str, passages: Iterable[PassageLike]
    ) -> tuple[list[float] | None, list[int] | None, str | None]:
        """Scores (input order), ranking (best first) and ``None``; or ``None, None, message`` for bad input."""
        try:
            ranked = self.scorer.rank(query, passages)
        except QRHeadError as exc:
            return None, None, f"{type(exc).__name__}: {exc}"
        return self._result(ranked)

    def rank_rows(
        self, rows: list[tuple[Any, Any] | None]
    ) -> list[tuple[list[float] | None, list[int] | None, str | None]]:
        """:meth:`rank_row` for every row that is not ``None`` (those get ``(None, None, None)``).

        The batch's rows are scored several per forward (:meth:`QRHeadScorer.rank_batch`); when a row is bad, the
        batch is ranked row by row instead, so the bad row gets its own error and the others their results.
        """
        live = [i for i, row in enumerate(rows) if row is not None]
        given = [row for row in rows if row is not None]
        out: list[tuple[list[float] | None, list[int] | None, str | None]] = [(None, None, None)] * len(rows)
        try:
            rankings = self.scorer.rank_batch(given)
        except QRHeadError:
            for i, (query, passages) in zip(live, given, strict=True):
                out[i] = self.rank_row(query, passages)
            return out
        for i, ranked in zip(live, rankings, strict=True):
            out[i] = self._result(ranked)
        return out

    def _result(self, ranked: Sequence[RankedPassage]) -> tuple[list[float], list[int], None]:
        scores = [0.0] * len(ranked)
        for item in ranked:
            scores[item.index] = item.score
        ranking = [item.index for item in ranked]
        return scores, ranking if self.top_n is None else ranking[: self.top_n], None

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Rank every row of ``batch``: its columns, with the scores, ranking and error columns added."""
        import pyarrow as pa

        for column in (self.query_column, self.passages_column):
            if column not in batch.column_names:
                raise InvalidInputError(f"no column {column!r} in the input (columns: {batch.column_names})")
        queries = batch.column(self.query_column).to_pylist()
        passages = batch.column(self.passages_column).to_pylist()
        problems = batch.column(INPUT_ERROR).to_pylist() if INPUT_ERROR in batch.column_names else [None] * len(queries)
        results = self.rank_rows(
            [None if problem is not None else (q, p) for q, p, problem in zip(queries, passages, problems, strict=True)]
        )
        results = [
            (None, None, problem) if problem is not None else result
            for result, problem in zip(results, problems, strict=True)
        ]
        added = {
            SCORES: pa.array([r[0] for r in results], type=pa.list_(pa.float64())),
            RANKING: pa.array([r[1] for r in results], type=pa.list_(pa.int64())),
            ERROR: pa.array([r[2] for r in results], type=pa.string()),
        }
        kept = batch.drop_columns([name for name in (*added, INPUT_ERROR) if name in batch.column_names])
        for name, values in added.items():
            kept = kept.append_column(name, values)
        return kept


def rerank_dataset(
    dataset: Dataset | str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    heads: HeadSpec = None,
    query_column: str = "query",
    passages_column: str = "passages",
    top_n: int | None = None,
    num_workers: int = 1,
    num_gpus_per_worker: float = 0,
    num_cpus_per_worker: float = 1,
    batch_size: int = 4,
    scorer_kwargs: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Re-rank every row of a dataset in a pool of Ray actors, one QRHead scorer (model replica) per actor.

    Each row holds a query and its candidate passages (strings, ``(title, text)`` pairs or ``{title, text}``
    mappings). Three columns are added: ``scores`` (one calibrated score per passage, input order), ``ranking``
    (passage indices, best first; the best ``top_n`` when given) and ``error`` (``None``, or why the row could
    not be scored — an empty query, a passage that is not text — in which case ``scores`` and ``ranking`` are
    null). Bad rows never stop the job: in a JSON Lines file even a line that is not JSON, or whose passages are
    not text, becomes a row with only ``error`` set (naming ``file:line``). The other columns pass through unchanged.

    Ray is connected to if needed (``$RAY_ADDRESS``, else a new local instance). Rows are cut into blocks of
    ``batch_size`` rows so that every worker gets work. When ``dataset`` is a path, the results keep the input
    order; a Ray Dataset you pass keeps its own ``DataContext`` (set ``execution_options.preserve_order`` on it
    for ordered output with several workers).

    Args:
        dataset: a ``ray.data.Dataset``, or a path to a Parquet / JSON Lines file or a folder of them (any
            path Ray can read, ``s3://`` included).
        model: model name, folder, ``.gguf`` file or hub id (loaded once per worker, on that worker).
        heads: head specification (preset name, ``"all"``, ``"layer:N"``, list, JSON file, ``HeadSet``).
        query_column: the query column.
        passages_column: the passages column.
        top_n: keep only the best ``top_n`` indices in ``ranking``.
        num_workers: actors in the pool, each with its own model replica.
        num_gpus_per_worker: GPUs per actor (1 = one replica per GPU; fractions share a GPU).
        num_cpus_per_worker: CPUs reserved per actor; also its torch thread count (at least 1).
        batch_size: rows per batch (and per block) handed to an actor.
        scorer_kwargs: further ``QRHeadScorer.from_pretrained`` arguments (``device``, ``dtype``, config fields).
        output: where to write the results: a ``.parquet`` or ``.jsonl`` file (one file, written as results
            stream in) or a folder / prefix (Parquet files written by the workers).

    Returns:
        The lazy result dataset; when ``output`` is given, a dataset reading the written results back.
    """
    check_int(top_n, "top_n", optional=True)
    check_batch_size(batch_size)
    if output is not None:
        check_output(output)
    ray, _ = ensure_ray()
    plan = plan_workers(ray, num_workers, num_gpus_per_worker, num_cpus_per_worker)
    source, owned = read_input(ray, dataset, query_column, passages_column)
    _check_columns(source, (query_column, passages_column))
    if owned:
        source.context.execution_options.preserve_order = True
    worker = {
        "model": os.fspath(model),
        "heads": heads,
        "scorer_kwargs": dict(scorer_kwargs or {}),
        "query_column": query_column,
        "passages_column": passages_column,
        "top_n": top_n,
    }
    result = plan.map_batches(
        ray, source.repartition(target_num_rows_per_block=batch_size), RerankWorker, worker, batch_size
    )
    return result if output is None else write_output(ray, result, output)


def _check_columns(dataset: Dataset, columns: tuple[str, ...]) -> None:
    """Fail before any worker starts when a named column is missing (reads at most the first block)."""
    schema = dataset.schema()
    if schema is None:
        return
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise InvalidInputError(f"no column {missing[0]!r} in the input (columns: {list(schema.names)})")
