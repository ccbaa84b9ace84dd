"""Redaction: a forgotten person's name taken out of result files already written.

A name appears in a result file (``analyze --identify``, the worker) as a face identity: the per-frame
``identities`` and ``people`` of the ``Face`` detections and the ``name`` of the ``faces`` section's sightings;
in an upload handler's answer as each face's ``identity``. Each such value equal to the name becomes
:data:`FORGOTTEN`; the sightings themselves (times, frames, similarity) stay, without a name. Nothing outside
those sections is touched (a video or file name that happens to equal the name is not a face identity).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdcount.errors import ConfigError
from crowdcount.faces.gallery import check_name

logger = logging.getLogger(__name__)

#: What a forgotten name becomes.
FORGOTTEN = "forgotten"
#: The keys whose values (or list items) are face identities.
NAME_KEYS = frozenset({"name", "identity", "identities", "person", "people", "nearest"})
#: The keys of the sections that hold face identities (the result file's ``faces`` section and each frame's
#: ``Face`` detections; the upload handler's ``faces`` list).
FACE_KEYS = frozenset({"faces", "Face"})
#: The keys, within those sections, that describe how identities were made (not identities): left alone.
DESCRIPTION_KEYS = frozenset({"embedder", "gallery"})


@dataclass
class Redaction:
    """What a redaction changed: result files read, rewritten, and names replaced."""

    location: str
    scanned: int = 0
    changed: list[str] = field(default_factory=list)
    replaced: int = 0
    #: Files that may still hold the name: unreadable, not writable, or mentioning it without being valid JSON.
    left: list[str] = field(default_factory=list)

    def add(self, where: str, count: int) -> None:
        self.scanned += 1
        if count:
            self.changed.append(where)
            self.replaced += count


def redact_document(document: Any, name: str, inside: bool = False, section: bool = False) -> int:
    """Replace ``name`` by :data:`FORGOTTEN` wherever it is a face identity in ``document`` (in place): a value
    of :data:`NAME_KEYS` within a ``faces`` section or a ``Face`` detection entry, but the section's own
    ``name`` and its :data:`DESCRIPTION_KEYS` (``section``: ``document`` is such a section). Returns how many
    values were replaced."""
    count = 0
    if isinstance(document, dict):
        for key, value in document.items():
            if (inside and key in DESCRIPTION_KEYS) or (section and key == "name"):
                continue  # the embedder, the gallery, the section's name ("faces"): not a person's name
            within = inside or key in FACE_KEYS
            if within and key in NAME_KEYS and value == name:
                document[key] = FORGOTTEN
                count += 1
                continue
            if within and key in NAME_KEYS and isinstance(value, list) and name in value:
                count += value.count(name)
                document[key] = value = [FORGOTTEN if v == name else v for v in value]
            count += redact_document(value, name, within, key in FACE_KEYS and isinstance(value, dict))
    elif isinstance(document, list):
        count += sum(redact_document(v, name, inside) for v in document if isinstance(v, (dict, list)))
    return count


def mentions(text: str, name: str) -> bool:
    """Whether a JSON text may hold ``name``: as crowdcount writes it (non-ASCII characters escaped, ``\\u00e9``)
    or as other tools do (the characters themselves)."""
    return any(json.dumps(name, ensure_ascii=escaped)[1:-1] in text for escaped in (True, False))


def redact_text(text: str, name: str) -> tuple[str | None, int]:
    """A JSON file's text with ``name`` redacted: ``(new text, replacements)``, ``(None, 0)`` when unchanged or
    not JSON. The layout is kept: compact stays compact (result files), indented stays indented, and non-ASCII
    characters stay escaped, or not, as they were."""
    if not mentions(text, name):  # absent, nothing to parse
        return None, 0
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return None, 0
    count = redact_document(document, name)
    if not count:
        return None, 0
    escaped = text.isascii()
    if "\n" in text.strip():
        return json.dumps(document, indent=2, ensure_ascii=escaped) + ("\n" if text.endswith("\n") else ""), count
    return json.dumps(document, separators=(",", ":"), ensure_ascii=escaped), count


def json_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders replaced by the ``*.json`` files in them (recursively), sorted."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.json") if p.is_file() and not p.is_symlink()))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"--results {str(raw)!r}: no such file or folder", "give a result file or a folder")
    return found


def redact_files(paths: Iterable[str | Path], name: str, check: bool = True) -> Redaction:
    """Redact ``name`` from the JSON result files at ``paths`` (files, or folders searched recursively), each
    rewritten atomically in place (no other file is written). ``check=False``: ``name`` is taken as it is (a
    name just forgotten from a gallery, maybe enrolled before names were checked)."""
    if check or not name:
        name = check_name(name)
    paths = list(paths)
    report = Redaction(", ".join(str(p) for p in paths))
    for path in json_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("%s skipped: %s", path, exc)
            report.left.append(str(path))
            continue
        new, count = redact_text(text, name)
        if new is not None:
            try:
                _replace(path, new)
            except OSError as exc:  # a read-only folder, a full disk: the file is as it was, and still names them
                logger.warning("%s cannot be rewritten: %s", path, exc)
                report.left.append(str(path))
                count = 0
        elif mentions(text, name) and not _is_json(text):  # named, yet nothing could be redacted
            report.left.append(str(path))
        report.add(str(path), count)
    return report


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
