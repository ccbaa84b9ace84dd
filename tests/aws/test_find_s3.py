"""``crowdcount find --in s3://BUCKET/PREFIX``: a search over the worker's result files in S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.analyzer.tracking import encode_vector
from crowdcount.aws.results import parse_s3_uri
from crowdcount.errors import ConfigError

from .support import MockAws
from conftest import run_cli

pytestmark = pytest.mark.real_model


def result(video: str, vectors: list[np.ndarray] | None) -> str:
    people = [{"track_id": i + 1, "first_s": 0.0, "last_s": 2.0} for i in range(2)]
    tracking: dict = {"unique_people": 2, "people": people}
    if vectors is not None:
        tracking["embeddings"] = {"model": "person-reid-0287", "dim": 256, "encoding": "base64 float16"}
        for person, vector in zip(people, vectors, strict=True):
            person["embedding"] = encode_vector(vector)
    frames = [{"frame_index": 1, "Human": {"boxes": [[0.1, 0.1, 0.5, 0.2], [0.1, 0.5, 0.5, 0.6]], "track_ids": [1, 2]}}]
    return json.dumps({"video": {"name": video, "path": f"s3://b/{video}"}, "frames": frames, "tracking": tracking})


#: Set in the child process that runs the search for real (see below).
IN_CHILD = "FIND_S3_TEST_CHILD"


def test_find_searches_the_result_files_of_a_bucket_in_its_own_process() -> None:
    """The search loads the TensorFlow Lite embedder; it runs in a pytest of its own, so that native state of
    the model runtimes never shares a process with the worker tests that send themselves SIGTERM (together
    they crashed the test process)."""
    if os.environ.get(IN_CHILD):
        pytest.skip("already in the child")
    test = f"{__file__}::test_find_searches_the_result_files_of_a_bucket"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(Path(__file__).parents[2]),
            test,
        ],
        env={**os.environ, IN_CHILD: "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_find_searches_the_result_files_of_a_bucket(aws: MockAws, tmp_path: Path) -> None:
    if not os.environ.get(IN_CHILD):
        pytest.skip("runs in a child process: test_find_searches_the_result_files_of_a_bucket_in_its_own_process")
    from crowdcount.detectors.reid import build_person_embedder

    photo = tmp_path / "person.png"
    image = np.full((120, 50, 3), 90, np.uint8)
    image[10:60, 10:40] = (30, 30, 160)
    cv2.imwrite(str(photo), image)  # a tight crop: used whole
    query = build_person_embedder().embed_boxes(image[..., ::-1].copy(), np.array([[0, 0, 50, 120]], np.float32))[0]
    other = np.random.default_rng(0).normal(size=256).astype(np.float32)
    other -= (other @ query) * query  # orthogonal to the query
    other /= np.linalg.norm(other)
    put = aws.s3.put_object
    put(Bucket=aws.bucket, Key="videos/1/human_detector/a.json", Body=result("a.mp4", [other, query]))
    put(Bucket=aws.bucket, Key="videos/2/human_detector/b.json", Body=result("b.mp4", None))  # no vectors
    put(Bucket=aws.bucket, Key="videos/3/human_detector/notes.json", Body=b"not json")
    put(Bucket=aws.bucket, Key="videos/1/video/a.mp4", Body=b"....")

    out = tmp_path / "matches.json"
    code, _, err = run_cli("find", str(photo), "--in", f"s3://{aws.bucket}/videos/", "-o", str(out))
    assert code == 0, err
    matches = json.loads(out.read_text())["matches"]
    assert [(m["video"], m["track_id"]) for m in matches] == [("a.mp4", 2)]
    assert matches[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert matches[0]["frames"] == [{"frame_index": 1, "box": [0.1, 0.5, 0.5, 0.6]}]

    code, _, err = run_cli("find", str(photo), "--in", f"s3://{aws.bucket}/videos/2/", "-o", str(out.with_name("x")))
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert code == 1 and len(errors) == 1 and "no result files with appearance vectors" in errors[0]
    assert "b.json holds no appearance vectors: skipped" in err  # a warning names the skipped file
    code, _, err = run_cli("find", str(photo), "--in", "s3://no-such-bucket/x", "-o", str(out.with_name("y")))
    assert code == 3 and "NoSuchBucket" in err and err.count("\n") == 1
    assert not out.with_name("x").exists() and not out.with_name("y").exists()


def test_s3_uris_are_checked() -> None:
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(ConfigError, match="not an S3 location"):
        parse_s3_uri("s3:///x")
