"""The dashboard's API, fast: a real watcher (the fake square detector on a synthetic scene with a line and a zone)
observed by the hub, Starlette's TestClient and real HTTP through uvicorn; the token, credentials never reaching
the page, result paths never escaping their folders, the job table (moto), alerts and their webhook."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx for its test client: either works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from crowdcount.analyzer.counting import parse_lines, parse_zones
from crowdcount.analyzer.pipeline import assemble_pipeline
from crowdcount.analyzer.result import csv_rows
from crowdcount.config import DEFAULTS
from crowdcount.errors import ConfigError
from crowdcount.live import LiveMetrics, Source, Watcher, parse_source
from crowdcount.live.pipeline import pipeline_factory
from crowdcount.live.sources import CapturedFrame
from crowdcount.web import AlertMetrics, AlertMonitor, LiveHub, ResultsCatalog, WebhookSender, scrub
from crowdcount.web.app import WebServer, _encode, check_token, create_app, parse_bind, parse_limits

from conftest import SquareDetector, run_cli, write_moving

LINE = "door=0.5,0,0.5,1"
ZONE = "shop=90,30,150,30,150,100,90,100"


def right(i: int) -> tuple[int, int]:
    return 4 + 3 * i, 10


def left(i: int) -> tuple[int, int] | None:
    return (132 - 3 * i, 70) if i >= 5 else None


def back_and_forth(i: int) -> tuple[int, int]:
    return (20 + 4 * i, 40) if i < 25 else (116 - 4 * (i - 25), 40)


@pytest.fixture
def lobby(tmp_path: Path) -> Path:
    return write_moving(tmp_path / "lobby.mp4", 40, [right, left, back_and_forth])


def watched(lobby: Path, *sources: str) -> tuple[Watcher, LiveHub, LiveMetrics]:
    """A watcher of ``lobby`` (file mode: every frame) with the line and the zone, its hub attached."""
    detectors = [SquareDetector()]
    factory = pipeline_factory(
        assemble_pipeline(detectors, DEFAULTS["tracking"], lines=parse_lines([LINE]), zones=parse_zones([ZONE]))
    )
    metrics = LiveMetrics()
    specs = sources or (f"cam={lobby}",)
    watcher = Watcher(detectors, [Source(parse_source(s)) for s in specs], metrics=metrics, processors=factory)
    hub = LiveHub(watcher, alerts=AlertMonitor({"shop": 5}, AlertMetrics(metrics.registry)))
    watcher.observers.append(hub)
    return watcher, hub, metrics


def test_status_series_and_metrics_of_a_watched_scene(lobby: Path) -> None:
    watcher, hub, metrics = watched(lobby)
    (row,) = watcher.run(duration=60)
    client = TestClient(create_app(hub=hub, registry=metrics.registry))
    status = client.get("/api/status").json()
    (cam,) = status["sources"]
    # the scene's totals (see tests/live/test_live_counting.py): the door crossed twice each way, 3 shop visitors
    assert cam["lines"] == {"door": {"in": 2, "out": 2}}
    assert cam["zones"]["shop"]["visitors"] == 3
    assert cam["unique_people"] == 3
    assert cam["name"] == "cam" and cam["status"] == "ended" and cam["dropped"] == 0
    assert cam["target"] == "lobby.mp4"  # a file's name, not where it lies on the server
    assert cam["frames_analyzed"] == 40
    # the count is the last frame's number of squares; the maximum that of the busiest frame
    assert cam["count"] == row.people_now["Human"] and cam["max_count"] == row.people_max["Human"] == 3
    series = client.get("/api/series", params={"source": "cam", "seconds": 3600}).json()
    assert max(series["count"]) == 3 and series["t"] == sorted(series["t"])
    assert series["lines"]["door"]["in"][-1] == 2 and series["lines"]["door"]["out"][-1] == 2
    assert client.get("/api/series", params={"source": "nope"}).status_code == 404
    assert client.get("/api/series", params={"source": "cam", "seconds": "x"}).status_code == 400
    text = client.get("/metrics").text
    assert 'crowdcount_live_line_crossings_total{direction="in",line="door",source="cam"} 2.0' in text
    assert "# TYPE crowdcount_web_alerts_total counter" in text
    info = client.get("/api/info").json()
    assert info == {"title": "crowdcount", "live": True, "results": False, "sources": ["cam"]}
    page = client.get("/")
    assert page.status_code == 200 and "static/app.js" in page.text and "https://" not in page.text
    assert client.get("/static/uPlot.iife.min.js").status_code == 200
    # no viewer ever watched: no frame was kept, nothing drawn or encoded
    assert hub.latest_frame("cam", 0) is None


def test_frames_are_kept_and_encoded_only_while_someone_watches(lobby: Path) -> None:
    _, hub, _ = watched(lobby)
    rgb = np.zeros((120, 160, 3), np.uint8)
    frame = CapturedFrame("cam", 1, time.time(), time.monotonic(), rgb)
    hub.observe(frame, {}, {})
    assert hub.latest_frame("cam", 0) is None
    hub.add_viewer("cam")
    hub.observe(frame, {}, {})
    kept = hub.latest_frame("cam", 0)
    assert kept is not None and kept.rgb is rgb  # a reference, not a copy
    assert hub.latest_frame("cam", kept.seq) is None  # nothing newer
    jpeg = cv2.imdecode(np.frombuffer(_encode(kept, 80), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (120, 160, 3)
    hub.remove_viewer("cam")
    assert hub.latest_frame("cam", 0) is None


def test_mjpeg_stream_over_http(lobby: Path) -> None:
    """Real HTTP (uvicorn): the stream sends JPEG parts while frames come, and its viewer leaves when it closes."""
    _, hub, metrics = watched(lobby)
    server = WebServer(create_app(hub=hub, registry=metrics.registry), "127.0.0.1", 0).start()
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            rgb = np.full((120, 160, 3), i % 255, np.uint8)
            hub.observe(CapturedFrame("cam", i, time.time(), time.monotonic(), rgb), {}, {})
            time.sleep(0.03)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with urllib.request.urlopen(f"{server.url}stream/cam.mjpg", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            data = b""
            while data.count(b"\xff\xd9") < 2:
                data += response.read1(65536)
            assert hub.viewers("cam") == 1
            start = data.index(b"\xff\xd8")
            image = cv2.imdecode(np.frombuffer(data[start : data.index(b"\xff\xd9") + 2], np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (120, 160, 3)
        deadline = time.monotonic() + 10
        while hub.viewers("cam") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.viewers("cam") == 0
        with urllib.request.urlopen(f"{server.url}api/status", timeout=10) as response:
            assert json.loads(response.read())["sources"][0]["name"] == "cam"
    finally:
        stop.set()
        server.stop()


def test_token_is_required_on_every_route(lobby: Path) -> None:
    _, hub, metrics = watched(lobby)
    client = TestClient(create_app(hub=hub, registry=metrics.registry, token="s3cret"))
    for path in ("/", "/api/status", "/api/series?source=cam", "/events", "/stream/cam.mjpg", "/metrics",
                 "/static/app.js", "/api/results", "/download/x.csv"):  # fmt: skip
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
    assert client.get("/api/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # the page's address carries it once; its own requests then carry the cookie
    page = client.get("/?token=s3cret")
    assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
    assert client.get("/api/status").status_code == 200
    assert client.get("/metrics").status_code == 200
    # CROWDCOUNT_WEB_TOKEN is the token, not a configuration key
    from crowdcount.config import load_config

    assert load_config(environ={"CROWDCOUNT_WEB_TOKEN": "s3cret"}).get("live.jpeg_quality") == 85
    # a bind beyond this machine needs a token
    with pytest.raises(ConfigError, match="without a token"):
        check_token("0.0.0.0", None)
    check_token("0.0.0.0", "t")
    check_token("127.0.0.1", None)
    check_token("::1", None)
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ConfigError, match="is not"):
        parse_bind("host:port")


def test_cli_refuses_an_open_bind_without_token(lobby: Path, tmp_path: Path, fake_detectors: None) -> None:
    code, _, err = run_cli("watch", str(lobby), "-d", "squares", "--web", "0.0.0.0:0", "--no-table")
    assert code == 2 and "without a token" in err and "Traceback" not in err
    code, _, err = run_cli("dashboard", str(tmp_path), "--no-jobs", "--web", "0.0.0.0:0")
    assert code == 2 and "without a token" in err
    code, _, err = run_cli("watch", str(lobby), "-d", "squares", "--max-occupancy", "shop=2", "--no-table")
    assert code == 2 and "add --web" in err
    code, _, err = run_cli("watch", str(lobby), "-d", "squares", "--zone", ZONE, "--web", "0",
                           "--max-occupancy", "queue=2", "--no-table")  # fmt: skip
    assert code == 2 and "--max-occupancy names no --zone: queue" in err
    code, _, err = run_cli("dashboard", str(tmp_path / "missing"), "--no-jobs", "--web", "0")
    assert code == 2 and "does not exist" in err
    with pytest.raises(ConfigError, match="is not ZONE=N"):
        parse_limits(["shop"])


def test_credentials_in_source_urls_never_reach_the_page(lobby: Path) -> None:
    url = "rtsp://admin:hunter2@127.0.0.1:9/stream1"
    watcher, hub, metrics = watched(lobby, f"gate={url}")
    watcher.sources[0].last_error = f"cannot open {url}"  # as an error message of FFmpeg might quote it
    watcher.sources[0].status = "reconnecting"
    hub.tick()
    client = TestClient(create_app(hub=hub, registry=metrics.registry))
    for path in ("/api/status", "/api/alerts", "/metrics", "/api/info"):
        body = client.get(path).text
        assert "hunter2" not in body and "admin" not in body, path
    status = client.get("/api/status").json()["sources"][0]
    assert status["target"] == "rtsp://127.0.0.1:9/stream1"
    assert status["last_error"] == "cannot open rtsp://127.0.0.1:9/stream1"
    assert scrub("a http://u:p@h/x and rtsp://v@h2 b") == "a http://h/x and rtsp://h2 b"


@pytest.fixture
def result_tree(tmp_path: Path, lobby: Path, fake_detectors: None) -> tuple[Path, Path]:
    """root/a.json and root/sub/b.json (real results of the scene), root/notes.json (no result), and
    outside/secret.json with a link to it inside root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    code, _, err = run_cli("analyze", str(lobby), "-d", "squares", "--frame-ratio", "1", "--line", LINE, "--zone",
                           ZONE, "-o", str(root / "a.json"))  # fmt: skip
    assert code == 0, err
    shutil.copy(root / "a.json", root / "sub" / "b.json")
    shutil.copy(root / "a.json", outside / "secret.json")
    (root / "notes.json").write_text('{"hello": "world"}')
    os.symlink(outside / "secret.json", root / "link.json")
    return root, outside


def test_results_never_escape_their_folders(result_tree: tuple[Path, Path]) -> None:
    root, _ = result_tree
    catalog = ResultsCatalog([str(root)])
    client = TestClient(create_app(catalog=catalog))
    rows = client.get("/api/results").json()["results"]
    assert [r["id"] for r in rows] == ["a", "sub/b"]
    document = json.loads((root / "a.json").read_text())
    (a,) = [r for r in rows if r["id"] == "a"]
    assert a == {"id": "a", "video": "lobby.mp4", "duration_s": 4.0, "category": "Human",
                 "max_count": document["summary"]["Human"]["max_count"],
                 "mean_count": document["summary"]["Human"]["mean_count"],
                 "unique_people": 3, "crossings": 4, "status": "done"}  # fmt: skip
    detail = client.get("/api/results/sub/b").json()
    assert detail["lines"][0]["in"] == 2 and detail["zones"][0]["visitors"] == 3 and len(detail["people"]) == 3
    assert len(detail["series"]["t"]) == 40 and detail["series"]["zones"]["shop"] == document["counting"][
        "per_frame"]["zone:shop"]  # fmt: skip
    csv_text = client.get("/download/a.csv").text
    assert csv_text.splitlines() == [",".join(map(str, r)) for r in csv_rows(document)]
    assert client.get("/download/a.json").json() == document
    escapes = [
        "/api/results/link", "/api/results/../outside/secret", "/api/results/%2e%2e/outside/secret",
        "/api/results/..%2Foutside%2Fsecret", "/download/link.json", "/download/../outside/secret.json",
        "/download/%2e%2e%2foutside%2fsecret.json", "/api/results/notes", "/api/results//etc/passwd",
    ]  # fmt: skip
    for path in escapes:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "secret" not in response.text or "no such result" in response.text


def test_job_table_and_s3_results(result_tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Moto: a done job whose result is under the S3 prefix gets the job's state; a running job is listed too."""
    moto = pytest.importorskip("moto")
    import boto3

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    root, _ = result_tree
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3.create_bucket(Bucket="videos")
        s3.put_object(Bucket="videos", Key="results/7/lobby.json", Body=(root / "a.json").read_bytes())
        s3.put_object(Bucket="videos", Key="results/readme.json", Body=b"[1, 2]")
        dynamodb.create_table(
            TableName="jobs", KeySchema=[{"AttributeName": "VideoId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "VideoId", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        from crowdcount.aws.status import serialize

        done = {
            "step": "human_detector",
            "state": "done",
            "result_file": {"bucket": "videos", "key": "results/7/lobby.json"},
        }
        running = {"step": "human_detector", "state": "running"}
        odd = {"step": "human_detector", "state": "done", "result_file": {"bucket": "videos"}}  # no key: no result
        for video_id, step in ((7, done), (8, running), (9, odd)):
            item = {"VideoId": video_id, "video": {"bucket": "videos", "key": f"videos/v{video_id}.mp4"},
                    "process_steps": [{"step": "video_split"}, step]}  # fmt: skip
            dynamodb.put_item(TableName="jobs", Item={k: serialize(v) for k, v in item.items()})
        catalog = ResultsCatalog(["s3://videos/results/"], s3=s3, dynamodb=dynamodb, table="jobs")
        client = TestClient(create_app(catalog=catalog))
        rows = {r["id"]: r for r in client.get("/api/results").json()["results"]}
        assert set(rows) == {"7/lobby", "job/8", "job/9"}  # the odd row hides no other
        assert rows["job/9"]["status"] == "done" and "series" not in client.get("/api/results/job/9").json()
        assert rows["7/lobby"]["status"] == "done" and rows["7/lobby"]["unique_people"] == 3
        assert rows["job/8"]["status"] == "running" and rows["job/8"]["video"] == "v8.mp4"
        assert client.get("/api/results/7/lobby").json()["job"]["video_id"] == 7
        assert "series" not in client.get("/api/results/job/8").json()
        assert client.get("/download/job/8.csv").status_code == 404


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_alerts_counted_listed_and_posted(webhook: str) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    metrics = AlertMetrics(registry)
    monitor = AlertMonitor({"shop": 2}, metrics, WebhookSender(webhook, metrics=metrics))
    row = {"name": "cam", "status": "streaming", "last_error": "", "zones": {"shop": {"occupancy": 3, "visitors": 5}}}
    (raised,) = monitor.update([row], now=0.0)
    assert raised["kind"] == "zone_over_capacity" and raised["state"] == "raised" and raised["zone"] == "shop"
    assert raised["message"] == "zone shop of cam: 3 people, more than 2"
    assert monitor.update([row], now=1.0) == []  # still over: raised once
    assert [a["kind"] for a in monitor.active()] == ["zone_over_capacity"]
    cleared = {**row, "status": "stalled", "zones": {"shop": {"occupancy": 2, "visitors": 5}}}
    events = monitor.update([cleared], now=2.0)
    assert sorted((e["kind"], e["state"]) for e in events) == [("camera_stalled", "raised"),
                                                               ("zone_over_capacity", "cleared")]  # fmt: skip
    text = generate_latest(registry).decode()
    assert 'crowdcount_web_alerts_total{kind="zone_over_capacity",source="cam"} 1.0' in text
    assert 'crowdcount_web_alerts_active{kind="zone_over_capacity",source="cam"} 0.0' in text
    assert 'crowdcount_web_alerts_active{kind="camera_stalled",source="cam"} 1.0' in text
    monitor.close()
    # sent in order, one at a time, by the webhook's thread
    assert [(e["kind"], e["state"]) for e in _Hook.received] == [
        ("zone_over_capacity", "raised"), ("camera_stalled", "raised"), ("zone_over_capacity", "cleared")
    ]  # fmt: skip
    assert monitor.history()[0]["time"].endswith("Z")


def test_watch_serves_the_dashboard_until_its_duration(
    lobby: Path, fake_detectors: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``watch --web``: the dashboard comes up, stays up after the file has ended with its final counts, and the run
    ends at --duration with exit 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CROWDCOUNT_TRACKING__APPEARANCE", "false")  # no re-identification model: quick
    seen: dict[str, Any] = {}

    def poll() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as response:
                    document = json.loads(response.read())
                seen["last"] = document
                if document["sources"][0]["status"] == "ended":
                    seen["status"] = document
                    return
            except OSError as exc:
                seen["error"] = repr(exc)
            time.sleep(0.1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    code, _, err = run_cli("watch", f"cam={lobby}", "-d", "squares", "--line", LINE, "--zone", ZONE, "--web",
                           str(port), "--duration", "12", "--no-table")  # fmt: skip
    thread.join(5)
    assert code == 0, err
    assert f"dashboard on http://127.0.0.1:{port}/" in err and "the dashboard stays up until Ctrl-C" in err
    assert "status" in seen, f"the source never showed as ended: {seen}, stderr: {err}"
    (cam,) = seen["status"]["sources"]
    assert cam["lines"] == {"door": {"in": 2, "out": 2}} and cam["frames_analyzed"] == 40


def test_an_unreadable_results_root_is_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Flaky:
        down = True

        def get_paginator(self, name: str) -> Any:
            if self.down:
                raise ConnectionError("no route to the bucket")
            return self

        def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
            return [{"Contents": []}]

    s3 = Flaky()
    catalog = ResultsCatalog([str(tmp_path), "s3://gone/x"], s3=s3, rescan_s=0)
    with caplog.at_level("WARNING", logger="crowdcount.web.results"):
        catalog.entries()  # the first listing: its errors are the caller's to say (the CLI prints them)
        catalog.entries()  # the same error again: not repeated at every rescan
        assert catalog.failed_roots == ["s3://gone/x"] and not caplog.records
        s3.down = False
        catalog.entries()  # it clears ...
        assert catalog.errors == [] and catalog.failed_roots == []
        s3.down = True
        catalog.entries()  # ... and comes back: said once
        catalog.entries()
    assert [r.getMessage() for r in caplog.records] == [
        "results in s3://gone/x cannot be listed: no route to the bucket"
    ]


def test_dashboard_of_results_nothing_can_read_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = run_cli("dashboard", "s3://gone/results/", "--no-jobs", "--web", "0")
    assert code == 3, err
    assert err.startswith("Error: results in s3://gone/results/ cannot be listed: ") and len(err.splitlines()) == 1


def test_download_of_an_unknown_kind_is_404_json(tmp_path: Path) -> None:
    """Only .json and .csv are served: /download/a.xml is no JSON body named a.xml."""
    (tmp_path / "a.json").write_text(json.dumps({"video": {"name": "a.mp4"}, "frames": []}))
    client = TestClient(create_app(catalog=ResultsCatalog([str(tmp_path)])))
    assert client.get("/download/a.json").status_code == 200
    response = client.get("/download/a.xml")
    assert response.status_code == 404
    assert response.json() == {"error": "no download 'xml': ask for .json or .csv"}


def test_an_s3_result_deleted_after_the_listing_is_no_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moto: a result file listed, then deleted (a new run, a lifecycle rule): its page and download say it is
    gone (404 JSON), and a rescan of the prefix still lists the others."""
    moto = pytest.importorskip("moto")
    import boto3

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    document = {"video": {"name": "a.mp4"}, "frames": []}
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="videos")
        for key in ("results/a.json", "results/b.json"):
            s3.put_object(Bucket="videos", Key=key, Body=json.dumps(document).encode())
        catalog = ResultsCatalog(["s3://videos/results/"], s3=s3, rescan_s=3600)
        client = TestClient(create_app(catalog=catalog), raise_server_exceptions=False)
        assert [r["id"] for r in client.get("/api/results").json()["results"]] == ["a", "b"]
        s3.delete_object(Bucket="videos", Key="results/a.json")
        download = client.get("/download/a.json")
        assert (download.status_code, download.json()) == (404, {"error": "no such result"})
        page = client.get("/api/results/a")
        assert page.status_code == 200 and "series" not in page.json()
        # a key listed but gone before it is read hides no other result of its prefix
        catalog._objects.clear()
        real_list = s3.list_objects_v2
        s3.put_object(Bucket="videos", Key="results/a.json", Body=b"{}")
        listing = real_list(Bucket="videos", Prefix="results/")
        s3.delete_object(Bucket="videos", Key="results/a.json")
        paginator = s3.get_paginator("list_objects_v2")
        monkeypatch.setattr(paginator, "paginate", lambda **kw: [listing])
        monkeypatch.setattr(s3, "get_paginator", lambda name: paginator)
        assert [e.id for e in catalog.entries(refresh=True).values()] == ["b"] and catalog.errors == []


def test_the_chart_never_goes_back_when_the_wall_clock_does(lobby: Path) -> None:
    """An NTP step back of the wall clock: the chart's seconds never go back (the frames count in the newest
    point), so an hour of history stays an hour instead of growing until the clock catches up."""
    _, hub, _ = watched(lobby)
    rgb = np.zeros((8, 8, 3), np.uint8)
    for i, (epoch, n) in enumerate([(10_000.2, 1), (10_001.5, 2), (9_000.0, 4), (9_001.0, 3)], start=1):
        hub.observe(CapturedFrame("cam", i, epoch, float(i), rgb), {"Human": [None] * n}, {})
    assert [p[:2] for p in hub._states["cam"].series] == [[10_000, 1], [10_001, 4]]
    assert hub.series("cam", 300) == {"source": "cam", "t": [10_000, 10_001], "count": [1, 4], "lines": {},
                                      "zones": {}}  # fmt: skip


def test_an_odd_result_file_hides_no_other_result_of_its_folder(tmp_path: Path) -> None:
    """A JSON file shaped almost like a result (a string for its video, a list for its summary) is skipped; the
    folder's other results are still listed and served (it made the whole folder 'cannot be listed')."""
    good = {"video": {"name": "a.mp4"}, "frames": []}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "b.json").write_text(json.dumps({"video": "b.mp4", "frames": []}))
    (tmp_path / "c.json").write_text(json.dumps({"video": {}, "frames": [], "summary": ["Human"]}))
    catalog = ResultsCatalog([str(tmp_path)])
    client = TestClient(create_app(catalog=catalog), raise_server_exceptions=False)
    body = client.get("/api/results").json()
    assert ([r["id"] for r in body["results"]], body["errors"]) == (["a"], [])
    assert client.get("/download/a.json").json() == good


def test_a_result_file_that_cannot_be_shown_is_a_json_error_not_a_500(tmp_path: Path) -> None:
    """A file listed as a result but with no detectors, odd frames, or rewritten since into no result at all: its
    page and downloads answer JSON (422, or 404 once it is no result), never a 500 with a traceback."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"video": {"name": "a.mp4"}, "frames": [7]}))
    client = TestClient(create_app(catalog=ResultsCatalog([str(tmp_path)])), raise_server_exceptions=False)
    assert [r["id"] for r in client.get("/api/results").json()["results"]] == ["a"]
    error = {"error": "result 'a' cannot be shown: its file is no complete crowdcount result"}
    for url in ("/download/a.csv", "/api/results/a"):
        response = client.get(url)
        assert (response.status_code, response.json()) == (422, error), url
    assert client.get("/download/a.json").status_code == 200
    path.write_text(json.dumps({"video": "a.mp4", "frames": []}))  # rewritten since the listing
    response = client.get("/download/a.json")
    assert response.status_code == 200 and response.headers["content-disposition"] == 'attachment; filename="a.json"'
    path.write_text("[1, 2]")  # rewritten since the listing
    for url, status in (("/download/a.json", 404), ("/download/a.csv", 404), ("/api/results/a", 200)):
        response = client.get(url)
        assert response.status_code == status and "series" not in response.json(), url


def test_the_stream_of_a_source_named_after_its_url_path_is_served(lobby: Path) -> None:
    """A URL source without NAME= is named host:port/path: the page asks for stream/<its name, %-encoded>.mjpg,
    and gets the stream (its '/' made the route answer 404)."""
    _, hub, metrics = watched(lobby, "rtsp://user:secret@cam.local:554/live")
    assert hub.names == ["cam.local:554/live"]
    server = WebServer(create_app(hub=hub, registry=metrics.registry), "127.0.0.1", 0).start()
    try:
        url = f"{server.url}stream/{urllib.parse.quote('cam.local:554/live', safe='')}.mjpg"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.url}stream/cam.local%3A554%2Fother.mjpg", timeout=10)
        assert missing.value.code == 404 and json.loads(missing.value.read()) == {
            "error": "no source 'cam.local:554/other'"
        }
    finally:
        server.stop()
