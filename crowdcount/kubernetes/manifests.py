"""The Kubernetes objects, as plain dicts built from the configuration.

Three workloads, one image (the worker image of ``crowdcount deploy``, whose ``crowdcount`` command each runs):

* ``crowdcount-consume``: ``crowdcount stream consume`` in one consumer group; scaled by KEDA on the group's
  Kafka lag up to the raw topic's partition count (or, without KEDA, by an HPA on the consumers' own metrics
  through prometheus-adapter: ``components/hpa``).
* ``crowdcount-watch``: ``crowdcount watch`` over a fixed set of cameras (their URLs in a Secret), one replica,
  its ``/metrics`` behind a Service.
* ``crowdcount-worker``: ``crowdcount worker`` on the SQS queue; scaled by KEDA's SQS scaler (waiting plus
  in-flight messages per replica = ``deploy.backlog_per_task``), AWS access through IRSA.

:func:`base_objects` gives the base's objects by file, :func:`check` refuses a configuration that would render
broken or secret-bearing manifests; :mod:`crowdcount.kubernetes.scaling` adds the scalers and
:mod:`crowdcount.kubernetes.overlays` the overlays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

from crowdcount.aws.deploy.taskdef import environment_for
from crowdcount.config import Config
from crowdcount.errors import ConfigError

#: The port of every container's Prometheus ``/metrics`` (``--metrics-port``).
METRICS_PORT = 9108
#: The arguments that serve ``/metrics`` on the pod's address: the kubelet's probes and Prometheus reach the pod
#: IP, and the commands bind 127.0.0.1 unless ``--metrics-host`` says otherwise.
METRICS_ARGS = ("--metrics-port", str(METRICS_PORT), "--metrics-host", "0.0.0.0")
#: The image's user and group (``useradd --uid 10001`` in the Dockerfile).
UID = 10001
#: Where the ConfigMap's ``variables.json`` is mounted (``$CROWDCOUNT_CONFIG``).
CONFIG_DIR = "/etc/crowdcount"
#: Seconds a pod gets after SIGTERM beyond the worker's own grace period (upload, DynamoDB, releasing the message).
GRACE_MARGIN_S = 30
#: Seconds a live consumer or watcher gets after SIGTERM (a batch's results delivered, offsets committed).
LIVE_GRACE_S = 30
#: Frames older than this are skipped by a consumer that fell behind (``stream consume --max-age``).
CONSUME_MAX_AGE = "2s"
#: Secrets referenced, never rendered: camera URLs for ``watch``, AWS keys where there is no IRSA.
CAMERAS_SECRET = "crowdcount-cameras"
AWS_SECRET = "crowdcount-aws"
#: The instance metadata service: pods get AWS access from IRSA (or keys), never the node's role.
IMDS_CIDR = "169.254.169.254/32"
COMPONENTS = ("consume", "watch", "worker")
OVERLAYS = ("cpu", "gpu")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CAMERA = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
#: An environment variable's name as every Kubernetes version takes it (1.30 and newer take more).
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class KubernetesOptions:
    """What ``variables.json`` does not say about a cluster.

    Args:
        namespace: the namespace of every object (created by the base).
        image: the image repository (``deploy.repository`` when None), or a full reference with a tag or digest
            that both overlays then use as it is.
        tag: the image tag (``deploy.image_tag`` when None); the ``cpu`` overlay adds ``-cpu``, as
            ``crowdcount deploy --cpu`` tags the CPU image.
        role_arn: the IAM role of the worker's service account (IRSA, ``eks.amazonaws.com/role-arn``); KEDA's SQS
            scaler assumes it too. None: AWS keys from the Secret ``crowdcount-aws`` (kind, k3s).
        cameras: the names of ``watch``'s cameras; each URL is the key of that name in ``crowdcount-cameras``.
        monitoring_namespace: the namespace whose Prometheus may scrape ``/metrics`` (NetworkPolicy).
        gpu_node_selector: node labels of GPU nodes (``gpu`` overlay), e.g. the GPU operator's
            ``nvidia.com/gpu.present=true``.
        kafka_lag_threshold: KEDA's ``lagThreshold``: raw-topic messages behind per consumer before scaling out.
        dropped_fps_target: HPA target (``components/hpa``): frames dropped per second per consumer.
        latency_target_s: HPA target: mean capture-to-result latency per consumer, seconds.
    """

    namespace: str = "crowdcount"
    image: str | None = None
    tag: str | None = None
    role_arn: str | None = None
    cameras: tuple[str, ...] = ("camera-1",)
    monitoring_namespace: str = "monitoring"
    gpu_node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    kafka_lag_threshold: int = 30
    dropped_fps_target: float = 1.0
    latency_target_s: float = 1.0


# ---------------------------------------------------------------------------------------------- validation


def check(config: Config, options: KubernetesOptions) -> list[str]:
    """Refuse what would render broken or secret-bearing manifests (:class:`ConfigError`, exit 2); return warnings."""
    if not _DNS_LABEL.match(options.namespace):
        raise ConfigError(
            f"--namespace {options.namespace!r} is not a valid namespace name",
            "lower-case letters, digits and '-', at most 63 characters, e.g. crowdcount",
        )
    if not _DNS_LABEL.match(options.monitoring_namespace):
        raise ConfigError(f"monitoring namespace {options.monitoring_namespace!r} is not a valid namespace name")
    if not options.cameras:
        raise ConfigError("watch needs at least one camera", "give --camera NAME (its URL goes in the Secret)")
    for name in options.cameras:
        if not _CAMERA.match(name):
            raise ConfigError(
                f"--camera {name!r} is not a valid camera name",
                "lower-case letters, digits, '-', '_' and '.', at most 63 characters; it is a Secret key",
            )
    if len(set(options.cameras)) != len(options.cameras):
        raise ConfigError(f"--camera names must differ, got {', '.join(options.cameras)}")
    variables: dict[str, str] = {}
    for name in options.cameras:  # the URL reaches watch through a variable named after the camera
        other = variables.setdefault(_camera_env(name), name)
        if other != name:
            raise ConfigError(
                f"--camera {other!r} and {name!r} would both read their URL from {_camera_env(name)}",
                "give names that differ in more than '-', '_' and '.'",
            )
    if options.role_arn is not None and not _ROLE_ARN.match(options.role_arn):
        raise ConfigError(
            f"--role-arn {options.role_arn!r} is not an IAM role ARN",
            "e.g. arn:aws:iam::111122223333:role/crowdcount-worker",
        )
    for key, value in options.gpu_node_selector:
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ConfigError(f"GPU node selector {key}={value} is not a valid node label")
    if options.image is not None:
        _split_image(options.image)
        if options.tag is not None and _has_tag_or_digest(options.image):
            raise ConfigError(f"--image {options.image!r} has a tag or digest already; leave out --tag")
    tag = options.tag if options.tag is not None else config.deploy.image_tag
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", tag):
        raise ConfigError(f"image tag {tag!r} is not a valid Docker tag", "letters, digits, '_', '.', '-'")
    # backlog_per_task, gpu_count, kafka_partitions, grace_period_seconds: their limits are the config's own
    deploy = config.deploy
    if deploy.max_tasks < 1 or not 0 <= deploy.min_tasks <= deploy.max_tasks:
        raise ConfigError(
            f"deploy.min_tasks {deploy.min_tasks} / max_tasks {deploy.max_tasks}: need 0 <= min <= max, max >= 1"
        )
    for key, text in (("cpu", deploy.cpu), ("memory", deploy.memory)):
        if not text.isdigit() or int(text) < 256:
            raise ConfigError(
                f"deploy.{key} {text!r} must be a whole number of "
                f"{'CPU units (1024 = 1 vCPU)' if key == 'cpu' else 'MiB'}, at least 256"
            )
    for key, value in (
        ("aws_endpoint_url", config.aws_endpoint_url),
        ("live.redis_url", config.live.redis_url),
        ("live.kafka_bootstrap", config.live.kafka_bootstrap),
    ):
        if value and _has_password(value):
            raise ConfigError(
                f"config key {key!r} holds a password; it would be rendered into the ConfigMap",
                "keep credentials out of variables.json (Kubernetes Secrets hold them; see docs/kubernetes.md)",
            )
    for name in deploy.environment:
        if not _ENV_NAME.match(name):
            raise ConfigError(
                f"deploy.environment.{name} is not a variable name Kubernetes takes",
                "letters, digits, '_', '-' and '.', not starting with a digit",
            )
        if _SECRET_NAME.search(name):
            raise ConfigError(
                f"deploy.environment.{name} looks like a secret; it would be rendered into the Deployment",
                "put it in a Secret and reference it from an overlay of your own",
            )
    _kafka_ports(config.live.kafka_bootstrap)
    if config.aws_endpoint_url:
        _endpoint_port(config.aws_endpoint_url)
    warnings = []
    if options.role_arn is None:
        warnings.append(
            "no --role-arn: the worker and KEDA's SQS scaler read AWS keys from the Secret "
            f"{AWS_SECRET!r} (kind/k3s); on EKS give the IRSA role instead"
        )
    return warnings


def _has_password(url: str) -> bool:
    return any(urlsplit(part.strip() if "://" in part else "//" + part.strip()).password for part in url.split(","))


def _has_tag_or_digest(image: str) -> bool:
    return "@" in image or ":" in image.rsplit("/", 1)[-1]


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    """``(name, tag, digest)`` of an image reference."""
    if not _IMAGE.match(image):
        raise ConfigError(f"--image {image!r} is not an image reference", "e.g. 111122223333.dkr.ecr.us-east-1...")
    name, _, digest = image.partition("@")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest or None


def _endpoint_port(url: str) -> int:
    """The port of ``aws_endpoint_url`` (what the worker's egress policy admits); :class:`ConfigError` unless it is
    ``http(s)://HOST[:PORT]``."""
    parts = urlsplit(url)
    reason = "" if parts.scheme in ("http", "https") and parts.hostname else "it is not http(s)://HOST[:PORT]"
    try:
        port = parts.port
        if port == 0:
            raise ValueError(port)
    except ValueError:
        reason = reason or "its port is not in 1-65535"
    if reason:
        raise ConfigError(f"config key 'aws_endpoint_url' {url!r}: {reason}", "e.g. http://sandbox.default.svc:5000")
    return port or (443 if parts.scheme == "https" else 80)


def _kafka_ports(bootstrap: str) -> list[int]:
    """The ports of ``live.kafka_bootstrap`` (``host:port,host:port``; 9092 where none is given)."""
    ports = set()
    for server in bootstrap.split(","):
        server = server.strip().rsplit("://", 1)[-1]
        host, sep, port = server.rpartition(":")
        if not server or (sep and (not host or not port.isdigit() or not 0 < int(port) < 65536)):
            raise ConfigError(f"live.kafka_bootstrap {bootstrap!r} is not HOST:PORT[,HOST:PORT...]")
        ports.add(int(port) if sep else 9092)
    return sorted(ports)


# ---------------------------------------------------------------------------------------------- helpers


def labels(component: str | None = None) -> dict[str, str]:
    """The labels of every object (and, with ``component``, the selector labels of that workload)."""
    out = {"app.kubernetes.io/name": "crowdcount", "app.kubernetes.io/part-of": "crowdcount"}
    if component:
        out["app.kubernetes.io/component"] = component
    out["app.kubernetes.io/managed-by"] = "crowdcount-deploy"
    return out


def selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "crowdcount", "app.kubernetes.io/component": component}


def object_meta(name: str, options: KubernetesOptions, component: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": labels(component), **extra}


def image_reference(config: Config, options: KubernetesOptions, overlay: str | None = None) -> str:
    """The image a container runs: the base's (``overlay`` None) or what an overlay's ``images:`` makes of it."""
    name, tag, digest = _split_image(options.image or config.deploy.repository)
    if digest:
        return f"{name}@{digest}"
    if tag is None:
        tag = options.tag if options.tag is not None else config.deploy.image_tag
        if overlay == "cpu":
            tag += "-cpu"
    return f"{name}:{tag}"


def image_name(config: Config, options: KubernetesOptions) -> str:
    """The image's name without tag or digest (``localhost:5001/crowdcount-worker``): what an overlay's ``images:``
    entry matches."""
    return _split_image(options.image or config.deploy.repository)[0]


def config_map(config: Config, options: KubernetesOptions) -> dict[str, Any]:
    """``variables.json`` as a ConfigMap named by its content's hash, so a changed configuration rolls the pods."""
    text = json.dumps(config.to_dict(), indent=2) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(f"crowdcount-config-{digest}", options),
        "data": {"variables.json": text},
    }


def _millicores(units: str, share: float) -> str:
    return f"{int(int(units) * 1000 / 1024 * share)}m"


def _resources(config: Config, ephemeral_mib: int) -> dict[str, Any]:
    """Requests are 3/4 of ``deploy.cpu`` and 4/5 of ``deploy.memory``, so that a pod sized like the ECS task
    (a whole g4dn.xlarge) fits the node's allocatable after the kubelet's reservations; limits are the full values."""
    cpu, memory = config.deploy.cpu, int(config.deploy.memory)
    return {
        "requests": {
            "cpu": _millicores(cpu, 0.75),
            "memory": f"{int(memory * 0.8)}Mi",
            "ephemeral-storage": f"{ephemeral_mib}Mi",
        },
        "limits": {"cpu": _millicores(cpu, 1.0), "memory": f"{memory}Mi", "ephemeral-storage": f"{ephemeral_mib}Mi"},
    }


def _probe(period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/metrics", "port": "metrics"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _env(values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "value": values[name]} for name in sorted(values)]


def _skips(*items: tuple[str, str]) -> dict[str, str]:
    """checkov inline suppressions (``checkov.io/skipN: CHECK=reason``)."""
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(items, 1)}


_IMAGE_SKIPS = (
    ("CKV_K8S_43", "tagged as crowdcount deploy pushes it; pin a digest with --image REPO@sha256:..."),
    ("CKV_K8S_14", "the tag is deploy.image_tag (latest by default, as on ECS); pin a release with --tag"),
)


def _deployment(
    component: str,
    config: Config,
    options: KubernetesOptions,
    *,
    args: list[str],
    env: dict[str, str],
    service_account: str,
    grace_s: int,
    tmp_mib: int,
    replicas: int | None,
    strategy: dict[str, Any],
    secret_env: list[dict[str, Any]] | None = None,
    skips: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    common = {
        "CROWDCOUNT_CONFIG": f"{CONFIG_DIR}/variables.json",
        "CROWDCOUNT_LOG_FORMAT": "json",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "MPLCONFIGDIR": "/tmp/matplotlib",
    }
    container: dict[str, Any] = {
        "name": component,
        "image": image_reference(config, options),
        "imagePullPolicy": "Always",
        "command": ["crowdcount"],
        "args": args,
        "env": _env({**common, **env}) + (secret_env or []),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": _resources(config, tmp_mib),
        "startupProbe": _probe(10, 30),
        "livenessProbe": _probe(20, 3),
        "readinessProbe": _probe(10, 3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": config_map(config, options)["metadata"]["name"]}},
            {"name": "tmp", "emptyDir": {"sizeLimit": f"{tmp_mib}Mi"}},
        ],
    }
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector(component)},
        "strategy": strategy,
        "template": {
            "metadata": {
                "labels": labels(component),
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(METRICS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(
            f"crowdcount-{component}", options, component, annotations=_skips(*_IMAGE_SKIPS, *skips)
        ),
        "spec": spec,
    }


def _pdb(component: str, options: KubernetesOptions) -> dict[str, Any]:
    """At most one pod of the workload evicted at a time (``maxUnavailable`` 1, so a drain never blocks)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(f"crowdcount-{component}", options, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(component)}},
    }


def _options(**values: str) -> list[str]:
    """``--option value`` pairs (underscores become dashes)."""
    return [item for key, value in values.items() for item in (f"--{key.replace('_', '-')}", value)]


def _camera_env(name: str) -> str:
    return "CROWDCOUNT_CAMERA_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def worker_grace_s(config: Config) -> int:
    """``terminationGracePeriodSeconds`` of the worker: its own grace period plus :data:`GRACE_MARGIN_S`."""
    return config.worker.grace_period_seconds + GRACE_MARGIN_S


# ---------------------------------------------------------------------------------------------- base


def base_objects(config: Config, options: KubernetesOptions) -> dict[str, list[dict[str, Any]]]:
    """The base's objects by file name."""
    live = config.live
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}

    consume = _deployment(
        "consume",
        config,
        options,
        args=[
            "stream",
            "consume",
            *_options(
                bootstrap=live.kafka_bootstrap,
                group=live.kafka_group,
                topic=live.kafka_raw_topic,
                results_topic=live.kafka_results_topic,
                partitions=str(live.kafka_partitions),
                max_age=CONSUME_MAX_AGE,
            ),
            *METRICS_ARGS,
        ],
        env={},
        service_account="crowdcount-live",
        grace_s=LIVE_GRACE_S,
        tmp_mib=1024,
        replicas=None,  # KEDA or the HPA owns the replica count
        strategy=rolling,
    )

    camera_args = [f"{name}=$({_camera_env(name)})" for name in options.cameras]
    watch = _deployment(
        "watch",
        config,
        options,
        args=["watch", *camera_args, "--every", "1s", "--no-table", "-o", "-", *METRICS_ARGS],
        env={},
        service_account="crowdcount-live",
        grace_s=LIVE_GRACE_S,
        tmp_mib=1024,
        replicas=1,  # one process per set of cameras: two would count each camera twice
        strategy={"type": "Recreate"},
        secret_env=[
            {
                "name": _camera_env(name),
                "valueFrom": {"secretKeyRef": {"name": CAMERAS_SECRET, "key": name, "optional": False}},
            }
            for name in options.cameras
        ],
        skips=(
            (
                "CKV_K8S_35",
                "watch takes camera URLs as arguments; the kubelet expands $(VAR) from the Secret into them",
            ),
        ),
    )
    watch_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta("crowdcount-watch", options, "watch"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector("watch"),
            # The `watch --web` dashboard (not rendered yet) will add a `web` port here and on the container.
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }

    worker_env = {item["name"]: item["value"] for item in environment_for(config)}
    worker_secret_env: list[dict[str, Any]] = []
    worker_skips: tuple[tuple[str, str], ...] = ()
    if options.role_arn is None:
        worker_secret_env = [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": AWS_SECRET, "key": key, "optional": True}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
        worker_skips = (("CKV_K8S_35", "without IRSA (kind/k3s) the AWS SDK reads its keys from the environment"),)
    tmp_mib = math.ceil(config.worker.max_video_bytes / 2**20) + 1024
    worker = _deployment(
        "worker",
        config,
        options,
        args=["worker", *METRICS_ARGS],
        env=worker_env,
        service_account="crowdcount-worker",
        grace_s=worker_grace_s(config),
        tmp_mib=tmp_mib,
        replicas=None,
        strategy=rolling,
        secret_env=worker_secret_env,
        skips=worker_skips,
    )

    worker_sa_annotations = {}
    if options.role_arn is not None:
        worker_sa_annotations = {
            "eks.amazonaws.com/role-arn": options.role_arn,
            "eks.amazonaws.com/sts-regional-endpoints": "true",
        }
    worker_sa_extra: dict[str, Any] = {"annotations": worker_sa_annotations} if worker_sa_annotations else {}
    service_accounts: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_meta("crowdcount-live", options),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_meta("crowdcount-worker", options, **worker_sa_extra),
            "automountServiceAccountToken": False,
        },
    ]

    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": options.namespace,
            "labels": {
                **labels(),
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }
    return {
        "namespace.yaml": [namespace],
        "config.yaml": [config_map(config, options)],
        "serviceaccounts.yaml": service_accounts,
        "networkpolicies.yaml": network_policies(config, options),
        "consume.yaml": [consume, _pdb("consume", options)],
        "watch.yaml": [watch, watch_service, _pdb("watch", options)],
        "worker.yaml": [worker, _pdb("worker", options)],
    }


def _egress(options: KubernetesOptions, component: str, ports: list[int] | None) -> dict[str, Any]:
    """Egress of one workload: to anywhere outside the cluster but the instance metadata service, and to any pod
    (an in-cluster broker, camera relay or AWS sandbox), on ``ports`` (None: any port)."""
    rule: dict[str, Any] = {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [IMDS_CIDR]}}, {"namespaceSelector": {}}],
    }
    if ports is not None:
        rule["ports"] = [{"protocol": "TCP", "port": port} for port in ports]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(f"crowdcount-{component}-egress", options, component),
        "spec": {"podSelector": {"matchLabels": selector(component)}, "policyTypes": ["Egress"], "egress": [rule]},
    }


def network_policies(config: Config, options: KubernetesOptions) -> list[dict[str, Any]]:
    """Deny everything, then allow DNS, Prometheus's scrapes of ``/metrics`` and each workload's own egress."""
    worker_ports = [443]
    if config.aws_endpoint_url:
        worker_ports.append(_endpoint_port(config.aws_endpoint_url))
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta("crowdcount-default-deny", options),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta("crowdcount-allow-dns", options),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta("crowdcount-allow-metrics", options),
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "crowdcount"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": options.monitoring_namespace}
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
                    }
                ],
            },
        },
        _egress(options, "consume", _kafka_ports(config.live.kafka_bootstrap)),
        _egress(options, "watch", None),  # cameras listen on any port (RTSP 554/8554, HTTP 80/8080, ...)
        _egress(options, "worker", sorted(set(worker_ports))),
    ]
