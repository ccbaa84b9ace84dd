"""Detectors by name, and the factory that builds them from ``(name, arguments)``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from crowdcount.detectors.base import Detector
from crowdcount.detectors.face import FaceDetector
from crowdcount.detectors.human import HumanDetector
from crowdcount.errors import DetectorError

#: Every detector, by registry name.
DETECTORS: dict[str, type[Detector]] = {
    "human": HumanDetector,
    "face": FaceDetector,
}

#: Other accepted names (the seed's configuration used class names).
ALIASES: dict[str, str] = {
    "HumanDetector": "human",
    "FaceDetector": "face",
    "person": "human",
}


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def resolve_name(name: str) -> str:
    """The registry name for ``name`` or an alias of it; :class:`DetectorError` listing valid names."""
    if name in DETECTORS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    lowered = {k.lower(): v for k, v in {**ALIASES, **{n: n for n in DETECTORS}}.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    valid = sorted(DETECTORS)
    raise DetectorError(
        f"unknown detector {name!r}",
        f"{_suggest(name, valid + list(ALIASES))}valid detectors: {', '.join(valid)}",
    )


def detector_parameters(name: str) -> dict[str, Any]:
    """The arguments a detector accepts, with their defaults."""
    cls = DETECTORS[resolve_name(name)]
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
    }


def build_detector(name: str, arguments: Mapping[str, Any] | None = None) -> Detector:
    """Build the detector registered as ``name`` (or an alias) with keyword ``arguments``.

    Raises :class:`DetectorError` for an unknown name, an unknown argument or a bad value.
    """
    key = resolve_name(name)
    arguments = dict(arguments or {})
    valid = detector_parameters(key)
    for arg in arguments:
        if arg not in valid:
            raise DetectorError(
                f"detector {key!r} has no argument {arg!r}",
                f"{_suggest(arg, list(valid))}valid arguments: {', '.join(valid)}",
            )
    try:
        return DETECTORS[key](**arguments)
    except ValueError as exc:
        raise DetectorError(f"detector {key!r}: {exc}") from None
