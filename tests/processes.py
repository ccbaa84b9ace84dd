"""Stopping the processes tests start (servers, brokers, the sandbox): a signal, then a kill if it lingers."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any], timeout: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (SIGTERM) to ``process`` unless it has ended, and kill it if it has not ended ``timeout``
    seconds later."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
