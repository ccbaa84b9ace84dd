"""Shared fixtures of the evaluation tests: where ../shared/data is (tests skip cleanly without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def data_dir() -> Path:
    """``$CROWDCOUNT_DATA_DIR``, else ``../shared/data`` beside the repository root."""
    env = os.environ.get("CROWDCOUNT_DATA_DIR")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


@pytest.fixture
def shared_data() -> Path:
    path = data_dir()
    if not path.is_dir():
        pytest.skip(f"test data not found at {path} (set CROWDCOUNT_DATA_DIR)")
    return path
