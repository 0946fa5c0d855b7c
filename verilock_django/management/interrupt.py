"""Stop a command cleanly on SIGTERM (cron's timeout, systemd, a container stop).

Inside :func:`stop_on_sigterm`, SIGTERM only sets an event: the work checks it between
sessions (claiming nothing new, storing what is in flight, releasing what it holds) and
the command then exits with status 143. Raising from the signal handler instead would land
at an arbitrary point, possibly in the middle of a database query, leaving the connection
unusable for the very clean-up the stop needs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_sigterm() -> Iterator[threading.Event]:
    """Yield an event that SIGTERM sets for the duration (handled in the main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
