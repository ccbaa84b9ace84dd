"""One pipeline for every entry point (issue 17): ``crowdcount analyze``, the worker and the upload-triggered
handler build it with build_pipeline from one configuration, so one clip gives them the same counts, tracks,
zones and identities. Against moto's server (real HTTP), the gallery in DynamoDB, fake detector and embedder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from crowdcount.aws.events import handler_from_environment, object_created_event
from crowdcount.aws.gallery import DynamoDBGallery
from crowdcount.aws.messages import job_body
from crowdcount.aws.resources import Resources, provision
from crowdcount.aws.session import make_context
from crowdcount.aws.worker import Worker
from crowdcount.config import load_config
from crowdcount.detectors import DETECTORS, Detections

from .conftest import REGION
from .support import COLOURS, ColourEmbedder, write_people_video, write_photo
from conftest import SquareDetector
from conftest import run_cli as run


@pytest.fixture
def people_detector(fake_faces: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``squares`` finds the people's squares as ``Human`` (the people videos have no red corner to check)."""

    class People(SquareDetector):
        def __init__(self, min_detection_score: float = 0.5, max_batch_size: int = 4, **_: object) -> None:
            super().__init__(min_detection_score, max_batch_size)
            self.check_rgb = False

    monkeypatch.setitem(DETECTORS, "squares", People)


def enrol(gallery: DynamoDBGallery, tmp_path: Path, names: list[str]) -> None:
    embedder = ColourEmbedder()
    for name in names:
        photo = cv2.cvtColor(cv2.imread(str(write_photo(tmp_path / f"{name}.png", [COLOURS[name]]))), cv2.COLOR_BGR2RGB)
        box = Detections(np.array([[8, 40, 32, 64]], np.float32), np.array([0.9]), np.array([1]))
        gallery.enroll(name, embedder.embed(photo, box), {"name": "colour", "dim": 3})


@pytest.mark.usefixtures("people_detector")
def test_analyze_the_worker_and_the_upload_handler_write_the_same_result(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    timeline = [["alice"]] * 6 + [["alice", "bob"]] * 8 + [["carol", "bob"]] * 6
    video = write_people_video(tmp_path / "clip.avi", timeline)
    settings: dict[str, Any] = {
        "human_detection": {"detectors": [["squares", {}]], "frame_ratio": 0.5},
        "tracking": {"zones": ["left=0,0,40,0,40,120,0,120"]},
        "faces": {"gallery": f"dynamodb://faces-{tag}", "embedder": "colour"},
        "aws_queues": {"human_detection": f"q-{tag}", "human_detection_dlq": f"dlq-{tag}", "results": f"r-{tag}"},
        "video_split": {"output_bucket": f"b-{tag}"},
        "dynamodb": {"table_id": f"t-{tag}"},
        "worker": {"wait_time_seconds": 1, "max_jobs": 1, "temp_dir": str(tmp_path)},
    }
    config_path = tmp_path / "variables.json"
    config_path.write_text(json.dumps(settings))
    config = load_config(config_path, environ={})
    ctx = make_context(REGION, aws_env)
    provision(ctx, Resources.from_config(config))
    s3, sqs = ctx.client("s3"), ctx.client("sqs")
    sqs.create_queue(QueueName=f"r-{tag}")
    enrol(DynamoDBGallery(ctx.client("dynamodb"), f"faces-{tag}", aws_env), tmp_path, ["alice", "bob"])

    # analyze (the gallery from the config: dynamodb:// through the CLI)
    code, _, err = run("analyze", str(video), "--config", str(config_path), "-o", str(tmp_path / "out"))
    assert code == 0, err
    analyzed = json.loads((tmp_path / "out" / "clip.json").read_text())

    # the worker
    bucket = f"b-{tag}"
    s3.upload_file(str(video), bucket, "videos/7/video/clip.avi")
    sqs.send_message(
        QueueUrl=sqs.get_queue_url(QueueName=f"q-{tag}")["QueueUrl"],
        MessageBody=job_body(7, bucket, "videos/7/video/clip.avi"),
    )
    stats = Worker.from_config(config, ctx).run()
    assert stats.done == 1
    key = "results/7/human_detector/clip.json"
    worked = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    # the upload-triggered handler (its configuration from the environment, as in Lambda)
    monkeypatch.setenv("CROWDCOUNT_CONFIG", str(config_path))
    etag = s3.put_object(Bucket=bucket, Key="uploads/clip.avi", Body=video.read_bytes())["ETag"].strip('"')
    (answer,) = handler_from_environment().handle(object_created_event(bucket, "uploads/clip.avi", etag))
    assert "error" not in answer, answer["error"]

    # the fields that must match: counts, tracks, zones, identities (not paths, timings or versions)
    assert analyzed["summary"]["Human"]["max_count"] == 2 and analyzed["summary"]["Face"]["max_count"] == 2
    for name in ("summary", "tracking", "counting"):
        assert analyzed[name] == worked[name] == answer[name], name
    faces = {k: v for k, v in analyzed["faces"].items() if k != "embedder"}
    assert faces == {k: v for k, v in worked["faces"].items() if k != "embedder"} == answer["faces"]
    assert [p["name"] for p in faces["people"]] == ["alice", "bob"] and faces["unknown_people"] == 1
    assert analyzed["frames"] == worked["frames"]
    for name in ("detectors", "processors", "frame_ratio", "count_smoothing"):
        assert analyzed[name] == worked[name], name
    assert [analyzed["processors"][i]["name"] for i in range(len(analyzed["processors"]))][-1] == "faces"
    same_video = ("frames_decoded", "fps", "width", "height", "frame_count")
    assert {k: analyzed["video"][k] for k in same_video} == {k: worked["video"][k] for k in same_video}
