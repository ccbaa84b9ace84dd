"""The person embedder: its speed (crops a second, by batch size) and ``crowdcount find``'s accuracy on the
development clips.

    python benchmarks/bench_reid.py --speed [--models person-reid-0287,path/to/person_reid_0277]
                                                             # ms a crop at batch 1, 4, 16 (TFLite, 2 threads)
    python benchmarks/bench_reid.py --find [--clips pets09,s3mf1,mot17-09,mot17-02] [--sample-fps 8 | --frame-ratio R]
        [--flip] [--exclude-s S] [--methods plain,greedy,...] [--by-passage] [--search-model DIR --search-cache DIR]

``--find`` uses the cached detections and vectors (``benchmarks/track_cache.py``) and the real tracker
(``tune_tracking.simulate``): for every annotated person seen in at least 10 annotated frames, the query is one
ground-truth crop of them (from the middle of their presence; on MOT17 where they are in view, embedded by the
real model), searched in the clip's tracks at each threshold. Reported, as the issue asks: whether the best
match is that person (the most similar track's majority ground-truth id), the share of the person's annotated
frames the matches cover (a matched box on them, IoU >= 0.5), and the share of matched boxes that are them
(mean over the queries with a match); and "the tracks' ceiling": the coverage if exactly the tracks that are
mostly the person were matched. A "stranger" query (a person of another clip) gives the frames matched at all.
Scores are the cosine with each person's stored vector (the mean of their gallery views, as the result file
holds it).

    --flip            the query is the crop and its mirror image (as ``crowdcount find`` does)
    --exclude-s 3     each person's views within 3 s of the query's frame are left out of their vector: the query
                      is cut from the searched footage, and a view of the same moment flatters the search
    --by-passage      score by ground-truth id as given; by default the ids of one actor walking through the
                      scene again are one person (:data:`ACTORS`: PETS09-S2L1 whole), so that finding them on
                      their other passage is right, as ``find`` means it ("where else was this person")
    --methods M,...   how the matches are chosen (:func:`select`): ``plain`` (cosine >= threshold), ``greedy``
                      (one person in one place at a time, as ``find`` does), ``frame`` (the best match in each
                      frame), ``center``, ``qe`` (query expansion), joined by ``+``
    --search-model DIR --search-cache DIR
                      the same gallery views, but their vectors from another model (a folder written by
                      scripts/convert_reid.py --out, and a track cache of that model's vectors of every box)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tune_tracking
from track_cache import CLIPS, load_detections
from tune_tracking import simulate

from crowdcount.analyzer.video import sample_ratio
from crowdcount.eval.groundtruth import read_mot
from crowdcount.eval.metrics import iou_matrix

#: Ground-truth ids that are one actor walking through the scene again (PETS09-S2L1 is choreographed: a dozen
#: actors cross the plaza several times, and its MOTChallenge ground truth gives each passage a new id). Found by
#: eye on crops of all 19 ids (6 a passage, spread over it) and checked against the ground truth: the ids of one
#: group are never on screen at the same time, each one leaves before the next enters. The first id of a group
#: stands for the actor. Sure (distinctive clothes): 11/3 (red and navy jacket), 10/6 (red jacket, curly hair);
#: by clothes, hair and build: 19/1 (long black coat), 12/4 (black coat, fair curly hair), 13/2 (dark jacket,
#: jeans, fair hair), 14/18/8 (dark leather jacket, a white paper in the hand), 9/5 (dark jacket, jeans). 15 may
#: be the 14/18/8 actor too (not grouped: unsure); 7, 16 and 17 pass once.
ACTORS: dict[str, tuple[tuple[int, ...], ...]] = {
    name: ((19, 1), (11, 3), (12, 4), (13, 2), (10, 6), (14, 18, 8), (9, 5)) for name in ("pets09-all", "pets09-400")
}


def speed(models: list[str]) -> None:
    """ms a crop of each model at batch 1, 4, 16, the models interleaved in one run (best of 3), and their ratio
    to the first model's."""
    from crowdcount.detectors.reid import PersonEmbedder, build_person_embedder

    embedders = [
        PersonEmbedder(runtime="tflite", num_threads=2, folder=name)
        if "/" in name
        else build_person_embedder(name, runtime="tflite", num_threads=2)
        for name in models
    ]
    crops = np.random.default_rng(0).integers(0, 256, (64, 256, 128, 3), dtype=np.uint8)
    for embedder in embedders:
        embedder.embed_crops(crops[:2])
    print("| batch | " + " | ".join(f"{m}: ms a crop (best of 3)" for m in models) + " | ratio |")
    print("|---|" + "---|" * (len(models) + 1))
    for batch in (1, 4, 16):
        best = []
        for embedder in embedders:
            embedder.batch_size = batch
        times: list[list[float]] = [[] for _ in embedders]
        for _ in range(3):
            for k, embedder in enumerate(embedders):
                times[k].append(_timed(embedder, crops))
        best = [min(t) * 1000 / len(crops) for t in times]
        ratios = " / ".join(f"{b / best[0]:.2f}" for b in best[1:]) or "1"
        print(f"| {batch} | " + " | ".join(f"{b:.1f}" for b in best) + f" | {ratios} |")


def _timed(embedder, crops) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    embedder.embed_crops(crops)
    return time.perf_counter() - start


#: The least share of a MOT17 person in view (its ground truth's visibility) in the frame of their query crop.
QUERY_VISIBLE = 0.8


def gt_query(clip, gt, person: int, embedder, flip: bool = False) -> tuple[np.ndarray, int]:  # type: ignore[no-untyped-def]
    """The vector of one ground-truth crop of ``person`` (from the middle of their annotated frames; on MOT17, of
    those in which at least :data:`QUERY_VISIBLE` of them is in view, where there are any: a photo shows the
    person) and its frame index; with ``flip``, the crop and its mirror image averaged (as ``find`` does)."""
    import cv2

    from crowdcount.analyzer.search import embed_query_crops
    from crowdcount.detectors.reid import crop_people

    frames = sorted(k for k, f in gt.frames.items() if f.ids is not None and person in f.ids.tolist())
    if clip.mot17:  # frame, id, x, y, w, h, considered, class, visibility
        rows = np.loadtxt(clip.gt, delimiter=",", ndmin=2)
        visible = set(rows[(rows[:, 1] == person) & (rows[:, 8] >= QUERY_VISIBLE), 0].astype(int).tolist())
        frames = [k for k in frames if k in visible] or frames
    index = frames[len(frames) // 2]
    capture = cv2.VideoCapture(str(clip.video))
    for _ in range(index):
        _ok, frame = capture.read()
    capture.release()
    truth = gt.frames[index]
    box = truth.xyxy[truth.ids.tolist().index(person)]
    crop = crop_people(frame[..., ::-1].copy(), box[None])
    return embed_query_crops(embedder, crop, flip=flip), index


class _Recording(tune_tracking.CachedEmbedder):
    """The replay's embedder, which remembers the cache row of every vector it hands out (so that a gallery view
    can be traced back to its box: its frame, and its vector under another cached model)."""

    latest: _Recording | None = None

    def __init__(self, boxes: np.ndarray, vectors: np.ndarray) -> None:
        super().__init__(boxes, vectors)
        self.rows: dict[bytes, int] = {}
        _Recording.latest = self

    def embed_boxes(self, image: object, xyxy: np.ndarray) -> np.ndarray:
        mine = self.boxes[self.lo : self.hi]
        rows = [self.lo + int(np.flatnonzero(np.all(mine == box, axis=1))[0]) for box in np.asarray(xyxy, np.float32)]
        out = self.vectors[rows].astype(np.float32)
        for row, vector in zip(rows, out, strict=True):
            self.rows[vector.tobytes()] = row
        self.calls += 1
        return out


tune_tracking.CachedEmbedder = _Recording  # type: ignore[misc]


def person_views(processor) -> dict[int, np.ndarray]:  # type: ignore[no-untyped-def]
    """Each counted person's gallery views as cache rows (the views whose mean vector the result file stores),
    by final id, numbered as :meth:`TrackingProcessor.finish` numbers them."""
    recorded = _Recording.latest
    assert recorded is not None
    groups = processor._members()
    order = sorted(groups, key=lambda r: (groups[r][0].first_ms, r))
    counted = {t.track_id for t in processor.people()}
    views = {}
    for number, root in enumerate(order, 1):
        rows = [recorded.rows[np.asarray(v, np.float32).tobytes()] for t in groups[root] for v in t.gallery]
        if number in counted and rows:
            views[number] = np.array(rows, np.int64)
    return views


def query_embedder(search: tuple[str, Path, Path] | None):  # type: ignore[no-untyped-def]
    """The shipped embedder, or the converted model of ``search`` (a folder written by scripts/convert_reid.py)."""
    from crowdcount.detectors.reid import PersonEmbedder, build_person_embedder

    if search is None:
        return build_person_embedder(num_threads=2)
    embedder = PersonEmbedder(runtime="tflite", num_threads=2, folder=search[2])
    embedder.name = search[0]
    return embedder


def find_accuracy(
    name: str,
    thresholds: list[float],
    frame_ratio: float,
    strangers: dict[str, np.ndarray],
    search: tuple[str, Path, Path] | None = None,
    flip: bool = False,
    exclude_s: float = 0.0,
    methods: tuple[str, ...] = ("plain",),
    by_passage: bool = False,
) -> None:
    """``crowdcount find`` on one clip: one query a person, searched in the replayed tracks' stored vectors.
    ``search``: (name, cache folder of its box vectors, converted model folder) of another model for the stored
    vectors (the same gallery views, embedded by it; default: the tracker's vectors); ``exclude_s``:
    leave out of each person's stored views those taken within this many seconds of the query's frame (the
    query is cut from the searched footage: its own neighbours in the gallery flatter the search)."""
    from crowdcount.detectors.reid import DEFAULT_PERSON_EMBEDDER

    clip = CLIPS[name]
    gt = read_mot(clip.gt, scale=clip.gt_scale)
    keys = [k for k in gt.frames if isinstance(k, int) and (clip.last_frame is None or k <= clip.last_frame)]
    run, processor = simulate(name, {"store_embeddings": True}, frame_ratio)
    dets = load_detections(name)
    fps = float(dets["fps"])
    views = person_views(processor)
    cache = (np.load(Path(search[1]) / f"{name}-emb.npz")["vectors"] if search else processor.embedder.vectors).astype(
        np.float32
    )
    cache /= np.maximum(np.linalg.norm(cache, axis=1, keepdims=True), 1e-12)
    frame_of_row = dets["index"][np.searchsorted(dets["offsets"], np.arange(len(cache)), side="right") - 1]
    # per analysed annotated frame: which ground-truth person each tracked box is (IoU >= 0.5, or None)
    # ...scored by actor: a person who walks through the scene again has a new ground-truth id (a "passage")
    actor_of = {} if by_passage else {p: group[0] for group in ACTORS.get(name, ()) for p in group}
    truth_of: dict[tuple[int, int], int | None] = {}
    seen_frames: Counter[int] = Counter()
    actor_frames: Counter[int] = Counter()
    majority: dict[int, Counter[int]] = {}
    for k in keys:
        if k not in run.frames:
            continue
        truth = gt.frames[k]
        people = truth.ids[~truth.ignore] if truth.ids is not None else np.zeros(0, int)
        seen_frames.update(people.tolist())
        actor_frames.update({actor_of.get(p, p) for p in people.tolist()})
        xyxy, ids = run.frames[k]
        ious = iou_matrix(xyxy, truth.xyxy[~truth.ignore]) if len(xyxy) and len(people) else np.zeros((len(xyxy), 0))
        for d, track in enumerate(ids.tolist()):
            j = int(np.argmax(ious[d])) if ious.shape[1] else -1
            who = actor_of.get(int(people[j]), int(people[j])) if j >= 0 and ious[d, j] >= 0.5 else None
            truth_of[(k, d)] = who
            if who is not None:
                majority.setdefault(track, Counter())[who] += 1
    embedder = query_embedder(search)
    queries = [p for p, n in seen_frames.items() if n >= 10]
    track_frames: dict[int, set[int]] = {}
    for k, (_, ids) in run.frames.items():
        for track in ids.tolist():
            track_frames.setdefault(int(track), set()).add(k)
    rows = []
    ceiling = []  # per query: the coverage if exactly the tracks whose majority is them were matched
    for person in queries:
        query, at = gt_query(clip, gt, person, embedder, flip)
        target = actor_of.get(person, person)
        theirs = {t for t, c in majority.items() if c.most_common(1)[0][0] == target}
        reach = {k for (k, d), who in truth_of.items() if who == target and int(run.frames[k][1][d]) in theirs}
        ceiling.append(len(reach) / actor_frames[target])
        means = {}
        for track, view_rows in views.items():
            if exclude_s > 0:
                far = np.abs(frame_of_row[view_rows] - at) > exclude_s * fps
                view_rows = view_rows[far] if far.any() else view_rows
            mean = cache[view_rows].mean(axis=0)
            means[track] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        for method in methods:
            for threshold in thresholds:
                allowed, rank = select(method, means, query, threshold, track_frames)
                best = max(rank, key=rank.get) if rank else None  # the most similar person, matched or not
                best_right = (
                    best is not None and bool(majority.get(best)) and majority[best].most_common(1)[0][0] == target
                )
                hits = boxes = 0
                covered = set()
                for (k, d), who in truth_of.items():
                    track = int(run.frames[k][1][d])
                    if track in allowed and (allowed[track][1] is None or k in allowed[track][1]):
                        boxes += 1
                        if who == target:
                            hits += 1
                            covered.add(k)
                rows.append(
                    (method, threshold, person, best_right, len(covered) / actor_frames[target],
                     hits / boxes if boxes else None)
                )  # fmt: skip
    model = search[0] if search else "the tracker's"
    extra = f"; {sum(len(v) for v in views.values())} views stored, {processor.embedded} crops embedded"
    print(f"\n{name} (frame ratio {frame_ratio:g}, {len(queries)} people queried; stored vectors: {model}; "
          f"flip {flip}; views within {exclude_s:g} s of the query left out{extra})")  # fmt: skip
    print(f"the tracks' ceiling: {sum(c > 0 for c in ceiling)}/{len(ceiling)} queried have a track that is mostly "
          f"them; coverage if exactly those tracks were matched {np.mean(ceiling):.2f}")  # fmt: skip
    print("| method | threshold | best match right | coverage (mean) | precision (mean, of queries with a match) "
          "| no match | stranger: frames matched |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    stranger = strangers[search[0] if search else DEFAULT_PERSON_EMBEDDER]
    means = {
        t: cache[r].mean(axis=0) / max(float(np.linalg.norm(cache[r].mean(axis=0))), 1e-12) for t, r in views.items()
    }
    for method in methods:
        for threshold in thresholds:
            mine = [r for r in rows if r[0] == method and r[1] == threshold]
            precisions = [r[5] for r in mine if r[5] is not None]
            allowed, _ = select(method, means, stranger, threshold, track_frames)
            frames = {
                k
                for k, (_, ids) in run.frames.items()
                for t in ids.tolist()
                if t in allowed and (allowed[t][1] is None or k in allowed[t][1])
            }
            print(
                f"| {method} | {threshold:g} | {sum(r[3] for r in mine)}/{len(mine)} | "
                f"{np.mean([r[4] for r in mine]):.2f} | {np.mean(precisions) if precisions else float('nan'):.2f} | "
                f"{sum(r[5] is None for r in mine)} | {len(frames)}/{len(run.frames)} |"
            )


def frame_winners(scores: dict[int, float], frames: dict[int, set[int]]) -> dict[int, set[int]]:
    """Per track, the frames in which it is the most similar track present."""
    best: dict[int, int] = {}
    for track in sorted(scores, key=lambda t: (-scores[t], t)):
        for frame in frames.get(track, ()):
            best.setdefault(frame, track)
    out: dict[int, set[int]] = {}
    for frame, track in best.items():
        out.setdefault(track, set()).add(frame)
    return out


def select(
    method: str, means: dict[int, np.ndarray], query: np.ndarray, threshold: float, track_frames: dict[int, set[int]]
) -> tuple[dict[int, tuple[float, set[int] | None]], dict[int, float]]:
    """The matched tracks of one query under ``method``: per track its ranking score and the frames it is matched
    in (``None``: all of its frames); and every track's ranking score. Methods (joined by ``+``): ``plain``
    (cosine >= threshold), ``center`` (ranked by the cosine after subtracting the video's mean person vector; the
    threshold stays on the plain cosine), ``greedy[:TOL]`` (:func:`one_at_a_time`), ``frame``
    (:func:`frame_winners`), ``qe[:W]`` (query expansion: the query plus W times its best match's vector)."""
    from crowdcount.analyzer.search import OVERLAP_TOLERANCE, one_at_a_time

    parts = method.split("+")
    raw = {t: float(v @ query) for t, v in means.items()}
    rank = dict(raw)
    if "center" in parts and len(means) > 1:
        centre = np.mean(list(means.values()), axis=0)
        q = query - centre
        q /= max(float(np.linalg.norm(q)), 1e-12)
        for t, v in means.items():
            c = v - centre
            rank[t] = float(c @ q) / max(float(np.linalg.norm(c)), 1e-12)
    for part in parts:
        if part.startswith("qe"):  # query expansion: the query averaged with its best match's vector (weight W)
            weight = float(part[3:]) if part.startswith("qe:") else 1.0
            top = max(rank, key=rank.get)
            if raw[top] >= threshold:
                q = query + weight * means[top]
                q /= max(float(np.linalg.norm(q)), 1e-12)
                raw = {t: float(v @ q) for t, v in means.items()}
                raw[top] = max(raw[top], rank[top])
                rank = dict(raw)
    candidates = {t: rank[t] for t in raw if raw[t] >= threshold}
    out: dict[int, tuple[float, set[int] | None]] = {t: (s, None) for t, s in candidates.items()}
    for part in parts:
        if part.startswith("greedy"):
            tolerance = float(part.split(":")[1]) if ":" in part else OVERLAP_TOLERANCE
            kept = one_at_a_time({t: candidates[t] for t in out}, track_frames, -np.inf, tolerance)
            out = {t: (out[t][0], frames) for t, frames in kept.items()}
        elif part == "frame":
            won = frame_winners({t: candidates[t] for t in out}, track_frames)
            out = {t: (out[t][0], won[t]) for t in won}
    return out, rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--find", action="store_true")
    parser.add_argument(
        "--search-model",
        default=None,
        help="--find: a converted model folder (scripts/convert_reid.py --out) whose "
        "vectors of the same gallery views are stored instead of the tracker's",
    )
    parser.add_argument("--search-cache", default=None, help="--find: a cache of --search-model's vectors of every box")
    parser.add_argument("--flip", action="store_true", help="--find: query = crop + its mirror image")
    parser.add_argument("--exclude-s", type=float, default=0.0, help="--find: drop views this near the query")
    parser.add_argument(
        "--models", default="person-reid-0287", help="--speed: embedders compared (names, or converted model folders)"
    )
    parser.add_argument(
        "--methods", default="plain", help="--find: how matches are chosen, comma-separated (see select())"
    )
    parser.add_argument(
        "--by-passage", action="store_true", help="--find: score by ground-truth id, not by actor (see ACTORS)"
    )
    parser.add_argument("--clips", default="pets09,s3mf1,mot17-09,mot17-02")
    parser.add_argument("--thresholds", default="0.5,0.55,0.6,0.65,0.7")
    parser.add_argument("--frame-ratio", type=float, default=None, help="default: from --sample-fps")
    parser.add_argument("--sample-fps", type=float, default=8.0, help="analysed frames a second (the default)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.speed:
        speed(args.models.split(","))
    if args.find:
        from crowdcount.detectors.reid import DEFAULT_PERSON_EMBEDDER

        thresholds = [float(t) for t in args.thresholds.split(",")]
        search = None
        if args.search_model:
            search = (Path(args.search_model).name, Path(args.search_cache), Path(args.search_model))
        embedder = query_embedder(search)
        model = search[0] if search else DEFAULT_PERSON_EMBEDDER
        for name in args.clips.split(","):
            other = CLIPS["mot17-09" if name.startswith("pets") or name == "s3mf1" else "pets09"]
            gt = read_mot(other.gt, scale=other.gt_scale)
            person = Counter(i for f in gt.frames.values() if f.ids is not None for i in f.ids.tolist()).most_common(1)
            stranger = {model: gt_query(other, gt, person[0][0], embedder, args.flip)[0]}
            ratio = args.frame_ratio or sample_ratio(float(load_detections(name)["fps"]), args.sample_fps)
            find_accuracy(
                name,
                thresholds,
                ratio,
                stranger,
                search,
                args.flip,
                args.exclude_s,
                tuple(args.methods.split(",")),
                args.by_passage,
            )


if __name__ == "__main__":
    main()
