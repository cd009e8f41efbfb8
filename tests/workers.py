"""Running the suite on several test workers (pytest-xdist, ``scripts/test.sh``) without them stalling each other."""

from __future__ import annotations

import os

import pytest
import torch
from filelock import FileLock


def share_the_cores() -> None:
    """Under pytest-xdist, give each test worker its share of the cores, for torch and the processes it starts.

    Left alone, every worker runs torch's default (all cores): two workers on two cores then run four threads on
    two cores, and beside a busy process a second thread bought a ranking nothing (reports/bench_threads.md).
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // workers)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def ray_lock(tmp_path_factory: pytest.TempPathFactory) -> FileLock:
    """A lock all test workers share (their base temp folders' parent): one local Ray on the machine at a time.

    Two Ray instances started at once by two test workers compete for the same ports and /tmp/ray; the tests that
    start one hold this lock while it runs.
    """
    return FileLock(str(tmp_path_factory.getbasetemp().parent / "local-ray.lock"))
