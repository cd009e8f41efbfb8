"""Batch re-ranking and head detection on Ray Data: one scorer per worker, many workers per cluster.

Install with ``pip install "qrhead-integrations[ray]"``. Importing this package does not import Ray; the
functions below import it when called and raise an :class:`ImportError` with the install command when it is
missing.

* :func:`rerank_dataset` — score and rank the passages of every row of a Ray Dataset (or a Parquet / JSONL
  path) in an actor pool; rows with bad input get a message in an ``error`` column instead of failing the job.
* :func:`score_heads_distributed` / :func:`detect_heads_distributed` — the per-example work of
  :func:`qrhead_integrations.detect.score_heads` spread over workers, reduced into the same table and head set.

See ``docs/distributed.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .detection import detect_heads_distributed, score_heads_distributed
    from .rerank import rerank_dataset

__all__ = ["detect_heads_distributed", "rerank_dataset", "score_heads_distributed"]

_HOMES = {
    "rerank_dataset": ".rerank",
    "score_heads_distributed": ".detection",
    "detect_heads_distributed": ".detection",
}


def __getattr__(name: str) -> object:
    """Import the public functions on first use (their modules import Ray only when called)."""
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
