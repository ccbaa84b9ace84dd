"""What the worker needs from the configuration: :class:`WorkerSettings`, read and checked once."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crowdcount.aws.protection import MAX_MINUTES as MAX_PROTECTION_MINUTES
from crowdcount.config import Config
from crowdcount.errors import ConfigError

if TYPE_CHECKING:
    from crowdcount.analyzer.video import VideoInfo

#: SQS's ceiling on a message's visibility timeout.
MAX_VISIBILITY = 43200


@dataclass(frozen=True)
class WorkerSettings:
    """What the worker needs from the configuration (see :meth:`from_config`)."""

    queue: str
    dlq: str | None
    bucket: str
    table: str
    step: str = "human_detector"
    input_prefix: str = "videos/"
    result_prefix: str | None = None
    wait_time_seconds: int = 20
    visibility_timeout: int = 300
    heartbeat_seconds: int = 60
    grace_period_seconds: int = 90
    max_video_bytes: int = 5 * 1024**3
    idle_timeout_seconds: float | None = None
    max_jobs: int | None = None
    retry_delay_seconds: int = 10
    temp_dir: str | None = None
    #: On ECS: protect the task from scale-in while a job runs, renewed every half of this (0: never).
    scale_in_protection_minutes: int = 120
    #: Identifies the analyzer configuration: a video done under another one is recomputed.
    config_fingerprint: str = ""
    #: A running job saves its progress to S3 this often (0: never); the next worker resumes from it.
    checkpoint_seconds: int = 60
    #: A job running longer is stopped and recorded as a permanent error.
    max_job_seconds: int = 6 * 3600
    #: Videos with more pixels per frame (width x height) are refused before analysis.
    max_pixels: int = 4096 * 4096
    #: Videos longer than this (seconds, from the container) are refused before analysis.
    max_duration_seconds: int = 4 * 3600
    #: Free disk kept in ``temp_dir`` beyond the video itself; less stops the worker (not the job's fault).
    min_free_disk_bytes: int = 512 * 1024**2

    @classmethod
    def from_config(cls, config: Config) -> WorkerSettings:
        w = config["worker"]
        block = config["human_detection"]
        settings = cls(
            queue=config.get("aws_queues.human_detection"),
            dlq=config.get("aws_queues.human_detection_dlq") or None,
            bucket=config.get("video_split.output_bucket"),
            table=config.get("dynamodb.table_id"),
            step=block["result_step"],
            input_prefix=config.get("video_split.input_prefix"),
            result_prefix=block["result_prefix"],
            wait_time_seconds=w["wait_time_seconds"],
            visibility_timeout=w["visibility_timeout"],
            heartbeat_seconds=w["heartbeat_seconds"],
            grace_period_seconds=w["grace_period_seconds"],
            max_video_bytes=w["max_video_bytes"],
            idle_timeout_seconds=w["idle_timeout_seconds"],
            max_jobs=w["max_jobs"],
            retry_delay_seconds=w["retry_delay_seconds"],
            temp_dir=w["temp_dir"],
            scale_in_protection_minutes=w["scale_in_protection_minutes"],
            config_fingerprint=analysis_fingerprint(config),
            checkpoint_seconds=w["checkpoint_seconds"],
            max_job_seconds=w["max_job_seconds"],
            max_pixels=w["max_pixels"],
            max_duration_seconds=w["max_duration_seconds"],
            min_free_disk_bytes=w["min_free_disk_bytes"],
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """:class:`ConfigError` when the values cannot work together."""

        def bad(key: str, message: str) -> ConfigError:
            return ConfigError(f"config key 'worker.{key}' {message}")

        if not 0 <= self.wait_time_seconds <= 20:
            raise bad("wait_time_seconds", f"must be in [0, 20] (SQS long polling), got {self.wait_time_seconds}")
        if not 1 <= self.visibility_timeout <= MAX_VISIBILITY:
            raise bad("visibility_timeout", f"must be in [1, {MAX_VISIBILITY}], got {self.visibility_timeout}")
        if not 1 <= self.heartbeat_seconds <= self.visibility_timeout // 2:
            raise bad(
                "heartbeat_seconds",
                f"must be >= 1 and at most half of visibility_timeout ({self.visibility_timeout} // 2), so that a "
                f"failed extension is retried before the message comes back; got {self.heartbeat_seconds}",
            )
        if self.grace_period_seconds < 0:
            raise bad("grace_period_seconds", f"must be >= 0, got {self.grace_period_seconds}")
        if self.max_video_bytes < 1:
            raise bad("max_video_bytes", f"must be >= 1, got {self.max_video_bytes}")
        if not 0 <= self.scale_in_protection_minutes <= MAX_PROTECTION_MINUTES:
            raise bad(
                "scale_in_protection_minutes",
                f"must be in [0, {MAX_PROTECTION_MINUTES}] (0: off), got {self.scale_in_protection_minutes}",
            )
        for key in ("checkpoint_seconds", "min_free_disk_bytes"):
            if getattr(self, key) < 0:
                raise bad(key, f"must be >= 0, got {getattr(self, key)}")
        for key in ("max_job_seconds", "max_pixels", "max_duration_seconds"):
            if getattr(self, key) < 1:
                raise bad(key, f"must be >= 1, got {getattr(self, key)}")
        longest = MAX_VISIBILITY - self.visibility_timeout  # the last extension must end within 12 h of the receipt
        if self.max_job_seconds > longest:
            raise bad(
                "max_job_seconds",
                f"must be at most {MAX_VISIBILITY} - worker.visibility_timeout ({self.visibility_timeout}) = "
                f"{longest}: SQS keeps a message invisible at most 12 hours from its receipt, "
                f"got {self.max_job_seconds}",
            )
        if self.result_prefix == "":
            raise ConfigError(
                "config key 'human_detection.result_prefix' is empty",
                "use a folder such as 'results/', or null for results beside the videos",
            )
        if self.idle_timeout_seconds is not None and self.idle_timeout_seconds < 0:
            raise bad("idle_timeout_seconds", f"must be >= 0 or null, got {self.idle_timeout_seconds}")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise bad("max_jobs", f"must be >= 1 or null, got {self.max_jobs}")
        if not 0 <= self.retry_delay_seconds <= MAX_VISIBILITY:
            raise bad("retry_delay_seconds", f"must be in [0, {MAX_VISIBILITY}], got {self.retry_delay_seconds}")


def analysis_fingerprint(config: Config) -> str:
    """What decides a video's result besides the video: the analyzer block's detectors and sampling, the
    ``tracking`` block, the face gallery when one is set, and crowdcount's version (whose defaults and models
    fill in what the configuration leaves out). A video done under another fingerprint is analysed again."""
    from crowdcount import __version__

    block = config["human_detection"]
    analysis = {k: block[k] for k in ("detectors", "frame_ratio", "sample_fps", "count_smoothing_s", "max_batch_size")}
    analysis["tracking"] = config["tracking"]
    analysis["version"] = __version__
    if config["faces"]["gallery"]:  # identifying faces changes the result
        analysis["faces"] = config["faces"]
    return hashlib.sha256(json.dumps(analysis, sort_keys=True, default=str).encode()).hexdigest()[:16]


def over_limits(info: VideoInfo, max_pixels: int, max_duration_seconds: float) -> tuple[str, str] | None:
    """Why the worker refuses the video ``info`` (``worker.max_pixels``, ``worker.max_duration_seconds``): the
    setting and what the video is beside it (``"is 4096x4096 (...) pixels a frame), over worker.max_pixels
    (...)"``); ``None`` within the limits. The worker checks each video with it, ``submit`` before uploading."""
    pixels = info.width * info.height
    if pixels > max_pixels:
        return "max_pixels", (
            f"is {info.width}x{info.height} ({pixels} pixels a frame), over worker.max_pixels ({max_pixels})"
        )
    if info.duration_s > max_duration_seconds:
        return "max_duration_seconds", (
            f"lasts {round(info.duration_s, 1):g} s, over worker.max_duration_seconds ({max_duration_seconds})"
        )
    return None
