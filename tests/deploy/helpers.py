"""Constants and helpers shared by the deploy tests."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"

#: A config for the tests: memory that moto's container instances can hold, a result prefix.
TEST_CONFIG: dict[str, Any] = {
    "human_detection": {"result_prefix": "results/"},
    "deploy": {"memory": "4096", "cpu": "2048"},
}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float) -> bool:
    """Poll ``url`` until it answers (any HTTP status) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.2)
    return False


def by_digest(ecr: Any, uri: str) -> str:
    """``uri`` as deploys name it: by its digest in ECR (``repo@sha256:...``), not by its tag."""
    from crowdcount.aws.deploy.image import ecr_image_digest, pinned

    digest = ecr_image_digest(ecr, uri)
    assert digest is not None and digest.startswith("sha256:")
    return pinned(uri, digest)


def put_ecr_image(ecr: Any, repository: str, tag: str) -> str:
    """Put a (manifest-only) image into moto's ECR, creating the repository if needed; its URI."""
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
    with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
    return f"{uri}:{tag}"


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/crowdcount-worker:latest"
TASK_ROLE = "arn:aws:iam::123456789012:role/crowdcount-worker-task"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/crowdcount-worker-execution"

EXPECTED_ENVIRONMENT = [
    {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
    {"name": "CROWDCOUNT_AWS_QUEUES__HUMAN_DETECTION", "value": "crowdcount-human-detection"},
    {"name": "CROWDCOUNT_AWS_REGION", "value": "us-east-1"},
    {"name": "CROWDCOUNT_DYNAMODB__REGION", "value": "us-east-1"},
    {"name": "CROWDCOUNT_DYNAMODB__TABLE_ID", "value": "crowdcount-videos"},
    {"name": "CROWDCOUNT_HUMAN_DETECTION__RESULT_PREFIX", "value": "results/"},
    {"name": "CROWDCOUNT_LOG_FORMAT", "value": "json"},
    {"name": "CROWDCOUNT_VIDEO_SPLIT__INPUT_PREFIX", "value": "videos/"},
    {"name": "CROWDCOUNT_VIDEO_SPLIT__OUTPUT_BUCKET", "value": "crowdcount-videos"},
    {"name": "CROWDCOUNT_WORKER__GRACE_PERIOD_SECONDS", "value": "90"},
    {"name": "CROWDCOUNT_WORKER__VISIBILITY_TIMEOUT", "value": "300"},
]


#: The container's health check: the image's HEALTHCHECK, which ECS ignores unless the task definition repeats it.
HEALTH_CHECK = {
    "command": [
        "CMD",
        "python",
        "-c",
        "import os, sys, time; sys.exit(time.time() - os.path.getmtime(os.environ['CROWDCOUNT_HEALTH_FILE']) > 300)",
    ],
    "interval": 60,
    "timeout": 10,
    "retries": 3,
    "startPeriod": 300,
}


def expected_taskdef(image: str = IMAGE, task_role: str = TASK_ROLE, execution_role: str = EXECUTION_ROLE) -> dict:
    """The task definition the test config must render to, key by key."""
    return {
        "family": "crowdcount-worker",
        "taskRoleArn": task_role,
        "executionRoleArn": execution_role,
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "cpu": "2048",
        "memory": "4096",
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ g4dn.*"}],
        "containerDefinitions": [
            {
                "name": "worker",
                "image": image,
                "essential": True,
                "memoryReservation": 4096,
                "resourceRequirements": [{"type": "GPU", "value": "1"}],
                "environment": EXPECTED_ENVIRONMENT,
                "stopTimeout": 120,
                "healthCheck": HEALTH_CHECK,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/ecs/crowdcount-worker",
                        "awslogs-region": "us-east-1",
                        "awslogs-stream-prefix": "crowdcount-worker",
                    },
                },
            }
        ],
    }


class FakeApi:
    """The slice of docker.APIClient that image.py uses, with canned streams."""

    def __init__(self, build: list[dict[str, Any]], push: list[dict[str, Any]]) -> None:
        self.build_chunks = build
        self.push_chunks = push
        self.calls: list[tuple[str, Any]] = []

    def build(self, **kwargs: Any) -> Any:
        self.calls.append(("build", kwargs))
        return iter(self.build_chunks)

    def tag(self, image: str, repository: str, tag: str) -> bool:
        self.calls.append(("tag", (image, repository, tag)))
        return True

    def push(self, repository: str, **kwargs: Any) -> Any:
        self.calls.append(("push", (repository, kwargs)))
        return iter(self.push_chunks)


class FakeDocker:
    """A stand-in for docker.DockerClient: only ``.api``."""

    def __init__(self, build: list[dict[str, Any]] | None = None, push: list[dict[str, Any]] | None = None) -> None:
        self.api = FakeApi(build or [], push or [])


def scratch_context(path: Path, text: str = "hello from crowdcount\n") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "hello.txt").write_text(text)
    (path / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (path / ".dockerignore").write_text("ignored/\n")
    return path


def registry_digest(registry: str, repository: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        method="HEAD",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Docker-Content-Digest"])
