"""Live counting: ``watch`` with ``--line``/``--zone`` on files (equal to ``analyze``), on a real MJPEG stream, the
Prometheus series, the one runner every entry point uses."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crowdcount.analyzer.counting import parse_lines, parse_zones
from crowdcount.analyzer.pipeline import assemble_pipeline
from crowdcount.analyzer.runner import FrameBatchRunner
from crowdcount.analyzer.video import Frame
from crowdcount.config import DEFAULTS
from crowdcount.live import JsonLinesSink, LiveMetrics, Source, Watcher, parse_source
from crowdcount.live.pipeline import LivePipelines, pipeline_factory

from .mjpeg import MjpegServer
from conftest import SquareDetector, run_cli, write_moving

LINE = "door=0.5,0,0.5,1"
ZONE = "shop=90,30,150,30,150,100,90,100"


def right(i: int) -> tuple[int, int]:
    return 4 + 3 * i, 10  # top row, left to right: crosses the door, ends inside the shop


def left(i: int) -> tuple[int, int] | None:
    return (132 - 3 * i, 70) if i >= 5 else None  # bottom row, right to left: leaves the shop, crosses back


def back_and_forth(i: int) -> tuple[int, int]:
    return (20 + 4 * i, 40) if i < 25 else (116 - 4 * (i - 25), 40)  # in and out of the shop, over the door twice


@pytest.fixture
def lobby(tmp_path: Path) -> Path:
    return write_moving(tmp_path / "lobby.mp4", 40, [right, left, back_and_forth])


def test_watch_final_line_and_zone_totals_equal_analyze(lobby: Path, tmp_path: Path, fake_detectors: None) -> None:
    geometry = ["--line", LINE, "--line", "top=0,0.3,1,0.3", "--zone", ZONE]
    code, out, err = run_cli(
        "analyze", str(lobby), "-d", "squares", "--frame-ratio", "1", "-o", str(tmp_path / "r.json"), *geometry
    )
    assert code == 0, err
    document = json.loads((tmp_path / "r.json").read_text())
    code, out, err = run_cli("watch", f"lobby={lobby}", "-d", "squares", "--no-table", "-o", "-", *geometry)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["frame_index"] for r in records] == list(range(1, 41))
    assert "Lines in/out" in err and "door 2/2 top 0/0" in err and "shop 1 (3)" in err  # the final table
    last = records[-1]
    lines = {x["name"]: {"in": x["in"], "out": x["out"]} for x in document["counting"]["lines"]}
    zones = {x["name"]: x["visitors"] for x in document["counting"]["zones"]}
    assert last["lines"] == lines
    assert {name: z["visitors"] for name, z in last["zones"].items()} == zones
    assert last["unique_people"] == document["tracking"]["unique_people"]
    assert last["zones"]["shop"]["occupancy"] == document["counting"]["per_frame"]["zone:shop"][-1]
    # the scene really counts something: the door is crossed both ways, the shop visited
    assert lines["door"] == {"in": 2, "out": 2} and zones["shop"] == 3
    # totals since start never go down, and every record carries them
    door_in = [r["lines"]["door"]["in"] for r in records]
    assert door_in == sorted(door_in) and door_in[0] == 0


def test_watch_every_and_no_track(lobby: Path, tmp_path: Path, fake_detectors: None) -> None:
    code, out, err = run_cli("watch", str(lobby), "-d", "squares", "--no-table", "-o", "-", "--every", "1h")
    assert code == 0, err
    (record,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert record["lines"] == {} and record["zones"] == {} and record["unique_people"] == 3
    code, out, err = run_cli("watch", str(lobby), "-d", "squares", "--no-table", "-o", "-", "--no-track")
    assert code == 0, err
    assert "unique_people" not in json.loads(out.splitlines()[0])
    code, out, err = run_cli("watch", str(lobby), "-d", "squares", "--no-track", "--line", LINE)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("Error: counting lines and zones needs tracked people")
    code, out, err = run_cli("watch", str(lobby), "-d", "squares", "--no-table", "--line", "0,0,900,10")
    assert code == 2
    assert err.strip().splitlines()[1:] == [
        "Error: --line '0,0,900,10': point (900, 10) lies outside the 160x120 frame "
        "(give pixels inside the frame, or fractions (all values <= 1))"
    ]  # one line after the mode line
    code, out, err = run_cli("watch", str(lobby), "-d", "squares", "--line", "1,2,3")
    assert code == 2
    assert err.strip() == (
        "Error: --line '1,2,3': 3 numbers do not make x,y points "
        "(expected [NAME=]x1,y1,x2,y2 (pixels, or fractions of the frame when all are <= 1))"
    )


def test_watch_annotates_each_source(lobby: Path, tmp_path: Path, fake_detectors: None) -> None:
    folder = tmp_path / "videos"
    code, out, err = run_cli(
        "watch", f"a={lobby}", f"b={lobby}", "-d", "squares", "--no-table", "--json", "--line", LINE,
        "--annotate", str(folder),
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert [s["counting"]["lines"]["door"] for s in summary["sources"]] == [{"in": 2, "out": 2}] * 2
    for name in ("a", "b"):
        capture = cv2.VideoCapture(str(folder / f"{name}.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
        capture.release()
    one_file = str(tmp_path / "x.mp4")
    code, out, err = run_cli("watch", f"a={lobby}", f"b={lobby}", "-d", "squares", "--annotate", one_file)
    assert code == 2 and "is one file but 2 sources are watched" in err


def test_line_and_zone_metrics(lobby: Path) -> None:
    metrics = LiveMetrics()
    detectors = [SquareDetector()]
    factory = pipeline_factory(
        assemble_pipeline(detectors, DEFAULTS["tracking"], lines=parse_lines([LINE]), zones=parse_zones([ZONE]))
    )
    watcher = Watcher(detectors, [Source(parse_source(f"cam={lobby}"))], metrics=metrics, processors=factory)
    (row,) = watcher.run(duration=60)
    families = {
        f.name: f for f in text_string_to_metric_families(metrics_text(metrics)) if f.name.startswith("crowdcount")
    }
    crossings = {
        (s.labels["line"], s.labels["direction"]): s.value
        for s in families["crowdcount_live_line_crossings"].samples
        if s.name.endswith("_total")
    }
    assert crossings == {("door", d): float(n) for d, n in row.counting["lines"]["door"].items()}
    (occupancy,) = families["crowdcount_live_zone_occupancy"].samples
    assert occupancy.labels == {"source": "cam", "zone": "shop"}
    assert occupancy.value == row.counting["zones"]["shop"]["occupancy"]
    (people,) = families["crowdcount_live_unique_people"].samples
    assert people.value == row.counting["unique_people"] == 3


def metrics_text(metrics: LiveMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_lines_on_a_real_mjpeg_stream(tmp_path: Path) -> None:
    """A stream (live mode, timed by the capture clock, frames may drop) of a person crossing the door."""
    video = write_moving(tmp_path / "walk.mp4", 40, [lambda i: (4 + 3 * i, 40)])
    capture = cv2.VideoCapture(str(video))
    jpegs = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", bgr)[1].tobytes())
    capture.release()
    out = io.StringIO()
    detectors = [SquareDetector()]
    detectors[0].check_rgb = False  # JPEG blurs the red corner
    factory = pipeline_factory(
        assemble_pipeline(detectors, DEFAULTS["tracking"], lines=parse_lines([LINE]), zones=None)
    )
    with MjpegServer(jpegs, fps=10.0) as server:
        server.stall_after = len(jpegs)  # one walk, then silence (no reconnect within the run)
        source = Source(parse_source(f"door={server.url}"), read_timeout_s=30.0)
        watcher = Watcher(detectors, [source], [JsonLinesSink(out)], processors=factory)
        watcher.run(duration=8)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) >= 20
    assert records[-1]["lines"] == {"door": {"in": 0, "out": 1}}
    assert records[-1]["unique_people"] == 1


def test_one_runner_keeps_each_pipeline_in_order_across_sizes() -> None:
    """Frames of two sizes in one call: detected per size, processed in the order given, weak boxes dropped."""
    detector = SquareDetector(max_batch_size=2)
    detector.check_rgb = False
    runner = FrameBatchRunner([detector])
    small, large = np.zeros((40, 60, 3), np.uint8), np.zeros((50, 70, 3), np.uint8)
    large[10:34, 10:34] = 255
    frames = [Frame(1, 0.0, small), Frame(1, 0.0, large), Frame(2, 100.0, small), Frame(3, 200.0, small)]
    results = runner.run(frames)
    assert [(r.index, len(r.detections["Human"])) for r in results] == [(1, 0), (1, 1), (2, 0), (3, 0)]
    assert detector.batches == [2, 1, 1]  # the three small frames in batches of 2, the large one alone
    pipelines = LivePipelines(
        pipeline_factory(assemble_pipeline([detector], DEFAULTS["tracking"], lines=None, zones=None))
    )
    assert pipelines.frame("a", 3, 10.0, small).timestamp_ms == 0.0
    assert pipelines.frame("a", 9, 10.5, small).timestamp_ms == 500.0  # a variable interval: the capture clock
    assert pipelines.frame("a", 10, 10.2, small).timestamp_ms == 500.0  # never back in time
    # a file's frames through Kafka: its position; played again from its start, time carries on
    times = [pipelines.frame("f", i, 99.0, small, position_ms=p).timestamp_ms for i, p in enumerate([0, 100, 0, 100])]
    assert times == [0.0, 100.0, 200.0, 300.0]
    # a file of known frame rate whose frames are counted again from 1 (opened again): time carries on too
    timed = LivePipelines(pipelines.factory, {"g": 10.0})
    assert [timed.frame("g", i, 99.0, small).timestamp_ms for i in (1, 2, 3, 1, 2)] == [0, 100, 200, 300, 400]


def test_kafka_consumers_count_lines_and_zones(kafka_bootstrap: str, lobby: Path, fake_detectors: None) -> None:
    """produce -> raw topic -> consume --line --zone -> results: the same totals as ``analyze`` of the clip."""
    import uuid

    from .test_brokers import read_results

    tag = uuid.uuid4().hex[:6]
    topics = ["--bootstrap", kafka_bootstrap, "--topic", f"raw-{tag}", "--partitions", "2"]
    code, _, err = run_cli("stream", "produce", f"lobby={lobby}", *topics)
    assert code == 0, err
    code, _, err = run_cli(
        "stream", "consume", *topics, "--group", f"g-{tag}", "--results-topic", f"res-{tag}", "-d", "squares",
        "--line", LINE, "--zone", ZONE, "--max-frames", "40", "--duration", "60s", "--no-boxes",
    )  # fmt: skip
    assert code == 0, err
    got = [record for _, record in read_results(kafka_bootstrap, f"res-{tag}", expected=40)]
    assert [r["frame_index"] for r in got] == list(range(1, 41))
    assert got[0]["lines"] == {"door": {"in": 0, "out": 0}}
    assert got[-1]["lines"] == {"door": {"in": 2, "out": 2}}
    assert got[-1]["zones"]["shop"]["visitors"] == 3 and got[-1]["unique_people"] == 3
