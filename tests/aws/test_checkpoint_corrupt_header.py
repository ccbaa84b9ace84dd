"""A checkpoint object that is a zip of arrays but whose header has another shape is started over (like an empty or
truncated one), not an AttributeError on every receive until the dead-letter queue."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest

from crowdcount.aws.checkpoint import Checkpointer

from .support import MockAws

pytestmark = pytest.mark.usefixtures("keep_logging")


@pytest.mark.parametrize(
    "header",
    [
        {"version": 1, "n_detectors": 1, "data_keys": []},  # a list where a map of lists belongs
        {"version": 1, "n_detectors": [1]},  # a list where a number belongs
        {"version": 1, "n_detectors": 1, "data_keys": {"0": 5}},
    ],
)
def test_a_checkpoint_with_a_header_of_another_shape_is_ignored(
    aws: MockAws, header: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    arrays = {
        "header": np.frombuffer(json.dumps(header).encode(), np.uint8),
        "d0_counts": np.array([1], np.int64),
        "d0_xyxy": np.zeros((1, 4), np.float32),
        "d0_conf": np.ones(1, np.float32),
        "d0_cls": np.zeros(1, np.int32),
    }
    out = io.BytesIO()
    np.savez_compressed(out, allow_pickle=False, **arrays)
    aws.s3.put_object(Bucket=aws.bucket, Key="results/checkpoints/1/human_detector/clip.npz", Body=out.getvalue())
    checkpointer = Checkpointer(aws.s3, aws.bucket, "results/checkpoints/1/human_detector/clip.npz", {}, 60)
    with caplog.at_level(logging.WARNING, "crowdcount.aws.checkpoint"):
        assert checkpointer.load() is None
    [record] = caplog.records
    assert record.getMessage().startswith(
        f"checkpoint s3://{aws.bucket}/results/checkpoints/1/human_detector/clip.npz is unreadable ("
    )
    assert record.getMessage().endswith("); starting from the beginning")
