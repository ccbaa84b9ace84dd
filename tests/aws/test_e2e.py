"""End to end: `crowdcount sandbox` as a real process, real `crowdcount worker` processes with the real human
detector talking to it over HTTP, and the faults a queue worker must survive without losing a job."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import pytest

from crowdcount.aws.jobs import submit_video
from crowdcount.aws.messages import job_body
from crowdcount.aws.resources import Resources, provision
from crowdcount.aws.session import AwsContext, make_context
from crowdcount.aws.status import StatusStore
from crowdcount.aws.storage import TEMP_PREFIX
from crowdcount.config import Config, load_config

from .support import REGION, REPO, SAMPLE, write_video
from conftest import running_sandbox

#: Worker processes load TensorFlow and the model: on a busy 2-core machine that alone takes 10-20 s.
START_TIMEOUT = 120


def child_env(endpoint: str | None = None) -> dict[str, str]:
    """The environment of child processes: this checkout's code first, dummy credentials, no GPU probing."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        PYTHONUNBUFFERED="1",
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "CROWDCOUNT_CONFIG", "CROWDCOUNT_LOG_LEVEL"):
        env.pop(name, None)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    else:
        env.pop("AWS_ENDPOINT_URL", None)
    return env


CLI = [sys.executable, "-m", "crowdcount.cli.main"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`crowdcount sandbox --port 0` as a real process; yields its endpoint."""
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.err"
    with running_sandbox(REPO, child_env(), log) as endpoint:
        yield endpoint


@dataclass
class Stack:
    """Per-test resources in the shared sandbox (unique names), its config file, and the processes started."""

    endpoint: str
    tmp: Path
    config_path: Path
    config: Config
    ctx: AwsContext
    resources: Resources
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def sqs(self) -> Any:
        return self.ctx.client("sqs")

    @property
    def s3(self) -> Any:
        return self.ctx.client("s3")

    @property
    def store(self) -> StatusStore:
        return StatusStore(self.ctx.client("dynamodb"), self.resources.table)

    @property
    def work_dir(self) -> Path:
        return Path(self.config.get("worker.temp_dir"))

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], capture_output=True, text=True, env=child_env(self.endpoint), cwd=self.tmp, timeout=timeout
        )

    def start_worker(self, name: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
        """A `crowdcount worker` process logging JSON lines to ``<tmp>/<name>.log``."""
        log = self.tmp / f"{name}.log"
        with open(log, "wb") as err:
            command = [*CLI, "--log-level", "info", "--log-format", "json", "worker", "--config", str(self.config_path)]
            proc = subprocess.Popen(
                [*command, *args],
                stdout=subprocess.PIPE,
                stderr=err,
                env=child_env(self.endpoint),
                cwd=self.tmp,
                text=True,
            )
        self.procs.append(proc)
        return proc, log

    def queue_url(self, name: str) -> str:
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def queue_total(self, name: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url(name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def dead_letters(self) -> list[dict[str, Any]]:
        url = self.queue_url(self.resources.dlq)
        out: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", []):
            out.extend(batch)
            for m in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    def results(self, prefix: str) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.resources.bucket, Prefix=prefix)
        return [o["Key"] for o in listing.get("Contents", [])]


@pytest.fixture
def stack(sandbox: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    tag = f"{request.node.name.replace('_', '-')[:30].strip('-')}-{os.getpid()}-{time.monotonic_ns() % 100000}".lower()
    work = tmp_path / "work"
    work.mkdir()
    data = {
        "aws_queues": {"human_detection": f"q-{tag}", "human_detection_dlq": f"dlq-{tag}", "max_receive_count": 3},
        "dynamodb": {"table_id": f"t-{tag}"},
        "video_split": {"output_bucket": f"b-{tag}"[:63].strip("-")},
        "human_detection": {
            "detectors": [["HumanDetector", {"min_detection_score": 0.4, "max_batch_size": 5}]],
            "frame_ratio": 0.2,
        },
        "worker": {
            "wait_time_seconds": 1,
            "visibility_timeout": 5,
            "heartbeat_seconds": 1,
            "grace_period_seconds": 1,
            "retry_delay_seconds": 1,
            "temp_dir": str(work),
        },
    }
    config_path = tmp_path / "variables.json"
    config_path.write_text(json.dumps(data))
    config = load_config(config_path, environ={})
    ctx = make_context(REGION, sandbox)
    resources = Resources.from_config(config)
    provision(ctx, resources)
    s = Stack(sandbox, tmp_path, config_path, config, ctx, resources)
    try:
        yield s
    finally:
        for proc in s.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def events(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a worker (TensorFlow's own chatter is skipped)."""
    out = []
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    return out


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: tuple[Path, ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tails}")


def job_events(log: Path, event: str, video_id: int | None = None) -> list[dict[str, Any]]:
    return [e for e in events(log) if e.get("event") == event and (video_id is None or e.get("video_id") == video_id)]


def finish(proc: subprocess.Popen[str], timeout: float, log: Path) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker did not stop within {timeout}s\n{log.read_text(errors='replace')[-3000:]}")
    return proc.returncode, out


# -- the whole flow, through the CLI, with the real model --------------------------------------------------
@pytest.mark.real_model
def test_cli_flow_sandbox_submit_worker_status_results(stack: Stack) -> None:
    submitted = stack.cli("submit", str(SAMPLE), "--video-id", "1", "--config", str(stack.config_path), "--json")
    assert submitted.returncode == 0, submitted.stderr
    key = json.loads(submitted.stdout)["s3"]["key"]
    assert key == "videos/1/video/vtest-15s.mp4"

    # `crowdcount analyze` on the same video, same config, alongside: the worker must produce the same result.
    analyze = subprocess.Popen(
        [*CLI, "analyze", str(SAMPLE), "--config", str(stack.config_path), "-o", str(stack.tmp / "local.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=stack.tmp,
        text=True,
    )
    stack.procs.append(analyze)
    worker, log = stack.start_worker("worker", "--max-jobs", "1")
    rc, out = finish(worker, START_TIMEOUT + 60, log)
    assert rc == 0, log.read_text()[-3000:]
    assert "1 done" in out
    done = job_events(log, "job done", 1)
    assert len(done) == 1 and done[0]["attempt"] == 1 and done[0]["analyze_s"] > 0
    assert [e["event"] for e in events(log) if e.get("video_id") == 1] == ["job received", "job running", "job done"]

    status = stack.cli("status", "1", "--config", str(stack.config_path), "--json")
    assert status.returncode == 0, status.stderr
    entry = json.loads(status.stdout)["process_steps"][0]
    assert entry["step"] == "human_detector" and entry["state"] == "done"
    assert entry["result_file"]["key"] == "results/1/human_detector/vtest-15s.json"
    table = stack.cli("status", "1", "--config", str(stack.config_path))
    assert table.returncode == 0 and "done" in table.stdout

    fetched = stack.cli("results", "1", "--config", str(stack.config_path), "-o", str(stack.tmp / "fetched") + "/")
    assert fetched.returncode == 0, fetched.stderr
    remote = json.loads((stack.tmp / "fetched" / "vtest-15s.json").read_text())

    assert analyze.wait(timeout=START_TIMEOUT) == 0, analyze.stderr.read() if analyze.stderr else ""
    local = json.loads((stack.tmp / "local.json").read_text())
    assert remote["video"]["path"] == f"s3://{stack.resources.bucket}/{key}"
    assert remote["frames"] == local["frames"] and remote["summary"] == local["summary"]
    assert remote["detectors"] == local["detectors"]
    assert set(remote) == set(local)
    assert remote["summary"]["Human"]["max_count"] >= 3  # people walk through the PETS 2009 scene
    assert stack.queue_total(stack.resources.queue) == 0 and not list(stack.work_dir.iterdir())


# -- faults ------------------------------------------------------------------------------------------------
@pytest.mark.real_model
def test_bad_inputs_are_dead_lettered_and_the_worker_keeps_serving(stack: Stack, tmp_path: Path) -> None:
    tiny = write_video(tmp_path / "tiny.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    bucket, queue = stack.resources.bucket, stack.queue_url(stack.resources.queue)
    stack.s3.upload_file(str(corrupt), bucket, "videos/30/video/corrupt.mp4")
    hostile = "videos/35/video/../../../../../etc/passwd.mp4"
    stack.s3.upload_file(str(tiny), bucket, hostile)
    stack.s3.upload_file(str(tiny), bucket, "videos/34/video/tiny.mp4")
    bodies = [
        job_body(30, bucket, "videos/30/video/corrupt.mp4"),  # corrupt video
        job_body(31, bucket, "videos/31/video/missing.mp4"),  # missing S3 object
        "this is not json",
        '{"VideoId": 33}',
        '{"VideoId": "x", "s3": {}}',
        job_body(35, bucket, hostile),  # an S3 key that is a path traversal: harmless
        job_body(34, bucket, "videos/34/video/tiny.mp4"),  # a good job after all that
    ]
    for body in bodies:
        stack.sqs.send_message(QueueUrl=queue, MessageBody=body)
    worker, log = stack.start_worker("worker", "--max-jobs", str(len(bodies)))
    rc, out = finish(worker, START_TIMEOUT + 60, log)
    assert rc == 0, log.read_text()[-3000:]
    assert "2 done" in out and "2 failed" in out and "3 malformed" in out

    assert stack.store.get_step(34)["state"] == "done"  # type: ignore[index]
    passwd = stack.store.get_step(35)
    assert passwd is not None and passwd["state"] == "done"
    assert passwd["result_file"]["key"] == "results/35/human_detector/passwd.json"
    for video_id, needle in [(30, "cannot be opened"), (31, "does not exist"), (33, "'s3'")]:
        entry = stack.store.get_step(video_id)
        assert entry is not None and entry["state"] == "error" and entry["retryable"] is False, entry
        assert needle in entry["reason"], entry["reason"]
    dead = stack.dead_letters()
    assert sorted(m["Body"] for m in dead) == sorted(bodies[:5])
    assert stack.queue_total(stack.resources.queue) == 0 and not list(stack.work_dir.iterdir())
    assert not (Path("/etc") / "human_detector").exists()


def start_two_workers(stack: Stack) -> tuple[tuple[subprocess.Popen[str], Path], ...]:
    """Two workers on one queue, one long job: returns ((busy, log), (other, log)) once one of them runs it."""
    a = stack.start_worker("a", "--max-jobs", "1", "--idle-timeout", "90")
    b = stack.start_worker("b", "--max-jobs", "1", "--idle-timeout", "90")
    busy = wait_for(
        lambda: next((w for w in (a, b) if job_events(w[1], "job running", 2)), None),
        START_TIMEOUT,
        "a worker to start the job",
        (a[1], b[1]),
    )
    other = b if busy is a else a
    return busy, other


def long_clip(folder: Path, repeats: int = 4) -> Path:
    """The sample clip played ``repeats`` times: a job that surely outlasts a 1 s grace period, even on a
    machine busy enough to make the sample clip's job short relative to its timings."""
    path = folder / "vtest-long.mp4"
    cap = cv2.VideoCapture(str(SAMPLE))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    for _ in range(repeats):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return path


def assert_done_once_by(stack: Stack, survivor_log: Path, victim_log: Path, name: str = "vtest-15s") -> None:
    entry = stack.store.get_step(2)
    assert entry is not None and entry["state"] == "done" and entry["attempt"] == 2, entry
    document = stack.store.get_document(2)
    assert document is not None and [e["step"] for e in document["process_steps"]] == ["human_detector"]
    assert len(job_events(survivor_log, "job done", 2)) == 1 and not job_events(victim_log, "job done", 2)
    assert len(job_events(victim_log, "job running", 2)) == 1
    assert stack.results("results/2/human_detector/") == [f"results/2/human_detector/{name}.json"]
    assert stack.queue_total(stack.resources.queue) == 0 and stack.dead_letters() == []


@pytest.mark.real_model
def test_worker_killed_mid_job_the_message_comes_back_and_another_worker_completes_it(stack: Stack) -> None:
    submit_video(stack.ctx, stack.config, SAMPLE, 2)
    (victim, victim_log), (survivor, survivor_log) = start_two_workers(stack)
    time.sleep(0.5)  # mid-job (30 frames through the model: seconds on a CPU)
    assert victim.poll() is None and not job_events(victim_log, "job done", 2), "the job ended before the kill"
    assert not job_events(survivor_log, "job running", 2), "a second worker received a leased message"
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    assert any(p.name.startswith(TEMP_PREFIX) for p in stack.work_dir.iterdir())  # what SIGKILL leaves behind
    rc, _ = finish(survivor, START_TIMEOUT + 60, survivor_log)
    assert rc == 0, survivor_log.read_text()[-3000:]
    received = job_events(survivor_log, "job received", 2)
    assert received and received[0]["attempt"] == 2
    assert_done_once_by(stack, survivor_log, victim_log)
    assert not list(stack.work_dir.iterdir()), "the survivor removes the dead worker's temporary video"


@pytest.mark.real_model
def test_sigterm_mid_job_releases_the_message_and_exits_cleanly(stack: Stack, tmp_path: Path) -> None:
    submit_video(stack.ctx, stack.config, long_clip(tmp_path), 2)
    (victim, victim_log), (survivor, survivor_log) = start_two_workers(stack)
    time.sleep(0.5)
    assert victim.poll() is None and not job_events(victim_log, "job done", 2), "the job ended before SIGTERM"
    stopped = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    rc, out = finish(victim, 30, victim_log)
    assert rc == 0, victim_log.read_text()[-3000:]
    assert time.monotonic() - stopped < 20  # grace period 1 s, then the next frame batch notices
    assert "(SIGTERM)" in out and "1 released" in out
    assert job_events(victim_log, "message released") and job_events(victim_log, "job failed", 2)
    rc, _ = finish(survivor, START_TIMEOUT + 60, survivor_log)
    assert rc == 0, survivor_log.read_text()[-3000:]
    assert_done_once_by(stack, survivor_log, victim_log, "vtest-long")
    assert not list(stack.work_dir.iterdir())


@pytest.mark.real_model
def test_two_workers_share_twenty_jobs_and_do_each_exactly_once(stack: Stack, tmp_path: Path) -> None:
    videos = [write_video(tmp_path / f"clip{i}.mp4", frames=5 + i % 5) for i in range(20)]
    for i, video in enumerate(videos):
        submit_video(stack.ctx, stack.config, video, 100 + i)
    a, log_a = stack.start_worker("a", "--idle-timeout", "3")
    b, log_b = stack.start_worker("b", "--idle-timeout", "3")
    assert finish(a, START_TIMEOUT + 120, log_a)[0] == 0
    assert finish(b, START_TIMEOUT + 120, log_b)[0] == 0
    done = job_events(log_a, "job done") + job_events(log_b, "job done")
    assert sorted(e["video_id"] for e in done) == list(range(100, 120)), "every job done exactly once"
    assert not job_events(log_a, "job failed") and not job_events(log_b, "job failed")
    assert not job_events(log_a, "heartbeat failed") and not job_events(log_b, "heartbeat failed")
    for i in range(20):
        entry = stack.store.get_step(100 + i)
        assert entry is not None and entry["state"] == "done" and entry["attempt"] == 1
    assert len(stack.results("videos/")) == 20 and len(stack.results("results/")) == 20  # videos, result files
    assert stack.queue_total(stack.resources.queue) == 0 and stack.dead_letters() == []
    print(f"jobs per worker: a={len(job_events(log_a, 'job done'))}, b={len(job_events(log_b, 'job done'))}")


# -- without AWS -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["worker", "--max-jobs", "1"],
        ["submit", str(SAMPLE), "--video-id", "1"],
        ["status", "1"],
        ["results", "1"],
    ],
    ids=["worker", "submit", "status", "results"],
)
def test_unreachable_endpoint_is_a_clear_error_and_exit_3(tmp_path: Path, args: list[str]) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [*CLI, *args, "--endpoint-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "cannot reach http://127.0.0.1:9" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - started < 60


def test_sandbox_creates_the_resources_of_variables_json(sandbox: str) -> None:
    ctx = make_context(REGION, sandbox)
    res = Resources.from_config(load_config(REPO / "variables.json", environ={}))
    sqs = ctx.client("sqs")
    url = sqs.get_queue_url(QueueName=res.queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{res.dlq}") and int(redrive["maxReceiveCount"]) == 3
    ctx.client("s3").head_bucket(Bucket=res.bucket)
    table = ctx.client("dynamodb").describe_table(TableName=res.table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "VideoId", "KeyType": "HASH"}]
