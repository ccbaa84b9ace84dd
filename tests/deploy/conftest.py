"""Fixtures for the deploy tests: fake credentials, moto (in-process and as a server), a GPU cluster,
a recorder of the exact API calls sent, and a Docker engine with a local registry where one can run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from processes import stop_process

from crowdcount.aws.session import AwsContext, make_context
from crowdcount.config import Config

from .helpers import ACCOUNT, REGION, TEST_CONFIG, free_port, wait_for_http

EXECUTION_POLICY = "AmazonECSTaskExecutionRolePolicy"


def _model_bucket_policies_in_moto() -> None:
    """moto's CloudFormation has no model for AWS::S3::BucketPolicy (the template's TLS-only policy): it leaves a
    None in the stack's resources, on which describe_stack_resource fails. Give it one that puts the policy on
    the bucket, as CloudFormation does (the template itself is checked by cfn-lint and checkov)."""
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    if "AWS::S3::BucketPolicy" in parsing.get_model_map():
        return

    class BucketPolicy(CloudFormationModel):
        def __init__(self, bucket: str) -> None:
            self.bucket = bucket

        @property
        def physical_resource_id(self) -> str:
            return self.bucket

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::S3::BucketPolicy"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> BucketPolicy:
            props = cloudformation_json["Properties"]
            backend = s3_backends[account_id][get_partition(region_name)]
            backend.put_bucket_policy(props["Bucket"], json.dumps(props["PolicyDocument"]).encode())
            return cls(props["Bucket"])

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    assert "AWS::S3::BucketPolicy" in parsing.get_model_map()


_model_bucket_policies_in_moto()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs a Docker engine and a local registry (skipped where none can run)"
    )


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, a fixed region, no endpoint or profile leaking in from the environment."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "CROWDCOUNT_")) or name == "DOCKER_HOST":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def execution_policy_only() -> str | None:
    """moto's AWS managed policies cut down to the one deploy attaches (loading all ~1,300 costs 3 s a test)."""
    try:
        from moto.iam import aws_managed_policies
    except ImportError:  # pragma: no cover - moto layout changed: load them all
        return None
    data = json.loads(aws_managed_policies.aws_managed_policies_data)
    return json.dumps({EXECUTION_POLICY: data[EXECUTION_POLICY]})


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch, execution_policy_only: str | None) -> Iterator[None]:
    """moto in-process, with the AWS managed execution policy available to attach."""
    if execution_policy_only is not None:
        import moto.iam.models

        monkeypatch.setattr(moto.iam.models, "aws_managed_policies_data", execution_policy_only)
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield


@pytest.fixture
def ctx(moto: None) -> AwsContext:
    """An AwsContext inside moto."""
    return make_context(REGION)


@pytest.fixture
def config() -> Config:
    """The test configuration."""
    return Config(TEST_CONFIG)


class Recorder:
    """Records the parameters of every API call made by clients of a session (after validation)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name, json.loads(json.dumps(params))))

    def params(self, service: str, operation: str) -> list[dict[str, Any]]:
        """The parameters of each ``service`` ``operation`` call, in order."""
        return [p for s, o, p in self.calls if s == service and o == operation]

    def operations(self, service: str | None = None) -> list[str]:
        """The operation names called (of ``service``)."""
        return [o for s, o, _ in self.calls if service is None or s == service]


@pytest.fixture
def recorder(ctx: AwsContext) -> Recorder:
    """Recorder of the calls of ``ctx``'s clients (register before the clients are made)."""
    rec = Recorder()
    ctx.session.events.register("provide-client-params.*.*", rec)
    return rec


def instance_identity(ec2_client: Any, instance_type: str) -> str:
    """Start an EC2 instance of ``instance_type`` and return its identity document (what the ECS agent sends)."""
    ami = "ami-12c6146b"  # one of moto's default AMIs (describe_images would load them all: seconds)
    instance = ec2_client.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType=instance_type)["Instances"][0]
    return json.dumps(
        {
            "instanceId": instance["InstanceId"],
            "instanceType": instance_type,
            "imageId": ami,
            "region": REGION,
            "accountId": ACCOUNT,
            "availabilityZone": f"{REGION}a",
            "privateIp": instance.get("PrivateIpAddress", "10.0.0.1"),
        }
    )


def add_instance(
    session: boto3.Session, cluster: str, instance_type: str, gpu: bool, endpoint: str | None = None
) -> str:
    """Register a container instance of ``instance_type``; with ``gpu`` it carries the NVIDIA driver attribute
    the ECS agent sets on GPU instances (moto cannot register the ``GPU`` resource itself)."""
    ecs = session.client("ecs", region_name=REGION, endpoint_url=endpoint)
    ec2 = session.client("ec2", region_name=REGION, endpoint_url=endpoint)
    document = instance_identity(ec2, instance_type)
    registered = ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=document)
    arn = registered["containerInstance"]["containerInstanceArn"]
    if gpu:
        ecs.put_attributes(
            cluster=cluster,
            attributes=[
                {
                    "name": "ecs.capability.nvidia-driver-version.535.183.01",
                    "targetType": "container-instance",
                    "targetId": arn.rsplit("/", 1)[-1],
                }
            ],
        )
    return arn


@pytest.fixture
def gpu_cluster(ctx: AwsContext) -> str:
    """Cluster ``crowdcount`` with one g4dn.xlarge GPU container instance."""
    ctx.session.client("ecs", region_name=REGION).create_cluster(clusterName="crowdcount")
    add_instance(ctx.session, "crowdcount", "g4dn.xlarge", gpu=True)
    return "crowdcount"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server subprocess (the sandbox); its endpoint URL. Bounded start-up wait, always torn down."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("wb")
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_http(f"{url}/moto-api/", timeout=30):
            pytest.fail(f"moto server did not start on {url}")
        yield url
    finally:
        stop_process(proc, 10)
        log.close()


# -- a Docker engine and a local registry ------------------------------------------------------------------


class Engine:
    """A reachable Docker engine (``docker_host``) and a local registry (``registry``, host:port)."""

    def __init__(self, docker_host: str, registry: str) -> None:
        self.docker_host = docker_host
        self.registry = registry

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=120)


def _ping(base_url: str | None) -> bool:
    try:
        import docker

        client = docker.DockerClient(base_url=base_url, timeout=5) if base_url else docker.from_env(timeout=5)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """A Docker engine and a registry to push to, or a clean skip.

    Uses the engine of ``$DOCKER_HOST``/the default socket when one answers; otherwise, when running as
    root with ``dockerd`` installed (Debian's docker.io), starts a private one (own data root and socket
    under a temporary folder, no bridge, no iptables, vfs storage) for this session only. The registry is
    Debian's ``docker-registry`` on a free 127.0.0.1 port (the engine trusts 127.0.0.0/8 without TLS).
    Every wait is bounded; everything started here is stopped at the end.
    """
    registry_bin = shutil.which("docker-registry")
    if registry_bin is None:
        pytest.skip("no docker-registry binary to push to (apt-get install docker-registry)")
    started: list[subprocess.Popen[bytes]] = []
    # A short folder of its own: unix socket paths are limited to about 100 characters.
    root = Path(tempfile.mkdtemp(prefix="ccdk-"))
    try:
        host = os.environ.get("DOCKER_HOST")
        if not _ping(host):
            dockerd = shutil.which("dockerd")
            if dockerd is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
                pytest.skip("no Docker engine reachable, and cannot start one (needs root and dockerd)")
            host = f"unix://{root}/docker.sock"
            log = (root / "dockerd.log").open("wb")
            started.append(
                subprocess.Popen(
                    [
                        dockerd,
                        "--data-root",
                        str(root / "data"),
                        "--exec-root",
                        str(root / "exec"),
                        "--pidfile",
                        str(root / "docker.pid"),
                        "-H",
                        host,
                        "--bridge=none",
                        "--iptables=false",
                        "--storage-driver=vfs",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            deadline = time.monotonic() + 60
            while not _ping(host):
                if started[-1].poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"could not start dockerd (see {root / 'dockerd.log'})")
                time.sleep(0.5)
        port = free_port()
        (root / "registry.yml").write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'registry'}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        started.append(
            subprocess.Popen(
                [registry_bin, "serve", str(root / "registry.yml")],
                stdout=(root / "registry.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        if not wait_for_http(f"http://127.0.0.1:{port}/v2/", timeout=20):
            pytest.skip("docker-registry did not start")
        yield Engine(host or "unix:///var/run/docker.sock", f"127.0.0.1:{port}")
    finally:
        for proc in reversed(started):
            stop_process(proc, 20)
        shutil.rmtree(root, ignore_errors=True)
