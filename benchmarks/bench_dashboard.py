"""What the dashboard costs ``watch``: analysed fps with and without ``--web``, two cameras, one viewer.

    python benchmarks/bench_dashboard.py                      # 3 rounds of 20 s each way, about 3 minutes
    python benchmarks/bench_dashboard.py --seconds 30 --rounds 5 --detector-arg human.preset=fast

Two sources (the sample clip twice, looped, as fast as the detector takes frames: file mode, nothing dropped, so
the analysed fps is the watcher's throughput), with a line and a zone (tracking on), through one
:class:`~crowdcount.live.Watcher` as ``crowdcount watch`` builds it. With the dashboard: the
:class:`~crowdcount.web.live.LiveHub` observes every frame, uvicorn serves the app in a thread, and one viewer
has the page open: it reads the MJPEG stream of the first camera (drawn and JPEG-encoded for it) and the
server-sent events (twice a second). Rounds alternate (plain, web, plain, web...) so that the load of a shared
machine hits both alike; the table gives each round's fps and the process's CPU time per analysed frame, and the
ratios of the medians (goal: the dashboard costs at most 10%, ratio >= 0.90). On a shared machine the CPU time per
frame is the steadier figure: it does not depend on what else runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdcount.analyzer.counting import parse_lines, parse_zones  # noqa: E402
from crowdcount.analyzer.pipeline import assemble_pipeline  # noqa: E402
from crowdcount.config import DEFAULTS, build_detectors  # noqa: E402
from crowdcount.live import LiveMetrics, Source, Watcher, parse_source  # noqa: E402
from crowdcount.live.pipeline import pipeline_factory  # noqa: E402

SAMPLE = REPO / "samples" / "vtest-15s.mp4"
LINE = "door=0.5,0,0.5,1"
ZONE = "left=0,0,0.5,0,0.5,1,0,1"


#: The viewer, in a process of its own as a browser would be: reads one MJPEG stream and the event stream, and
#: prints how many JPEG frames and status events it got when it is told to stop (SIGTERM).
VIEWER = """
import signal, sys, threading, urllib.request
counts = {"jpegs": 0, "events": 0}
def mjpeg():
    with urllib.request.urlopen(sys.argv[1] + "stream/" + sys.argv[2] + ".mjpg", timeout=60) as r:
        while chunk := r.read1(65536):
            counts["jpegs"] += chunk.count(b"\\xff\\xd9")
def done(*_):
    print(counts["jpegs"], counts["events"], flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
threading.Thread(target=mjpeg, daemon=True).start()
with urllib.request.urlopen(sys.argv[1] + "events", timeout=60) as r:
    while line := r.readline():
        counts["events"] += line.startswith(b"event: status")
signal.pause()
"""


class Viewer:
    """One person with the page open (see ``VIEWER``)."""

    def __init__(self, base: str, camera: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", VIEWER, base, camera], stdout=subprocess.PIPE, text=True)

    def close(self) -> tuple[int, int]:
        """Stop it; the JPEG frames and events it received."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=10)
        jpegs, events = (int(x) for x in out.split()[:2])
        return jpegs, events


def dashboard_cpu() -> float:
    """CPU seconds so far of the dashboard's threads: the web server's, its thread pool's, the alerts' (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith(("crowdcount-web", "AnyIO worker")) or thread.native_id is None:
            continue
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


class Timed:
    """Wraps the hub's ``observe`` (on the inference thread) and adds up its CPU time."""

    def __init__(self, observe: Any) -> None:
        self.observe_inner = observe
        self.cpu = 0.0

    def observe(self, *args: Any) -> None:
        start = time.thread_time()
        self.observe_inner(*args)
        self.cpu += time.thread_time() - start


def run(detectors: list, seconds: float, web: bool) -> dict:
    pipeline = assemble_pipeline(detectors, DEFAULTS["tracking"], lines=parse_lines([LINE]), zones=parse_zones([ZONE]))
    factory = pipeline_factory(pipeline)
    sources = [Source(parse_source(f"{name}={SAMPLE}"), loop=True) for name in ("cam1", "cam2")]
    metrics = LiveMetrics()
    watcher = Watcher(detectors, sources, metrics=metrics, processors=factory, boxes=False)
    dashboard = viewer = timed = None
    if web:
        from crowdcount.web.app import start_live_dashboard

        dashboard = start_live_dashboard(watcher, "127.0.0.1:0", registry=metrics.registry)
        timed = Timed(dashboard[0].observe)
        watcher.observers[-1] = timed
    watcher.start()
    try:
        if dashboard is not None:
            viewer = Viewer(dashboard[1].url, "cam1")
        deadline = time.monotonic() + 120  # warm-up: the first batches of both cameras, the viewer connected
        while min(r.frames_analyzed for r in watcher.snapshot()) < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        start_frames = sum(r.frames_analyzed for r in watcher.snapshot())
        start, start_cpu, start_web = time.monotonic(), time.process_time(), dashboard_cpu()
        start_observe = timed.cpu if timed is not None else 0.0
        time.sleep(seconds)
        frames = sum(r.frames_analyzed for r in watcher.snapshot()) - start_frames
        elapsed, cpu = time.monotonic() - start, time.process_time() - start_cpu
        web_cpu = dashboard_cpu() - start_web + (timed.cpu - start_observe if timed is not None else 0.0)
        jpegs, events = viewer.close() if viewer is not None else (0, 0)
        viewer = None
    finally:
        if viewer is not None:
            viewer.close()
        watcher.stop()
        if dashboard is not None:
            dashboard[0].stop()
            dashboard[1].stop()
    return {"fps": frames / elapsed, "frames": frames, "cpu_ms": 1000.0 * cpu / max(frames, 1), "jpegs": jpegs,
            "events": events, "web_share": web_cpu / cpu if cpu else 0.0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds each way (alternating)")
    parser.add_argument("--detector-arg", action="append", default=[], help="human.KEY=VALUE")
    args = parser.parse_args()
    arguments: dict = {"max_batch_size": 2}
    for pair in args.detector_arg:
        key, _, value = pair.removeprefix("human.").partition("=")
        arguments[key] = value
    detectors = build_detectors([["HumanDetector", arguments]])
    for detector in detectors:
        detector.load()
    print(f"two cameras ({SAMPLE.name} looped, file mode), line + zone, detector HumanDetector {arguments}")
    run(detectors, 3.0, False)  # the models' first calls (compilation, caches) count in neither column
    print(
        f"{'round':>5}  {'mode':<10} {'frames':>7} {'fps':>7} {'CPU ms/frame':>12} {'jpegs':>6} {'events':>6}"
        f" {'dashboard CPU %':>15}"
    )
    fps: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    shares: list[float] = []
    for i in range(args.rounds):
        for web in (False, True):
            row = run(detectors, args.seconds, web)
            fps[web].append(row["fps"])
            cpu[web].append(row["cpu_ms"])
            if web:
                shares.append(row["web_share"])
            mode = "web+viewer" if web else "plain"
            print(
                f"{i + 1:>5}  {mode:<10} {row['frames']:>7} {row['fps']:>7.2f} {row['cpu_ms']:>12.1f} {row['jpegs']:>6}"
                f" {row['events']:>6} {100 * row['web_share'] if web else 0:>15.1f}"
            )
    plain, web = statistics.median(fps[False]), statistics.median(fps[True])
    ratio = web / plain if plain else float("nan")
    print(f"median fps: plain {plain:.2f}, with the dashboard and one viewer {web:.2f}: ratio {ratio:.3f} "
          f"(cost {100 * (1 - ratio):.1f}%; goal <= 10%)")  # fmt: skip
    # the process's CPU time per analysed frame does not depend on what else the machine runs: when inference is
    # CPU-bound, fps with / without = CPU per frame without / with
    cpu_plain, cpu_web = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(f"median CPU per frame: plain {cpu_plain:.1f} ms, with the dashboard {cpu_web:.1f} ms: fps ratio when "
          f"CPU-bound {cpu_plain / cpu_web:.3f} (cost {100 * (1 - cpu_plain / cpu_web):.1f}%)")  # fmt: skip
    # the steadiest figure: the CPU time the dashboard's own threads (and its hook on the inference thread) took,
    # as a share of the process's; taken from inference, it is the most the dashboard can cost in fps
    share = statistics.median(shares)
    print(f"the dashboard's own CPU (server, encoding, events, alerts, its hook): median {100 * share:.1f}% of the "
          f"process's (goal <= 10%)")  # fmt: skip


if __name__ == "__main__":
    main()
