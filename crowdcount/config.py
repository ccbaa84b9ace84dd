"""Configuration: ``variables.json``, overridden by the environment, overridden by CLI options.

Where the file comes from, first match wins: ``--config PATH``, ``$CROWDCOUNT_CONFIG``, ``./variables.json``,
else the built-in :data:`DEFAULTS` (identical to the repository's ``variables.json``). A file only needs
the keys it changes; unknown or mistyped keys are errors that name the closest valid key.

Environment overrides use ``CROWDCOUNT_<SECTION>__<KEY>`` (double underscore between levels), e.g.
``CROWDCOUNT_DYNAMODB__TABLE_ID=videos`` or ``CROWDCOUNT_HUMAN_DETECTION__FRAME_RATIO=0.5``; top-level keys
are ``CROWDCOUNT_AWS_REGION`` and so on. Values are parsed as JSON when they parse, else kept as text.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_PREFIX = "CROWDCOUNT_"
#: Environment variables with the prefix that are not config keys.
RESERVED_ENV = {"CROWDCOUNT_CONFIG", "CROWDCOUNT_LOG_LEVEL", "CROWDCOUNT_LOG_FORMAT", "CROWDCOUNT_WEB_TOKEN"}


class Optional:
    """Schema marker: a value of ``kind`` or null."""

    def __init__(self, kind: Any) -> None:
        self.kind = kind


class Detectors:
    """Schema marker: a list of ``[name, {arguments}]`` pairs (or bare names)."""


class StrMap:
    """Schema marker: a mapping of free keys to strings."""


class StrList:
    """Schema marker: a list of strings."""


#: The shape of a configuration: nested dicts of sections; leaves are types or markers.
SCHEMA: dict[str, Any] = {
    "aws_region": str,
    "aws_endpoint_url": Optional(str),
    "aws_queues": {"human_detection": str, "human_detection_dlq": str, "max_receive_count": int, "results": str},
    "dynamodb": {"region": str, "table_id": str},
    "video_split": {"output_bucket": str, "input_prefix": str},
    "human_detection": {
        "detectors": Detectors(),
        "frame_ratio": float,
        "count_smoothing_s": float,
        "max_batch_size": Optional(int),
        "result_step": str,
        "result_prefix": Optional(str),
    },
    "tracking": {
        "enabled": bool,
        "high_score": Optional(float),
        "low_score": float,
        "activation_score": Optional(float),
        "lost_track_s": float,
        "min_iou": float,
        "buffer_per_s": float,
        "confirm_frames": int,
        "min_track_s": float,
        "appearance": bool,
        "relink_s": float,
        "link_threshold": float,
        "merge_threshold": float,
        "link_window_s": float,
        "max_speed": float,
        "gallery_size": int,
        "embed_interval_s": float,
        "refresh_s": float,
        "max_embeds_per_frame": int,
        "split_threshold": Optional(float),
        "associate_weight": float,
        "embeddings": bool,
        "calibration": Optional(str),
        "contact_distance": float,
        "contact_seconds": float,
        "lines": StrList(),
        "zones": StrList(),
        "line_hysteresis": float,
        "scenery": bool,
    },
    "faces": {
        "gallery": Optional(str),
        "embedder": str,
        "match_threshold": Optional(float),
        "cluster_threshold": Optional(float),
        "min_sightings": int,
        "min_face_size": int,
    },
    "worker": {
        "wait_time_seconds": int,
        "visibility_timeout": int,
        "heartbeat_seconds": int,
        "grace_period_seconds": int,
        "max_video_bytes": int,
        "idle_timeout_seconds": Optional(float),
        "max_jobs": Optional(int),
        "retry_delay_seconds": int,
        "temp_dir": Optional(str),
        "scale_in_protection_minutes": int,
        "checkpoint_seconds": int,
        "max_job_seconds": int,
        "max_pixels": int,
        "max_duration_seconds": int,
        "min_free_disk_bytes": int,
    },
    "deploy": {
        "cluster": str,
        "family": str,
        "repository": str,
        "image_tag": str,
        "dockerfile": str,
        "cpu": str,
        "memory": str,
        "gpu_count": int,
        "instance_type": str,
        "task_role_arn": Optional(str),
        "execution_role_arn": Optional(str),
        "log_group": str,
        "service_name": str,
        "min_tasks": int,
        "max_tasks": int,
        "backlog_per_task": int,
        "environment": StrMap(),
        "stack_name": str,
        "templates_dir": Optional(str),
    },
    "live": {
        "open_timeout_seconds": float,
        "read_timeout_seconds": float,
        "reconnect_delay_seconds": float,
        "max_reconnect_delay_seconds": float,
        "max_retries": Optional(int),
        "jpeg_quality": int,
        "kafka_bootstrap": str,
        "kafka_raw_topic": str,
        "kafka_results_topic": str,
        "kafka_group": str,
        "kafka_partitions": int,
        "redis_url": str,
        "redis_stream": str,
        "redis_maxlen": Optional(int),
    },
}

#: The built-in configuration; ``variables.json`` at the repository root holds the same values.
DEFAULTS: dict[str, Any] = {
    "aws_region": "us-east-1",
    "aws_endpoint_url": None,
    "aws_queues": {
        "human_detection": "crowdcount-human-detection",
        "human_detection_dlq": "crowdcount-human-detection-dlq",
        "max_receive_count": 3,
        "results": "crowdcount-results",
    },
    "dynamodb": {"region": "us-east-1", "table_id": "crowdcount-videos"},
    "video_split": {"output_bucket": "crowdcount-videos", "input_prefix": "videos/"},
    "human_detection": {
        "detectors": [
            ["HumanDetector", {"max_batch_size": 5}],
            ["FaceDetector", {"min_detection_score": 0.4, "max_batch_size": 5}],
        ],
        "frame_ratio": 0.2,
        "count_smoothing_s": 1.0,
        "max_batch_size": None,
        "result_step": "human_detector",
        "result_prefix": "results/",
    },
    "tracking": {
        "enabled": True,
        "high_score": None,
        "low_score": 0.1,
        "activation_score": None,
        "lost_track_s": 1.5,
        "min_iou": 0.3,
        "buffer_per_s": 2.0,
        "confirm_frames": 2,
        "min_track_s": 1.0,
        "appearance": True,
        "relink_s": 5.0,
        "link_threshold": 0.8,
        "merge_threshold": 0.75,
        "link_window_s": 2.0,
        "max_speed": 1.5,
        "gallery_size": 4,
        "embed_interval_s": 0.5,
        "refresh_s": 4.0,
        "max_embeds_per_frame": 8,
        "split_threshold": None,
        "associate_weight": 0.5,
        "embeddings": False,
        "calibration": None,
        "contact_distance": 1.5,
        "contact_seconds": 2.0,
        "lines": [],
        "zones": [],
        "line_hysteresis": 0.1,
        "scenery": True,
    },
    "faces": {
        "gallery": None,
        "embedder": "dlib",
        "match_threshold": None,
        "cluster_threshold": None,
        "min_sightings": 2,
        "min_face_size": 24,
    },
    "worker": {
        "wait_time_seconds": 20,
        "visibility_timeout": 300,
        "heartbeat_seconds": 60,
        "grace_period_seconds": 90,
        "max_video_bytes": 5 * 1024**3,
        "idle_timeout_seconds": None,
        "max_jobs": None,
        "retry_delay_seconds": 10,
        "temp_dir": None,
        "scale_in_protection_minutes": 120,
        "checkpoint_seconds": 60,
        "max_job_seconds": 6 * 3600,
        "max_pixels": 4096 * 4096,
        "max_duration_seconds": 4 * 3600,
        "min_free_disk_bytes": 512 * 1024**2,
    },
    "deploy": {
        "cluster": "crowdcount",
        "family": "crowdcount-worker",
        "repository": "crowdcount-worker",
        "image_tag": "latest",
        "dockerfile": "Dockerfile",
        "cpu": "4096",
        "memory": "15360",
        "gpu_count": 1,
        "instance_type": "g4dn.*",
        "task_role_arn": None,
        "execution_role_arn": None,
        "log_group": "/ecs/crowdcount-worker",
        "service_name": "crowdcount-worker",
        "min_tasks": 0,
        "max_tasks": 4,
        "backlog_per_task": 2,
        "environment": {},
        "stack_name": "crowdcount",
        "templates_dir": None,
    },
    "live": {
        "open_timeout_seconds": 10.0,
        "read_timeout_seconds": 5.0,
        "reconnect_delay_seconds": 0.5,
        "max_reconnect_delay_seconds": 30.0,
        "max_retries": None,
        "jpeg_quality": 85,
        "kafka_bootstrap": "localhost:9092",
        "kafka_raw_topic": "crowdcount.frames",
        "kafka_results_topic": "crowdcount.results",
        "kafka_group": "crowdcount",
        "kafka_partitions": 6,
        "redis_url": "redis://localhost:6379/0",
        "redis_stream": "crowdcount:results",
        "redis_maxlen": 100000,
    },
}


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _type_name(kind: Any) -> str:
    if isinstance(kind, Optional):
        return f"{_type_name(kind.kind)} or null"
    if isinstance(kind, Detectors):
        return "a list of [name, {arguments}]"
    if isinstance(kind, StrMap):
        return "an object of strings"
    if isinstance(kind, StrList):
        return "a list of strings"
    if isinstance(kind, dict):
        return "an object"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(kind, str(kind))


def _check_value(where: str, kind: Any, value: Any) -> Any:
    """Validate (and lightly coerce: int -> float) one value against its schema entry."""
    if isinstance(kind, Optional):
        return None if value is None else _check_value(where, kind.kind, value)
    if isinstance(kind, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {where!r} must be {_type_name(kind)}, got {value!r}")
        return _check_section(where, kind, value)
    if isinstance(kind, Detectors):
        return _check_detectors(where, value)
    if isinstance(kind, StrMap):
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"config key {where!r} must be {_type_name(kind)}, got {value!r}")
        return dict(value)
    if isinstance(kind, StrList):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config key {where!r} must be {_type_name(kind)}, got {value!r}")
        return list(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ConfigError(f"config key {where!r} must be {_type_name(kind)}, got {value!r}")
    return value


def _check_section(where: str, schema: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in schema:
            raise ConfigError(
                f"unknown config key {path!r}",
                f"{_suggest(key, list(schema))}valid keys{' in ' + repr(where) if where else ''}: {', '.join(schema)}",
            )
        out[key] = _check_value(path, schema[key], value)
    return out


def _check_detectors(where: str, value: Any) -> list[list[Any]]:
    if not isinstance(value, list):
        raise ConfigError(f"config key {where!r} must be {_type_name(Detectors())}, got {value!r}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = [item, {}]
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], Mapping)
        ):
            raise ConfigError(
                f"config key {where}[{i}] must be [name, {{arguments}}], got {item!r}",
                'e.g. ["HumanDetector", {"min_detection_score": 0.4}]',
            )
        out.append([item[0], dict(item[1])])
    return out


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict) and key != "environment":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        schema: Any = SCHEMA
        for depth, part in enumerate(parts):
            if not isinstance(schema, dict) or part not in schema:
                valid = list(schema) if isinstance(schema, dict) else []
                raise ConfigError(
                    f"environment variable {name} names no config key",
                    f"{_suggest(part, valid)}use CROWDCOUNT_<SECTION>__<KEY>, e.g. CROWDCOUNT_DYNAMODB__TABLE_ID",
                )
            schema = schema[part]
            if depth == len(parts) - 1 and isinstance(schema, dict):
                raise ConfigError(f"environment variable {name} names a section, not a key")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if schema is str or (isinstance(schema, Optional) and schema.kind is str and value is not None):
            value = raw
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return overrides


class Config:
    """A validated configuration. Read values with :meth:`get` (dotted keys) or item access."""

    def __init__(self, data: Mapping[str, Any], source: str = "defaults") -> None:
        self.data = _check_section("", SCHEMA, _merge(DEFAULTS, data))
        self.source = source
        ratio = self.data["human_detection"]["frame_ratio"]
        if not 0 < ratio <= 1:
            raise ConfigError(
                f"config key 'human_detection.frame_ratio' must be in (0, 1], got {ratio!r}",
                "1 analyses every frame, 0.2 every fifth",
            )
        smoothing = self.data["human_detection"]["count_smoothing_s"]
        if not 0 <= smoothing <= 60:
            raise ConfigError(
                f"config key 'human_detection.count_smoothing_s' must be in [0, 60] seconds, got {smoothing!r}",
                "0 reports raw per-frame counts, 0.5 a running median over half a second",
            )

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, dotted: str) -> Any:
        """A value by dotted key, e.g. ``config.get("dynamodb.table_id")``."""
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """A new config with ``overrides`` (nested dict, e.g. from CLI options; ``None`` values ignored)."""
        cleaned = _drop_none(overrides)
        return Config(_merge(self.data, cleaned), self.source) if cleaned else self

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def find_config_file(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to read: ``path``, ``$CROWDCOUNT_CONFIG`` or ``./variables.json`` (or none)."""
    environ = os.environ if environ is None else environ
    if path is not None:
        return Path(path)
    if environ.get("CROWDCOUNT_CONFIG"):
        return Path(environ["CROWDCOUNT_CONFIG"])
    local = Path("variables.json")
    return local if local.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate the configuration (file, then environment, then ``overrides``)."""
    environ = os.environ if environ is None else environ
    file = find_config_file(path, environ)
    data: dict[str, Any] = {}
    source = "defaults"
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist", "check --config / $CROWDCOUNT_CONFIG")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(file)!r} cannot be read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"config file {str(file)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(file)!r} must hold a JSON object")
        source = str(file)
    data = _merge(data, _env_overrides(environ))
    if overrides:
        data = _merge(data, _drop_none(overrides))
    config = Config(data, source)
    logger.debug("configuration from %s", source)
    return config


def build_detectors(specs: list[list[Any]]) -> list[Any]:
    """Build detectors from ``[[name, {arguments}], ...]`` (the ``detectors`` key of an analyzer block)."""
    from crowdcount.detectors import build_detector

    return [build_detector(name, arguments) for name, arguments in specs]
