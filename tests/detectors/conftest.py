"""Fixtures of the detector tests: the shared test data (tests skip cleanly without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def shared_data() -> Path:
    """``$CROWDCOUNT_DATA_DIR``, else ``../shared/data`` beside the repository root."""
    env = os.environ.get("CROWDCOUNT_DATA_DIR")
    path = Path(env) if env else (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"test data not found at {path} (set CROWDCOUNT_DATA_DIR)")
    return path
