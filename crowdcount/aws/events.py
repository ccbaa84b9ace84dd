"""The upload-triggered path: an S3 object-created event -> analyse the uploaded frame or clip -> the answer
on a results queue.

:func:`handler` has AWS Lambda's signature (``handler(event, context)``) and builds its clients from the
environment: ``AWS_ENDPOINT_URL`` for the sandbox, ``CROWDCOUNT_CONFIG`` for the variables.json, whose
``aws_queues.results`` names the results queue (``CROWDCOUNT_AWS_QUEUES__RESULTS`` overrides it) and
``faces.gallery`` the gallery. It runs unchanged in Lambda, in the worker image
(``python -c 'from crowdcount.aws.events import handler'``) and locally: ``crowdcount edge`` invokes it
directly on each upload's event (moto's server does not deliver S3 notifications by itself).

An answer is one JSON message: ``{"answer_id", "bucket", "key", "etag", "kind": "image"|"video", "faces": [...],
"counts": {...}, "elapsed_s"}`` (each face: box, score, and with a gallery its identity and similarity; a clip's
answer has its ``summary`` and the result file's processor sections instead: ``tracking``, ``counting``, ``faces``,
from the pipeline that ``analyze`` and the worker run), or
``{"answer_id", "bucket", "key", "etag", "error"}`` when the object cannot be analysed. An answer over the results
queue's message size limit is sent without its faces and sections, which its ``omitted`` names (with an
``omitted_reason``); the counts and summary stay.

Every record is answered on its own: one that fails (missing object, not an image, an OpenCV or model error,
over ``max_object_bytes``, changed since the event: the ETag is pinned with ``IfMatch``) gets an error answer
and the others go on. Objects are never read whole into memory beyond the cap; clips are streamed to a
temporary file. Only a failed *send* makes :meth:`EventHandler.handle` raise (after the other records are
answered), so that Lambda retries the event; the retried answers carry the same ``answer_id``
(bucket, key, ETag), by which a consumer drops duplicates.
"""

from __future__ import annotations

import hashlib
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

from crowdcount.aws.errors import error_code, is_aws_exception, is_not_found, to_aws_error
from crowdcount.errors import AWSError, CrowdcountError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
#: Largest object analysed (larger ones get an error answer, unread).
MAX_OBJECT_BYTES = 256 * 1024**2
_CHUNK = 1 << 20


def records(event: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(bucket, key, etag)`` of each object-created record of an S3 event (keys are URL-decoded)."""
    out = []
    entries = event.get("Records") if isinstance(event, Mapping) else None
    for record in entries if isinstance(entries, list) else []:
        if not isinstance(record, Mapping) or not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3: Mapping[str, Any] = record["s3"] if isinstance(record.get("s3"), Mapping) else {}
        obj: Mapping[str, Any] = s3["object"] if isinstance(s3.get("object"), Mapping) else {}
        bucket: Mapping[str, Any] = s3["bucket"] if isinstance(s3.get("bucket"), Mapping) else {}
        key = urllib.parse.unquote_plus(str(obj.get("key", "")))
        out.append((str(bucket.get("name", "")), key, str(obj.get("eTag", "") or "")))
    return out


def answer_id(bucket: str, key: str, etag: str) -> str:
    """The same for every answer about one upload (a retried event's answers repeat it)."""
    return hashlib.sha256(f"{bucket}\0{key}\0{etag}".encode("utf-8", "replace")).hexdigest()[:32]


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
            :class:`~crowdcount.faces.identify.FaceIdentifier` (names the faces of an image against a gallery,
            :meth:`~crowdcount.faces.identify.FaceIdentifier.identify`).
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
        max_object_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        self.max_object_bytes = max_object_bytes
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
        if self.identifier is not None:
            named = self.identifier.identify(rgb, faces)
            for row, name, sim in zip(rows, named.data["identity"], named.data["similarity"], strict=True):
                row.update({"identity": str(name), "similarity": round(float(sim), 4)})
        answer["faces"] = rows
        answer["counts"] = {"Face": len(rows)}
        return answer

    def analyse_video(self, data: bytes | Path, suffix: str) -> dict[str, Any]:
        """The result-file summary and processor sections (``tracking``, ``counting``, ``faces``...) of one clip
        (its bytes, or a file holding it): what ``analyze`` and the worker write for it."""
        from crowdcount.analyzer import to_document

        if self._analyzer is None:
            self._analyzer = self.analyzer_factory()
        if isinstance(data, Path):
            result = self._analyzer.analyze(data)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"clip{suffix}"
                path.write_bytes(data)
                result = self._analyzer.analyze(path)
        document = to_document(result)
        answer = {"kind": "video", "summary": document["summary"]}
        answer["counts"] = {c: s["max_count"] for c, s in document["summary"].items()}
        for section in result.sections:
            answer[section] = document[section]
        if "faces" in answer:
            answer["faces"] = {k: v for k, v in answer["faces"].items() if k != "embedder"}
        return answer

    def _open(self, bucket: str, key: str, etag: str) -> Any:
        """The object's streaming body, pinned to the event's ETag; :class:`CrowdcountError` when it is gone,
        changed since the event, or over ``max_object_bytes``."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            kwargs["IfMatch"] = f'"{etag.strip(chr(34))}"'
        try:
            response = self.s3.get_object(**kwargs)
        except Exception as exc:
            if is_not_found(exc):
                raise CrowdcountError(f"s3://{bucket}/{key} does not exist (deleted since the event?)") from None
            if error_code(exc) in ("PreconditionFailed", "412"):
                raise CrowdcountError(f"s3://{bucket}/{key} changed since the event (ETag {etag})") from None
            if is_aws_exception(exc):
                raise to_aws_error(exc, f"reading s3://{bucket}/{key}") from None
            raise
        size = int(response.get("ContentLength") or 0)
        if size > self.max_object_bytes:
            response["Body"].close()
            raise CrowdcountError(
                f"s3://{bucket}/{key} is {size} bytes, over the limit of {self.max_object_bytes}",
                "send smaller clips or frames",
            )
        return response["Body"]

    def _read(self, body: Any, where: str, out: Any = None) -> bytes:
        """Read ``body`` (into ``out`` when given), never past ``max_object_bytes``."""
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in body.iter_chunks(_CHUNK):
                total += len(chunk)
                if total > self.max_object_bytes:
                    raise CrowdcountError(f"{where} exceeds the limit of {self.max_object_bytes} bytes")
                if out is None:
                    chunks.append(chunk)
                else:
                    out.write(chunk)
        finally:
            body.close()
        return b"".join(chunks)

    def _analyse(self, bucket: str, key: str, etag: str) -> dict[str, Any]:
        body = self._open(bucket, key, etag)
        suffix = Path(key).suffix.lower()
        where = f"s3://{bucket}/{key}"
        if suffix in IMAGE_SUFFIXES:
            return self.analyse_image(self._read(body, where))
        safe = suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""
        with tempfile.TemporaryDirectory(prefix="crowdcount-event-") as tmp:
            path = Path(tmp) / f"clip{safe}"
            with path.open("wb") as out:
                self._read(body, where, out)
            return self.analyse_video(path, safe)

    def _send(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Send ``answer``; returns what was sent. One over the queue's message size limit (SQS says
        ``InvalidParameterValue``: a crowded frame's faces, a long clip's tracking section) is sent again without
        its large parts (see :func:`reduced_answer`) rather than lost to retries that would fail alike."""
        body = json.dumps(answer)
        try:
            self.sqs.send_message(QueueUrl=self.results_queue_url, MessageBody=body)
            return answer
        except Exception as exc:
            smaller = reduced_answer(answer, len(body.encode()))
            if error_code(exc) != "InvalidParameterValue" or smaller is None:
                raise
            logger.warning("the answer for %s (%d bytes) is over the queue's limit: %s", answer["key"], len(body), exc)
        self.sqs.send_message(QueueUrl=self.results_queue_url, MessageBody=json.dumps(smaller))
        return smaller

    def handle(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Analyse every object of ``event`` and send one answer each; returns the answers. One record's failure
        is its answer's ``error``; a failed send raises :class:`AWSError` once every record was tried."""
        answers = []
        unsent: list[str] = []
        for bucket, key, etag in records(event):
            started = time.perf_counter()
            answer: dict[str, Any] = {"answer_id": answer_id(bucket, key, etag), "bucket": bucket, "key": key}
            answer["etag"] = etag
            try:
                answer.update(self._analyse(bucket, key, etag))
            except CrowdcountError as exc:
                answer["error"] = str(exc)
                logger.warning("s3://%s/%s cannot be analysed: %s", bucket, key, exc)
            except Exception as exc:  # OpenCV, the model, a bug: this record's answer, not the others'
                answer["error"] = f"{type(exc).__name__}: {exc}"[:1000]
                logger.exception("s3://%s/%s: unexpected failure", bucket, key)
            answer["elapsed_s"] = round(time.perf_counter() - started, 4)
            try:
                answer = self._send(answer)
            except Exception as exc:
                logger.error("could not send the answer for s3://%s/%s: %s", bucket, key, exc)
                unsent.append(key)
            answers.append(answer)
        if unsent:
            raise AWSError(
                f"{len(unsent)} of {len(answers)} answers could not be sent (first: {unsent[0]!r})",
                "the event is retried; answers repeat their answer_id",
            )
        return answers


#: What an answer too large for the results queue keeps (the rest is named in its ``omitted``).
_ESSENTIAL = (
    "answer_id",
    "bucket",
    "key",
    "etag",
    "kind",
    "width",
    "height",
    "counts",
    "summary",
    "elapsed_s",
    "error",
)


def reduced_answer(answer: dict[str, Any], size: int) -> dict[str, Any] | None:
    """``answer`` without what a client can do without (faces, processor sections), naming them in ``omitted``;
    ``None`` when there is nothing to leave out."""
    omitted = sorted(k for k in answer if k not in _ESSENTIAL)
    if not omitted:
        return None
    smaller = {k: v for k, v in answer.items() if k in _ESSENTIAL}
    smaller["omitted"] = omitted
    smaller["omitted_reason"] = f"the whole answer is {size} bytes, over the results queue's message size limit"
    return smaller


_HANDLER: EventHandler | None = None


def handler_from_environment(environ: Mapping[str, str] | None = None) -> EventHandler:
    """An :class:`EventHandler` configured from the environment and ``variables.json`` (see module doc).

    Clips run the pipeline ``analyze`` and the worker run (:func:`crowdcount.analyzer.pipeline.build_pipeline`:
    tracking, counting, identification); images its face detector and identifier."""
    from crowdcount.analyzer.pipeline import FACE_DETECTOR, PipelineOverrides, build_pipeline
    from crowdcount.aws.gallery import open_dynamodb_gallery  # noqa: F401  (registers dynamodb://)
    from crowdcount.aws.resources import context_from_config
    from crowdcount.config import load_config
    from crowdcount.detectors import build_detector, resolve_name
    from crowdcount.faces.identify import gallery_stage

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
    pipeline = build_pipeline(config, PipelineOverrides(), gallery_stage(config, {"aws": ctx}))
    face = pipeline.detector("Face")
    if face is None:  # frames are answered with faces even when clips count people only
        block = config["human_detection"]
        face = build_detector(
            FACE_DETECTOR, next((a for n, a in block["detectors"] if resolve_name(n) == FACE_DETECTOR), {})
        )
    return EventHandler(
        ctx.client("s3", config["aws_region"]),
        sqs,
        url,
        face,
        pipeline.identifier,
        pipeline.analyzer,
    )


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point: analyse the uploaded objects of an S3 event, answers to the results queue."""
    global _HANDLER
    if _HANDLER is None:  # built once per container, reused across invocations (models stay loaded)
        _HANDLER = handler_from_environment()
    answers = _HANDLER.handle(event)
    return {"answers": len(answers), "errors": sum("error" in a for a in answers)}
