"""Shared by the Kubernetes tests: a configuration with distinctive names, rendering, and reading YAML back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from crowdcount.config import Config, load_config
from crowdcount.kubernetes import KubernetesOptions, render

REPO = Path(__file__).resolve().parents[2]
#: The options the committed deploy/kubernetes/ was rendered with (an IRSA role in AWS's documentation account).
COMMITTED_OPTIONS = KubernetesOptions(role_arn="arn:aws:iam::111122223333:role/crowdcount-worker")
ROLE = "arn:aws:iam::210987654321:role/cc-test-worker"

#: Names that appear nowhere in the defaults, so a test can find exactly where each lands.
TEST_CONFIG: dict[str, Any] = {
    "aws_region": "eu-west-3",
    "aws_queues": {"human_detection": "qq-jobs-7"},
    "dynamodb": {"region": "eu-west-3", "table_id": "tt-videos-7"},
    "video_split": {"output_bucket": "bb-bucket-7", "input_prefix": "in/"},
    "worker": {"grace_period_seconds": 240, "max_video_bytes": 2 * 1024**3},
    "deploy": {"min_tasks": 1, "max_tasks": 9, "backlog_per_task": 3, "image_tag": "v7", "gpu_count": 2},
    "live": {
        "kafka_bootstrap": "kafka-a.kafka:9093,kafka-b.kafka:9093",
        "kafka_raw_topic": "frames-7",
        "kafka_results_topic": "results-7",
        "kafka_group": "group-7",
        "kafka_partitions": 12,
    },
}


def write_config(tmp_path: Path, **changes: Any) -> Path:
    """TEST_CONFIG (with top-level ``changes``) written as a variables.json; its path."""
    path = tmp_path / "variables.json"
    path.write_text(json.dumps({**TEST_CONFIG, **changes}))
    return path


def load(path: Path | str) -> Config:
    return load_config(path, environ={})


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def objects_of(files: dict[str, str], prefix: str = "") -> list[dict[str, Any]]:
    """Every Kubernetes object of the rendered files under ``prefix`` (not kustomizations or Helm values)."""
    out = []
    for path, text in files.items():
        if path.startswith(prefix) and not path.endswith(("kustomization.yaml", "prometheus-adapter-values.yaml")):
            out.extend(documents(text))
    return out


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def render_test_config(tmp_path: Path, options: KubernetesOptions | None = None) -> dict[str, str]:
    return render(load(write_config(tmp_path)), options or KubernetesOptions(role_arn=ROLE)).files
