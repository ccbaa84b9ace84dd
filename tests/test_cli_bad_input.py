"""Bad input on the command line: one line saying what is wrong and how to fix it, the README's exit code, no
traceback, nothing left behind (found by an audit of every command; each case here failed it once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from crowdcount.cli.common import FloatRange
from crowdcount.cli.main import cli

from conftest import REPO

pytestmark = pytest.mark.usefixtures("keep_logging")


def run(*args: str) -> tuple[int, str, str]:
    """``crowdcount ARGS`` through click's runner (named as the console script is): exit code, stdout, stderr;
    unexpected exceptions re-raised."""
    result = CliRunner().invoke(cli, list(args), prog_name="crowdcount")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``crowdcount ARGS`` in a process of its own (what native code writes to stderr is seen too)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROWDCOUNT_") and k != "AWS_ENDPOINT_URL"}
    environ["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "crowdcount.cli.main", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "Error: No such option '--bogus'. (see 'crowdcount --help')"),
        (["analyse", "x.mp4"], "Error: No such command 'analyse'. (see 'crowdcount --help')"),
        (
            ["--log-format", "xml", "detectors"],
            "Error: Invalid value for '--log-format': 'xml' is not one of 'text', 'json'. (see 'crowdcount --help')",
        ),
    ],
)
def test_a_bad_option_or_command_of_crowdcount_itself_is_one_line(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert (code, out, err) == (2, "", message + "\n")


def test_a_file_that_is_not_a_video_is_one_line_without_ffmpegs_own(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video\n")
    done = run_process("analyze", str(fake), "-d", "human", "-o", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: {str(fake)!r} cannot be opened as a video (not a video, or a codec OpenCV's FFmpeg lacks)\n"
    )


ENDPOINT_HINT = (
    "(e.g. --endpoint-url http://127.0.0.1:4566; check --endpoint-url, AWS_ENDPOINT_URL and aws_endpoint_url)"
)


@pytest.mark.parametrize(
    "args",
    [
        ["status", "1"],
        ["results", "1"],
        ["submit", "VIDEO", "--video-id", "1"],
        ["worker", "--max-jobs", "1"],
        ["faces", "list", "-g", "dynamodb://faces"],
        ["edge", "VIDEO", "--frames", "1"],
    ],
)
@pytest.mark.parametrize("url", ["notaurl", "127.0.0.1:4566", "ftp://host", "http://127.0.0.1:99999"])
def test_an_endpoint_that_is_not_an_http_url_is_a_usage_error(
    args: list[str], url: str, video_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    video = str(video_factory("clip.mp4", frames=2))
    code, out, err = run(*[video if a == "VIDEO" else a for a in args], "--endpoint-url", url)
    assert (code, out, err) == (
        2,
        "",
        f"Error: endpoint URL {url!r} is not an http:// or https:// URL {ENDPOINT_HINT}\n",
    )


def test_a_bad_aws_endpoint_url_variable_is_a_usage_error_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:4566")
    code, _, err = run("status", "1")
    assert (code, err) == (
        2,
        f"Error: endpoint URL 'localhost:4566' is not an http:// or https:// URL {ENDPOINT_HINT}\n",
    )


def test_edge_with_nothing_listening_is_exit_3_and_one_line(video_factory) -> None:
    video = str(video_factory("clip.mp4", frames=2))
    code, out, err = run("edge", video, "--frames", "1", "--endpoint-url", "http://127.0.0.1:1")
    assert (code, out) == (3, "")
    assert err == (
        "Error: opening queue 'crowdcount-results': cannot reach http://127.0.0.1:1 "
        "(is the sandbox running (crowdcount sandbox)? check --endpoint-url / AWS_ENDPOINT_URL)\n"
    )


@pytest.mark.usefixtures("fake_detectors")
def test_watch_output_that_cannot_be_written_is_one_line(tmp_path: Path, video_factory) -> None:
    video = str(video_factory("clip.mp4", frames=2))
    folder = tmp_path / "records"
    folder.mkdir()
    code, out, err = run("watch", video, "-d", "squares", "--no-track", "-o", str(folder), "--duration", "5s")
    assert (code, out) == (2, "")
    assert (
        err == f"Error: --output {str(folder)!r} cannot be written: Is a directory (give a file in a writable folder)\n"
    )
    assert list(folder.iterdir()) == []


@pytest.mark.usefixtures("fake_detectors")
def test_a_failed_analysis_leaves_no_empty_output_folders(
    tmp_path: Path, video_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "missing.mp4"
    code, _, err = run("analyze", str(missing), "-d", "squares", "-o", "a/b/", "--csv", "c/d.csv", "--plot", "p/")
    assert (code, err) == (1, f"Error: {str(missing)!r} does not exist (check the path)\n")
    code, _, err = run(
        "analyze", str(video_factory("clip.mp4", frames=2)), "-d", "squares", "--detector-arg", "squares.x=1"
    )
    assert code == 2 and err.startswith("Error: detector 'squares' has no argument 'x'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # not even crowdcount_results/


@pytest.mark.usefixtures("fake_detectors")
def test_a_still_image_is_not_a_video(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    photo = tmp_path / "photo.mp4"  # a PNG, whatever its name
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "photo.png").rename(photo)
    code, _, err = run("analyze", str(photo), "-d", "squares", "-o", str(tmp_path / "out"))
    assert (code, err) == (1, f"Error: {str(photo)!r} is a still image (PNG), not a video (give a video file)\n")
    assert not (tmp_path / "out").exists()


def test_sandbox_on_a_taken_port_is_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run("sandbox", "--port", str(port))
    assert (code, out) == (3, "")
    assert err == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(choose another --port or --host (port 0 picks a free one))\n"
    )


def test_find_checks_where_results_go_and_the_endpoint_before_searching(tmp_path: Path, video_factory) -> None:
    video = str(video_factory("clip.mp4", frames=2))
    photo = str(tmp_path / "photo.jpg")  # never read: each check comes first
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = run("find", photo, "--in", video, "--annotate", str(blocker / "sheets"))
    assert (code, out, err) == (
        2,
        "",
        f"Error: --annotate: cannot write into {str(blocker / 'sheets')!r}: Not a directory\n",
    )
    code, _, err = run("find", photo, "--in", "s3://bucket/results/", "--endpoint-url", "localhost:4566")
    assert (code, err) == (
        2,
        f"Error: endpoint URL 'localhost:4566' is not an http:// or https:// URL {ENDPOINT_HINT}\n",
    )
    code, _, err = run("find", photo, "--in", video, "--frame-ratio", "0")
    assert (code, err) == (
        2,
        "Error: Invalid value for '--frame-ratio': 0.0 is not in the range 0<x<=1. (see 'crowdcount find --help')\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "file"]


def test_find_given_a_folder_as_a_photo_says_so(tmp_path: Path, video_factory) -> None:
    code, _, err = run("find", str(tmp_path), "--in", str(video_factory("clip.mp4", frames=2)))
    assert (code, err) == (
        1,
        f"Error: photo {str(tmp_path)!r} is a folder (give the photos themselves (e.g. folder/*.jpg))\n",
    )


def test_submit_of_a_file_that_is_not_a_video_fails_before_any_upload(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video\n")
    # nothing listens there: the file is refused before AWS is asked anything (else this would be exit 3)
    code, out, err = run("submit", str(fake), "--video-id", "1", "--endpoint-url", "http://127.0.0.1:1")
    assert (code, out) == (1, "")
    assert err == f"Error: {str(fake)!r} cannot be opened as a video (not a video, or a codec OpenCV's FFmpeg lacks)\n"


def test_deploy_run_task_and_service_together_is_a_usage_error_before_aws() -> None:
    code, out, err = run("deploy", "--run-task", "--service", "--dry-run", "--endpoint-url", "http://127.0.0.1:1")
    assert (code, out) == (2, "")
    assert err == "Error: --run-task and --service exclude each other (give one) (see 'crowdcount deploy --help')\n"


@pytest.mark.parametrize("text", ['{"human_detection": {', '{"schema_version": 1}', "[1, 2]"])
def test_dashboard_given_a_file_that_is_not_a_result_says_so_instead_of_serving_nothing(
    tmp_path: Path, text: str
) -> None:
    bad = tmp_path / "r.json"
    bad.write_text(text)
    code, out, err = run("dashboard", str(bad), "--web", "0", "--no-jobs")
    assert (code, out) == (2, "")
    assert err == (
        f"Error: {str(bad)!r} is not a crowdcount result file (give result JSONs written by analyze or the worker, "
        "folders of them, or s3://BUCKET/PREFIX)\n"
    )


@pytest.mark.usefixtures("fake_detectors")
def test_watch_with_a_malformed_redis_url_is_a_usage_error_not_an_unreachable_broker(video_factory) -> None:
    pytest.importorskip("redis")
    video = str(video_factory("clip.mp4", frames=2))
    code, out, err = run("watch", video, "-d", "squares", "--redis", "rdis://user:secret@host", "--duration", "5s")
    assert (code, out) == (2, "")
    assert err == (
        "Error: Redis URL 'rdis://user:***@host' is not valid: Redis URL must specify one of the following schemes "
        "(redis://, rediss://, unix://) (e.g. --redis redis://127.0.0.1:6379/0; check --redis and live.redis_url)\n"
    )


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["analyze", "VIDEO", "--frame-ratio", "nan"], "--frame-ratio", "nan"),
        (["analyze", "VIDEO", "--smooth", "nan"], "--smooth", "nan"),
        (["analyze", "VIDEO", "--contact-distance", "inf"], "--contact-distance", "inf"),
        (["eval", "VIDEO", "--gt", "gt.txt", "--iou", "nan"], "--iou", "nan"),
        (["worker", "--idle-timeout", "nan"], "--idle-timeout", "nan"),
        (["watch", "VIDEO", "--realtime", "--speed", "inf"], "--speed", "inf"),
    ],
)
def test_nan_and_inf_are_refused_by_every_number_option(
    args: list[str], option: str, value: str, video_factory
) -> None:
    video = str(video_factory("clip.mp4", frames=2))
    code, out, err = run(*[video if a == "VIDEO" else a for a in args])
    command = args[0]
    assert (code, out) == (2, "")
    assert err == (
        f"Error: Invalid value for '{option}': {value!r} is not a finite number. (see 'crowdcount {command} --help')\n"
    )


def test_a_number_option_given_a_word_says_it_wants_a_number(video_factory) -> None:
    code, _, err = run("analyze", str(video_factory("clip.mp4", frames=2)), "--contact-seconds", "abc")
    assert (code, err) == (
        2,
        "Error: Invalid value for '--contact-seconds': 'abc' is not a valid number. "
        "(see 'crowdcount analyze --help')\n",
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity"])
def test_nan_in_a_config_file_is_one_line_not_a_traceback(tmp_path: Path, video_factory, constant: str) -> None:
    config = tmp_path / "variables.json"
    config.write_text(f'{{"human_detection": {{"count_smoothing_s": {constant}}}}}')
    code, _, err = run("analyze", str(video_factory("clip.mp4", frames=2)), "--config", str(config))
    assert (code, err) == (
        2,
        f"Error: config file {str(config)!r} is not valid JSON: {constant} is not a JSON number "
        "(give a finite number)\n",
    )


def test_nan_in_a_config_variable_is_not_a_number(video_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDCOUNT_HUMAN_DETECTION__COUNT_SMOOTHING_S", "NaN")
    code, _, err = run("analyze", str(video_factory("clip.mp4", frames=2)))
    assert (code, err) == (2, "Error: config key 'human_detection.count_smoothing_s' must be a number, got 'NaN'\n")


def test_a_folder_as_the_config_file_says_so(tmp_path: Path, video_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDCOUNT_CONFIG", str(tmp_path))
    code, _, err = run("analyze", str(video_factory("clip.mp4", frames=2)))
    assert (code, err) == (
        2,
        f"Error: config file {str(tmp_path)!r} is a folder (check --config / $CROWDCOUNT_CONFIG)\n",
    )


def test_stream_produce_reports_a_missing_file_before_asking_the_broker(tmp_path: Path) -> None:
    pytest.importorskip("confluent_kafka")
    missing = tmp_path / "nope.mp4"
    code, out, err = run("stream", "produce", str(missing), "--bootstrap", "127.0.0.1:1", "--duration", "5s")
    assert (code, out) == (2, "")
    assert err == (
        f"Error: source {str(missing)!r} is not a URL, a webcam index or an existing file "
        "(give rtsp://..., http(s)://..., a webcam number (0) or a video file)\n"
    )


def test_a_webcam_that_is_not_there_gives_crowdcounts_lines_not_opencvs() -> None:
    done = run_process("watch", "99", "-d", "human", "--retries", "0", "--open-timeout", "1s", "--no-table")
    lines = done.stderr.splitlines()
    assert done.returncode == 1
    assert lines[0] == "live mode (webcam99): the latest frame is analysed, older ones dropped and counted"
    assert lines[1].endswith(
        " ERROR crowdcount.live.sources: source webcam99 failed 1 times in a row, giving up: cannot open 99"
    )
    assert lines[-1] == "Error: source(s) gave up: webcam99"
    # the rest is the final table; OpenCV's own "[ WARN:0@0.7] ... can't open camera by index" and its
    # exception dump are held back
    assert [line for line in lines if line.startswith(("[", ">")) or "OpenCV" in line] == []


def test_the_same_detector_twice_says_how_to_fix_it(video_factory) -> None:
    code, _, err = run("analyze", str(video_factory("clip.mp4", frames=2)), "-d", "human", "-d", "person")
    assert (code, err) == (
        2,
        "Error: more than one detector reports category Human (run each kind of detector once, e.g. -d human -d face "
        "(an alias such as person is human))\n",
    )


@pytest.mark.parametrize(("option", "value"), [("--contact-distance", "-1"), ("--contact-seconds", "0")])
def test_contact_settings_are_checked_as_options(option: str, value: str, video_factory) -> None:
    code, _, err = run("analyze", str(video_factory("clip.mp4", frames=2)), option, value)
    assert (code, err) == (
        2,
        f"Error: Invalid value for '{option}': {float(value)} is not in the range x>0. "
        "(see 'crowdcount analyze --help')\n",
    )


@pytest.mark.parametrize(
    ("args", "option", "value", "bound"),
    [
        (["eval", "VIDEO", "--gt", "gt.txt", "--gt-scale"], "--gt-scale", "0", "x>0"),
        (["edge", "VIDEO", "--timeout"], "--timeout", "-1", "x>=0"),
    ],
)
def test_scale_and_timeout_refuse_what_means_nothing(
    args: list[str], option: str, value: str, bound: str, video_factory
) -> None:
    video = str(video_factory("clip.mp4", frames=2))
    code, out, err = run(*[video if a == "VIDEO" else a for a in args], value)
    assert (code, out) == (2, "")
    assert err == (
        f"Error: Invalid value for '{option}': {float(value)} is not in the range {bound}. "
        f"(see 'crowdcount {args[0]} --help')\n"
    )


def test_help_never_shows_a_range_without_bounds() -> None:
    for command in (["eval"], ["edge"], ["find"], ["analyze"], ["worker"]):
        result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
        assert result.exit_code == 0 and "None" not in result.output, command
    edge = CliRunner().invoke(cli, ["edge", "--help"], terminal_width=200).output

    @click.command()
    @click.option("--any", type=FloatRange(), default=None, help="Any number.")
    def command(any: float | None) -> None:
        """A number option without bounds."""

    assert "Any number.\n" in CliRunner().invoke(command, ["--help"], terminal_width=200).output
    assert "Seconds to wait for the last answers.  [default: 30.0; x>=0]" in edge


def test_an_expected_error_is_printed_on_one_line_whatever_its_message_holds() -> None:
    from crowdcount.cli.main import UserError
    from crowdcount.errors import AWSError

    error = UserError(AWSError("deploying failed: 500: <html>\n  <title>500</title>\n</html>", "check the endpoint"))
    assert (error.format_message(), error.exit_code) == (
        "deploying failed: 500: <html> <title>500</title> </html> (check the endpoint)",
        3,
    )


def test_find_in_a_folder_of_results_without_vectors_says_so(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "clip.json").write_text(json.dumps({"video": {"name": "clip.mp4"}, "tracking": {"people": []}}))
    (tmp_path / "photo.jpg").write_bytes(b"never read: the sources are checked first")
    code, out, err = run("find", str(tmp_path / "photo.jpg"), "--in", str(results), "-o", str(tmp_path / "m.json"))
    assert (code, out, err.splitlines()[-1]) == (
        1,
        "",
        f"Error: {results}: no result files with appearance vectors (1 without) (analyse the videos with "
        "'crowdcount analyze --embeddings', or set the worker's tracking.embeddings)",
    )
    assert not (tmp_path / "m.json").exists()
