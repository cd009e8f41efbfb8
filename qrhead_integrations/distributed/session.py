"""Importing Ray lazily, and the resources each worker asks Ray for."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.data import Dataset

from .._checks import check_int
from ..errors import InvalidInputError

INSTALL_HINT = 'pip install "qrhead-integrations[ray]"'
logger = logging.getLogger(__name__)


def require_ray() -> ModuleType:
    """Return the ``ray`` module with Ray Data loaded, or raise an ImportError naming the install command."""
    try:
        import ray
        import ray.data  # Ray Data ships in ray[data] (pyarrow, pandas)
    except ImportError as exc:
        raise ImportError(f"qrhead_integrations.distributed needs Ray Data: {INSTALL_HINT}") from exc
    return ray


def ensure_ray(address: str | None = None, **init_kwargs: object) -> tuple[ModuleType, bool]:
    """Connect to Ray unless already connected: ``address`` (or ``$RAY_ADDRESS``), else a new local instance.

    Returns:
        The ``ray`` module and whether this call started the connection (the caller then shuts it down).
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray, False
    ray.init(address=address or None, **init_kwargs)
    return ray, True


RAY_CORE_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWEF] \d+ \d+\] ")
"""A line Ray's C++ core writes to the process's stderr: ``[2026-12-07 06:34:37,085 E 22267 22267] file.cc:N: ...``."""


@contextmanager
def quiet_ray(quiet: bool = True) -> Iterator[dict[str, object]]:
    """Keep Ray's own chatter out of a command's output while the block runs; yield the ``ray.init`` options.

    Why: a ``qrhead batch`` run redirected to a log file otherwise collects a couple of hundred lines that are
    Ray's, not the job's — its INFO lines, Ray Data's progress logged line by line when the output is not a
    terminal, the C++ core's notes (an ``E`` line about actor restarts on every run) and the workers' own
    output. Errors still surface: as Python exceptions, and per row in the ``error`` column; Ray Data keeps
    writing its full log to the session's ``ray-data.log``.

    Quiet, it sets Ray Data's console lines to WARNING, yields ``ray.init`` options for Ray's driver logging at
    WARNING and the workers' output not forwarded, and drops the C++ core's lines from this process's stderr
    (:data:`RAY_CORE_LINE`; every other line passes). With ``quiet=False`` it changes nothing and yields ``{}``.
    """
    try:
        if quiet:
            require_ray()  # Ray Data configures its loggers on import
    except ImportError:  # the caller's own connection attempt says so, in its words
        quiet = False
    if not quiet:
        yield {}
        return
    console = [h for h in logging.getLogger("ray.data").handlers if getattr(h, "name", None) == "console"]
    levels = [handler.level for handler in console]
    for handler in console:
        handler.setLevel(logging.WARNING)  # its file handler keeps everything
    try:
        with _core_lines_dropped():
            yield {"logging_level": logging.WARNING, "log_to_driver": False}
    finally:
        for handler, level in zip(console, levels, strict=True):
            handler.setLevel(level)


@contextmanager
def _core_lines_dropped() -> Iterator[None]:
    """Route this process's stderr (file descriptor 2) through a filter that drops Ray's C++ core lines.

    The C++ core writes to the descriptor directly, below Python's ``sys.stderr``, so only a pipe in its place can
    filter it. The pump thread forwards every other line to the real stderr as it comes; it outlives the block
    while a process started inside it still holds the pipe, so nothing written there is ever blocked or lost.
    """
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:  # no descriptor to replace (an embedded interpreter): leave stderr as it is
        yield
        return

    def pump() -> None:
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not RAY_CORE_LINE.match(line):
                    os.write(real, line)

    thread = threading.Thread(target=pump, name="qrhead-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # this process stops writing to the pipe; the pump drains what is in it
        thread.join(timeout=2.0)


@dataclass(frozen=True)
class WorkerPlan:
    """What each of ``workers`` actors reserves from Ray and how many torch threads it runs.

    Attributes:
        workers: actors in the pool (one model replica each).
        num_cpus: logical CPUs reserved per actor.
        num_gpus: GPUs reserved per actor (Ray sets ``CUDA_VISIBLE_DEVICES``; the scorer then picks ``cuda``).
        threads: ``torch.set_num_threads`` in each actor.
    """

    workers: int
    num_cpus: float
    num_gpus: float
    threads: int

    def map_batches(
        self, ray: ModuleType, dataset: Dataset, worker: type, constructor_kwargs: Mapping[str, object], batch_size: int
    ) -> Dataset:
        """``dataset`` mapped by this plan's actor pool, ``batch_size`` rows per ``pyarrow.Table`` batch.

        Each actor is ``worker(**constructor_kwargs, threads=self.threads)``: a fixed-size pool of
        :attr:`workers` actors, each reserving :attr:`num_cpus` CPUs and :attr:`num_gpus` GPUs.
        """
        return dataset.map_batches(
            worker,
            fn_constructor_kwargs={**constructor_kwargs, "threads": self.threads},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
        )


def plan_workers(ray: ModuleType, workers: int, gpus_per_worker: float, cpus_per_worker: float) -> WorkerPlan:
    """Check the worker settings and fit the CPU reservation to the cluster.

    Ray Data's own read, split and write tasks need one free CPU. When the actors would reserve every CPU of
    the cluster (two 1-CPU workers on a 2-core laptop), the job would wait forever, so the reservation is
    shrunk to leave one CPU free; the actors still run ``int(cpus_per_worker)`` threads each.
    """
    check_int(workers, "num_workers", minimum=1)
    if gpus_per_worker < 0 or cpus_per_worker <= 0:
        raise InvalidInputError(
            f"need num_gpus_per_worker >= 0 and num_cpus_per_worker > 0, got {gpus_per_worker}, {cpus_per_worker}"
        )
    threads = max(1, int(cpus_per_worker))
    total = float(ray.cluster_resources().get("CPU", 0.0))
    reserve = cpus_per_worker
    if workers * cpus_per_worker > total - 1:
        reserve = round(max(total - 1.0, 0.0) / workers, 4)
        logger.info(
            "%d workers x %s CPUs would leave no CPU of %s for Ray Data's tasks: reserving %s CPUs each",
            workers,
            cpus_per_worker,
            total,
            reserve,
        )
    return WorkerPlan(workers=workers, num_cpus=reserve, num_gpus=gpus_per_worker, threads=threads)


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size below 1 (rows handed to an actor at a time)."""
    check_int(batch_size, "batch_size", minimum=1)


def set_threads(threads: int) -> None:
    """Set torch's intra-op threads in an actor (Ray's default is the reserved CPU count, at least 1)."""
    import torch

    torch.set_num_threads(threads)
