from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from crowdcount.config import (
    DEFAULTS,
    SCHEMA,
    Config,
    HumanDetectionConfig,
    Limits,
    Settings,
    TrackingConfig,
    WorkerConfig,
    _plain,
    check_setting,
    limits_of,
    load_config,
)
from crowdcount.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_repository_variables_json_equals_the_built_in_defaults() -> None:
    assert json.loads((REPO / "variables.json").read_text()) == DEFAULTS


def test_seed_configuration_is_accepted(tmp_path: Path) -> None:
    seed = {
        "human_detection": {
            "detectors": [
                ["HumanDetector", {"min_detection_score": 0.4, "max_batch_size": 5}],
                ["FaceDetector", {"min_detection_score": 0.4, "max_batch_size": 5}],
            ],
            "frame_ratio": 0.2,
        }
    }
    path = tmp_path / "variables.json"
    path.write_text(json.dumps(seed))
    config = load_config(path, environ={})
    assert config.get("human_detection.frame_ratio") == 0.2
    assert config.get("human_detection.detectors")[0] == [
        "HumanDetector",
        {"min_detection_score": 0.4, "max_batch_size": 5},
    ]
    assert config.get("dynamodb.table_id") == DEFAULTS["dynamodb"]["table_id"]
    assert config.source == str(path)


def test_unknown_key_names_the_closest_valid_key(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"dynamodb": {"table": "x"}}))
    with pytest.raises(ConfigError, match=r"unknown config key 'dynamodb.table' \(did you mean 'table_id'\?"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"human_detection": {"frame_ratio": "fast"}}, "'human_detection.frame_ratio' must be a number"),
        ({"human_detection": {"frame_ratio": 0}}, r"must be in \(0, 1\]"),
        ({"human_detection": {"frame_ratio": 1.5}}, r"must be in \(0, 1\]"),
        ({"aws_region": 5}, "'aws_region' must be a string"),
        ({"human_detection": {"detectors": [["human"]]}}, r"must be \[name, \{arguments\}\]"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_bad_values(tmp_path: Path, data: object, message: str) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_invalid_json_says_where(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"aws_region": "eu-west-1",}')
    with pytest.raises(ConfigError, match="not valid JSON: .* line 1"):
        load_config(path, environ={})


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/variables.json", environ={})


def test_environment_overrides_file_and_cli_overrides_environment(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"dynamodb": {"table_id": "from-file"}, "human_detection": {"frame_ratio": 0.5}}))
    env = {"CROWDCOUNT_DYNAMODB__TABLE_ID": "from-env", "CROWDCOUNT_HUMAN_DETECTION__FRAME_RATIO": "0.25"}
    config = load_config(path, environ=env)
    assert config.get("dynamodb.table_id") == "from-env"
    assert config.get("human_detection.frame_ratio") == 0.25
    config = load_config(path, environ=env, overrides={"human_detection": {"frame_ratio": 1.0}})
    assert config.get("human_detection.frame_ratio") == 1.0


def test_environment_string_values_stay_strings() -> None:
    config = load_config(None, environ={"CROWDCOUNT_AWS_REGION": "123", "CROWDCOUNT_CONFIG": ""})
    assert config.get("aws_region") == "123"


def test_unknown_environment_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="CROWDCOUNT_DYNAMODB__TABLEID names no config key"):
        load_config(None, environ={"CROWDCOUNT_DYNAMODB__TABLEID": "x"})


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"aws_region": "eu-west-1"}))
    assert load_config(None, environ={"CROWDCOUNT_CONFIG": str(path)}).get("aws_region") == "eu-west-1"


# -- typed configuration: one frozen dataclass per section ---------------------------------------------------------


def test_typed_sections_hold_the_same_values_as_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"worker": {"grace_period_seconds": 30}, "tracking": {"lines": ["door:0,0,1,1"]}}))
    config = load_config(path, environ={"CROWDCOUNT_LIVE__KAFKA_PARTITIONS": "3"})
    assert config.worker.grace_period_seconds == 30 == config["worker"]["grace_period_seconds"]
    assert config.live.kafka_partitions == 3 == config.get("live.kafka_partitions")
    assert config.tracking.lines == ("door:0,0,1,1",)
    assert config.human_detection.count_smoothing_s == 1.0
    assert [(name, dict(args)) for name, args in config.human_detection.detectors] == [
        ("HumanDetector", {"max_batch_size": 5}),
        ("FaceDetector", {"min_detection_score": 0.5, "max_batch_size": 5}),
    ]
    assert _plain(config.settings) == config.to_dict()  # every key, typed and by key alike
    assert {f.name for f in dataclasses.fields(Settings)} == set(SCHEMA)


def test_sections_are_frozen() -> None:
    config = load_config(None, environ={"CROWDCOUNT_CONFIG": ""})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.worker.grace_period_seconds = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.human_detection.detectors[0][1]["max_batch_size"] = 9  # type: ignore[index]
    assert config["human_detection"]["detectors"][0][1] == {"max_batch_size": 5}


def test_schema_and_defaults_derive_from_the_dataclasses() -> None:
    assert DEFAULTS["worker"]["grace_period_seconds"] == WorkerConfig().grace_period_seconds == 90
    assert SCHEMA["worker"]["max_jobs"].kind is int and SCHEMA["tracking"]["enabled"] is bool
    assert Settings().tracking == TrackingConfig()
    assert Config({}).settings == Settings()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"human_detection": {"count_smoothing_s": 61}},
            r"config key 'human_detection.count_smoothing_s' must be in \[0, 60\] seconds, got 61\.0",
        ),
        ({"worker": {"wait_time_seconds": 21}}, r"'worker.wait_time_seconds' must be in \[0, 20\], got 21"),
        ({"worker": {"max_jobs": 0}}, r"'worker.max_jobs' must be >= 1 or null, got 0"),
        ({"worker": {"heartbeat_seconds": 200}}, r"'worker.heartbeat_seconds' .* at most half of visibility_timeout"),
        ({"tracking": {"min_iou": 1.5}}, r"'tracking.min_iou' must be in \[0, 1\], got 1.5"),
        ({"tracking": {"contact_distance": 0}}, r"'tracking.contact_distance' must be in \(0, 1e\+06\), got 0.0"),
        ({"live": {"jpeg_quality": 0}}, r"'live.jpeg_quality' must be in \[1, 100\], got 0"),
        ({"deploy": {"backlog_per_task": 0}}, r"'deploy.backlog_per_task' must be >= 1, got 0"),
    ],
)
def test_limits_are_checked_on_load(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_the_analyzer_and_the_tracker_share_the_configs_limits() -> None:
    """count_smoothing_s was <= 60 in the file and < 3600 in VideoAnalyzer: now one limit, one message."""
    from crowdcount.analyzer import VideoAnalyzer
    from crowdcount.analyzer.tracking import TrackingProcessor

    with pytest.raises(ConfigError, match=r"'human_detection.count_smoothing_s' must be in \[0, 60\] seconds, got 61"):
        VideoAnalyzer([], count_smoothing_s=61)
    with pytest.raises(ConfigError, match=r"'tracking.min_iou' must be in \[0, 1\], got 1.5"):
        TrackingProcessor(min_iou=1.5)
    with pytest.raises(ConfigError, match=r"'tracking.confirm_frames' must be an integer, got 2.5"):
        TrackingProcessor(confirm_frames=2.5)  # type: ignore[arg-type]
    assert limits_of(HumanDetectionConfig, "count_smoothing_s") == Limits(
        ge=0, le=60, unit="seconds", hint="0 reports raw per-frame counts, 0.5 a running median over half a second"
    )
    assert check_setting(TrackingConfig, "min_iou", 1) == 1.0


def test_limits_refuse_numbers_that_are_not_finite() -> None:
    """NaN compares false with every bound: it passed every limit and failed later (round(nan) in the count
    smoothing's window: a ValueError traceback) or not at all (a NaN IoU threshold matches nothing)."""
    from crowdcount.analyzer import VideoAnalyzer
    from crowdcount.analyzer.tracking import TrackingProcessor

    with pytest.raises(ConfigError, match=r"'human_detection.count_smoothing_s' must be in \[0, 60\] seconds, got nan"):
        VideoAnalyzer([], count_smoothing_s=float("nan"))
    with pytest.raises(ConfigError, match=r"'tracking.min_iou' must be in \[0, 1\], got nan"):
        TrackingProcessor(min_iou=float("nan"))  # else no box would ever match a track: silently no tracks
    assert not Limits().admits(float("nan"))


# -- environment overrides: only the variables of known keys ---------------------------------------------------------


def test_other_crowdcount_variables_are_not_configuration(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "CROWDCOUNT_DATA_DIR": "/data",
        "CROWDCOUNT_PETS09_GT": "/gt.txt",
        "CROWDCOUNT_CAMERA_GATE": "rtsp://gate",
        "CROWDCOUNT_HEALTH_FILE": "/tmp/health",
        "CROWDCOUNT_DYNAMODB__TABLE_ID": "from-env",
    }
    with caplog.at_level(logging.DEBUG, logger="crowdcount.config"):
        config = load_config(None, environ=env)
    assert config.dynamodb.table_id == "from-env"
    assert config.to_dict() == {**DEFAULTS, "dynamodb": {**DEFAULTS["dynamodb"], "table_id": "from-env"}}
    ignored = sorted(r.getMessage() for r in caplog.records if "not a config key" in r.getMessage())
    assert ignored == [
        "environment variable CROWDCOUNT_CAMERA_GATE is not a config key: ignored",
        "environment variable CROWDCOUNT_DATA_DIR is not a config key: ignored",
        "environment variable CROWDCOUNT_PETS09_GT is not a config key: ignored",
    ]


@pytest.mark.parametrize(
    ("name", "message", "hint"),
    [
        (
            "CROWDCOUNT_DYNAMODB_TABLE_ID",
            "environment variable CROWDCOUNT_DYNAMODB_TABLE_ID names no config key",
            "did you mean CROWDCOUNT_DYNAMODB__TABLE_ID?",
        ),
        (
            "CROWDCOUNT_WORKER__GRACE_PERIOD",
            "environment variable CROWDCOUNT_WORKER__GRACE_PERIOD names no config key",
            "did you mean 'grace_period_seconds'? valid keys in 'worker': wait_time_seconds,",
        ),
        (
            "CROWDCOUNT_AWS_ENDPOINT",
            "environment variable CROWDCOUNT_AWS_ENDPOINT names no config key",
            "did you mean CROWDCOUNT_AWS_ENDPOINT_URL?",
        ),
        (
            "CROWDCOUNT_TRACKING",
            "environment variable CROWDCOUNT_TRACKING names a section, not a key",
            "set one key, e.g. CROWDCOUNT_TRACKING__ENABLED",
        ),
    ],
)
def test_a_misspelt_key_in_the_environment_is_an_error(name: str, message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, environ={name: "1"})
    assert error.value.message == message
    assert (error.value.hint or "").startswith(hint)


def test_an_unrelated_variable_does_not_stop_the_cli(tmp_path: Path) -> None:
    """The benchmarks' CROWDCOUNT_PETS09_GT once made `analyze` exit 2: now it runs (and finds no video)."""
    from click.testing import CliRunner

    from crowdcount.cli.main import cli

    runner = CliRunner()
    env = {"CROWDCOUNT_PETS09_GT": "/gt.txt", "CROWDCOUNT_CONFIG": ""}
    result = runner.invoke(cli, ["analyze", str(tmp_path)], env=env)
    assert result.exit_code == 2 and result.output.startswith("Error: no videos found in"), result.output
    env["CROWDCOUNT_HUMAN_DETECTION__FRAME_RATI"] = "0.5"
    result = runner.invoke(cli, ["analyze", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert result.output.startswith(
        "Error: environment variable CROWDCOUNT_HUMAN_DETECTION__FRAME_RATI names no config key"
    ), result.output
