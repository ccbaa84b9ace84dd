from __future__ import annotations

import json
from pathlib import Path

import pytest

from crowdcount.config import DEFAULTS, load_config
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
