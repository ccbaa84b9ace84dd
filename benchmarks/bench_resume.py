"""Resumable jobs: a worker SIGKILLed at ~80 % of a job, the next worker resuming from the last checkpoint.

    python benchmarks/bench_resume.py                     # vtest.avi (../shared) or the sample, human detector
    python benchmarks/bench_resume.py --kill-at 0.8 --checkpoint-seconds 5 --frame-ratio 1 --video path/to/video.avi

Starts `crowdcount sandbox` (moto's server over HTTP), then with real `crowdcount worker` processes and the
real model:

1. ``full``: one job run to the end (the reference: its job time, receive to ``done``, and its result file);
2. ``killed``: the same footage as another VideoId; the worker is SIGKILLed once ``--kill-at`` of the reference's
   analysis time has passed (the checkpoints it saved every ``--checkpoint-seconds`` are all that survives);
3. ``resumed``: a new worker receives the message again (after the visibility timeout) and finishes the job from
   the last checkpoint.

Prints a table: the job times, the resumed job's share of the reference (target <= 35 %), where the checkpoint
was, and whether the resumed result's frames (boxes, scores, counts, track ids) equal the reference's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_worker import CLI, REPO, SAMPLE, SHARED_VTEST, child_env, make_config, start_sandbox

sys.path.insert(0, str(REPO))


def events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def submit(video: Path, video_id: int, config: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [*CLI, "submit", str(video), "--video-id", str(video_id), "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"crowdcount submit failed:\n{proc.stderr[-3000:]}")


def start_worker(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [*CLI, "--log-level", "info", "--log-format", "json", "worker", "--config", str(config)]
    with open(log, "wb") as err:
        return subprocess.Popen([*command, "--max-jobs", "1"], stdout=subprocess.DEVNULL, stderr=err, env=env)


def wait_for(log: Path, event: str, video_id: int, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(log) if e.get("event") == event and e.get("video_id") == video_id]
        if found:
            return found[-1]
        if proc.poll() is not None and event != "job done":
            break
        time.sleep(0.05)
    raise SystemExit(f"no {event!r} for VideoId {video_id}:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_video = SHARED_VTEST if SHARED_VTEST.is_file() else SAMPLE
    parser.add_argument("--video", type=Path, default=default_video, help=f"default: {default_video}")
    parser.add_argument("--detector", action="append", default=[], help="default: human")
    parser.add_argument("--kill-at", type=float, default=0.8, help="share of the reference's analysis time")
    parser.add_argument("--checkpoint-seconds", type=int, default=5)
    parser.add_argument("--frame-ratio", type=float, default=1.0, help="share of frames analysed (default: all)")
    parser.add_argument("--visibility-timeout", type=int, default=20)
    parser.add_argument("--config", type=Path, default=REPO / "variables.json")
    args = parser.parse_args()

    import boto3

    from crowdcount.aws.checkpoint import checkpoint_key, decode

    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        folder = Path(tmp)
        config_path = make_config(args.config, args.detector or ["human"], folder)
        data = json.loads(config_path.read_text())
        data.setdefault("human_detection", {})["frame_ratio"] = args.frame_ratio
        data["worker"].update(
            {
                "checkpoint_seconds": args.checkpoint_seconds,
                "visibility_timeout": args.visibility_timeout,
                "heartbeat_seconds": max(1, args.visibility_timeout // 4),
            }
        )
        config_path.write_text(json.dumps(data, indent=2))
        sandbox, endpoint = start_sandbox(config_path, folder / "sandbox.log")
        env = child_env(endpoint)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        bucket = data.get("video_split", {}).get("output_bucket", "crowdcount-videos")
        try:
            # 1. the reference
            submit(args.video, 1, config_path, env)
            log = folder / "full.log"
            proc = start_worker(config_path, env, log)
            full = wait_for(log, "job done", 1, proc, 3600)
            proc.wait(60)
            print(f"full run: job {full['elapsed_s']:.1f}s (analysis {full['analyze_s']:.1f}s)", file=sys.stderr)

            # 2. killed at ~80 %
            submit(args.video, 2, config_path, env)
            log = folder / "killed.log"
            proc = start_worker(config_path, env, log)
            running = wait_for(log, "job running", 2, proc, 600)
            started = time.monotonic()
            time.sleep(max(0.0, args.kill_at * full["analyze_s"] + full.get("download_s", 0)))
            killed_after = time.monotonic() - started
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            key = checkpoint_key(running["s3_uri"].split("/", 3)[3], "human_detector", 2, "results/")
            saved = decode(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).frames
            print(f"killed after {killed_after:.1f}s; last checkpoint: {saved} frames", file=sys.stderr)

            # 3. resumed by the next worker (the message comes back after the visibility timeout)
            log = folder / "resumed.log"
            proc = start_worker(config_path, env, log)
            resumed = wait_for(log, "job done", 2, proc, 3600)
            proc.wait(60)

            docs = {}
            for video_id, event in ((1, full), (2, resumed)):
                body = s3.get_object(Bucket=bucket, Key=event["result_key"])["Body"].read()
                docs[video_id] = json.loads(body)
        finally:
            sandbox.send_signal(signal.SIGINT)
            sandbox.wait(timeout=30)

    analysed = len(docs[1]["frames"])
    same_frames = docs[1]["frames"] == docs[2]["frames"]
    same_tracking = docs[1].get("tracking") == docs[2].get("tracking")
    share = resumed["elapsed_s"] / full["elapsed_s"]
    size_mb = args.video.stat().st_size / 1e6
    print(
        f"\nvideo: {args.video} ({size_mb:.1f} MB, {analysed} frames analysed); detectors: "
        f"{', '.join(d[0] for d in data['human_detection']['detectors'])}; checkpoint every "
        f"{args.checkpoint_seconds}s; CPU count {os.cpu_count()}"
    )
    header = f"{'run':>8} | {'job (receive to done)':>21} | {'analysis':>8} | {'share of full':>13} | notes"
    print(header)
    print("-" * len(header))
    print(f"{'full':>8} | {full['elapsed_s']:>20.2f}s | {full['analyze_s']:>7.2f}s | {'100.0%':>13} |")
    print(
        f"{'killed':>8} | {killed_after:>20.2f}s | {'':>8} | {100 * killed_after / full['elapsed_s']:>12.1f}% | "
        f"SIGKILL; last checkpoint at frame {saved} of {analysed} ({100 * saved / analysed:.0f}%)"
    )
    print(
        f"{'resumed':>8} | {resumed['elapsed_s']:>20.2f}s | {resumed['analyze_s']:>7.2f}s | {100 * share:>12.1f}% | "
        f"target <= 35%: {'met' if share <= 0.35 else 'NOT met'}"
    )
    print(f"\nresult frames equal the uninterrupted run's: {same_frames}; tracking section equal: {same_tracking}")
    if not (same_frames and same_tracking):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
