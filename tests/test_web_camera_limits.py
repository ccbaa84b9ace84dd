"""A cameras file's own ``max_occupancy`` with ``watch --web``: each limit applies to its own camera's zone, and a
``--max-occupancy`` may name a zone that only a camera of the file has."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

from crowdcount.analyzer.counting import parse_zones
from crowdcount.analyzer.pipeline import assemble_pipeline
from crowdcount.config import DEFAULTS
from crowdcount.errors import ConfigError
from crowdcount.live import Source, Watcher, parse_source
from crowdcount.live.pipeline import pipeline_factory
from crowdcount.web import AlertMonitor
from crowdcount.web.app import start_live_dashboard

from conftest import SquareDetector, run_cli, write_moving


def _still(i: int) -> tuple[int, int]:
    return 20, 20


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_moving(tmp_path / "hall.mp4", 5, [_still])


def test_a_cameras_files_limit_is_no_unknown_zone(
    clip: Path, tmp_path: Path, fake_detectors: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDCOUNT_TRACKING__APPEARANCE", "false")
    cameras = tmp_path / "cameras.json"
    cameras.write_text(
        json.dumps(
            {
                "cameras": {
                    "hall": {"source": str(clip), "zones": ["queue=0,0,1,0,1,1,0,1"], "max_occupancy": {"queue": 0}}
                }
            }
        )
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run_cli(
        "watch",
        "--cameras",
        str(cameras),
        "-d",
        "squares",
        "--web",
        str(port),
        "--duration",
        "2",
        "--no-table",
        "--json",
    )
    assert code == 0, err
    assert "names no --zone" not in err
    assert "alert raised: zone queue of hall: 1 people, more than 0" in err  # the camera's own limit


def test_each_cameras_limit_applies_to_its_own_zone_only() -> None:
    monitor = AlertMonitor({"queue": 5}, source_limits={"a": {"queue": 1}})
    rows = [
        {"name": "a", "status": "streaming", "zones": {"queue": {"occupancy": 2, "visitors": 2}}},
        {"name": "b", "status": "streaming", "zones": {"queue": {"occupancy": 2, "visitors": 2}}},
    ]
    events = monitor.update(rows, now=0.0)
    assert [(e["source"], e["zone"], e["message"]) for e in events] == [
        ("a", "queue", "zone queue of a: 2 people, more than 1")
    ]
    rows[1]["zones"]["queue"]["occupancy"] = 6
    assert [(e["source"], e["message"]) for e in monitor.update(rows, now=1.0)] == [
        ("b", "zone queue of b: 6 people, more than 5")
    ]


def test_a_limit_may_name_a_zone_of_any_camera(clip: Path) -> None:
    detectors = [SquareDetector()]
    own = {"b": ([], parse_zones(["entrance=0,0,1,0,1,1,0,1"]))}
    factory = pipeline_factory(assemble_pipeline(detectors, DEFAULTS["tracking"]), geometry=own)
    sources = [Source(parse_source(f"a={clip}")), Source(parse_source(f"b={clip}"))]
    watcher = Watcher(detectors, sources, processors=factory)
    assert watcher.pipelines.totals("b")["zones"] == {"entrance": {"occupancy": 0, "visitors": 0}}
    assert watcher.pipelines.totals("a")["zones"] == {}
    with pytest.raises(ConfigError, match=r"^--max-occupancy names no --zone: hall \(zones: entrance\)$"):
        start_live_dashboard(watcher, "0", max_occupancy={"hall": 1})
    hub, server = start_live_dashboard(watcher, "0", max_occupancy={"entrance": 1})
    try:
        assert hub.alerts.max_occupancy == {"entrance": 1}
    finally:
        hub.stop()
        server.stop()
