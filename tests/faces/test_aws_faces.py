"""Against moto's real server (the sandbox): the DynamoDB gallery through the CLI, and the upload-triggered
path (S3 upload -> handler -> results queue -> edge client), with fakes and with the real models."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from crowdcount.aws.edge import EdgeClient
from crowdcount.aws.events import EventHandler, handler
from crowdcount.aws.gallery import VERSION_KEY, DynamoDBGallery
from crowdcount.aws.session import make_context
from crowdcount.config import load_config
from crowdcount.faces import FaceIdentifier

from .conftest import REGION
from .support import COLOURS, ColourEmbedder, write_photo
from conftest import run_cli as run


@pytest.mark.usefixtures("fake_faces")
def test_dynamodb_gallery_through_the_cli(aws_env: str, tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "alice.png", [COLOURS["alice"]])
    gallery = "dynamodb://test-faces-cli"
    code, out, err = run(
        "faces", "enroll", "alice", str(photo), "-g", gallery, "--embedder", "colour", "--detail", "student_id=7"
    )
    assert code == 0, err
    code, _, err = run("faces", "enroll", "alice", str(photo), "-g", gallery, "--embedder", "colour", "--keep-photos")
    assert (code, err) == (
        2,
        "Error: --keep-photos works with local gallery files only (photos are never stored in DynamoDB)\n",
    )
    code, out, _ = run("faces", "list", "-g", gallery)
    assert out.splitlines() == ["alice\t1 embedding(s)\tstudent_id=7", f"1 people in {gallery}"]
    client = make_context(REGION, aws_env).client("dynamodb")
    item = client.get_item(TableName="test-faces-cli", Key={"Name": {"S": "alice"}})["Item"]
    assert item["Embedder"] == {"S": "colour"} and item["Details"] == {"M": {"student_id": {"S": "7"}}}
    assert not any("photo" in key.lower() for key in item)
    code, out, _ = run("faces", "forget", "alice", "-g", gallery)
    assert code == 0
    items = client.scan(TableName="test-faces-cli")["Items"]
    assert items == [{"Name": {"S": VERSION_KEY}, "Version": {"N": "2"}}]  # enrolled once, forgotten once


def test_upload_triggered_path_with_fakes(aws_env: str, tmp_path: Path) -> None:
    from conftest import FaceSquareDetector

    ctx = make_context(REGION, aws_env)
    s3, sqs = ctx.client("s3"), ctx.client("sqs")
    url = sqs.create_queue(QueueName="test-results-fakes")["QueueUrl"]
    gallery = DynamoDBGallery(ctx.client("dynamodb"), "test-faces-edge", aws_env)
    embedder = ColourEmbedder()
    for name in ("alice", "bob"):
        gallery.enroll(
            name,
            embedder.embed(
                cv2.cvtColor(
                    cv2.imread(str(write_photo(tmp_path / f"{name}.png", [COLOURS[name]]))), cv2.COLOR_BGR2RGB
                ),
                _boxes(1),
            ),
            {"name": "colour", "dim": 3},
        )
    detector = FaceSquareDetector()
    detector.check_rgb = False
    events = EventHandler(s3, sqs, url, detector, FaceIdentifier(gallery, embedder))
    bucket = load_config(None, environ={}).get("video_split.output_bucket")
    client = EdgeClient(s3, sqs, bucket, url, invoke=events.handle)
    frames = [["alice"], ["alice", "bob"], ["carol"]]
    keys = [
        client.send(cv2.imread(str(write_photo(tmp_path / f"f{i}.png", [COLOURS[n] for n in people]))))
        for i, people in enumerate(frames)
    ]
    report = client.finish(timeout_s=20).to_dict()
    assert (report["sent"], report["answered"], report["missing"], report["errors"]) == (3, 3, [], {})
    assert report["p50_ms"] > 0 and report["max_ms"] >= report["p95_ms"] >= report["p50_ms"]
    assert [[f["identity"] for f in client.answers[k]["faces"]] for k in keys] == [
        ["alice"],
        ["alice", "bob"],
        ["unknown"],
    ]
    # bob forgotten by another process (the CLI) while the handler runs: the next upload no longer names him
    assert run("faces", "forget", "bob", "-g", "dynamodb://test-faces-edge")[0] == 0
    photo = write_photo(tmp_path / "after.png", [COLOURS["alice"], COLOURS["bob"]])
    client = EdgeClient(s3, sqs, bucket, url, invoke=events.handle)
    key = client.send(cv2.imread(str(photo)))
    assert client.finish(timeout_s=20).to_dict()["missing"] == []
    assert [f["identity"] for f in client.answers[key]["faces"]] == ["alice", "unknown"]


def test_a_frame_without_answer_is_reported_missing(aws_env: str) -> None:
    ctx = make_context(REGION, aws_env)
    s3, sqs = ctx.client("s3"), ctx.client("sqs")
    url = sqs.create_queue(QueueName="test-results-missing")["QueueUrl"]
    bucket = load_config(None, environ={}).get("video_split.output_bucket")
    client = EdgeClient(s3, sqs, bucket, url, invoke=None)  # nothing triggers a handler
    key = client.send(_black())
    report = client.finish(timeout_s=1.5).to_dict()
    assert (report["sent"], report["answered"], report["missing"], report["p50_ms"]) == (1, 0, [key], None)


@pytest.mark.real_model
@pytest.mark.needs_data
def test_lambda_handler_with_the_real_models(
    aws_env: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(REGION, aws_env)
    s3, sqs = ctx.client("s3"), ctx.client("sqs")
    url = sqs.create_queue(QueueName="test-results-real")["QueueUrl"]
    code, _, err = run(
        "faces",
        "enroll",
        "tom",
        str(data_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg"),
        "-g",
        "dynamodb://test-faces-real",
    )
    assert code == 0, err
    monkeypatch.setenv("CROWDCOUNT_AWS_QUEUES__RESULTS", "test-results-real")
    monkeypatch.setenv("CROWDCOUNT_FACES__GALLERY", "dynamodb://test-faces-real")
    monkeypatch.setattr("crowdcount.aws.events._HANDLER", None)
    bucket = load_config(None, environ={}).get("video_split.output_bucket")
    for name in ("Tom_Cruise_avp_2014_4.jpg", "dogs.jpg"):
        s3.upload_file(str(data_dir / "faces" / name), bucket, f"edge/real/{name}")
        assert handler(
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": bucket}, "object": {"key": f"edge/real/{name}"}},
                    }
                ]
            },
            None,
        ) == {"answers": 1, "errors": 0}
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
    answers = {json.loads(m["Body"])["key"]: json.loads(m["Body"]) for m in messages}
    tom = answers["edge/real/Tom_Cruise_avp_2014_4.jpg"]
    assert [f["identity"] for f in tom["faces"]] == ["tom"] and tom["faces"][0]["similarity"] > 0.99
    assert answers["edge/real/dogs.jpg"]["faces"] == []


def _black():
    import numpy as np

    return np.zeros((48, 64, 3), np.uint8)


def _boxes(n: int):
    """The detections of write_photo's first n squares."""
    import numpy as np

    from crowdcount.detectors import Detections

    boxes = [[8 + k * 36, 40, 32 + k * 36, 64] for k in range(n)]
    return Detections(np.array(boxes, np.float32), np.ones(n), np.ones(n))


@pytest.mark.usefixtures("fake_faces")
def test_edge_cli_against_the_sandbox(aws_env: str, tmp_path: Path) -> None:
    from .support import write_people_video

    video = write_people_video(tmp_path / "camera.avi", [["alice"], ["alice", "bob"]] * 10)
    code, out, err = run(
        "edge",
        str(video),
        "--every",
        "0.5s",
        "--frames",
        "3",
        "--results-queue",
        "test-edge-cli",
        "--endpoint-url",
        aws_env,
        "--timeout",
        "20",
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["sent"], report["answered"], report["missing"], report["errors"]) == (3, 3, [], {})
    assert 0 < report["p50_ms"] <= report["p95_ms"] <= report["max_ms"]


@pytest.mark.parametrize(
    ("every", "message"),
    [("fast", "--every 'fast' is not a duration (e.g. --every 0.5s)"), ("0s", "--every must be positive, got '0s'")],
)
def test_edge_cli_bad_interval(aws_env: str, every: str, message: str) -> None:
    code, _, err = run("edge", "0", "--every", every, "--endpoint-url", aws_env)
    assert (code, err) == (2, f"Error: {message}\n")
