"""A cameras file: each live source with its own lines, zones and occupancy limits (``watch --cameras``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crowdcount.errors import ConfigError
from crowdcount.live.cameras import Camera, load_cameras

from .test_live_counting import LINE, ZONE, back_and_forth, left, right
from conftest import run_cli, write_moving


@pytest.fixture
def lobby(tmp_path: Path) -> Path:
    return write_moving(tmp_path / "lobby.mp4", 40, [right, left, back_and_forth])


def test_a_yaml_file_and_a_json_file_give_the_same_cameras(tmp_path: Path) -> None:
    yaml_file = tmp_path / "cameras.yaml"
    yaml_file.write_text(
        "cameras:\n"
        "  door:\n"
        "    source: rtsp://user:secret@10.0.0.5/live\n"
        f"    lines: ['{LINE}']\n"
        f"    zones: ['{ZONE}']\n"
        "    max_occupancy: {shop: 3}\n"
        "  hall: 0\n"
    )
    json_file = tmp_path / "cameras.json"
    json_file.write_text(
        json.dumps(
            {
                "cameras": {
                    "door": {
                        "source": "rtsp://user:secret@10.0.0.5/live",
                        "lines": [LINE],
                        "zones": [ZONE],
                        "max_occupancy": {"shop": 3},
                    },
                    "hall": {"source": 0},
                }
            }
        )
    )
    cameras = load_cameras(yaml_file)

    def plain(camera: Camera) -> tuple[object, ...]:
        lines, zones = [x.text for x in camera.lines], [x.text for x in camera.zones]
        return camera.name, camera.source, lines, zones, camera.max_occupancy

    assert [plain(c) for c in cameras] == [plain(c) for c in load_cameras(json_file)]
    door, hall = cameras
    assert door.argument == "door=rtsp://user:secret@10.0.0.5/live"
    assert [line.name for line in door.lines] == ["door"] and [zone.name for zone in door.zones] == ["shop"]
    assert door.max_occupancy == {"shop": 3}
    assert (hall.name, hall.source, hall.lines, hall.zones) == ("hall", "0", (), ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cameras: {door: {sorce: 0}}", "camera 'door': unknown key 'sorce' (did you mean 'source'? valid keys: "),
        ("cameras: {door: {lines: ['a=0,0,1,1']}}", "camera 'door' has no source"),
        ("cameras: {door: {source: 0, lines: ['1,2,3']}}", "camera 'door': line '1,2,3': 3 numbers do not make"),
        ("cameras: {door: {source: 0, max_occupancy: {hall: 2}}}", "camera 'door': max_occupancy names no zone"),
        ("cameras: {'a b': 0}", "camera name 'a b' is not a name"),
        ("cameras: []", "expected a 'cameras' mapping of names to cameras"),
        ("cameras: {door: [0", "not valid YAML"),
    ],
)
def test_mistakes_are_one_line_naming_the_file_and_the_camera(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_cameras(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"cameras file {path}")
    assert "\n" not in str(caught.value)


def test_watch_counts_each_camera_with_its_own_lines_as_analyze_does(
    lobby: Path, tmp_path: Path, fake_detectors: None
) -> None:
    """Two cameras on one clip: ``a`` counts the door and the shop, ``b`` a line across the top; a --line on the
    command line applies to both. Each camera's final totals equal ``analyze``'s with the same lines."""
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        f"cameras:\n  a: {{source: '{lobby}', lines: ['{LINE}'], zones: ['{ZONE}']}}\n"
        f"  b: {{source: '{lobby}', lines: ['top=0,0.3,1,0.3']}}\n"
    )
    shared = ["--line", "mid=0,0.5,1,0.5"]
    code, out, err = run_cli("watch", "--cameras", str(cameras), "-d", "squares", "--no-table", "-o", "-", *shared)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    last = {r["source"]: r for r in records}
    assert sorted(last) == ["a", "b"]
    assert set(last["a"]["lines"]) == {"door", "mid"} and set(last["a"]["zones"]) == {"shop"}
    assert set(last["b"]["lines"]) == {"top", "mid"} and last["b"]["zones"] == {}
    for source, geometry in (("a", ["--line", LINE, "--zone", ZONE]), ("b", ["--line", "top=0,0.3,1,0.3"])):
        result = tmp_path / f"{source}.json"
        code, _, err = run_cli(
            "analyze", str(lobby), "-d", "squares", "--frame-ratio", "1", "-o", str(result), *geometry, *shared
        )
        assert code == 0, err
        document = json.loads(result.read_text())
        lines = {x["name"]: {"in": x["in"], "out": x["out"]} for x in document["counting"]["lines"]}
        assert last[source]["lines"] == lines
    assert last["a"]["lines"]["door"] == {"in": 2, "out": 2}


def test_watch_refuses_a_name_given_twice_and_nothing_to_watch(
    lobby: Path, tmp_path: Path, fake_detectors: None
) -> None:
    cameras = tmp_path / "cameras.json"
    cameras.write_text(json.dumps({"cameras": {"a": {"source": str(lobby)}}}))
    code, _, err = run_cli("watch", f"a={lobby}", "--cameras", str(cameras), "-d", "squares", "--no-table")
    assert (code, err) == (
        2,
        "Error: source name 'a' is given twice (SOURCES and --cameras) (give each source one name)\n",
    )
    code, _, err = run_cli("watch", "-d", "squares", "--no-table")
    assert code == 2 and err.startswith("Error: no sources to watch")
    code, _, err = run_cli("watch", "--cameras", str(tmp_path / "none.yaml"), "-d", "squares")
    assert code == 2 and err.startswith(f"Error: cameras file '{tmp_path / 'none.yaml'}' does not exist")
