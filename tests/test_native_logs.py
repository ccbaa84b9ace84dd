"""TensorFlow's native start-up chatter (oneDNN, no-GPU notices) stays out of the terminal; ``--log-level debug``
shows it, as log records."""

from __future__ import annotations

import logging
import os

import pytest

from crowdcount.detectors.tf_models import quiet_native_logs

ONEDNN = (
    "I0000 00:00:1733443200.000000 1234 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders."
)
REAL = "E0000 model.cc:12] failed to open /models/x.tflite"


def write_natively(text: str) -> None:
    os.write(2, text.encode())


@pytest.mark.parametrize("level", [logging.WARNING, logging.DEBUG])
def test_native_chatter_is_held_back_and_logged_at_debug(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, level: int
) -> None:
    with caplog.at_level(level, logger="crowdcount.detectors.tf_models"), quiet_native_logs():
        write_natively(f"{ONEDNN}\n{REAL}\n")
    assert capfd.readouterr().err == f"{REAL}\n"  # what matters is replayed as it was written
    debug = [r.getMessage() for r in caplog.records if r.name == "crowdcount.detectors.tf_models"]
    assert debug == ([f"native: {ONEDNN}"] if level == logging.DEBUG else [])


def test_nested_blocks_replay_once(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="crowdcount.detectors.tf_models"), quiet_native_logs():
        with quiet_native_logs():
            write_natively(f"{ONEDNN}\n")
        write_natively(f"{REAL}\n")
    assert capfd.readouterr().err == f"{REAL}\n"
    assert [r.getMessage() for r in caplog.records] == [f"native: {ONEDNN}"]
