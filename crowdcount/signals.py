"""Graceful stops: SIGTERM and SIGINT call back instead of killing the process (the worker, ``watch``, ``stream``)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[str], None]) -> Iterator[None]:
    """Meanwhile, SIGTERM and SIGINT call ``callback`` with the signal's name; the previous handlers are put back
    afterwards. Only the main thread can install handlers: elsewhere this does nothing.

    ``callback`` runs in the main thread, possibly in the middle of other work: it should only set flags."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        callback(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
