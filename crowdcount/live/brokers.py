"""Message brokers: Redis Streams and Kafka (optional extras: ``pip install 'crowdcount[redis]'`` /
``'crowdcount[kafka]'``).

- :class:`RedisStreamSink`: ``XADD`` of every record to a stream (capped with ``MAXLEN ~``).
- :class:`KafkaResultSink`: records to a results topic, keyed by source (a source stays on one partition,
  so its results stay in order).
- :class:`FrameProducer`: camera frames as JPEG to the raw topic (key: the source; headers: source,
  capture time, frame index, size), for ``crowdcount stream produce``.
- :class:`FrameConsumer`: reads the raw topic in a consumer group, runs the detectors (and each source's
  tracking, line and zone counting) and publishes one result per frame to the results topic, keyed by
  source; offsets are committed once the batch's results are delivered (at least once). Adding consumers
  to the group scales out up to the partition count.

Kafka's client is confluent-kafka (librdkafka, binary wheels on PyPI, maintained by Confluent). A missing
client library is a :class:`ConfigError` naming the extra; an unreachable broker a :class:`BrokerError`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from crowdcount.analyzer.runner import FrameBatchRunner
from crowdcount.detectors import Detector
from crowdcount.errors import BrokerError, ConfigError
from crowdcount.live.metrics import LiveMetrics
from crowdcount.live.outputs import frame_record
from crowdcount.live.pipeline import LivePipelines, ProcessorFactory
from crowdcount.live.sources import CapturedFrame, RateMeter

logger = logging.getLogger(__name__)

CONTENT_TYPE = "image/jpeg"
#: librdkafka's own log lines (connection attempts, ...) go to Python logging, not straight to stderr.
_RDKAFKA_LOG = logging.getLogger("crowdcount.live.rdkafka")


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{extra.capitalize()} support is not installed (no Python module {module!r})",
            f"pip install 'crowdcount[{extra}]'",
        ) from None


def redact_url(url: str) -> str:
    """``url`` without its password (``redis://user:secret@host`` -> ``redis://user:***@host``), for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# -- Redis Streams ------------------------------------------------------------------------------------
class RedisStreamSink:
    """Appends each record to the Redis stream ``stream`` as fields ``source`` and ``record`` (JSON).

    Raises :class:`BrokerError` at once when Redis does not answer."""

    def __init__(self, url: str, stream: str, maxlen: int | None = 100_000, timeout_s: float = 5.0) -> None:
        redis = _require("redis", "redis")
        self.stream = stream
        self.maxlen = maxlen
        try:
            self.client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        except ValueError as exc:  # not a Redis URL: a usage error, not an unreachable broker
            raise ConfigError(
                f"Redis URL {redact_url(url)!r} is not valid: {str(exc).replace(url, redact_url(url))}",
                "e.g. --redis redis://127.0.0.1:6379/0; check --redis and live.redis_url",
            ) from None
        try:
            self.client.ping()
        except (redis.exceptions.RedisError, ValueError) as exc:
            raise BrokerError(
                f"Redis at {redact_url(url)} cannot be reached: {str(exc).replace(url, redact_url(url))}",
                "start redis-server or pass --redis URL",
            ) from None

    def write(self, record: dict[str, Any]) -> None:
        fields = {"source": record.get("source", ""), "record": json.dumps(record, separators=(",", ":"))}
        self.client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=self.maxlen is not None)

    def close(self) -> None:
        self.client.close()


# -- Kafka --------------------------------------------------------------------------------------------
def _kafka() -> Any:
    return _require("confluent_kafka", "kafka")


def check_bootstrap(bootstrap: str) -> None:
    """:class:`ConfigError` unless ``bootstrap`` is ``HOST:PORT[,HOST:PORT...]`` (a usage error, not a broker
    that cannot be reached)."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")  # an IPv6 address
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or (":" in host and not bracketed):
            raise ConfigError(
                f"Kafka bootstrap servers {bootstrap!r} are not HOST:PORT[,HOST:PORT...]",
                "e.g. --bootstrap 127.0.0.1:9092; check --bootstrap and live.kafka_bootstrap",
            )


def check_kafka(bootstrap: str, timeout_s: float = 5.0) -> None:
    """:class:`ConfigError` for a malformed ``bootstrap``; :class:`BrokerError` unless the Kafka cluster there
    answers within ``timeout_s``."""
    check_bootstrap(bootstrap)
    kafka = _kafka()
    from confluent_kafka.admin import AdminClient

    settings: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
        "logger": _RDKAFKA_LOG,  # confluent-kafka takes a logging.Logger here; its stubs list only scalars
    }
    admin = AdminClient(settings)
    try:
        admin.list_topics(timeout=timeout_s)
    except kafka.KafkaException as exc:
        raise BrokerError(
            f"Kafka at {bootstrap} cannot be reached: {exc.args[0].str() if exc.args else exc}",
            "start a broker or pass --bootstrap HOST:PORT",
        ) from None


def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int, timeout_s: float = 10.0) -> None:
    """Create the ``topics`` that do not exist yet, with ``partitions`` partitions (existing ones are kept)."""
    kafka = _kafka()
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # NewTopic: no stub export

    check_kafka(bootstrap)
    settings: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _RDKAFKA_LOG}
    admin = AdminClient(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [t for t in dict.fromkeys(topics) if t not in existing]
    if not missing:
        return
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing])
    for topic, future in futures.items():
        try:
            future.result(timeout_s)
            logger.info("created Kafka topic %s (%d partitions)", topic, partitions)
        except kafka.KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is not None and error.code() == kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"cannot create Kafka topic {topic!r}: {error.str() if error else exc}") from None


def _producer(bootstrap: str) -> Any:
    kafka = _kafka()
    # idempotence: retries never reorder or duplicate a partition's messages
    return kafka.Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, "logger": _RDKAFKA_LOG}
    )


class _Delivery:
    """Counts delivery failures of a producer and logs the first ones."""

    def __init__(self) -> None:
        self.failed = 0
        self.delivered = 0

    def __call__(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.failed <= 3 or self.failed % 100 == 0:
            logger.warning("Kafka delivery to %s failed (%d so far): %s", message.topic(), self.failed, error.str())


class KafkaResultSink:
    """Publishes each record (JSON) to ``topic`` keyed by its source."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 6) -> None:
        ensure_topics(bootstrap, [topic], partitions)
        self.topic = topic
        self.producer = _producer(bootstrap)
        self.delivery = _Delivery()

    def write(self, record: dict[str, Any]) -> None:
        value = json.dumps(record, separators=(",", ":")).encode()
        self.producer.produce(
            self.topic, value=value, key=str(record.get("source", "")).encode(), on_delivery=self.delivery
        )
        self.producer.poll(0)

    def close(self) -> None:
        left = self.producer.flush(10)
        if left:
            logger.warning("%d result(s) not delivered to Kafka topic %s", left, self.topic)


def encode_frame(frame: CapturedFrame, quality: int = 85) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A frame as JPEG bytes and Kafka headers (source, capture time in ms, frame index, size; a file's
    ``position_ms``)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"frame {frame.index} of {frame.source} cannot be encoded as JPEG")
    width, height = frame.size
    headers = [
        ("source", frame.source.encode()),
        ("captured_at_ms", str(round(frame.captured_at * 1000.0)).encode()),
        ("frame_index", str(frame.index).encode()),
        ("width", str(width).encode()),
        ("height", str(height).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if frame.position_ms is not None:  # a file's frame: its time in the file (what the tracker goes by)
        headers.append(("position_ms", f"{frame.position_ms:.3f}".encode()))
    return data.tobytes(), headers


@dataclass(frozen=True)
class RawFrame:
    """A frame read back from the raw topic."""

    source: str
    index: int
    captured_at: float
    rgb: np.ndarray
    partition: int
    offset: int
    #: a file's frame: its time in the file
    position_ms: float | None = None


def decode_frame(message: Any) -> RawFrame:
    """The frame of a raw-topic message; ``ValueError`` when it is not one of ours."""
    headers = {k: (v.decode() if v is not None else "") for k, v in (message.headers() or [])}
    data = np.frombuffer(message.value() or b"", np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ValueError("the message is not a JPEG image")
    key = message.key()
    source = headers.get("source") or (key.decode() if key else "")
    captured_ms = headers.get("captured_at_ms")
    captured_at = int(captured_ms) / 1000.0 if captured_ms else message.timestamp()[1] / 1000.0
    return RawFrame(
        source=source,
        index=int(headers.get("frame_index") or message.offset() + 1),
        captured_at=captured_at,
        rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
        partition=message.partition(),
        offset=message.offset(),
        position_ms=float(headers["position_ms"]) if headers.get("position_ms") else None,
    )


#: Sources one consumer serves at most: each has its own processors, rates and metric series, and the source is
#: whatever a message's header says (a producer naming every frame differently must not exhaust the consumer).
MAX_SOURCES = 1000


class FrameProducer:
    """Publishes frames as JPEG to the raw topic, keyed by source (``crowdcount stream produce``)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 6, quality: int = 85) -> None:
        if not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be in [1, 100], got {quality}")
        ensure_topics(bootstrap, [topic], partitions)
        self.topic = topic
        self.quality = quality
        self.producer = _producer(bootstrap)
        self.delivery = _Delivery()
        self.published = 0

    def publish(self, frame: CapturedFrame) -> None:
        value, headers = encode_frame(frame, self.quality)
        while True:
            try:
                self.producer.produce(
                    self.topic,
                    value=value,
                    key=frame.source.encode(),
                    headers=headers,
                    timestamp=round(frame.captured_at * 1000.0),
                    on_delivery=self.delivery,
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.1)
        self.published += 1
        self.producer.poll(0)

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is queued; the number of frames left undelivered."""
        return int(self.producer.flush(timeout_s))


class FrameConsumer:
    """Counts people in the raw topic's frames as a member of consumer group ``group``.

    Args:
        bootstrap, group, raw_topic, results_topic: where to read and write.
        detectors: built detectors.
        max_age_s: frames older than this when received are skipped (counted as dropped): a consumer that
            fell behind catches up to the present instead of analysing the past. ``None``: analyse all.
        batch_size: messages fetched (and analysed together, per frame size) at once.
        metrics: per-source :class:`LiveMetrics` (the same names as ``watch``), if any.
        processors: builds one source's frame processors (tracking, lines, zones), as for
            :class:`crowdcount.live.Watcher`; results then carry ``lines``, ``zones`` and ``unique_people``.
            A source's frames are timed by their capture time. Its totals count from when this consumer first
            saw the source (after a rebalance, the new owner starts again from zero).
        max_sources: sources served at most; frames of further sources are skipped (counted as invalid, said
            once).
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        raw_topic: str,
        results_topic: str,
        detectors: Sequence[Detector],
        partitions: int = 6,
        max_age_s: float | None = None,
        batch_size: int = 8,
        metrics: LiveMetrics | None = None,
        boxes: bool = True,
        processors: ProcessorFactory | None = None,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        kafka = _kafka()
        if not detectors:
            raise ConfigError("no detectors to run", "choose at least one, e.g. --detector human")
        self.pipelines = LivePipelines(processors)
        self.runner = FrameBatchRunner(detectors, self.pipelines.template, batch_size)
        ensure_topics(bootstrap, [raw_topic, results_topic], partitions)
        self.detectors = self.runner.detectors
        self.raw_topic = raw_topic
        self.results_topic = results_topic
        self.max_age_s = max_age_s
        self.batch_size = batch_size
        self.metrics = metrics
        self.boxes = boxes
        self.consumer = kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "logger": _RDKAFKA_LOG,
            }
        )
        self.producer = _producer(bootstrap)
        self.delivery = _Delivery()
        self.assignment: list[int] = []
        self.analyzed = 0
        self.dropped = 0
        self.invalid = 0
        self._unfit: set[str] = set()  # sources whose lines or zones do not fit their frames (said once)
        self.max_sources = max_sources
        self._sources: set[str] = set()  # the sources seen, at most max_sources
        self._over = False  # a source over max_sources was said
        self._stop = threading.Event()
        self._kafka = kafka
        #: per source: frames received, analysed and skipped, over the last 5 s (the ``*_fps`` gauges)
        self._rates: dict[str, dict[str, RateMeter]] = {}

    def _rate(self, source: str, kind: str) -> RateMeter:
        meters = self._rates.setdefault(source, {k: RateMeter() for k in ("decoded", "analyzed", "dropped")})
        return meters[kind]

    def _sync_rates(self) -> None:
        """Set each source's ``decode_fps``, ``inference_fps`` and ``dropped_fps`` gauges (the scalers' signals)."""
        if self.metrics is None:
            return
        now = time.monotonic()
        m = self.metrics
        for source, meters in self._rates.items():
            m.decode_fps.labels(source).set(round(meters["decoded"].rate(now), 3))
            m.inference_fps.labels(source).set(round(meters["analyzed"].rate(now), 3))
            m.dropped_fps.labels(source).set(round(meters["dropped"].rate(now), 3))

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assignment = sorted(p.partition for p in partitions)
        logger.info("assigned partitions %s of %s", self.assignment, self.raw_topic)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.assignment = []

    def stop(self) -> None:
        """Stop after the batch in progress (safe from another thread or a signal handler)."""
        self._stop.set()

    def run(
        self,
        duration_s: float | None = None,
        max_frames: int | None = None,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Consume until :meth:`stop`, ``duration_s`` or ``max_frames`` analysed; then leave the group."""
        self.load()
        deadline = time.monotonic() + duration_s if duration_s else None
        self.consumer.subscribe([self.raw_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if max_frames is not None and self.analyzed >= max_frames:
                    break
                messages = self.consumer.consume(self.batch_size, timeout=0.5)
                if messages:
                    self._handle(messages, on_result)
                self._sync_rates()  # also while idle: the rates fall to 0
        finally:
            left = self.producer.flush(10)
            if left:
                logger.warning("%d result(s) not delivered to %s", left, self.results_topic)
            self.consumer.close()
            self.pipelines.close()

    def load(self) -> None:
        """Load every detector's model."""
        self.runner.load()

    def _handle(self, messages: list[Any], on_result: Callable[[dict[str, Any]], None] | None) -> None:
        frames: list[RawFrame] = []
        now = time.time()
        for message in messages:
            if message.error():
                if message.error().code() != self._kafka.KafkaError._PARTITION_EOF:
                    logger.warning("Kafka: %s", message.error().str())
                continue
            try:
                frame = decode_frame(message)
            except ValueError as exc:
                self.invalid += 1
                logger.warning("skipping message %d@%d: %s", message.offset(), message.partition(), exc)
                continue
            if frame.source not in self._sources:
                if len(self._sources) >= self.max_sources:  # a source per message would grow without end
                    self.invalid += 1
                    if not self._over:
                        self._over = True
                        logger.error(
                            "source %r skipped: this consumer already serves %d sources (max_sources); run more "
                            "consumers (each serves the sources of its partitions)",
                            frame.source[:80],
                            self.max_sources,
                        )
                    continue
                self._sources.add(frame.source)
            self._rate(frame.source, "decoded").add()
            if self.metrics is not None:
                self.metrics.decoded.labels(frame.source).inc()
            if self.max_age_s is not None and now - frame.captured_at > self.max_age_s:
                self.dropped += 1
                self._rate(frame.source, "dropped").add()
                if self.metrics is not None:
                    self.metrics.dropped.labels(frame.source).inc()
                continue
            frames.append(frame)
        frames.sort(key=lambda f: (f.partition, f.offset))  # each source's frames in order
        fetched = len(frames)
        frames, processors, unfit = self.pipelines.fitting(
            frames, lambda f: f.source, lambda f: (f.rgb.shape[1], f.rgb.shape[0])
        )
        self.invalid += fetched - len(frames)  # a source whose lines or zones do not fit its frames: skipped
        for source, problem in unfit.items():
            if source not in self._unfit:
                self._unfit.add(source)
                logger.error("source %s: its frames are skipped: %s", source, problem)
        batch = [self.pipelines.frame(f.source, f.index, f.captured_at, f.rgb, f.position_ms) for f in frames]
        totals_after: list[dict[str, Any]] = []
        analysed = self.runner.run(
            batch, processors, after=lambda i, _: totals_after.append(self.pipelines.totals(frames[i].source))
        )
        done = time.time()
        results: dict[tuple[int, int], dict[str, Any]] = {}
        failed_before = self.delivery.failed
        for frame, result, totals in zip(frames, analysed, totals_after, strict=True):
            detections = result.detections
            latency = max(0.0, done - frame.captured_at)
            record = frame_record(
                frame.source,
                frame.index,
                frame.captured_at,
                latency,
                (frame.rgb.shape[1], frame.rgb.shape[0]),
                detections,
                boxes=self.boxes,
                fields=self.pipelines.frame_fields,
            )
            record.update(totals)
            record["partition"] = frame.partition
            record["offset"] = frame.offset
            results[(frame.partition, frame.offset)] = record
            self._rate(frame.source, "analyzed").add()
            if self.metrics is not None:
                m = self.metrics
                m.analyzed.labels(frame.source).inc()
                m.latency.labels(frame.source).observe(latency)
                for category, n in record["counts"].items():
                    m.people.labels(frame.source, category).set(n)
                m.sync_totals(frame.source, totals)
        for key in sorted(results, key=lambda k: (k[0], k[1])):  # per partition, in offset order
            record = results[key]
            self.producer.produce(
                self.results_topic,
                value=json.dumps(record, separators=(",", ":")).encode(),
                key=record["source"].encode(),
                on_delivery=self.delivery,
            )
            self.analyzed += 1
            if on_result is not None:
                on_result(record)
        left = self.producer.flush(30)
        if left:
            raise BrokerError(f"{left} result(s) could not be delivered to Kafka topic {self.results_topic!r}")
        failed = self.delivery.failed - failed_before
        if failed:  # flushed, but refused by the broker: committing would lose these frames' results
            raise BrokerError(
                f"{failed} result(s) were refused by Kafka topic {self.results_topic!r}; offsets not committed",
                "the frames are consumed again after a restart",
            )
        try:
            self.consumer.commit(asynchronous=False)
        except self._kafka.KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is None or error.code() != self._kafka.KafkaError._NO_OFFSET:
                raise BrokerError(
                    f"cannot commit offsets of {self.raw_topic!r}: {error.str() if error else exc}"
                ) from None
