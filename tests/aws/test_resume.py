"""Resumable jobs: checkpoints of the detections in S3, the next worker replaying them (issue 16, goal 2)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.analyzer import VideoAnalyzer
from crowdcount.analyzer.pipeline import build_processors
from crowdcount.aws.checkpoint import checkpoint_key, decode, encode
from crowdcount.aws.messages import job_body
from crowdcount.aws.worker import Worker, WorkerSettings
from crowdcount.detectors import Detections

from .support import FakeDetector, MockAws, write_video
from .test_worker import run, step


class SquareDetector(FakeDetector):
    """Finds the moving white square of the test videos (a box that depends on the frame), slowly."""

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        with self.lock:
            self.calls += 1
            self.frames += len(frames)
        time.sleep(self.delay_s)
        out = []
        for rgb in frames:
            ys, xs = np.nonzero(rgb[..., 0] > 200)
            box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if len(xs) else np.zeros((0, 4))
            n = len(box)
            out.append(Detections(np.array(box, np.float32), np.full(n, 0.9), np.ones(n, np.int32)))
        return out


def tracking_worker(aws: MockAws, detector: FakeDetector, **overrides: Any) -> Worker:
    """A worker whose analyzer tracks people (state the resumed part must rebuild exactly)."""
    settings = WorkerSettings(**{**WorkerSettings.from_config(aws.config).__dict__, **overrides})
    processors = build_processors(aws.config["tracking"], [detector])
    analyzer = VideoAnalyzer([detector], frame_ratio=1.0, max_batch_size=4, processors=processors)
    return Worker(aws.clients(), settings, analyzer, worker_id="test-worker")


def result(aws: MockAws, video_id: int) -> dict[str, Any]:
    rf = step(aws, video_id)["result_file"]
    return json.loads(aws.s3.get_object(Bucket=rf["bucket"], Key=rf["key"])["Body"].read())


def test_checkpoint_round_trip() -> None:
    frames = [
        Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5]), np.array([1]), {"kp": np.ones((1, 5, 2))}),
        Detections(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, np.int32), {"kp": np.ones((0, 5, 2))}),
    ]
    back = decode(encode({"version": 1, "detectors": ["x"], "frames": 2}, [frames]))
    assert back.frames == 2 and len(back.detections[0]) == 2
    assert np.array_equal(back.detections[0][0].xyxy, frames[0].xyxy) and len(back.detections[0][1]) == 0
    assert back.detections[0][0].data["kp"].shape == (1, 5, 2)


def test_checkpoint_keys_are_outside_the_input_prefix() -> None:
    key = "videos/7/video/clip.mp4"
    assert checkpoint_key(key, "human_detector", 7, "results/") == "results/checkpoints/7/human_detector/clip.npz"
    assert checkpoint_key(key, "human_detector", 7, None) == "videos/7/human_detector/checkpoints/clip.npz"


def test_a_stopped_job_resumes_from_its_checkpoint_with_the_same_result(aws: MockAws, tmp_path: Path) -> None:
    video = write_video(tmp_path / "walk.mp4", frames=80)
    key_40 = aws.put_video(video, 40)
    aws.send(job_body(41, aws.bucket, aws.put_video(video, 41)))
    # the uninterrupted run (video 41 is the same footage)
    full = SquareDetector()
    assert run(tracking_worker(aws, full, max_jobs=1)).done == 1 and full.frames == 80
    first_id, other_id = 41, 40
    aws.send(job_body(40, aws.bucket, key_40))

    # the interrupted run: stopped (SIGTERM, no grace left) once a periodic checkpoint covers 40+ frames
    slow = SquareDetector(delay_s=0.25)  # ~16 frames a 1 s checkpoint: the stop lands well before the end
    worker = tracking_worker(aws, slow, checkpoint_seconds=1, grace_period_seconds=0)
    key = checkpoint_key(f"videos/{other_id}/video/walk.mp4", "human_detector", other_id, "results/")

    def stop_when_checkpointed() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                data = aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()
                if decode(data).frames >= 40:
                    break
            except aws.s3.exceptions.NoSuchKey:
                pass
            time.sleep(0.1)
        worker.request_stop("SIGTERM")

    threading.Thread(target=stop_when_checkpointed, daemon=True).start()
    stats = run(worker)
    assert stats.released == 1 and step(aws, other_id)["error_type"] == "Cancelled"
    saved = decode(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())
    assert 40 <= saved.frames < 80  # the final checkpoint, taken at the stop

    # the next worker replays the saved detections and runs the model on the rest only
    rest = SquareDetector()
    stats = run(tracking_worker(aws, rest, max_jobs=1))
    assert stats.done == 1 and rest.frames == 80 - saved.frames
    entry = step(aws, other_id)
    assert entry["resumed_from_frame"] == saved.frames
    resumed, reference_doc = result(aws, other_id), result(aws, first_id)
    assert resumed["frames"] == reference_doc["frames"]  # boxes, scores, counts and track ids
    assert resumed["tracking"] == reference_doc["tracking"] and resumed["summary"] == reference_doc["summary"]
    assert not aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="results/checkpoints/").get("Contents")  # removed


def test_a_checkpoint_of_another_input_is_ignored(aws: MockAws, tmp_path: Path, tiny_video: Path) -> None:
    key = aws.put_video(tiny_video, 42)
    ckpt = checkpoint_key(key, "human_detector", 42, "results/")
    stale = encode({"version": 1, "etag": "another", "detectors": ["x"], "frames": 1}, [[Detections.empty()]])
    aws.s3.put_object(Bucket=aws.bucket, Key=ckpt, Body=stale)
    aws.send(job_body(42, aws.bucket, key))
    detector = FakeDetector()
    assert run(aws.worker(detector, max_jobs=1)).done == 1
    assert step(aws, 42)["resumed_from_frame"] == 0 and detector.frames == 6  # 12 frames at ratio 0.5


def test_a_corrupt_checkpoint_is_ignored(aws: MockAws, tiny_video: Path) -> None:
    """An empty or truncated checkpoint object (not a zip, no data) is started over, not a job that fails on every
    receive until the dead-letter queue."""
    for video_id, body in ((43, b""), (44, b"PK\x03\x04 cut short")):
        key = aws.put_video(tiny_video, video_id)
        aws.s3.put_object(Bucket=aws.bucket, Key=checkpoint_key(key, "human_detector", video_id, "results/"), Body=body)
        aws.send(job_body(video_id, aws.bucket, key))
    detector = FakeDetector()
    stats = run(aws.worker(detector, max_jobs=2))
    assert (stats.done, stats.failed) == (2, 0)
    assert [step(aws, v)["resumed_from_frame"] for v in (43, 44)] == [0, 0] and detector.frames == 12
