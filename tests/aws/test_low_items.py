"""Small faults from the audit (issue 16, Low): markup in file names, detector-arg types, temp files, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from crowdcount.cli.analyze import _print_table

from .support import SAMPLE, FakeDetector


def test_rich_markup_in_a_file_name_is_printed_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    rows = [
        {"video": "in/clip[/x].mp4", "ok": False, "error": "'clip[/x].mp4' [bold]is empty"},
        {
            "video": "in/a[red]b.mp4",
            "ok": True,
            "summary": {"Human": {"frames_analyzed": 3, "max_count": 1, "mean_count": 1.0, "peak_timestamp": 0.0}},
            "result_file": "out/a[/red]b.json",
            "count_smoothing": {"seconds": 0, "frames": 1},
            "lines": [{"name": "door[/b]", "in": 1, "out": 0}],
        },
    ]
    _print_table(rows)
    out = capsys.readouterr().out
    assert "clip[/x].mp4" in out and "a[red]b.mp4" in out and "a[/red]b.json" in out and "door[/b]" in out


def test_a_json_list_for_a_text_detector_argument_is_a_usage_error() -> None:
    from conftest import run_cli

    code, out, err = run_cli("analyze", str(SAMPLE), "-d", "human", "--detector-arg", 'human.preset=["a"]')
    assert (code, out) == (2, "")
    assert (
        err == 'Error: --detector-arg human.preset must be str, got a JSON list: ["a"] (e.g. human.preset="accurate")\n'
    )


def test_redis_passwords_are_not_in_messages() -> None:
    from crowdcount.live.brokers import redact_url

    assert redact_url("redis://user:s3cret@cache:6380/0") == "redis://user:***@cache:6380/0"
    assert redact_url("redis://:s3cret@cache/0") == "redis://:***@cache/0"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"


def test_kafka_offsets_are_not_committed_after_a_failed_delivery() -> None:
    """The broker refuses a result (delivery callback with an error) although flush() returns 0: no commit."""
    import types

    from live.kafka_fakes import fake_consumer, raw_message

    from crowdcount.errors import BrokerError

    message = raw_message("cam", 7, (32, 24))
    commits: list[bool] = []
    pending: list[Any] = []

    class Producer:
        def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
            pending.append(lambda: on_delivery(types.SimpleNamespace(str=lambda: "MSG_SIZE_TOO_LARGE"), self.msg))

        msg = types.SimpleNamespace(topic=lambda: "results")

        def flush(self, timeout: float) -> int:
            for deliver in pending:
                deliver()
            return 0

    consumer = fake_consumer(FakeDetector(), Producer(), commits)
    with pytest.raises(
        BrokerError, match="1 result\\(s\\) were refused by Kafka topic 'results'; offsets not committed"
    ):
        consumer._handle([message], None)
    assert commits == []


def test_metrics_are_served_on_this_machine_only_by_default() -> None:
    from prometheus_client import CollectorRegistry

    from crowdcount.cli.worker import worker
    from crowdcount.metrics import serve_metrics

    server = serve_metrics(CollectorRegistry(), 0)
    try:
        assert server._server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    finally:
        server.close()
    assert next(p for p in worker.params if p.name == "metrics_host").default == "127.0.0.1"
