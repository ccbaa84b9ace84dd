"""The worker image: build it with the Docker SDK (log streamed), log in to ECR, create the repository if
missing, tag and push; and check that an image given by URI exists before a task definition points at it.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from crowdcount.aws.deploy.errors import DeployError, aws_errors, error_code
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

Log = Callable[[str], None]

_ECR_URI = re.compile(
    r"^(?P<registry>(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)"
    r"/(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)

NO_ENGINE_HINT = (
    "start Docker (or set DOCKER_HOST), or deploy an image that is already pushed with --image URI or --no-build"
)


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for a registry (ECR's are valid for 12 hours)."""

    username: str
    password: str
    registry: str

    def as_auth_config(self) -> dict[str, str]:
        """The ``auth_config`` the Docker SDK takes."""
        return {"username": self.username, "password": self.password, "serveraddress": self.registry}


@dataclass(frozen=True)
class ImageRef:
    """An image reference split into repository (with registry), tag and digest."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        """Split ``registry/repository:tag@digest`` (a ``:`` before the last ``/`` is a registry port)."""
        name, _, digest = ref.partition("@")
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            return cls(name[:colon], name[colon + 1 :] or None, digest or None)
        return cls(name, None, digest or None)

    def __str__(self) -> str:
        return self.repository + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_ecr_uri(uri: str) -> dict[str, str | None] | None:
    """``{registry, account, region, repository, tag, digest}`` of an ECR image URI, else None."""
    match = _ECR_URI.match(uri)
    return match.groupdict() if match else None


def docker_client(timeout: int = 600) -> Any:
    """A Docker SDK client for the engine of ``$DOCKER_HOST`` (or the default socket), checked with a ping;
    :class:`DeployError` when none is reachable."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        raise DeployError(
            "building and pushing the image needs the Docker SDK, which is not installed",
            "pip install 'crowdcount[deploy]', or deploy an existing image with --image",
        ) from None

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeployError(f"no Docker engine is reachable ({reason})", NO_ENGINE_HINT) from None
    return client


def build_image(
    client: Any,
    context: str | Path,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str] | None = None,
    log: Log | None = None,
) -> str:
    """Build ``dockerfile`` (relative to ``context``) as ``tag``, streaming the build log to ``log``;
    the image id. A failed step is a :class:`DeployError` quoting Docker's message."""
    from docker.errors import APIError, DockerException

    context = Path(context)
    if not (context / dockerfile).is_file():
        raise ConfigError(
            f"no {dockerfile} in {str(context.resolve())!r}", "run from the repository root or give --context"
        )
    image_id = None
    try:
        for chunk in client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=dict(buildargs or {}),
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                raise DeployError(f"docker build of {tag} failed: {str(detail).strip()}")
            if "stream" in chunk and log:
                text = chunk["stream"].rstrip("\n")
                if text.strip():
                    log(text)
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    except (APIError, DockerException) as exc:
        raise DeployError(f"docker build of {tag} failed: {exc}") from None
    if image_id is None:
        try:
            image_id = client.images.get(tag).id
        except DockerException as exc:
            raise DeployError(f"docker build of {tag} produced no image: {exc}") from None
    logger.info("built %s (%s)", tag, image_id)
    return str(image_id)


def ecr_login(ecr: Any) -> RegistryAuth:
    """Registry credentials from ECR's ``get_authorization_token``."""
    with aws_errors("getting an ECR authorization token"):
        data = ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    return RegistryAuth(username=username, password=password, registry=registry)


def ensure_repository(ecr: Any, name: str) -> tuple[str, bool]:
    """The URI of ECR repository ``name``, created (scan on push) if missing; ``(uri, created)``."""
    with aws_errors(f"looking up ECR repository {name}"):
        try:
            return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"], False
        except ClientError as exc:
            if error_code(exc) != "RepositoryNotFoundException":
                raise
    with aws_errors(f"creating ECR repository {name}"):
        repo = ecr.create_repository(
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability="MUTABLE",
            tags=[{"Key": "app", "Value": "crowdcount"}],
        )["repository"]
    logger.info("created ECR repository %s", repo["repositoryUri"])
    return repo["repositoryUri"], True


def repository_uri(ecr: Any, name: str, account: str, region: str) -> tuple[str, bool]:
    """The URI of ECR repository ``name`` and whether it exists (without creating it)."""
    with aws_errors(f"looking up ECR repository {name}"):
        try:
            return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"], True
        except ClientError as exc:
            if error_code(exc) != "RepositoryNotFoundException":
                raise
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"{account}.dkr.ecr.{region}{suffix}/{name}", False


def push_image(
    client: Any, local: str, repository: str, tag: str, auth: RegistryAuth | None = None, log: Log | None = None
) -> str | None:
    """Tag image ``local`` as ``repository:tag`` and push it; the pushed digest (``sha256:...``) if the
    registry reports one. A refused push is a :class:`DeployError` quoting the registry."""
    from docker.errors import APIError, DockerException

    digest = None
    try:
        if not client.api.tag(local, repository, tag):
            raise DeployError(f"cannot tag {local} as {repository}:{tag}")
        last_status = None
        for chunk in client.api.push(
            repository, tag=tag, stream=True, decode=True, auth_config=auth.as_auth_config() if auth else None
        ):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                raise DeployError(f"docker push of {repository}:{tag} failed: {str(detail).strip()}")
            status = chunk.get("status")
            if log and status and status != last_status and "id" not in chunk:
                log(status)
            last_status = status
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
    except (APIError, DockerException) as exc:
        raise DeployError(f"docker push of {repository}:{tag} failed: {exc}") from None
    logger.info("pushed %s:%s (%s)", repository, tag, digest)
    return digest


def ecr_image_exists(ecr: Any, uri: str) -> bool:
    """Whether the ECR image ``uri`` (``...amazonaws.com/repo:tag`` or ``@sha256:...``) exists."""
    parts = parse_ecr_uri(uri)
    if parts is None:
        raise ValueError(f"not an ECR image URI: {uri}")
    image_id = {"imageDigest": parts["digest"]} if parts["digest"] else {"imageTag": parts["tag"] or "latest"}
    with aws_errors(f"looking up image {uri}"):
        try:
            ecr.describe_images(registryId=parts["account"], repositoryName=parts["repository"], imageIds=[image_id])
            return True
        except ClientError as exc:
            if error_code(exc) in {"ImageNotFoundException", "RepositoryNotFoundException"}:
                return False
            raise


def ecr_image_digest(ecr: Any, uri: str) -> str | None:
    """The digest (``sha256:...``) of the ECR image ``uri`` (by tag), or None when ECR does not say."""
    parts = parse_ecr_uri(uri)
    if parts is None:
        return None
    if parts["digest"]:
        return parts["digest"]
    image_id = {"imageTag": parts["tag"] or "latest"}
    with aws_errors(f"looking up the digest of {uri}"):
        details = ecr.describe_images(
            registryId=parts["account"], repositoryName=parts["repository"], imageIds=[image_id]
        ).get("imageDetails", [])
    digest = details[0].get("imageDigest") if details else None
    return str(digest) if digest else None


def pinned(uri: str, digest: str) -> str:
    """``uri`` by digest (``repo@sha256:...``): what a task definition should name, as a tag can be moved."""
    return f"{ImageRef.parse(uri).repository}@{digest}"


def check_image_exists(ecr: Any, uri: str, docker: Any | None = None) -> bool | None:
    """Raise :class:`DeployError` when image ``uri`` certainly does not exist. ECR images are looked up in
    ECR; others in their registry through the Docker engine when one is given. None: could not check."""
    if parse_ecr_uri(uri) is not None:
        if not ecr_image_exists(ecr, uri):
            raise DeployError(
                f"image {uri} does not exist in ECR", "push it first, or leave out --image/--no-build to build it"
            )
        return True
    if docker is None:
        logger.warning("cannot check that %s exists (not in ECR and no Docker engine to ask its registry)", uri)
        return None
    from docker.errors import DockerException, NotFound

    try:
        docker.api.inspect_distribution(uri)
        return True
    except NotFound:
        raise DeployError(f"image {uri} does not exist in its registry") from None
    except DockerException as exc:
        logger.warning("cannot check that %s exists: %s", uri, exc)
        return None
