"""Finding the videos to analyse and naming their result files."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from crowdcount.analyzer.video import IMAGE_EXTENSIONS, ImageSequence
from crowdcount.errors import ConfigError

#: File extensions treated as videos when a folder is given.
VIDEO_EXTENSIONS = frozenset(
    {".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".wmv", ".flv", ".3gp"}
    | {".h264", ".264", ".h265", ".265", ".hevc", ".mjpeg"}
)


def find_videos(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders and keep files as given, in order, without repeats.

    A folder that is an image sequence (:class:`~crowdcount.analyzer.video.ImageSequence`) is one video; any
    other folder gives its video files (by extension) and the image sequences in it, recursively, sorted, leaving
    hidden files and folders out (``._clip.mp4``, ``.Trashes/``). Numbered
    pictures beside video files (thumbnails) are not a sequence: the videos are found.
    Paths that do not exist are kept, so the analysis reports them as failed videos.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(_videos_in(path))
        else:
            found.append(path)
    seen: set[Path] = set()
    unique = []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _sequence_in(folder: Path) -> ImageSequence | None:
    """The image sequence ``folder`` is, unless it is a folder of numbered pictures beside video files (a camera's
    clips and their thumbnails): the videos are what it holds."""
    sequence = ImageSequence.find(folder)
    if sequence is None or (sequence.folder / "seqinfo.ini").is_file() or sequence.files[0].parent != sequence.folder:
        return sequence
    try:
        beside_videos = any(_is_video_name(p.name) and p.is_file() for p in sequence.folder.iterdir())
    except OSError:
        return sequence
    return None if beside_videos else sequence


def _is_video_name(name: str) -> bool:
    """A video file's name, by extension; hidden files are not (macOS's ``._clip.mp4`` AppleDouble files)."""
    return not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS


def _videos_in(folder: Path) -> list[Path]:
    sequence = _sequence_in(folder)
    if sequence is not None:
        return [sequence.folder]
    videos: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        videos.extend(here / f for f in files if _is_video_name(f))
        keep = []
        for name in sorted(d for d in dirs if not d.startswith(".")):  # .Trashes, .git: not the user's videos
            sequence = _sequence_in(here / name)
            if sequence is None:
                keep.append(name)
            elif sequence.folder == here / name:  # (its img1/ resolves to this folder: found once)
                videos.append(sequence.folder)
        dirs[:] = keep  # a sequence's own folders are not searched further
    return sorted(videos)


def leave_out_outputs(found: Sequence[Path], given: Iterable[str | Path], folders: Iterable[Path]) -> list[Path]:
    """``found`` (:func:`find_videos` of ``given``) without the videos found inside those output ``folders`` that
    lie inside a folder given (an earlier run's annotated videos in ``videos/annotated/``, when ``videos/`` is
    analysed again); a video named in ``given`` itself is kept, as are the videos of an output folder that is a
    folder given (``-o videos/``: results beside the videos)."""
    named = {Path(path).resolve() for path in given}
    outputs = [
        folder.resolve()
        for folder in folders
        if any(folder.resolve() != top and folder.resolve().is_relative_to(top) for top in named)
    ]
    return [
        video
        for video in found
        if video.resolve() in named or not any(video.resolve().is_relative_to(folder) for folder in outputs)
    ]


def plan_outputs(videos: Sequence[Path], output: str | Path | None, suffix: str, option: str) -> list[Path | None]:
    """One output path per video: ``output`` itself for one video when it has the suffix, else a file per video
    in the folder ``output``, named after the video (``name.json``, ``name-2.json`` on a clash)."""
    if output is None:
        return [None] * len(videos)
    output = Path(output)
    if output.suffix.lower() == suffix and not output.is_dir():
        if len(videos) > 1:
            raise ConfigError(
                f"{option} {str(output)!r} is one file but {len(videos)} videos were given",
                f"give a folder to {option} to get one file per video",
            )
        check_writable(output.parent, option)
        return [output]
    if output.exists() and not output.is_dir():
        raise ConfigError(
            f"{option} {str(output)!r} exists and is not a folder (a file name here must end in {suffix})",
            f"give a folder, or a {suffix} file name",
        )
    check_writable(output, option)
    used: set[str] = set()
    planned: list[Path | None] = []
    for video in videos:
        stem = video.name if video.is_dir() else video.stem  # an image-sequence folder keeps its whole name
        name, n = stem, 1
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name.lower())
        planned.append(output / f"{name}{suffix}")
    return planned


def check_writable(folder: Path, option: str) -> None:
    """Fail before any analysis when results could not be written into ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"{option}: cannot write into {str(folder)!r}: {exc.strerror or exc}") from None


def check_not_inputs(videos: Sequence[Path], planned: Sequence[Path | None], option: str) -> None:
    """Fail before any analysis when an output planned for ``option`` would replace one of ``videos`` (an annotated
    ``a.mp4`` written into the folder of the input ``a.mp4``), or add a picture to an image-sequence folder being
    analysed (its frames would no longer be one sequence)."""
    inputs = {video.resolve(): video for video in videos}
    sequences = [video.resolve() for video in videos if video.is_dir()]
    for output in planned:
        if output is None:
            continue
        target = output.resolve()
        if target in inputs:
            raise ConfigError(
                f"{option} would write {str(inputs[target])!r}, which is a video being analysed",
                "give another folder or file name",
            )
        if target.suffix.lower() in IMAGE_EXTENSIONS and target.parent in sequences:
            raise ConfigError(
                f"{option} would write {str(output)!r} into the image sequence {str(target.parent)!r} being analysed",
                "give another folder or file name",
            )


def temporary_beside(path: Path) -> Path:
    """A hidden, unused name beside ``path``, with its suffix (which picks a writer's format), to write to first."""
    return path.parent / f".{path.stem}.{secrets.token_hex(6)}{path.suffix}"


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Write ``path`` atomically: the block writes the temporary path it is given (:func:`temporary_beside`),
    which then replaces ``path``; when the block fails or is interrupted it is removed, and ``path`` (any older
    file) is left as it was: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
