"""A cameras file: each live source with its own counting lines, zones and occupancy limits.

``crowdcount watch --cameras cameras.yaml`` (and ``stream consume --cameras``) read it::

    cameras:
      door:
        source: rtsp://user:secret@10.0.0.5/live      # a URL, a webcam number or a video file
        lines: ["in=0.5,0,0.5,1"]                      # as --line: pixels, or fractions of the frame
        zones: ["queue=0,0.5,0.4,0.5,0.4,1,0,1"]       # as --zone
        max_occupancy: {queue: 12}                     # as --max-occupancy (the dashboard's alerts)
      lobby:
        source: 0

JSON with the same shape works too (``.json``). A camera's lines and zones are its own; a ``--line`` or
``--zone`` given on the command line applies to every source besides. ``source`` is optional for ``stream
consume``, whose sources arrive from Kafka by name. Every mistake is one :class:`ConfigError` line naming the
file and the camera.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdcount.analyzer.counting import Line, Zone, parse_lines, parse_zones
from crowdcount.errors import ConfigError

#: A camera's name: what records, metrics and the dashboard call the source.
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEYS = ("source", "lines", "zones", "max_occupancy")


@dataclass(frozen=True)
class Camera:
    """One camera of a cameras file: its ``name``, its ``source`` (``None``: named only, e.g. a Kafka source)
    and its own ``lines``, ``zones`` and ``max_occupancy`` (zone name -> people)."""

    name: str
    source: str | None
    lines: tuple[Line, ...] = ()
    zones: tuple[Zone, ...] = ()
    max_occupancy: dict[str, int] = field(default_factory=dict)

    @property
    def argument(self) -> str:
        """The ``NAME=SOURCE`` argument ``watch`` takes for it."""
        return f"{self.name}={self.source}"


def _twice(path: Path, key: Any, lines: tuple[int, int] | None = None) -> ConfigError:
    where = f" (lines {lines[0]} and {lines[1]})" if lines else ""
    return ConfigError(f"cameras file {path}: {key!r} is given twice{where}", "give each camera its own name")


def _json_object(path: Path) -> Any:
    """``json.loads``'s ``object_pairs_hook``: a dict, :class:`ConfigError` for a key given twice (JSON keeps the
    last one silently)."""

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _twice(path, key)
            out[key] = value
        return out

    return build


def _yaml_loader(path: Path) -> Any:
    """A safe YAML loader refusing a key given twice in a mapping (PyYAML keeps the last one silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise _twice(path, key, (seen[key], line))
                if isinstance(key, (str, int, float, bool)):
                    seen[key] = line
            return super().construct_mapping(node, deep)

    return Loader


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"cameras file {str(path)!r} does not exist", "give the path of a YAML or JSON file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cameras file {str(path)!r} cannot be read: {exc}") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text, object_pairs_hook=_json_object(path))
        import yaml

        return yaml.load(text, Loader=_yaml_loader(path))  # a SafeLoader that refuses keys given twice
    except ConfigError:
        raise
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"cameras file {path}: not valid JSON: {exc}") from None
    except Exception as exc:  # yaml.YAMLError: its message names the line
        first = str(exc).strip().splitlines()
        raise ConfigError(f"cameras file {path}: not valid YAML: {' '.join(first[:3])}") from None


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where} must be a list of strings, got {value!r}", 'e.g. ["in=0.5,0,0.5,1"]')


def _camera(name: Any, spec: Any, where: str, need_source: bool) -> Camera:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{where}: camera name {name!r} is not a name", "use letters, digits, '_', '.', '-' (at most 64)"
        )
    where = f"{where}: camera {name!r}"
    if spec is None:
        spec = {}
    if isinstance(spec, (str, int)) and not isinstance(spec, bool):
        spec = {"source": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping of {', '.join(_KEYS)}, got {spec!r}")
    for key in spec:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{where}: unknown key {key!r} ({hint}valid keys: {', '.join(_KEYS)})")
    source = spec.get("source")
    if isinstance(source, bool) or not (source is None or isinstance(source, (str, int))):
        raise ConfigError(f"{where}: source must be a URL, a webcam number or a file, got {source!r}")
    if source is None and need_source:
        raise ConfigError(f"{where} has no source", "add source: rtsp://..., a webcam number or a video file")
    lines = parse_lines(_strings(spec.get("lines", []), f"{where}: lines"), f"{where}: line")
    zones = parse_zones(_strings(spec.get("zones", []), f"{where}: zones"), f"{where}: zone")
    limits = spec.get("max_occupancy") or {}
    if not isinstance(limits, Mapping) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in limits.values()
    ):
        raise ConfigError(f"{where}: max_occupancy must map zone names to people (whole numbers), got {limits!r}")
    unknown = sorted(set(limits) - {z.name for z in zones})
    if unknown:
        raise ConfigError(f"{where}: max_occupancy names no zone of this camera: {', '.join(map(str, unknown))}")
    return Camera(
        name,
        None if source is None else str(source),
        tuple(lines),
        tuple(zones),
        {str(k): v for k, v in limits.items()},
    )


def load_cameras(path: str | Path, need_source: bool = True) -> list[Camera]:
    """The cameras of a cameras file (see the module docstring), in file order."""
    path = Path(path)
    data = _read(path)
    cameras = data.get("cameras") if isinstance(data, Mapping) else None
    if not isinstance(cameras, Mapping) or not cameras:
        raise ConfigError(
            f"cameras file {path}: expected a 'cameras' mapping of names to cameras",
            "e.g. cameras: {door: {source: rtsp://cam/live, lines: ['in=0.5,0,0.5,1']}}",
        )
    return [_camera(name, spec, f"cameras file {path}", need_source) for name, spec in cameras.items()]
