"""The image: ECR login/repository/lookup in moto, the Docker SDK calls against a fake engine, and the
real thing against a Docker engine and a local registry where one can run (skipped cleanly elsewhere)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from crowdcount.aws.deploy import image
from crowdcount.aws.deploy.errors import DeployError
from crowdcount.aws.session import AwsContext
from crowdcount.errors import ConfigError

from .conftest import Engine
from .helpers import ACCOUNT, FakeDocker, put_ecr_image, registry_digest, scratch_context


@pytest.mark.parametrize(
    ("ref", "repository", "tag", "digest"),
    [
        ("repo", "repo", None, None),
        ("repo:1", "repo", "1", None),
        ("127.0.0.1:5000/crowdcount-worker:latest", "127.0.0.1:5000/crowdcount-worker", "latest", None),
        ("127.0.0.1:5000/crowdcount-worker", "127.0.0.1:5000/crowdcount-worker", None, None),
        ("r/x@sha256:" + "a" * 64, "r/x", None, "sha256:" + "a" * 64),
    ],
)
def test_image_refs(ref: str, repository: str, tag: str | None, digest: str | None) -> None:
    parsed = image.ImageRef.parse(ref)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repository, tag, digest)
    assert str(parsed) == ref


def test_ecr_uris() -> None:
    uri = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/crowdcount-worker:v2"
    assert image.parse_ecr_uri(uri) == {
        "registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "account": "123456789012",
        "region": "eu-west-1",
        "repository": "crowdcount-worker",
        "tag": "v2",
        "digest": None,
    }
    assert image.parse_ecr_uri("docker.io/library/python:3.11") is None


def test_ecr_login_repository_and_lookup(ctx: AwsContext) -> None:
    ecr = ctx.client("ecr")
    auth = image.ecr_login(ecr)
    token = ecr.get_authorization_token()["authorizationData"][0]
    assert f"{auth.username}:{auth.password}" == base64.b64decode(token["authorizationToken"]).decode()
    assert auth.registry == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    assert auth.as_auth_config()["serveraddress"] == auth.registry

    uri, exists = image.repository_uri(ecr, "crowdcount-worker", ACCOUNT, "us-east-1")
    assert (uri, exists) == (f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/crowdcount-worker", False)
    assert image.ensure_repository(ecr, "crowdcount-worker") == (uri, True)
    assert image.ensure_repository(ecr, "crowdcount-worker") == (uri, False)
    repo = ecr.describe_repositories(repositoryNames=["crowdcount-worker"])["repositories"][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}

    with pytest.raises(DeployError, match=rf"image {re.escape(uri)}:v1 does not exist in ECR"):
        image.check_image_exists(ecr, f"{uri}:v1")
    put_ecr_image(ecr, "crowdcount-worker", "v1")
    assert image.check_image_exists(ecr, f"{uri}:v1") is True
    assert not image.ecr_image_exists(ecr, f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/other:v1")


def test_non_ecr_image_without_engine_cannot_be_checked(ctx: AwsContext, caplog: pytest.LogCaptureFixture) -> None:
    assert image.check_image_exists(ctx.client("ecr"), "docker.io/library/busybox:1") is None
    assert "cannot check" in caplog.text


def test_no_docker_engine_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(DeployError) as info:
        image.docker_client()
    assert str(info.value).startswith("no Docker engine is reachable (")
    assert "--image URI or --no-build" in str(info.value)
    assert "\n" not in str(info.value)


def test_build_streams_the_log_and_returns_the_image_id(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    fake = FakeDocker(build=[{"stream": "Step 1/1 : FROM scratch\n"}, {"stream": "\n"}, {"aux": {"ID": "sha256:abc"}}])
    lines: list[str] = []
    image_id = image.build_image(fake, tmp_path, "Dockerfile", "w:1", {"BASE_IMAGE": "x"}, log=lines.append)
    assert image_id == "sha256:abc"
    assert lines == ["Step 1/1 : FROM scratch"]
    assert fake.api.calls == [
        (
            "build",
            {
                "path": str(tmp_path),
                "dockerfile": "Dockerfile",
                "tag": "w:1",
                "buildargs": {"BASE_IMAGE": "x"},
                "rm": True,
                "forcerm": True,
                "decode": True,
            },
        )
    ]


def test_failed_build_step_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    fake = FakeDocker(build=[{"errorDetail": {"message": "COPY failed: no such file\n"}, "error": "COPY failed"}])
    with pytest.raises(DeployError, match=r"^docker build of w:1 failed: COPY failed: no such file$"):
        image.build_image(fake, tmp_path, "Dockerfile", "w:1")


def test_missing_dockerfile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Dockerfile in"):
        image.build_image(FakeDocker(), tmp_path, "Dockerfile", "w:1")


def test_push_uses_the_registry_credentials_and_returns_the_digest() -> None:
    digest = "sha256:" + "b" * 64
    fake = FakeDocker(
        push=[
            {"status": "The push refers to repository [r/w]"},
            {"status": "Pushing", "id": "layer", "progressDetail": {}},
            {"status": f"latest: digest: {digest} size: 528"},
            {"aux": {"Tag": "latest", "Digest": digest, "Size": 528}},
        ]
    )
    auth = image.RegistryAuth("AWS", "secret", "r")
    assert image.push_image(fake, "w:latest", "r/w", "latest", auth) == digest
    assert fake.api.calls == [
        ("tag", ("w:latest", "r/w", "latest")),
        (
            "push",
            (
                "r/w",
                {
                    "tag": "latest",
                    "stream": True,
                    "decode": True,
                    "auth_config": {"username": "AWS", "password": "secret", "serveraddress": "r"},
                },
            ),
        ),
    ]


def test_refused_push_is_an_error() -> None:
    fake = FakeDocker(push=[{"errorDetail": {"message": "denied: not authorized"}, "error": "denied"}])
    with pytest.raises(DeployError, match="docker push of r/w:latest failed: denied: not authorized"):
        image.push_image(fake, "w:latest", "r/w", "latest")


# -- a real Docker engine -----------------------------------------------------------------------------------


@pytest.mark.docker
def test_build_and_push_to_a_local_registry(docker_engine: Engine, tmp_path: Path) -> None:
    client = docker_engine.client()
    context = scratch_context(tmp_path / "ctx")
    lines: list[str] = []
    image_id = image.build_image(client, context, "Dockerfile", "crowdcount-test:1", log=lines.append)
    assert image_id.startswith("sha256:")
    assert any("COPY hello.txt /hello.txt" in line for line in lines)

    repository = f"{docker_engine.registry}/crowdcount-test"
    digest = image.push_image(client, "crowdcount-test:1", repository, "1", log=lines.append)
    assert digest is not None and digest.startswith("sha256:")
    assert registry_digest(docker_engine.registry, "crowdcount-test", "1") == digest

    assert image.check_image_exists(None, f"{repository}:1", client) is True
    with pytest.raises(DeployError, match="does not exist in its registry"):
        image.check_image_exists(None, f"{repository}:missing", client)


@pytest.mark.docker
def test_failed_real_build_is_one_line(docker_engine: Engine, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY missing.txt /\n")
    with pytest.raises(DeployError, match=r"docker build of crowdcount-test:bad failed: .*missing\.txt") as info:
        image.build_image(docker_engine.client(), context, "Dockerfile", "crowdcount-test:bad")
    assert "\n" not in str(info.value)


@pytest.mark.docker
def test_docker_client_finds_the_engine(docker_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.docker_host)
    assert image.docker_client().ping()
