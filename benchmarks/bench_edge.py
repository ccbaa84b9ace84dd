#!/usr/bin/env python3
"""Round-trip latency of the upload-triggered path against the sandbox (moto's server, started here).

    python benchmarks/bench_edge.py [--frames 20] [--every 0.5]

A camera is simulated by a clip of real faces (``../shared/data/faces`` photos, else the sample clip): one
frame every ``--every`` seconds is JPEG-encoded, uploaded to S3, its object-created event handed to the real
handler (the default face detector, YuNet x O-Net, + MobileFace, a gallery with one enrolled person) running
in a background thread as Lambda would, and the answer read back from the results queue. Compared, in the same
run, with the handler's analysis alone on the same JPEG bytes (no S3, no queues): the ratio is what the cloud
path costs on top.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("CROWDCOUNT_DATA_DIR", REPO.parent / "shared" / "data")) / "faces"


def camera_clip(path: Path, frames: int) -> Path:
    """A 640x480 clip cycling through the face photos (or a copy of the sample clip's frames)."""
    import cv2

    photos = sorted(DATA.glob("20*.jpg")) if DATA.is_dir() else []
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 2.0, (640, 480))
    if photos:
        images = [cv2.imread(str(p)) for p in photos]
    else:
        cap = cv2.VideoCapture(str(REPO / "samples" / "vtest-15s.mp4"))
        images = [cap.read()[1] for _ in range(frames)]
    for i in range(frames):
        image = images[i % len(images)]
        scale = min(640 / image.shape[1], 480 / image.shape[0])
        frame = np.zeros((480, 640, 3), np.uint8)
        small = cv2.resize(image, None, fx=scale, fy=scale)
        frame[: small.shape[0], : small.shape[1]] = small
        writer.write(frame)
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between frames")
    args = parser.parse_args()
    import logging

    import cv2

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from crowdcount.aws.edge import EdgeClient
    from crowdcount.aws.events import handler_from_environment
    from crowdcount.aws.sandbox import start_sandbox
    from crowdcount.aws.session import make_context
    from crowdcount.config import load_config
    from crowdcount.detectors import build_detector
    from crowdcount.detectors.embedders import build_embedder
    from crowdcount.faces import Enroller, LocalGallery
    from crowdcount.live.capture import capture

    config = load_config(None, environ={})
    with tempfile.TemporaryDirectory() as tmp, start_sandbox(config, port=0) as box:
        tmp_path = Path(tmp)
        gallery = tmp_path / "g.json"
        if DATA.is_dir():
            embedder = build_embedder("mobileface")
            face = Enroller(build_detector("face", {"min_detection_score": 0.9}), embedder).face_of(
                DATA / "Tom_Cruise_avp_2014_4.jpg"
            )
            LocalGallery(gallery).enroll("tom", face.embedding[None], {"name": "mobileface", "dim": 256})
        env = {"AWS_ENDPOINT_URL": box.endpoint, "CROWDCOUNT_AWS_QUEUES__RESULTS": "bench-results"}
        if gallery.exists():  # enrolled with MobileFace above: the handler must embed with it too (default: dlib)
            env.update(CROWDCOUNT_FACES__GALLERY=str(gallery), CROWDCOUNT_FACES__EMBEDDER="mobileface")
        ctx = make_context(config["aws_region"], box.endpoint)
        sqs, s3 = ctx.client("sqs"), ctx.client("s3")
        url = sqs.create_queue(QueueName="bench-results")["QueueUrl"]
        events = handler_from_environment({**os.environ, **env})
        events.detector.load()
        clip = camera_clip(tmp_path / "camera.mp4", args.frames)
        frames = list(capture(str(clip), every_s=0.5, max_frames=args.frames))
        # warm-up (models load, first TF calls)
        events.analyse_image(cv2.imencode(".jpg", frames[0])[1].tobytes())
        direct = []
        for frame in frames:
            data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
            started = time.perf_counter()
            events.analyse_image(data)
            direct.append((time.perf_counter() - started) * 1000)
        client = EdgeClient(s3, sqs, config.get("video_split.output_bucket"), url, invoke=events.handle)
        client.start()
        next_at = time.monotonic()
        for frame in frames:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += args.every
            client.send(frame)
        report = client.finish(timeout_s=30).to_dict()
    d = np.asarray(direct)
    print(f"{args.frames} frames 640x480, one every {args.every}s; handler: YuNet x O-Net + MobileFace, gallery of 1\n")
    print("path | p50 ms | p95 ms | max ms | answered")
    print("---|---|---|---|---")
    print(
        f"analysis alone (same JPEG bytes) | {np.percentile(d, 50):.1f} | {np.percentile(d, 95):.1f} | "
        f"{d.max():.1f} | {len(d)}/{len(d)}"
    )
    print(
        f"upload -> S3 event -> handler -> results queue -> edge | {report['p50_ms']} | {report['p95_ms']} | "
        f"{report['max_ms']} | {report['answered']}/{report['sent']}"
    )
    if report["p50_ms"]:
        print(
            f"\nround trip / analysis alone (p50): {report['p50_ms'] / np.percentile(d, 50):.2f}x; "
            f"missing: {report['missing'] or 'none'}"
        )


if __name__ == "__main__":
    main()
