"""Face galleries: who can be recognised. Each person has a name, face embeddings and a small record of details.

A gallery holds embeddings (vectors that cannot be turned back into a photo) and the details given; enrolment
photos only when asked (``keep_photos``). Vectors of different embedders cannot be compared, so a gallery
records its embedder and refuses vectors of another one.

:class:`LocalGallery` is a JSON file (the default); ``crowdcount.aws.gallery.DynamoDBGallery`` a DynamoDB
table. Both implement :class:`Gallery`. :func:`open_gallery` opens one by its location: a path, or
``SCHEME://...`` for a scheme registered with :func:`register_scheme` (``crowdcount.aws.gallery`` registers
``dynamodb://`` when imported), so that this package knows no cloud.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.errors import GalleryError

logger = logging.getLogger(__name__)

FORMAT = "crowdcount-face-gallery"
VERSION = 1
UNKNOWN = "unknown"


def now_iso() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: The longest name accepted (a name is also a folder name for kept photos).
MAX_NAME_LENGTH = 100
NAME_HINT = "a name is a label: printable characters without / or \\, not . or .., at most 100 characters"


def check_name(name: str) -> str:
    """A person's name, stripped: a label, never a path.

    :class:`GalleryError` (exit code 2) for an empty name, ``.`` or ``..``, a name holding a path separator or
    a control (non-printable) character, a name longer than :data:`MAX_NAME_LENGTH`, and ``unknown`` /
    ``unknown-N`` (the answers for faces that are not in the gallery)."""
    if not isinstance(name, str):
        raise GalleryError(f"invalid name {name!r}: not a string", NAME_HINT)
    cleaned = name.strip()
    if not cleaned:
        raise GalleryError(f"invalid name {name!r}: empty", NAME_HINT)
    if cleaned in (".", ".."):
        raise GalleryError(f"invalid name {name!r}: . and .. are folders, not names", NAME_HINT)
    separators = {"/", "\\", os.sep, *([os.altsep] if os.altsep else [])}
    if any(sep in cleaned for sep in separators):
        raise GalleryError(f"invalid name {name!r}: holds a path separator", NAME_HINT)
    if any("\udc80" <= c <= "\udcff" for c in cleaned):  # bytes the terminal's encoding could not decode
        raise GalleryError(f"invalid name {name!r}: not valid text in the terminal's encoding (UTF-8?)", NAME_HINT)
    if not cleaned.isprintable():
        raise GalleryError(f"invalid name {name!r}: holds a control character", NAME_HINT)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise GalleryError(f"invalid name {cleaned[:20]!r}...: {len(cleaned)} characters", NAME_HINT)
    if cleaned.lower() == UNKNOWN or cleaned.lower().startswith(UNKNOWN + "-"):
        raise GalleryError(f"the name {name!r} is reserved for faces that are not in the gallery")
    return cleaned


@dataclass
class Person:
    """One enrolled person."""

    name: str
    #: ``(k, dim)`` float32 unit vectors, one per enrolment photo.
    embeddings: np.ndarray
    details: dict[str, str] = field(default_factory=dict)
    #: Names (not paths) of the enrolment photos.
    sources: list[str] = field(default_factory=list)
    #: Where copies of the enrolment photos are kept (only with ``keep_photos``).
    photos: list[str] = field(default_factory=list)
    enrolled_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "details": dict(self.details),
            "embeddings": np.round(self.embeddings.astype(np.float64), 6).tolist(),
            "sources": list(self.sources),
            "photos": list(self.photos),
            "enrolled_at": self.enrolled_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], dim: int) -> Person:
        embeddings = np.asarray(data["embeddings"], np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != dim or not len(embeddings):
            raise ValueError(f"{data.get('name')!r} has embeddings of shape {embeddings.shape}, expected (k, {dim})")
        if not np.all(np.isfinite(embeddings)):
            raise ValueError(f"{data.get('name')!r} has non-finite embeddings")
        details = data.get("details", {})
        if not isinstance(details, Mapping):
            raise ValueError(f"{data.get('name')!r} has details that are not an object")
        if not isinstance(data["name"], str):
            raise ValueError(f"a person's name is not text: {data['name']!r}")
        listed = {key: data.get(key, []) for key in ("sources", "photos")}
        for key, values in listed.items():  # text would be read as one entry per character
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{data['name']!r} has {key} that are not a list of text")
        return cls(
            name=data["name"],
            embeddings=embeddings,
            details={str(k): str(v) for k, v in details.items()},
            sources=list(listed["sources"]),
            photos=list(listed["photos"]),
            enrolled_at=str(data.get("enrolled_at", "")),
            updated_at=str(data.get("updated_at", "")),
        )


@dataclass(frozen=True)
class Matches:
    """The best gallery match of each face: name (``unknown`` below the threshold) and similarity."""

    names: np.ndarray
    similarities: np.ndarray
    #: The best-matching person whatever the threshold (``""`` for an empty gallery).
    nearest: np.ndarray


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`Gallery.forget` erased."""

    name: str
    #: Whether a record (embeddings, details, photo names) was deleted (not when removed before).
    record: bool
    #: Kept photos deleted.
    photos: int
    #: Photos the record listed outside the gallery's photo folder: left in place (delete them yourself).
    left: tuple[str, ...] = ()


class GalleryIndex:
    """Every vector of a set of people in one matrix, for matching many faces at once."""

    def __init__(self, people: Iterable[Person], dim: int) -> None:
        people = list(people)
        self.dim = dim
        self.names = [p.name for p in people]
        self.matrix = np.concatenate([p.embeddings for p in people]) if people else np.zeros((0, dim), np.float32)
        owners = [np.full(len(p.embeddings), i) for i, p in enumerate(people)]
        self.owner = np.asarray(np.concatenate(owners) if owners else [], np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def match(self, vectors: np.ndarray, threshold: float) -> Matches:
        """For each unit vector, the person whose closest vector is most similar (cosine), if at least
        ``threshold``; otherwise ``unknown``."""
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        n = len(vectors)
        if not n or not len(self.names):
            return Matches(
                np.array([UNKNOWN] * n, dtype=object), np.zeros(n, np.float32), np.array([""] * n, dtype=object)
            )
        sims = vectors @ self.matrix.T
        per_person = np.full((n, len(self.names)), -np.inf, np.float32)
        for i in range(len(self.names)):
            per_person[:, i] = sims[:, self.owner == i].max(axis=1)
        best = per_person.argmax(axis=1)
        best_sim = per_person[np.arange(n), best]
        nearest = np.array([self.names[i] for i in best], dtype=object)
        names = np.where(best_sim >= threshold, nearest, UNKNOWN).astype(object)
        return Matches(names, best_sim.astype(np.float32), nearest)


class Gallery(ABC):
    """A store of enrolled people, tied to one embedder (name and vector length)."""

    #: Where the gallery lives (a path, ``dynamodb://table``), for messages and result files.
    location: str = ""

    @abstractmethod
    def embedder(self) -> dict[str, Any] | None:
        """``{"name", "dim"}`` of the embedder the gallery's vectors come from (``None`` while empty)."""

    @abstractmethod
    def people(self) -> list[Person]:
        """Everyone enrolled, sorted by name."""

    @abstractmethod
    def _put(self, person: Person, embedder: Mapping[str, Any]) -> None:
        """Store (create or replace) one person."""

    @abstractmethod
    def _delete(self, name: str) -> None:
        """Delete one person's record."""

    def get(self, name: str) -> Person | None:
        """One person, or ``None``."""
        return next((p for p in self.people() if p.name == name), None)

    def names(self) -> list[str]:
        return [p.name for p in self.people()]

    def check_embedder(self, embedder: Mapping[str, Any]) -> None:
        """:class:`GalleryError` when the gallery's vectors come from another embedder than ``embedder``."""
        mine = self.embedder()
        if mine and (mine.get("name") != embedder.get("name") or int(mine.get("dim", 0)) != int(embedder["dim"])):
            raise GalleryError(
                f"gallery {self.location} holds {mine.get('name')} embeddings ({mine.get('dim')}-d), "
                f"not {embedder.get('name')} ({embedder.get('dim')}-d)",
                f"set faces.embedder to {mine.get('name')} (--embedder for `faces` commands, "
                f"CROWDCOUNT_FACES__EMBEDDER={mine.get('name')}), or enrol the people again into another gallery",
            )

    def enroll(
        self,
        name: str,
        embeddings: np.ndarray,
        embedder: Mapping[str, Any],
        details: Mapping[str, str] | None = None,
        sources: Iterable[str] = (),
        photos: Iterable[str] = (),
        update: bool = False,
    ) -> Person:
        """Add a person, or with ``update`` add photos and details to one already enrolled.

        :class:`GalleryError` for a name already enrolled without ``update``, or another embedder."""
        name = check_name(name)
        self.check_embedder(embedder)
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, int(embedder["dim"]))
        existing = self.get(name)
        if existing is not None and not update:
            raise GalleryError(
                f"{name!r} is already enrolled in {self.location}",
                "add --update to add these photos and details to that person, or choose another name",
            )
        if existing is None:
            person = Person(name, embeddings, dict(details or {}), list(sources), list(photos))
        else:
            person = existing
            person.embeddings = np.concatenate([existing.embeddings, embeddings])
            person.details.update(details or {})
            person.sources += list(sources)
            person.photos += list(photos)
            person.updated_at = now_iso()
        self._put(person, embedder)
        return person

    def remove(self, name: str) -> Person:
        """Take a person out of the gallery (embeddings and details). Kept photos stay: see :meth:`forget`."""
        person = self._require(check_name(name))
        self._delete(person.name)
        return person

    def forget(self, name: str) -> Forgotten:
        """Erase every trace of a person the gallery holds: the record (embeddings, details, photo names) and
        every kept photo, also photos left behind by an earlier :meth:`remove`.

        Only the gallery's own storage is touched: a photo its record lists outside the gallery's photo folder
        (a tampered file) is left in place and reported in :attr:`Forgotten.left`. A record whose name is not
        a valid label (enrolled before names were checked) is erased too, by its exact name, and no path is
        built from that name. :class:`GalleryError` for an invalid name that is not enrolled, and when nothing
        of that name is stored."""
        try:
            name = check_name(name)
        except GalleryError:
            legacy = next((p for p in self.people() if p.name == name), None)
            if legacy is None:
                raise
            self._delete(legacy.name)
            deleted, left = self._delete_listed(legacy.photos)
            return Forgotten(legacy.name, True, deleted, tuple(left))
        person = self.get(name)
        if person is not None:
            self._delete(person.name)
        deleted, left = self._delete_listed(person.photos if person is not None else [])
        deleted += self._delete_photo_dir(name)
        if person is None and not deleted:
            raise self._not_enrolled(name)
        return Forgotten(name, person is not None, deleted, tuple(left))

    def _delete_listed(self, listed: list[str]) -> tuple[int, list[str]]:
        """Delete the kept photos a record lists: (how many were deleted, those left because they lie outside the
        gallery's storage). Galleries that keep no photos delete none."""
        return 0, list(listed)

    def _delete_photo_dir(self, name: str) -> int:
        """Delete the folder of kept photos of ``name`` (a valid label); how many files it held."""
        return 0

    def _not_enrolled(self, name: str) -> GalleryError:
        names = self.names()
        return GalleryError(
            f"{name!r} is not enrolled in {self.location}",
            f"enrolled: {', '.join(names)}" if names else "the gallery is empty",
        )

    def _require(self, name: str) -> Person:
        person = self.get(name)
        if person is None:
            raise self._not_enrolled(name)
        return person

    @abstractmethod
    def version(self) -> Hashable:
        """A token that changes whenever the stored gallery changes (in this process or another: an
        enrolment, a removal, a forgotten person)."""

    @abstractmethod
    def refresh(self) -> bool:
        """Re-read the stored gallery if it changed since it was last read (a cheap :meth:`version` check
        first); ``True`` when it was re-read."""

    def index(self) -> GalleryIndex:
        """Everyone's vectors, ready for :meth:`GalleryIndex.match`."""
        info = self.embedder()
        people = self.people()
        dim = int(info["dim"]) if info else (people[0].embeddings.shape[1] if people else 0)
        return GalleryIndex(people, dim)


class LocalGallery(Gallery):
    """A gallery in one JSON file (written atomically; the file is created on the first enrolment).

    Photos kept with ``keep_photos`` go to the folder ``<file>.photos/<name>/`` beside it, and nothing is ever
    written or deleted outside that folder and the file. :meth:`refresh` notices a change by another process
    from the file's identity, size and modification time (every write replaces the file).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._stamp = self.version()
        self._data = self._read()

    def version(self) -> Hashable:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise GalleryError(f"gallery {self.location} cannot be read: {exc}") from None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def refresh(self) -> bool:
        stamp = self.version()
        if stamp == self._stamp:
            return False
        self._data = self._read()
        self._stamp = stamp
        logger.info("gallery %s changed: re-read (%d people)", self.location, len(self._data["people"]))
        return True

    @property
    def photo_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".photos")

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"format": FORMAT, "version": VERSION, "embedder": None, "people": []}
        hint = "restore it from a backup, or enrol the people again into a new gallery file"
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise GalleryError(f"gallery {self.location} cannot be read: {exc}", hint) from None
        except json.JSONDecodeError as exc:
            raise GalleryError(
                f"gallery {self.location} is corrupt: not valid JSON ({exc.msg} at line {exc.lineno})", hint
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise GalleryError(f"gallery {self.location} is not a crowdcount face gallery", hint)
        if data.get("version") != VERSION:
            raise GalleryError(f"gallery {self.location} has version {data.get('version')!r}, expected {VERSION}")
        embedder = data.get("embedder")
        try:
            dim = int(embedder["dim"]) if embedder else 0
            people = [Person.from_dict(p, dim) for p in data.get("people", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"gallery {self.location} is corrupt: {exc}", hint) from None
        names = [p.name for p in people]
        if len(set(names)) != len(names):
            raise GalleryError(f"gallery {self.location} is corrupt: a name appears twice", hint)
        data["people"] = people
        return data

    def embedder(self) -> dict[str, Any] | None:
        return self._data["embedder"]

    def people(self) -> list[Person]:
        return sorted(self._data["people"], key=lambda p: p.name)

    def _put(self, person: Person, embedder: Mapping[str, Any]) -> None:
        self._data["embedder"] = {"name": embedder["name"], "dim": int(embedder["dim"])}
        self._data["people"] = [p for p in self._data["people"] if p.name != person.name] + [person]
        self._write()

    def _delete(self, name: str) -> None:
        self._data["people"] = [p for p in self._data["people"] if p.name != name]
        self._write()

    def person_dir(self, name: str) -> Path:
        """The folder of a person's kept photos: a direct child of :attr:`photo_dir`, whatever the name."""
        folder = self.photo_dir / check_name(name)
        if folder.parent != self.photo_dir:  # check_name refuses separators, . and ..: cannot happen
            raise GalleryError(f"invalid name {name!r}", NAME_HINT)
        return folder

    def _inside(self, path: Path) -> bool:
        """Whether ``path`` (links resolved) lies inside the photo folder (itself resolved)."""
        try:
            path.resolve().relative_to(self.photo_dir.resolve())
        except (ValueError, OSError):
            return False
        return True

    def _delete_listed(self, listed: list[str]) -> tuple[int, list[str]]:
        deleted, left = 0, []
        for photo in map(Path, listed):
            if not self._inside(photo.parent):
                if photo.exists() or photo.is_symlink():
                    logger.info("not deleting %s: outside the photo folder of gallery %s", photo, self.location)
                    left.append(str(photo))
                continue
            if photo.is_file() and not photo.is_symlink():  # a link is unlinked with its folder, never followed
                photo.unlink()
                deleted += 1
        return deleted, left

    def _delete_photo_dir(self, name: str) -> int:
        folder = self.person_dir(name)
        if folder.is_symlink():  # never follow it: delete the link only
            folder.unlink()
            return 0
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        shutil.rmtree(folder)
        return count

    def keep_photo(self, name: str, photo: Path) -> str:
        """Copy an enrolment photo into the gallery's photo folder; returns where it went."""
        folder = self.person_dir(name)
        if folder.is_symlink() or not self._inside(folder.parent):
            raise GalleryError(
                f"the photo folder {folder} is a link or lies outside {self.photo_dir}", "remove the link"
            )
        target = folder / Path(photo).name
        stem, n = target.stem, 1
        while target.exists() or target.is_symlink():
            target = folder / f"{stem}-{n}{target.suffix}"
            n += 1
        try:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
        except OSError as exc:  # a read-only folder, a full disk
            raise GalleryError(
                f"the photo folder {folder} cannot be written: {exc.strerror or exc}",
                "check the folder's permissions and free space, or leave out --keep-photos",
            ) from None
        return str(target)

    def _write(self) -> None:
        document = {
            "format": FORMAT,
            "version": VERSION,
            "embedder": self._data["embedder"],
            "people": [p.to_dict() for p in self.people()],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(document, fh, indent=1)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a read-only folder, a full disk: the gallery as it was is untouched
            raise GalleryError(
                f"gallery {self.path} cannot be written: {exc.strerror or exc}",
                "check the folder's permissions and free space, or give another --gallery",
            ) from None
        self._stamp = self.version()


#: Opens a gallery: ``(location, options)`` -> :class:`Gallery`; ``options`` are what the caller knows (e.g.
#: ``config``, an AWS context under ``aws``, ``endpoint_url``), passed on unread by :func:`open_gallery`.
GalleryOpener = Callable[[str, Mapping[str, Any]], Gallery]
_SCHEMES: dict[str, GalleryOpener] = {}


def register_scheme(scheme: str, opener: GalleryOpener) -> None:
    """Open locations ``SCHEME://...`` with ``opener`` (e.g. ``dynamodb``, registered by ``crowdcount.aws``)."""
    if not scheme.isidentifier():
        raise ValueError(f"a gallery scheme is a name such as 'dynamodb', got {scheme!r}")
    _SCHEMES[scheme.lower()] = opener


def gallery_schemes() -> list[str]:
    """The registered schemes (besides plain paths)."""
    return sorted(_SCHEMES)


def location_scheme(location: str) -> str | None:
    """``dynamodb`` for ``dynamodb://table``; ``None`` for a path."""
    scheme, sep, _ = location.partition("://")
    return scheme.lower() if sep and scheme.isidentifier() else None


def open_gallery(location: str, options: Mapping[str, Any] | None = None) -> Gallery:
    """The gallery at ``location``: a local JSON file path, or ``SCHEME://...`` through the opener registered
    for the scheme (:class:`GalleryError` naming the known ones otherwise). ``options`` go to that opener."""
    scheme = location_scheme(location)
    if scheme is None:
        if "://" in location:
            raise GalleryError(f"gallery location {location!r} is not supported", _scheme_hint(location))
        return LocalGallery(location)
    opener = _SCHEMES.get(scheme)
    if opener is None:
        raise GalleryError(f"gallery location {location!r}: unknown scheme {scheme}://", _scheme_hint(scheme))
    return opener(location, options or {})


def _scheme_hint(wrong: str) -> str:
    import difflib

    known = [f"{s}://" for s in gallery_schemes()]
    close = difflib.get_close_matches(wrong.partition("://")[0] + "://", known, n=1)
    base = "give a file path" + (" or " + ", ".join(f"{k}NAME" for k in known) if known else "")
    return (f"did you mean {close[0]}? " if close else "") + base
