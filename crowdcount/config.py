"""Configuration: ``variables.json``, overridden by the environment, overridden by CLI options.

Where the file comes from, first match wins: ``--config PATH``, ``$CROWDCOUNT_CONFIG``, ``./variables.json``,
else the built-in :data:`DEFAULTS` (identical to the repository's ``variables.json``). A file only needs
the keys it changes; unknown or mistyped keys are errors that name the closest valid key.

Each section is a frozen dataclass below (:class:`WorkerConfig`, :class:`TrackingConfig`, ...): its fields are
the section's keys with their types, defaults and limits (:func:`setting`), and :data:`SCHEMA`, :data:`DEFAULTS`,
the validation of files and the environment overrides all derive from them. Read values typed,
``config.worker.grace_period_seconds``, or by key, ``config["worker"]["grace_period_seconds"]`` or
``config.get("worker.grace_period_seconds")``.

Environment overrides use ``CROWDCOUNT_<SECTION>__<KEY>`` (double underscore between levels), e.g.
``CROWDCOUNT_DYNAMODB__TABLE_ID=videos`` or ``CROWDCOUNT_HUMAN_DETECTION__FRAME_RATIO=0.5``; top-level keys
are ``CROWDCOUNT_AWS_REGION`` and so on. Values are parsed as JSON when they parse, else kept as text. Other
``CROWDCOUNT_*`` variables are not configuration and are left alone, unless they look like a misspelt key
(a known section, or close to a key's name): those are errors that name the key meant.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import logging
import math
import os
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_PREFIX = "CROWDCOUNT_"
#: Environment variables with the prefix that are not config keys (the CLI's and the worker's own).
RESERVED_ENV = {
    "CROWDCOUNT_CONFIG",
    "CROWDCOUNT_LOG_LEVEL",
    "CROWDCOUNT_LOG_FORMAT",
    "CROWDCOUNT_HEALTH_FILE",
    "CROWDCOUNT_WEB_TOKEN",
}

#: SQS's longest visibility timeout and retry delay (12 hours), in seconds.
MAX_VISIBILITY_S = 43200
#: ECS task scale-in protection's longest period (48 hours), in minutes.
MAX_PROTECTION_MINUTES = 2880

#: A detector to build (``human_detection.detectors``): its registered name and its arguments.
DetectorSpec = tuple[str, Mapping[str, Any]]


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


@dataclass(frozen=True)
class Limits:
    """The range a number must lie in: ``ge``/``gt`` at least / above, ``le``/``lt`` at most / below (None: open);
    ``unit`` and ``hint`` complete the error message."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    unit: str = ""
    hint: str = ""

    def admits(self, value: float) -> bool:
        """Whether ``value`` lies in the range (NaN and infinities never do)."""
        return (isinstance(value, int) or math.isfinite(value)) and not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        """``in [0, 60] seconds``, ``>= 1``, ...: what :meth:`admits`."""
        low = f"{self.ge:g}" if self.ge is not None else (f"{self.gt:g}" if self.gt is not None else None)
        high = f"{self.le:g}" if self.le is not None else (f"{self.lt:g}" if self.lt is not None else None)
        if low is not None and high is not None:
            text = f"in {'[' if self.ge is not None else '('}{low}, {high}{']' if self.le is not None else ')'}"
        elif low is not None:
            text = f"{'>=' if self.ge is not None else '>'} {low}"
        elif high is not None:
            text = f"{'<=' if self.le is not None else '<'} {high}"
        else:
            text = "a number"
        return f"{text} {self.unit}" if self.unit else text


def setting(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    unit: str = "",
    hint: str = "",
) -> Any:
    """A key of a section dataclass: its ``default`` and, for a number, its :class:`Limits` (``hint``: how to
    choose a value, shown with the error when one is out of range)."""
    limits = Limits(ge, gt, le, lt, unit, hint)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"limits": limits})
    return field(default=default, metadata={"limits": limits})


def _kind(hint: Any) -> Any:
    """The schema entry (a type, a marker or a nested schema) of a field's type."""
    if hint in (str, int, float, bool):
        return hint
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _schema(hint)
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return Optional(_kind(next(a for a in args if a is not type(None))))
    if origin is tuple and args == (str, ...):
        return StrList()
    if origin is tuple and len(args) == 2 and args[1] is ... and get_origin(args[0]) is tuple:
        return Detectors()
    if origin is Mapping and args == (str, str):
        return StrMap()
    raise TypeError(f"no schema for the configuration type {hint!r}")  # pragma: no cover - a programming error


_SCHEMAS: dict[type, dict[str, Any]] = {}


def _schema(section: type) -> dict[str, Any]:
    """The schema of a section dataclass (cached: do not change it)."""
    schema = _SCHEMAS.get(section)
    if schema is None:
        hints = get_type_hints(section)
        schema = _SCHEMAS[section] = {f.name: _kind(hints[f.name]) for f in dataclasses.fields(section)}
    return schema


def _plain(value: Any) -> Any:
    """A section (or value) as JSON-like data: dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _frozen(kind: Any, value: Any) -> Any:
    """A validated plain value as its section field holds it (lists as tuples, objects read-only)."""
    if isinstance(kind, Optional):
        return None if value is None else _frozen(kind.kind, value)
    if isinstance(kind, StrList):
        return tuple(value)
    if isinstance(kind, StrMap):
        return types.MappingProxyType(dict(value))
    if isinstance(kind, Detectors):
        return tuple((name, types.MappingProxyType(copy.deepcopy(dict(args)))) for name, args in value)
    return value


@dataclass(frozen=True)
class Section:
    """Base of the section dataclasses: checks every number against its field's :class:`Limits` when built, then
    :meth:`check` (rules that tie keys together). ``KEY`` is the section's key (``""``: the top level)."""

    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            limits = f.metadata.get("limits")
            value = getattr(self, f.name)
            if limits is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not limits.admits(value):
                raise _out_of_limits(type(self), f.name, value)
        self.check()

    def check(self) -> None:
        """Raise :class:`ConfigError` when keys of the section do not fit together (none by default)."""

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Any:
        """The section from validated plain data (nested sections built too; lists become tuples)."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            hint = hints[f.name]
            if isinstance(hint, type) and issubclass(hint, Section):
                values[f.name] = hint.from_data(data[f.name])
            else:
                values[f.name] = _frozen(_kind(hint), data[f.name])
        return cls(**values)


def limits_of(section: type[Section], key: str) -> Limits:
    """The :class:`Limits` of ``key`` in ``section`` (e.g. ``limits_of(TrackingConfig, "min_iou")``)."""
    limits: Limits = next(f for f in dataclasses.fields(section) if f.name == key).metadata.get("limits", Limits())
    return limits


def _out_of_limits(section: type[Section], key: str, value: float) -> ConfigError:
    where = f"{section.KEY}.{key}" if section.KEY else key
    limits = limits_of(section, key)
    nullable = " or null" if isinstance(_schema(section)[key], Optional) else ""
    message = f"config key {where!r} must be {limits.describe()}{nullable}, got {value!r}"
    return ConfigError(message, limits.hint or None)


def check_setting(section: type[Section], key: str, value: Any) -> Any:
    """``value`` checked as ``section``'s ``key`` is (type, then limits), for code that takes the value as an
    argument, e.g. ``TrackingProcessor(min_iou=...)``: the same limits as the configuration file, one home.
    Returns it (an integer given for a number as a float); :class:`ConfigError` names the key."""
    where = f"{section.KEY}.{key}" if section.KEY else key
    kind = _schema(section)[key]
    value = _check_value(where, kind, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not limits_of(section, key).admits(value):
        raise _out_of_limits(section, key, value)
    return value


@dataclass(frozen=True)
class QueuesConfig(Section):
    """``aws_queues``: the SQS queues of the worker."""

    KEY: ClassVar[str] = "aws_queues"

    human_detection: str = "crowdcount-human-detection"
    human_detection_dlq: str = "crowdcount-human-detection-dlq"
    #: receives before a message goes to the dead-letter queue (SQS allows 1 to 1000)
    max_receive_count: int = setting(3, ge=1, le=1000)
    results: str = "crowdcount-results"


@dataclass(frozen=True)
class DynamoDBConfig(Section):
    """``dynamodb``: the table of videos and their processing steps."""

    KEY: ClassVar[str] = "dynamodb"

    region: str = "us-east-1"
    table_id: str = "crowdcount-videos"


@dataclass(frozen=True)
class VideoSplitConfig(Section):
    """``video_split``: where the videos are."""

    KEY: ClassVar[str] = "video_split"

    output_bucket: str = "crowdcount-videos"
    input_prefix: str = "videos/"


@dataclass(frozen=True)
class HumanDetectionConfig(Section):
    """``human_detection``: the detectors, how many frames they see, how counts are smoothed, where results go."""

    KEY: ClassVar[str] = "human_detection"

    detectors: tuple[DetectorSpec, ...] = (
        ("HumanDetector", types.MappingProxyType({"max_batch_size": 5})),
        ("FaceDetector", types.MappingProxyType({"min_detection_score": 0.5, "max_batch_size": 5})),
    )
    #: share of frames analysed (None: per video, ``sample_fps`` over the video's frame rate)
    frame_ratio: float | None = setting(
        None, gt=0, le=1, hint="1 analyses every frame, 0.2 every fifth, null picks it from sample_fps"
    )
    #: frames analysed per second of video when ``frame_ratio`` is None
    sample_fps: float = setting(
        8.0, gt=0, le=1000, unit="frames a second", hint="8 analyses up to 8 frames of each second of video"
    )
    count_smoothing_s: float = setting(
        1.0, ge=0, le=60, unit="seconds", hint="0 reports raw per-frame counts, 0.5 a running median over half a second"
    )
    max_batch_size: int | None = setting(None, ge=1)
    result_step: str = "human_detector"
    result_prefix: str | None = "results/"


@dataclass(frozen=True)
class TrackingConfig(Section):
    """``tracking``: ByteTrack with appearance re-linking, lines, zones, contacts (docs/tracking.md)."""

    KEY: ClassVar[str] = "tracking"

    enabled: bool = True
    #: first-stage score (None: the detector's min_detection_score)
    high_score: float | None = setting(None, ge=0, le=1)
    low_score: float = setting(0.1, ge=0, le=1)
    activation_score: float | None = setting(None, ge=0, le=1)
    lost_track_s: float = setting(1.5, ge=0, le=3600)
    min_iou: float = setting(0.3, ge=0, le=1)
    buffer_per_s: float = setting(2.0, ge=0, le=100)
    confirm_frames: int = setting(2, ge=1, le=1000)
    min_track_s: float = setting(1.0, ge=0, le=3600)
    appearance: bool = True
    relink_s: float = setting(5.0, ge=0, le=86400)
    link_threshold: float = setting(0.8, ge=-1, le=1)
    merge_threshold: float = setting(0.75, ge=-1, le=1)
    link_window_s: float = setting(2.0, ge=0, le=3600)
    max_speed: float = setting(1.5, ge=0, le=1000)
    gallery_size: int = setting(4, ge=1, le=1000)
    embed_interval_s: float = setting(0.5, ge=0, le=3600)
    refresh_s: float = setting(4.0, ge=0, le=3600)
    max_embeds_per_frame: int = setting(8, ge=1, le=10000)
    split_threshold: float | None = setting(None, ge=-1, le=1)
    associate_weight: float = setting(0.5, ge=0, le=10)
    embeddings: bool = False
    calibration: str | None = None
    contact_distance: float = setting(1.5, gt=0, lt=1e6)
    contact_seconds: float = setting(2.0, gt=0, lt=1e6)
    lines: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    line_hysteresis: float = setting(0.1, ge=0, le=10)
    scenery: bool = True


@dataclass(frozen=True)
class FacesConfig(Section):
    """``faces``: the gallery and the embedder of face identification."""

    KEY: ClassVar[str] = "faces"

    gallery: str | None = None
    embedder: str = "dlib"
    match_threshold: float | None = setting(None, ge=-1, le=1)
    cluster_threshold: float | None = setting(None, ge=-1, le=1)
    min_sightings: int = setting(2, ge=1)
    min_face_size: int = setting(24, ge=0)


@dataclass(frozen=True)
class WorkerConfig(Section):
    """``worker``: the queue worker's timings and limits (docs/worker.md)."""

    KEY: ClassVar[str] = "worker"

    wait_time_seconds: int = setting(20, ge=0, le=20, hint="SQS long polling waits at most 20 s")
    visibility_timeout: int = setting(300, ge=1, le=MAX_VISIBILITY_S)
    heartbeat_seconds: int = setting(60, ge=1)
    grace_period_seconds: int = setting(90, ge=0)
    max_video_bytes: int = setting(5 * 1024**3, ge=1)
    idle_timeout_seconds: float | None = setting(None, ge=0)
    max_jobs: int | None = setting(None, ge=1)
    retry_delay_seconds: int = setting(10, ge=0, le=MAX_VISIBILITY_S)
    temp_dir: str | None = None
    scale_in_protection_minutes: int = setting(120, ge=0, le=MAX_PROTECTION_MINUTES, hint="0 turns it off")
    checkpoint_seconds: int = setting(60, ge=0)
    max_job_seconds: int = setting(6 * 3600, ge=1)
    max_pixels: int = setting(4096 * 4096, ge=1)
    max_duration_seconds: int = setting(4 * 3600, ge=1)
    min_free_disk_bytes: int = setting(512 * 1024**2, ge=0)

    def check(self) -> None:
        if self.heartbeat_seconds > self.visibility_timeout // 2:
            raise ConfigError(
                f"config key 'worker.heartbeat_seconds' must be >= 1 and at most half of visibility_timeout "
                f"({self.visibility_timeout} // 2), so that a failed extension is retried before the message comes "
                f"back; got {self.heartbeat_seconds}"
            )


@dataclass(frozen=True)
class DeployConfig(Section):
    """``deploy``: the ECS (or Kubernetes) deployment (docs/deploy.md)."""

    KEY: ClassVar[str] = "deploy"

    cluster: str = "crowdcount"
    family: str = "crowdcount-worker"
    repository: str = "crowdcount-worker"
    image_tag: str = "latest"
    dockerfile: str = "Dockerfile"
    #: CPU units and MiB, as text (ECS's task definition form)
    cpu: str = "4096"
    memory: str = "15360"
    gpu_count: int = setting(1, ge=0, hint="0 deploys the CPU variant")
    instance_type: str = "g4dn.*"
    task_role_arn: str | None = None
    execution_role_arn: str | None = None
    log_group: str = "/ecs/crowdcount-worker"
    service_name: str = "crowdcount-worker"
    min_tasks: int = setting(0, ge=0)
    max_tasks: int = 4
    backlog_per_task: int = setting(2, ge=1)
    environment: Mapping[str, str] = setting({})
    stack_name: str = "crowdcount"
    templates_dir: str | None = None


@dataclass(frozen=True)
class LiveConfig(Section):
    """``live``: cameras and streams (``watch``, ``stream``), Kafka and Redis (docs/live.md)."""

    KEY: ClassVar[str] = "live"

    open_timeout_seconds: float = setting(10.0, gt=0)
    read_timeout_seconds: float = setting(5.0, gt=0)
    reconnect_delay_seconds: float = setting(0.5, ge=0)
    max_reconnect_delay_seconds: float = setting(30.0, ge=0)
    max_retries: int | None = setting(None, ge=0)
    jpeg_quality: int = setting(85, ge=1, le=100)
    kafka_bootstrap: str = "localhost:9092"
    kafka_raw_topic: str = "crowdcount.frames"
    kafka_results_topic: str = "crowdcount.results"
    kafka_group: str = "crowdcount"
    kafka_partitions: int = setting(6, ge=1)
    redis_url: str = "redis://localhost:6379/0"
    redis_stream: str = "crowdcount:results"
    redis_maxlen: int | None = setting(100000, ge=1)


@dataclass(frozen=True)
class Settings(Section):
    """The whole configuration, typed: the top-level keys and one dataclass per section."""

    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    aws_queues: QueuesConfig = field(default_factory=QueuesConfig)
    dynamodb: DynamoDBConfig = field(default_factory=DynamoDBConfig)
    video_split: VideoSplitConfig = field(default_factory=VideoSplitConfig)
    human_detection: HumanDetectionConfig = field(default_factory=HumanDetectionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    faces: FacesConfig = field(default_factory=FacesConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    live: LiveConfig = field(default_factory=LiveConfig)


#: The shape of a configuration: nested dicts of sections; leaves are types or markers (from :class:`Settings`).
SCHEMA: dict[str, Any] = _schema(Settings)

#: The built-in configuration (from :class:`Settings`' defaults); ``variables.json`` at the repository root holds
#: the same values.
DEFAULTS: dict[str, Any] = _plain(Settings())


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


def _env_names() -> dict[str, tuple[str, ...]]:
    """The environment variable of every config key, e.g. ``CROWDCOUNT_DYNAMODB__TABLE_ID`` -> its path."""
    names: dict[str, tuple[str, ...]] = {}

    def walk(schema: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, kind in schema.items():
            if isinstance(kind, dict):
                walk(kind, (*path, key))
            else:
                names[ENV_PREFIX + "__".join((*path, key)).upper()] = (*path, key)

    walk(SCHEMA, ())
    return names


#: The environment variable of every config key (``CROWDCOUNT_<SECTION>__<KEY>``) -> the key's path.
ENV_NAMES: dict[str, tuple[str, ...]] = _env_names()


def _env_mistake(name: str) -> ConfigError | None:
    """The error for a ``CROWDCOUNT_*`` variable that names no key but looks meant to (a known section, or a
    near miss of a key's variable); None for a variable that is simply not configuration."""
    upper = name.upper()
    rest = upper[len(ENV_PREFIX) :]
    head, _, tail = rest.partition("__")
    sections = [k for k, kind in SCHEMA.items() if isinstance(kind, dict)]
    if head.lower() in sections:
        keys = list(SCHEMA[head.lower()])
        if not tail:
            return ConfigError(
                f"environment variable {name} names a section, not a key",
                f"set one key, e.g. {ENV_PREFIX}{head}__{keys[0].upper()}",
            )
        return ConfigError(
            f"environment variable {name} names no config key",
            f"{_suggest(tail.lower(), keys)}valid keys in {head.lower()!r}: {', '.join(keys)}",
        )
    close = difflib.get_close_matches(rest, [n[len(ENV_PREFIX) :] for n in ENV_NAMES], n=1, cutoff=0.8)
    if close:
        return ConfigError(
            f"environment variable {name} names no config key",
            f"did you mean {ENV_PREFIX}{close[0]}? Keys are CROWDCOUNT_<SECTION>__<KEY>, e.g. "
            "CROWDCOUNT_DYNAMODB__TABLE_ID",
        )
    return None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config keys ``environ`` sets (``CROWDCOUNT_<SECTION>__<KEY>``). Other ``CROWDCOUNT_*`` variables
    are ignored (logged at debug level), unless they look like a misspelt key: :class:`ConfigError`."""
    overrides: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        path = ENV_NAMES.get(name.upper())
        if path is None:
            mistake = _env_mistake(name)
            if mistake is not None:
                raise mistake
            logger.debug("environment variable %s is not a config key: ignored", name)
            continue
        schema: Any = SCHEMA
        for part in path:
            schema = schema[part]
        try:
            value: Any = json.loads(raw, parse_constant=_no_json_constant)
        except ValueError:
            value = raw
        if schema is str or (isinstance(schema, Optional) and schema.kind is str and value is not None):
            value = raw
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return overrides


class Config:
    """A validated configuration, typed by section: ``config.worker.grace_period_seconds``,
    ``config.human_detection.detectors`` (the :class:`Settings` sections, frozen). By key too, as plain data:
    ``config["worker"]["grace_period_seconds"]`` or ``config.get("worker.grace_period_seconds")``."""

    def __init__(self, data: Mapping[str, Any], source: str = "defaults") -> None:
        #: the configuration as plain data (dicts and lists, as ``variables.json`` holds it)
        self.data = _check_section("", SCHEMA, _merge(DEFAULTS, data))
        self.source = source
        #: the configuration typed (limits checked)
        self.settings: Settings = Settings.from_data(self.data)
        settings = self.settings
        self.aws_region = settings.aws_region
        self.aws_endpoint_url = settings.aws_endpoint_url
        self.aws_queues = settings.aws_queues
        self.dynamodb = settings.dynamodb
        self.video_split = settings.video_split
        self.human_detection = settings.human_detection
        self.tracking = settings.tracking
        self.faces = settings.faces
        self.worker = settings.worker
        self.deploy = settings.deploy
        self.live = settings.live

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
        """The configuration as plain data (a copy)."""
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


def _no_json_constant(name: str) -> Any:
    """``parse_constant`` of :func:`json.loads`: NaN and Infinity are not JSON (and not settings)."""
    raise ValueError(f"{name} is not a JSON number")


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
        if file.is_dir():
            raise ConfigError(f"config file {str(file)!r} is a folder", "check --config / $CROWDCOUNT_CONFIG")
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist", "check --config / $CROWDCOUNT_CONFIG")
        try:
            data = json.loads(file.read_text(encoding="utf-8-sig"), parse_constant=_no_json_constant)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(file)!r} cannot be read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"config file {str(file)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        except ValueError as exc:  # NaN, Infinity: Python's json reads them, JSON has no such numbers
            raise ConfigError(f"config file {str(file)!r} is not valid JSON: {exc}", "give a finite number") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(file)!r} must hold a JSON object")
        source = str(file)
    data = _merge(data, _env_overrides(environ))
    if overrides:
        data = _merge(data, _drop_none(overrides))
    config = Config(data, source)
    logger.debug("configuration from %s", source)
    return config


def build_detectors(specs: Iterable[Sequence[Any]]) -> list[Any]:
    """Build detectors from ``[[name, {arguments}], ...]`` (``config.human_detection.detectors``, or a list of
    them as :func:`crowdcount.cli.analyze.detector_specs` makes)."""
    from crowdcount.detectors import build_detector

    return [build_detector(name, arguments) for name, arguments in specs]
