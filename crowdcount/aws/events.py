"""The upload-triggered path: an S3 object-created event -> analyse the uploaded frame or clip -> the answer
on a results queue.

:func:`handler` has AWS Lambda's signature (``handler(event, context)``) and builds its clients from the
environment: ``AWS_ENDPOINT_URL`` for the sandbox, ``CROWDCOUNT_CONFIG`` for the variables.json, whose
``aws_queues.results`` names the results queue (``CROWDCOUNT_AWS_QUEUES__RESULTS`` overrides it) and
``faces.gallery`` the gallery. It runs unchanged in Lambda, in the worker image
(``python -c 'from crowdcount.aws.events import handler'``) and locally: ``crowdcount edge`` invokes it
directly on each upload's event (moto's server does not deliver S3 notifications by itself).

An answer is one JSON message: ``{"bucket", "key", "etag", "kind": "image"|"video", "faces": [...],
"counts": {...}, "elapsed_s"}`` (each face: box, score, and with a gallery its identity and similarity), or
``{"bucket", "key", "error"}`` when the object cannot be analysed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.aws.awserrors import is_aws_exception, to_aws_error
from crowdcount.errors import CrowdcountError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def records(event: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(bucket, key, etag)`` of each object-created record of an S3 event (keys are URL-decoded)."""
    out = []
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        key = urllib.parse.unquote_plus(s3.get("object", {}).get("key", ""))
        out.append((s3.get("bucket", {}).get("name", ""), key, s3.get("object", {}).get("eTag", "")))
    return out


def object_created_event(bucket: str, key: str, etag: str = "") -> dict[str, Any]:
    """The S3 event that AWS sends for one upload (what :func:`handler` receives)."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": urllib.parse.quote_plus(key), "eTag": etag}},
            }
        ]
    }


class EventHandler:
    """Analyses uploaded frames (images) and clips (videos) and sends the answers to a results queue.

    Args:
        s3: a boto3 S3 client; sqs: a boto3 SQS client; results_queue_url: where answers go.
        detector: the face detector; identifier: optional
            :class:`~crowdcount.faces.identify.FaceIdentifier` (names the faces against a gallery).
        analyzer_factory: builds the :class:`~crowdcount.analyzer.VideoAnalyzer` for clips (lazily).
    """

    def __init__(
        self,
        s3: Any,
        sqs: Any,
        results_queue_url: str,
        detector: Any,
        identifier: Any = None,
        analyzer_factory: Any = None,
    ) -> None:
        self.s3 = s3
        self.sqs = sqs
        self.results_queue_url = results_queue_url
        self.detector = detector
        self.identifier = identifier
        self.analyzer_factory = analyzer_factory
        self._analyzer: Any = None

    def analyse_image(self, data: bytes) -> dict[str, Any]:
        """Faces (boxes, scores, identities) in one encoded image."""
        import cv2

        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise CrowdcountError("not an image OpenCV can read")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        faces = self.detector.detect([rgb])[0]
        answer: dict[str, Any] = {"kind": "image", "width": rgb.shape[1], "height": rgb.shape[0]}
        rows = [
            {"box": [round(float(v), 1) for v in box], "score": round(float(score), 4)}
            for box, score in zip(faces.xyxy, faces.confidence, strict=True)
        ]
        if self.identifier is not None and len(faces):
            usable = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) >= self.identifier.min_face_size
            if usable.any():
                vectors = self.identifier.embedder.embed(rgb, faces[usable])
                matches = self.identifier.index.match(vectors, self.identifier.match_threshold)
                for row, name, sim in zip(np.flatnonzero(usable), matches.names, matches.similarities, strict=True):
                    rows[row].update({"identity": str(name), "similarity": round(float(sim), 4)})
            for row in rows:
                row.setdefault("identity", "unknown")
                row.setdefault("similarity", 0.0)
        answer["faces"] = rows
        answer["counts"] = {"Face": len(rows)}
        return answer

    def analyse_video(self, data: bytes, suffix: str) -> dict[str, Any]:
        """The result-file summary (and faces section) of one clip."""
        from crowdcount.analyzer import to_document

        if self._analyzer is None:
            self._analyzer = self.analyzer_factory()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"clip{suffix}"
            path.write_bytes(data)
            document = to_document(self._analyzer.analyze(path))
        answer = {"kind": "video", "summary": document["summary"]}
        answer["counts"] = {c: s["max_count"] for c, s in document["summary"].items()}
        if "faces" in document:
            answer["faces"] = {k: v for k, v in document["faces"].items() if k != "embedder"}
        return answer

    def handle(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Analyse every object of ``event`` and send one answer each; returns the answers."""
        answers = []
        for bucket, key, etag in records(event):
            started = time.perf_counter()
            answer: dict[str, Any] = {"bucket": bucket, "key": key, "etag": etag}
            try:
                data = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                suffix = Path(key).suffix.lower()
                answer.update(
                    self.analyse_image(data) if suffix in IMAGE_SUFFIXES else self.analyse_video(data, suffix)
                )
            except CrowdcountError as exc:
                answer["error"] = str(exc)
                logger.warning("s3://%s/%s cannot be analysed: %s", bucket, key, exc)
            answer["elapsed_s"] = round(time.perf_counter() - started, 4)
            self.sqs.send_message(QueueUrl=self.results_queue_url, MessageBody=json.dumps(answer))
            answers.append(answer)
        return answers


_HANDLER: EventHandler | None = None


def handler_from_environment(environ: Mapping[str, str] | None = None) -> EventHandler:
    """An :class:`EventHandler` configured from the environment and ``variables.json`` (see module doc)."""
    from crowdcount.analyzer import VideoAnalyzer
    from crowdcount.aws.gallery import face_processors
    from crowdcount.aws.resources import context_from_config
    from crowdcount.config import build_detectors, load_config
    from crowdcount.detectors import build_detector, resolve_name

    environ = os.environ if environ is None else environ
    config = load_config(environ=environ)
    ctx = context_from_config(config, environ.get("AWS_ENDPOINT_URL"))
    sqs = ctx.client("sqs", config["aws_region"])
    queue = config.get("aws_queues.results")
    try:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except Exception as exc:
        if is_aws_exception(exc):
            raise to_aws_error(exc, f"finding the results queue {queue!r}", ctx.endpoint_url) from None
        raise
    block = config["human_detection"]
    face_args = next((a for n, a in block["detectors"] if resolve_name(n) == "face"), {})
    processors = face_processors(config, ctx)
    return EventHandler(
        ctx.client("s3", config["aws_region"]),
        sqs,
        url,
        build_detector("face", face_args),
        processors[0] if processors else None,
        lambda: VideoAnalyzer.from_config(block, build_detectors(block["detectors"]), face_processors(config, ctx)),
    )


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point: analyse the uploaded objects of an S3 event, answers to the results queue."""
    global _HANDLER
    if _HANDLER is None:  # built once per container, reused across invocations (models stay loaded)
        _HANDLER = handler_from_environment()
    answers = _HANDLER.handle(event)
    return {"answers": len(answers), "errors": sum("error" in a for a in answers)}
