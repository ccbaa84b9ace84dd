"""Speed and memory of the analyze path, against the obvious alternatives, in one run.

    python benchmarks/bench_analyze.py            # vtest.avi from ../shared/data (or the sample clip)
    python benchmarks/bench_analyze.py --quick    # the 150-frame sample clip, batch sizes 1 and 8

Prints one table:
- raw decode fps (OpenCV read + BGR->RGB, nothing else),
- detector-only fps (frames decoded beforehand, in memory) for each batch size,
- ``VideoAnalyzer`` end-to-end fps (decode thread + sampling + batching + detection + result document)
  for each batch size, and its ratio to detector-only (target >= 0.90),
- peak RSS of a whole ``crowdcount analyze`` process on a short clip and on a clip 10x longer
  (target: within 10%), each in its own process.

Absolute numbers on a shared machine are noisy: read the ratios, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
DATA_VIDEO = REPO.parent / "shared" / "data" / "pets09" / "vtest.avi"
SAMPLE = REPO / "samples" / "vtest-15s.mp4"


def decode_all(path: Path, limit: int | None = None) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def bench_decode(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = len(decode_all(path))
    return n, time.perf_counter() - start


def bench_detector(detector, frames: list, batch: int) -> float:
    detector.detect(frames[:batch])  # warm-up (graph tracing for this batch size)
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        detector.detect(frames[i : i + batch])
    return time.perf_counter() - start


def bench_analyzer(detector, path: Path, batch: int) -> tuple[int, float]:
    from crowdcount.analyzer import VideoAnalyzer, to_document

    analyzer = VideoAnalyzer([detector], frame_ratio=1.0, max_batch_size=batch)
    start = time.perf_counter()
    result = analyzer.analyze(path)
    to_document(result)
    return len(result.frames), time.perf_counter() - start


def write_clip(source: Path, target: Path, repeats: int, frames: int | None) -> int:
    """Write ``frames`` of ``source`` ``repeats`` times in a row into ``target`` (MJPG: cheap to decode)."""
    clip = decode_all(source, frames)
    h, w = clip[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for _ in range(repeats):
        for rgb in clip:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return len(clip) * repeats


def peak_rss_of_analyze(video: Path, out_dir: Path) -> tuple[float, float]:
    """Peak RSS (MiB) and wall time of a ``crowdcount analyze`` process on ``video``."""
    # VmHWM of the process's own address space: ru_maxrss would carry over the parent's peak across fork
    code = (
        "import sys; from crowdcount.cli.main import cli\n"
        "try:\n    cli(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "    print('RSS', hwm, file=sys.stderr)\n"
    )
    args = ["analyze", str(video), "-d", "human", "--frame-ratio", "1", "-o", str(out_dir), "--no-progress", "--json"]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"analyze failed: {proc.stderr[-2000:]}")
    rss_kib = int(next(line for line in proc.stderr.splitlines() if line.startswith("RSS")).split()[1])
    return rss_kib / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None, help="video to measure (default: vtest.avi or sample)")
    parser.add_argument("--quick", action="store_true", help="sample clip, batch sizes 1 and 8, short RSS runs")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 1,4,8)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each fps measure; the best counts")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from rich.console import Console
    from rich.table import Table

    from crowdcount.detectors import build_detector

    video = args.video or (SAMPLE if args.quick or not DATA_VIDEO.exists() else DATA_VIDEO)
    batches = [int(b) for b in (args.batch_sizes or ("1,8" if args.quick else "1,4,8")).split(",")]
    rows: list[dict] = []

    n, seconds = bench_decode(video)
    rows.append({"measure": "raw decode (OpenCV + RGB)", "batch": "-", "frames": n, "fps": n / seconds})

    detector = build_detector("human", {"max_batch_size": max(batches)})
    detector.load()
    frames = decode_all(video)
    # detector-only and end-to-end runs alternate, best of --repeats each, so load from other processes
    # on the machine hits both sides of the ratio alike
    for batch in batches:
        only_times, e2e_times = [], []
        for _ in range(args.repeats):
            only_times.append(bench_detector(detector, frames, batch))
            n, seconds = bench_analyzer(detector, video, batch)
            e2e_times.append(seconds)
        only_fps, e2e_fps = len(frames) / min(only_times), n / min(e2e_times)
        rows.append(
            {"measure": "detector only (frames in memory)", "batch": batch, "frames": len(frames), "fps": only_fps}
        )
        rows.append(
            {
                "measure": "VideoAnalyzer end to end",
                "batch": batch,
                "frames": n,
                "fps": e2e_fps,
                "ratio": e2e_fps / only_fps,
                "target": ">= 0.90",
                "ok": e2e_fps / only_fps >= 0.90,
            }
        )
    del frames

    with tempfile.TemporaryDirectory() as tmp:
        base = 40 if args.quick else 80
        short, long = Path(tmp) / "short.avi", Path(tmp) / "long.avi"
        n_short = write_clip(video, short, 1, base)
        n_long = write_clip(video, long, 10, base)
        rss_short, wall_short = peak_rss_of_analyze(short, Path(tmp) / "out")
        rss_long, wall_long = peak_rss_of_analyze(long, Path(tmp) / "out")
        growth = rss_long / rss_short
        rows.append(
            {
                "measure": "peak RSS, analyze process (MiB)",
                "batch": 8,
                "frames": n_short,
                "fps": rss_short,
                "note": f"{wall_short:.1f}s",
            }
        )
        rows.append(
            {
                "measure": "peak RSS, 10x longer video (MiB)",
                "batch": 8,
                "frames": n_long,
                "fps": rss_long,
                "ratio": growth,
                "target": "<= 1.10",
                "ok": growth <= 1.10,
                "note": f"{wall_long:.1f}s",
            }
        )

    table = Table(title=f"crowdcount analyze benchmark: {video.name}, default human detector, frame_ratio 1")
    for column in ("measure", "batch", "frames", "fps / MiB", "ratio", "target", "ok"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for r in rows:
        table.add_row(
            r["measure"],
            str(r["batch"]),
            str(r["frames"]),
            f"{r['fps']:.1f}",
            f"{r['ratio']:.2f}" if "ratio" in r else "",
            r.get("target", ""),
            ("yes" if r["ok"] else "NO") if "ok" in r else "",
        )
    Console().print(table)
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"machine: {os.cpu_count()} cores; peak RSS of this benchmark process {own_rss} MiB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
