"""Stop a command cleanly on SIGTERM (cron's timeout, systemd, a container stop).

Inside :func:`stop_on_sigterm`, SIGTERM raises :class:`Interrupted` in the main thread, so
the work unwinds through its ``finally`` blocks (the batch refresh releases the leases it
holds) instead of the process dying with rows claimed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(BaseException):
    """SIGTERM arrived; a BaseException so that no ``except Exception`` swallows it."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`Interrupted` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # A second SIGTERM must not cut short the clean-up this one starts.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
