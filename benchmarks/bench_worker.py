"""Worker overhead: `crowdcount worker` wall time per job vs `crowdcount analyze` on the same video, same run.

    python benchmarks/bench_worker.py                       # vtest.avi (../shared) or the sample, variables.json
    python benchmarks/bench_worker.py --detector human --jobs 3 --repeats 2 --video path/to/video.avi

Starts `crowdcount sandbox` (moto's server, a real process over HTTP), then alternates, `--repeats` times:

* ``analyze``: one `crowdcount analyze` process over ``--jobs`` copies of the video (TensorFlow start, model
  load, then per video: analysis and result file);
* ``worker``:  `crowdcount submit` of ``--jobs`` copies (not timed), then one `crowdcount worker --max-jobs N`
  process (TensorFlow start, AWS checks, model load, then per job: receive, S3 download, analysis, S3 upload,
  DynamoDB updates, delete).

Per run and as medians it prints the wall time per job of each process (process wall / jobs, start-up
included) and their ratio, and the in-process times per job: the analysis alone (``analyze``'s ``elapsed_s``)
vs the worker's whole job (receive to ``done`` recorded). Target: worker overhead under 10%. Both commands read
the same config (``--config``, else the repository's variables.json); ``--detector`` narrows both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_VTEST = REPO.parent / "shared" / "data" / "pets09" / "vtest.avi"
SAMPLE = REPO / "samples" / "vtest-15s.mp4"
CLI = [sys.executable, "-m", "crowdcount.cli.main"]


def child_env(endpoint: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("CROWDCOUNT_CONFIG", None)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    else:
        env.pop("AWS_ENDPOINT_URL", None)
    return env


def make_config(source: Path, detectors: list[str], folder: Path) -> Path:
    """The config both commands read: ``source`` with the detectors narrowed to ``detectors`` (if given)."""
    data: dict[str, Any] = json.loads(source.read_text()) if source.is_file() else {}
    if detectors:
        sys.path.insert(0, str(REPO))
        from crowdcount.config import load_config
        from crowdcount.detectors import resolve_name

        configured = load_config(source if source.is_file() else None, environ={})["human_detection"]["detectors"]
        wanted = {resolve_name(d) for d in detectors}
        chosen = [spec for spec in configured if resolve_name(spec[0]) in wanted]
        data.setdefault("human_detection", {})["detectors"] = chosen or [[d, {}] for d in detectors]
    data.setdefault("worker", {}).update({"wait_time_seconds": 1})
    path = folder / "variables.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def start_sandbox(config: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [*CLI, "sandbox", "--port", "0", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=child_env(None),
        )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().startswith("export AWS_ENDPOINT_URL="):
            return proc, line.strip().split("=", 1)[1]
    raise SystemExit(f"the sandbox did not start:\n{log.read_text()}")


def copies(video: Path, jobs: int, folder: Path) -> list[Path]:
    """``jobs`` copies of the video (analyze skips a path given twice)."""
    out = []
    for i in range(jobs):
        path = folder / f"{video.stem}-{i}{video.suffix}"
        if not path.exists():
            shutil.copyfile(video, path)
        out.append(path)
    return out


def run_analyze(videos: list[Path], config: Path, folder: Path) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [*CLI, "analyze", *map(str, videos), "--config", str(config), "-o", str(folder / "analyze"), "--json"],
        capture_output=True,
        text=True,
        env=child_env(None),
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"crowdcount analyze failed:\n{proc.stderr[-3000:]}")
    rows = json.loads(proc.stdout)["videos"]
    return {"wall_s": wall / len(videos), "job_s": statistics.mean(r["elapsed_s"] for r in rows)}


def run_worker(videos: list[Path], config: Path, endpoint: str, first_id: int, folder: Path) -> dict[str, float]:
    env = child_env(endpoint)
    for i, video in enumerate(videos):
        submit = subprocess.run(
            [*CLI, "submit", str(video), "--video-id", str(first_id + i), "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
        )
        if submit.returncode != 0:
            raise SystemExit(f"crowdcount submit failed:\n{submit.stderr[-3000:]}")
    log = folder / f"worker-{first_id}.log"
    command = [*CLI, "--log-level", "info", "--log-format", "json", "worker", "--config", str(config)]
    started = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.run(
            [*command, "--max-jobs", str(len(videos))], stdout=subprocess.DEVNULL, stderr=err, env=env
        )
    wall = time.perf_counter() - started
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    done = [e for e in events if e.get("event") == "job done"]
    if proc.returncode != 0 or len(done) != len(videos):
        raise SystemExit(f"crowdcount worker failed:\n{log.read_text()[-3000:]}")
    return {
        "wall_s": wall / len(videos),
        "job_s": statistics.mean(e["elapsed_s"] for e in done),
        "analyze_s": statistics.mean(e["analyze_s"] for e in done),
        "download_s": statistics.mean(e["download_s"] for e in done),
        "upload_s": statistics.mean(e["upload_s"] for e in done),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_video = SHARED_VTEST if SHARED_VTEST.is_file() else SAMPLE
    parser.add_argument("--video", type=Path, default=default_video, help=f"default: {default_video}")
    parser.add_argument("--jobs", type=int, default=3, help="videos per process (start-up amortised over them)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--config", type=Path, default=REPO / "variables.json")
    parser.add_argument("--detector", action="append", default=[], help="narrow the detectors (repeatable)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        folder = Path(tmp)
        config = make_config(args.config, args.detector, folder)
        detectors = [d[0] for d in json.loads(config.read_text()).get("human_detection", {}).get("detectors", [])]
        videos = copies(args.video, args.jobs, folder)
        sandbox, endpoint = start_sandbox(config, folder / "sandbox.log")
        rows = []
        try:
            for i in range(args.repeats):
                a = run_analyze(videos, config, folder)
                w = run_worker(videos, config, endpoint, 1000 * (i + 1), folder)
                rows.append((a, w))
                print(
                    f"run {i + 1}/{args.repeats}: per job: analyze {a['wall_s']:.1f}s (analysis {a['job_s']:.1f}s), "
                    f"worker {w['wall_s']:.1f}s (job {w['job_s']:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            sandbox.send_signal(signal.SIGINT)
            sandbox.wait(timeout=30)

    size_mb = args.video.stat().st_size / 1e6
    print(
        f"\nvideo: {args.video} ({size_mb:.1f} MB); detectors: {', '.join(detectors) or 'configured'}; "
        f"{args.jobs} jobs per process; AWS: the sandbox; times per job"
    )
    header = (
        f"{'run':>6} | {'analyze wall':>12} | {'worker wall':>11} | {'ratio':>6} || "
        f"{'analysis':>8} | {'worker job':>10} | {'overhead':>8} | {'in-job':>14} | {'download':>8} | {'upload':>6}"
    )
    print(header)
    print("-" * len(header))

    def line(name: str, a: dict[str, float], w: dict[str, float]) -> str:
        return (
            f"{name:>6} | {a['wall_s']:>11.2f}s | {w['wall_s']:>10.2f}s | {w['wall_s'] / a['wall_s']:>6.3f} || "
            f"{a['job_s']:>7.2f}s | {w['job_s']:>9.2f}s | {100 * (w['job_s'] / a['job_s'] - 1):>+7.1f}% | "
            f"{w['job_s'] - w['analyze_s']:>5.3f}s {100 * (w['job_s'] / w['analyze_s'] - 1):>+6.1f}% | "
            f"{w['download_s']:>7.3f}s | {w['upload_s']:>5.3f}s"
        )

    for i, (a, w) in enumerate(rows):
        print(line(str(i + 1), a, w))
    median_a = {k: statistics.median(r[0][k] for r in rows) for k in rows[0][0]}
    median_w = {k: statistics.median(r[1][k] for r in rows) for k in rows[0][1]}
    print(line("median", median_a, median_w))
    overhead = median_w["wall_s"] / median_a["wall_s"] - 1
    print(f"\nworker wall time per job vs analyze: {100 * overhead:+.1f}% (target: under +10%)")
    print(
        "in-job: the worker's job time beyond its own analysis (S3, SQS, DynamoDB), measured in the same process, "
        "so free of the noise between processes"
    )


if __name__ == "__main__":
    main()
