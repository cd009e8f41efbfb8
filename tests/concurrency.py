"""Calling one function from several threads at once, for the tests of shared state under concurrent use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(work: Callable[[], T], count: int) -> tuple[list[T], list[BaseException]]:
    """Start ``count`` threads running ``work`` together and wait for them: their results and errors.

    Errors are collected rather than lost in the threads, so a test asserts on them in the main thread.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
