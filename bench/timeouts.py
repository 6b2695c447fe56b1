"""A per-cell time limit (SIGALRM on the main thread; elsewhere no limit can be enforced)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class CellTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str = "cell") -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001
        raise CellTimeout(f"{what} exceeded its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
