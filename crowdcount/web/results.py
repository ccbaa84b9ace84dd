"""The finished side of the dashboard: result files from folders, S3 prefixes and the worker's job table.

:class:`ResultsCatalog` lists result documents (``crowdcount analyze`` / the worker's JSON files) by an id the
page uses in its URLs (``/api/results/ID``). Ids name entries of the catalog, never paths: a request can only
reach a file that a scan of the folders given found, and a scan follows no link out of its folder. The job
table adds the jobs that have no result yet (running, failed), and the state of each job to its result.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdcount.analyzer.plot import count_label, peak
from crowdcount.analyzer.result import csv_rows, frame_series

logger = logging.getLogger(__name__)

#: Points at most in a plot's series (longer videos are thinned: each point the largest of its stretch).
MAX_POINTS = 1500


@dataclass
class Entry:
    """One video of the catalog: its ``row`` in the table and how to load its document (None: no result yet)."""

    id: str
    row: dict[str, Any]
    load: Callable[[], dict[str, Any]] | None = None
    location: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def is_result(document: Any) -> bool:
    """A crowdcount result document (not any JSON file)."""
    return isinstance(document, dict) and isinstance(document.get("frames"), list) and "video" in document


def _category(document: dict[str, Any]) -> str | None:
    categories = [d.get("category") for d in document.get("detectors", []) if isinstance(d, dict)]
    categories = [c for c in categories if c] or list(document.get("summary", {}))
    if not categories:
        return None
    return "Human" if "Human" in categories else categories[0]


def summary_row(document: dict[str, Any], status: str = "done") -> dict[str, Any]:
    """The table row of a result document: video, duration, max / mean count, unique people, crossings."""
    video = document.get("video") or {}
    category = _category(document)
    summary = (document.get("summary") or {}).get(category or "", {})
    tracking = document.get("tracking") or {}
    counting = document.get("counting") or {}
    lines = counting.get("lines") or []
    fps = document.get("fps") or video.get("fps") or 0
    duration = video.get("duration_s")
    if duration is None and fps:
        duration = round((video.get("frames_decoded") or video.get("frame_count") or 0) / fps, 3)
    return {
        "video": str(video.get("name", "")),
        "duration_s": duration,
        "category": category,
        "max_count": summary.get("max_count"),
        "mean_count": summary.get("mean_count"),
        "unique_people": tracking.get("unique_people"),
        "crossings": sum(int(line.get("in", 0)) + int(line.get("out", 0)) for line in lines) if lines else None,
        "status": status,
    }


def _row_of(document: dict[str, Any], where: str, status: str = "done") -> dict[str, Any] | None:
    """:func:`summary_row`, or None (logged) for a file shaped almost like a result (its video a string, its
    summary a list...): it is skipped, never the reason its folder cannot be listed."""
    try:
        return summary_row(document, status)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        logger.info("%s is no result file crowdcount wrote (%s: %s): skipped", where, type(exc).__name__, exc)
        return None


def _thin(values: list[Any], step: int) -> list[Any]:
    if step <= 1:
        return list(values)
    return [max(values[i : i + step]) for i in range(0, len(values), step)]


def _peak(document: dict[str, Any], category: str) -> dict[str, Any] | None:
    found = peak(document, category)
    return None if found is None else {"count": found[0], "t": found[1]}


def detail(entry: Entry, document: dict[str, Any] | None) -> dict[str, Any]:
    """``GET /api/results/ID``: the row, and with a document: the plot's series (seconds, count per category,
    tracked people, people per zone, crossings so far per line), the lines' crossings, the zones and the
    people (first and last seen)."""
    out: dict[str, Any] = {"id": entry.id, **entry.row, **entry.extra}
    if document is None:
        return out
    frames = document.get("frames") or []
    step = max(1, -(-len(frames) // MAX_POINTS))
    categories = [d["category"] for d in document.get("detectors", []) if isinstance(d, dict) and "category" in d]
    series = frame_series(document)
    counts = {
        c: _thin([f.get(c, {}).get("count", len(f.get(c, {}).get("scores", []))) for f in frames], step)
        for c in categories
    }
    out["series"] = {
        "t": [round(f.get("frame_timestamp", 0.0) / 1000.0, 3) for f in frames[::step]],
        "counts": counts,
        "labels": {c: count_label(document, c) for c in categories},
        "peaks": {c: _peak(document, c) for c in categories},
        "tracked": _thin(series["occupancy"], step) if "occupancy" in series else None,
        "zones": {k.removeprefix("zone:"): _thin(v, step) for k, v in series.items() if k.startswith("zone:")},
        "lines": {
            k: _thin(v, step) for k, v in series.items() if k.endswith((":in", ":out")) and not k.startswith("zone:")
        },
    }
    counting = document.get("counting") or {}
    out["lines"] = [
        {
            "name": line.get("name"),
            "in": line.get("in", 0),
            "out": line.get("out", 0),
            "crossings": (line.get("crossings") or [])[:500],
        }
        for line in counting.get("lines") or []
    ]
    out["zones"] = [
        {k: zone.get(k) for k in ("name", "visitors", "max_occupancy", "mean_occupancy", "mean_dwell_s", "max_dwell_s")}
        for zone in counting.get("zones") or []
    ]
    people = (document.get("tracking") or {}).get("people") or []
    out["people"] = [{k: p.get(k) for k in ("track_id", "first_s", "last_s", "present_s")} for p in people[:2000]]
    return out


def to_csv(document: dict[str, Any]) -> str:
    """The per-frame counts CSV of ``crowdcount analyze --csv``."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(csv_rows(document))
    return buffer.getvalue()


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; None when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


class ResultsCatalog:
    """The finished videos the dashboard lists (see the module docstring).

    Args:
        roots: result files or folders (searched recursively for ``.json`` result files) and ``s3://BUCKET/PREFIX``.
        s3: a boto3 S3 client (for ``s3://`` roots and the job table's result files).
        dynamodb: a boto3 DynamoDB client and ``table``: the worker's job table (optional).
        step: the step of the job document whose state and result file are shown (``human_detection.result_step``).
        rescan_s: how long a listing is reused before the folders, bucket and table are read again.
    """

    def __init__(
        self,
        roots: Sequence[str] = (),
        s3: Any | None = None,
        dynamodb: Any | None = None,
        table: str | None = None,
        step: str = "human_detector",
        rescan_s: float = 10.0,
    ) -> None:
        self.roots = list(roots)
        self.s3 = s3
        self.dynamodb = dynamodb
        self.table = table
        self.step = step
        self.rescan_s = rescan_s
        self._entries: dict[str, Entry] = {}
        self._files: dict[Path, tuple[float, int, dict[str, Any] | None]] = {}
        self._objects: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        self._scanned = -float("inf")
        self._lock = threading.Lock()
        #: what the last listing could not read (after the first listing, each is logged once as a warning)
        self.errors: list[str] = []
        #: the roots the last listing could not read
        self.failed_roots: list[str] = []

    # -- listing --------------------------------------------------------------------------------------
    def entries(self, refresh: bool = False) -> dict[str, Entry]:
        """Every video, by id (read again when older than ``rescan_s``)."""
        with self._lock:
            if refresh or time.monotonic() - self._scanned >= self.rescan_s:
                self._entries = self._scan()
                self._scanned = time.monotonic()
            return self._entries

    def rows(self) -> list[dict[str, Any]]:
        """``GET /api/results``: the table's rows."""
        return [{"id": e.id, **e.row} for e in self.entries().values()]

    def get(self, entry_id: str) -> Entry | None:
        return self.entries().get(entry_id)

    def document(self, entry: Entry) -> dict[str, Any] | None:
        return entry.load() if entry.load is not None else None

    def _scan(self) -> dict[str, Entry]:
        found: list[Entry] = []
        errors = []
        self.failed_roots = []
        for root in self.roots:
            try:
                found += self._scan_s3(root) if root.startswith("s3://") else self._scan_folder(Path(root))
            except Exception as exc:  # one unreadable root must not hide the others
                errors.append(f"results in {root} cannot be listed: {exc}")
                self.failed_roots.append(root)
        if self.dynamodb is not None and self.table:
            try:
                found = self._merge_jobs(found, self._scan_jobs())
            except Exception as exc:
                errors.append(f"job table {self.table} cannot be read: {type(exc).__name__}")
        if self._scanned > -float("inf"):  # the first listing's errors are the caller's to report (see errors)
            for error in errors:  # once each, not at every rescan, until it clears
                if error not in self.errors:
                    logger.warning("%s", error)
        self.errors = errors
        out: dict[str, Entry] = {}
        for entry in found:
            base, n = entry.id, 2
            while entry.id in out:
                entry.id = f"{base}~{n}"
                n += 1
            out[entry.id] = entry
        return out

    def _scan_folder(self, root: Path) -> list[Entry]:
        if not root.exists():
            raise FileNotFoundError("no such file or folder")
        top = root.resolve()
        if top.is_file():
            files, base = [top], top.parent
        else:
            files, base = sorted(p for p in top.rglob("*.json") if p.is_file()), top
        entries = []
        for path in files:
            real = path.resolve()
            if real != path and not real.is_relative_to(base):  # a link out of the folder given: not served
                logger.info("%s links outside %s: skipped", path, base)
                continue
            document = self._cached(real)
            if document is None:
                continue
            row = _row_of(document, str(path))
            if row is None:
                continue
            rel = path.relative_to(base).with_suffix("").as_posix()
            entries.append(Entry(rel, row, functools.partial(read_json, real), str(path)))
        return entries

    def _cached(self, path: Path) -> dict[str, Any] | None:
        """The summary-relevant part of a result file, read again only when it changed."""
        try:
            stat = path.stat()
        except OSError:
            return None
        cached = self._files.get(path)
        if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
            return cached[2]
        document = read_json(path)
        light = None
        if is_result(document):
            light = {k: v for k, v in document.items() if k != "frames"}
            light["frames"] = []
        self._files[path] = (stat.st_mtime, stat.st_size, light)
        return light

    def _scan_s3(self, uri: str) -> list[Entry]:
        from crowdcount.aws.results import parse_s3_uri

        if self.s3 is None:
            raise ValueError("no S3 client")
        bucket, prefix = parse_s3_uri(uri)
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = sorted(
            (o["Key"], o.get("ETag", ""), o.get("Size", 0))
            for page in pages
            for o in page.get("Contents", [])
            if o["Key"].endswith(".json")
        )
        entries = []
        for key, etag, size in objects:
            document = self._s3_light(bucket, key, (etag, size))
            row = _row_of(document, f"s3://{bucket}/{key}") if document is not None else None
            if row is None:
                continue
            rel = key[len(prefix) :].lstrip("/") if key.startswith(prefix) else key
            entries.append(
                Entry(
                    rel.removesuffix(".json") or key,
                    row,
                    functools.partial(self._s3_json, bucket, key),
                    f"s3://{bucket}/{key}",
                )
            )
        return entries

    def _s3_light(self, bucket: str, key: str, version: tuple[Any, ...]) -> dict[str, Any] | None:
        """An S3 result file without its frames (for its row), read again only when ``version`` changed."""
        cached = self._objects.get((bucket, key))
        if cached is not None and cached[0] == version:
            return cached[1]
        document = self._s3_json(bucket, key)
        light = {k: v for k, v in document.items() if k != "frames"} if is_result(document) else None
        self._objects[(bucket, key)] = (version, light)
        return light

    def _s3_json(self, bucket: str, key: str) -> Any:
        """The JSON document of an S3 object; None when it cannot be parsed, or is gone since it was listed."""
        from crowdcount.aws.errors import is_not_found

        assert self.s3 is not None  # only S3 sources are read here
        try:
            return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def _scan_jobs(self) -> list[Entry]:
        from crowdcount.aws.status import deserialize_item

        assert self.dynamodb is not None  # only with a job table
        entries = []
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        for page in pages:
            for raw in page.get("Items", []):
                item = deserialize_item(raw)
                steps = [
                    s for s in item.get("process_steps") or [] if isinstance(s, dict) and s.get("step") == self.step
                ]
                step = steps[-1] if steps else {}
                video = item.get("video") or {}
                name = Path(str(video.get("key") or item.get("VideoId"))).name
                result = step.get("result_file")
                if not (isinstance(result, dict) and result.get("bucket") and result.get("key")):
                    result = {}  # none yet, or a row written by hand without one: listed as its job
                location = f"s3://{result['bucket']}/{result['key']}" if result else ""
                row = {
                    "video": name,
                    "duration_s": None,
                    "category": None,
                    "max_count": None,
                    "mean_count": None,
                    "unique_people": None,
                    "crossings": None,
                    "status": step.get("state") or "queued",
                }
                load = None
                if location and self.s3 is not None and step.get("state") == "done":
                    load = lambda b=result["bucket"], k=result["key"]: self._s3_json(b, k)  # noqa: E731
                    version = (step.get("run_id"), step.get("updated_at"), step.get("rev"))
                    document = self._s3_light(result["bucket"], result["key"], version)
                    done_row = _row_of(document, location, str(row["status"])) if document is not None else None
                    if done_row is not None:
                        row = done_row
                    else:
                        load = None
                extra = {
                    "job": {
                        "video_id": item.get("VideoId"),
                        "state": row["status"],
                        "updated_at": step.get("updated_at"),
                        "reason": step.get("reason"),
                    }
                }
                entries.append(Entry(f"job/{item.get('VideoId')}", row, load, location, extra))
        return entries

    @staticmethod
    def _merge_jobs(found: list[Entry], jobs: list[Entry]) -> list[Entry]:
        """A job whose result file is already listed (from its S3 prefix) gives that entry its state."""
        by_location = {e.location: e for e in found if e.location.startswith("s3://")}
        out = list(found)
        for job in jobs:
            twin = by_location.get(job.location) if job.location else None
            if twin is not None:
                twin.row["status"] = job.row["status"]
                twin.extra.update(job.extra)
            else:
                out.append(job)
        return out
