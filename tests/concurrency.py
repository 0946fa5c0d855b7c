"""Run a callable in several threads at the same instant, each with its own DB connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def run_together(task: Callable[[], T], count: int, *, timeout: float = 60) -> list[T]:
    """Run ``task`` in ``count`` threads released together; return their results.

    The first exception raised in a thread is re-raised here, after every thread ended.
    """
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            result = task()
            with lock:
                results.append(result)
        except BaseException as exc:  # re-raised on the test's thread below
            with lock:
                errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    return results
