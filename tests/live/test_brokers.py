"""Brokers as real processes: Redis Streams (redis-server) and Kafka (tansu): results in order per source,
two consumers of one group sharing the partitions; unreachable brokers are one clear error."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.errors import BrokerError
from crowdcount.live import Source, Watcher, parse_source
from crowdcount.live.brokers import FrameConsumer, FrameProducer, RedisStreamSink, check_kafka
from crowdcount.live.sources import CapturedFrame

from .mjpeg import free_port
from .test_sources import wait_for
from conftest import SquareDetector, squares_in_frame


def test_redis_stream_sink_appends_every_record(redis_url: str, squares_clip: Path) -> None:
    import redis

    stream = f"crowdcount:test:{uuid.uuid4().hex[:8]}"
    sink = RedisStreamSink(redis_url, stream, maxlen=1000)
    Watcher([SquareDetector()], [Source(parse_source(f"a={squares_clip}"))], [sink], boxes=False).run(duration=30)
    sink.close()
    entries = redis.Redis.from_url(redis_url).xrange(stream)
    assert len(entries) == 24
    records = [json.loads(fields[b"record"]) for _, fields in entries]
    assert [r["frame_index"] for r in records] == list(range(1, 25))
    assert [r["counts"]["Human"] for r in records] == [squares_in_frame(i) for i in range(24)]
    assert {fields[b"source"] for _, fields in entries} == {b"a"}


def test_unreachable_brokers_are_one_line_errors() -> None:
    port = free_port()
    with pytest.raises(BrokerError, match=f"Redis at redis://127.0.0.1:{port}/0 cannot be reached"):
        RedisStreamSink(f"redis://127.0.0.1:{port}/0", "s")
    pytest.importorskip("confluent_kafka")
    with pytest.raises(BrokerError, match=f"Kafka at 127.0.0.1:{port} cannot be reached"):
        check_kafka(f"127.0.0.1:{port}", timeout_s=2)


def test_watch_cli_unreachable_redis_exits_3(squares_clip: Path) -> None:
    port = free_port()
    result = CliRunner().invoke(
        cli, ["watch", str(squares_clip), "-d", "human", "--redis", f"redis://127.0.0.1:{port}/0", "--no-table"]
    )
    assert result.exit_code == 3, result.output
    assert f"Error: Redis at redis://127.0.0.1:{port}/0 cannot be reached" in result.output


def frame(source: str, index: int, squares: int) -> CapturedFrame:
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[0:4, 0:4] = (255, 0, 0)  # the red corner SquareDetector checks for
    for k in range(squares):
        x = 8 + k * 36
        rgb[40:64, x : x + 24] = 255
    return CapturedFrame(source, index, time.time(), time.monotonic(), rgb)


def read_results(bootstrap: str, topic: str, expected: int, seconds: float = 30.0) -> list[tuple[int, dict]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:6]}"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])  # no group join to wait for
    out: list[tuple[int, dict]] = []
    deadline = time.monotonic() + seconds
    try:
        while len(out) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            assert message.key().decode() == json.loads(message.value())["source"]
            out.append((message.partition(), json.loads(message.value())))
    finally:
        consumer.close()
    return out


def test_kafka_two_consumers_share_partitions_and_results_stay_in_order(kafka_bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:6]
    raw, results, group = f"frames-{tag}", f"results-{tag}", f"group-{tag}"
    consumers = [
        FrameConsumer(kafka_bootstrap, group, raw, results, [SquareDetector()], partitions=4, batch_size=4)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=c.run, kwargs={"duration_s": 60}, daemon=True) for c in consumers]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: all(c.assignment for c in consumers), seconds=40)
        first, second = (set(c.assignment) for c in consumers)
        assert not first & second and first | second == {0, 1, 2, 3}
        producer = FrameProducer(kafka_bootstrap, raw, partitions=4)
        sources = [f"cam{i}" for i in range(6)]
        for index in range(1, 11):
            for source in sources:
                producer.publish(frame(source, index, index % 4))
        assert producer.close() == 0
        got = read_results(kafka_bootstrap, results, expected=60)
        analysed = [c.analyzed for c in consumers]
    finally:
        for c in consumers:
            c.stop()
        for t in threads:
            t.join(30)
    assert len(got) == 60
    by_source: dict[str, list[dict]] = {}
    partitions: dict[str, set[int]] = {}
    for partition, record in got:
        by_source.setdefault(record["source"], []).append(record)
        partitions.setdefault(record["source"], set()).add(partition)
    for source, rows in by_source.items():
        assert [r["frame_index"] for r in rows] == list(range(1, 11)), source  # in order per source
        assert [r["counts"]["Human"] for r in rows] == [i % 4 for i in range(1, 11)]
        assert len(partitions[source]) == 1  # keyed: one partition per source
    assert sorted(by_source) == sources
    assert all(n > 0 for n in analysed) and sum(analysed) == 60  # both consumers worked, no duplicate


def test_stream_cli_produce_then_consume(kafka_bootstrap: str, squares_clip: Path, fake_detectors: None) -> None:
    tag = uuid.uuid4().hex[:6]
    topics = ["--bootstrap", kafka_bootstrap, "--topic", f"raw-{tag}", "--partitions", "2"]
    runner = CliRunner()
    produced = runner.invoke(cli, ["stream", "produce", f"gate={squares_clip}", *topics])
    assert produced.exit_code == 0, produced.output
    summary = json.loads(produced.stdout.strip().splitlines()[-1])
    assert summary["published"] == 24 and summary["sources"]["gate"]["dropped"] == 0
    consumed = runner.invoke(
        cli,
        [
            "stream",
            "consume",
            *topics,
            "--group",
            f"g-{tag}",
            "--results-topic",
            f"res-{tag}",
            "-d",
            "squares",
            "--max-frames",
            "24",
            "--duration",
            "60s",
        ],
    )
    assert consumed.exit_code == 0, consumed.output
    assert json.loads(consumed.stdout.strip().splitlines()[-1]) == {"analyzed": 24, "dropped": 0, "invalid": 0}
    got = read_results(kafka_bootstrap, f"res-{tag}", expected=24)
    assert [r["frame_index"] for _, r in got] == list(range(1, 25))
    assert [r["counts"]["Human"] for _, r in got] == [squares_in_frame(i) for i in range(24)]


def test_produce_max_fps_caps_a_file_per_second_of_the_file(kafka_bootstrap: str, squares_clip: Path) -> None:
    # the clip: 24 frames at 10 fps, read frame by frame far faster than real time; the wall clock kept 1 of them
    topics = ["--bootstrap", kafka_bootstrap, "--topic", f"raw-{uuid.uuid4().hex[:6]}", "--partitions", "1"]
    produced = CliRunner().invoke(cli, ["stream", "produce", f"gate={squares_clip}", "--max-fps", "5", *topics])
    assert produced.exit_code == 0, produced.output
    summary = json.loads(produced.stdout.strip().splitlines()[-1])
    assert (summary["published"], summary["sources"]["gate"]["dropped"]) == (12, 12)


@pytest.mark.parametrize("bootstrap", ["a:b:c", "broker", "broker:0", ":9092", "h1:9092,h2"])
def test_malformed_bootstrap_servers_are_a_usage_error_not_an_unreachable_broker(bootstrap: str) -> None:
    from crowdcount.errors import ConfigError

    with pytest.raises(ConfigError, match=r"are not HOST:PORT\[,HOST:PORT\.\.\.\]"):
        check_kafka(bootstrap)
    result = CliRunner().invoke(cli, ["stream", "consume", "--bootstrap", bootstrap, "--duration", "1"])
    assert result.exit_code == 2 and result.stderr.startswith("Error: Kafka bootstrap servers "), result.stderr
    assert len(result.stderr.splitlines()) == 1
