"""Rendering: what the manifests carry, what they never carry, the overlays, and the committed tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from crowdcount.aws.metrics import WorkerMetrics
from crowdcount.errors import ConfigError
from crowdcount.kubernetes import KubernetesOptions, build_objects, render
from crowdcount.kubernetes.scaling import adapter_rules
from crowdcount.live.metrics import LiveMetrics

from .helpers import (
    COMMITTED_OPTIONS,
    REPO,
    ROLE,
    container,
    documents,
    env_of,
    find,
    load,
    objects_of,
    render_test_config,
    write_config,
)


def test_the_manifests_carry_the_configured_queue_topic_bucket_and_table(tmp_path: Path) -> None:
    files = render_test_config(tmp_path)
    objects = objects_of(files)
    worker = find(objects, "Deployment", "crowdcount-worker")
    env = env_of(worker)
    assert env["CROWDCOUNT_AWS_QUEUES__HUMAN_DETECTION"] == "qq-jobs-7"
    assert env["CROWDCOUNT_DYNAMODB__TABLE_ID"] == "tt-videos-7"
    assert env["CROWDCOUNT_VIDEO_SPLIT__OUTPUT_BUCKET"] == "bb-bucket-7"
    assert env["CROWDCOUNT_AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-3"
    assert container(worker)["args"] == ["worker", "--metrics-port", "9108", "--metrics-host", "0.0.0.0"]

    consume = find(objects, "Deployment", "crowdcount-consume")
    assert container(consume)["args"] == [
        *("stream", "consume", "--bootstrap", "kafka-a.kafka:9093,kafka-b.kafka:9093", "--group", "group-7"),
        *("--topic", "frames-7", "--results-topic", "results-7", "--partitions", "12", "--max-age", "2s"),
        *("--metrics-port", "9108", "--metrics-host", "0.0.0.0"),
    ]

    (config_map,) = documents(files["base/config.yaml"])
    carried = json.loads(config_map["data"]["variables.json"])
    assert carried == load(write_config(tmp_path)).to_dict()
    assert carried["aws_queues"]["human_detection"] == "qq-jobs-7"
    assert carried["live"]["kafka_raw_topic"] == "frames-7"
    for deployment in (worker, consume, find(objects, "Deployment", "crowdcount-watch")):
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert {"name": "config", "configMap": {"name": config_map["metadata"]["name"]}} in volumes
        assert env_of(deployment)["CROWDCOUNT_CONFIG"] == "/etc/crowdcount/variables.json"

    keda = documents(files["components/keda/scaledobjects.yaml"])
    kafka = find(keda, "ScaledObject", "crowdcount-consume")["spec"]
    assert kafka["maxReplicaCount"] == 12  # never more consumers than partitions
    assert kafka["triggers"] == [
        {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": "kafka-a.kafka:9093,kafka-b.kafka:9093",
                "consumerGroup": "group-7",
                "topic": "frames-7",
                "lagThreshold": "30",
                "offsetResetPolicy": "earliest",
                "allowIdleConsumers": "false",
            },
        }
    ]
    sqs = find(keda, "ScaledObject", "crowdcount-worker")["spec"]
    assert (sqs["minReplicaCount"], sqs["maxReplicaCount"]) == (1, 9)
    assert sqs["triggers"][0]["metadata"] == {
        "queueURL": "qq-jobs-7",
        "queueLength": "3",
        "awsRegion": "eu-west-3",
        "scaleOnInFlight": "true",
    }
    # the consumers may only reach the brokers' port
    policy = find(objects, "NetworkPolicy", "crowdcount-consume-egress")
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9093}]


def test_the_worker_pod_outlives_its_grace_period(tmp_path: Path) -> None:
    worker = find(objects_of(render_test_config(tmp_path)), "Deployment", "crowdcount-worker")
    assert env_of(worker)["CROWDCOUNT_WORKER__GRACE_PERIOD_SECONDS"] == "240"
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 270
    default = find(
        objects_of(render(load(REPO / "variables.json"), COMMITTED_OPTIONS).files), "Deployment", "crowdcount-worker"
    )
    assert default["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90 + 30


def test_secrets_are_referenced_never_rendered(tmp_path: Path) -> None:
    cameras = KubernetesOptions(role_arn=ROLE, cameras=("gate", "door.2"))
    files = render_test_config(tmp_path, cameras)
    objects = objects_of(files)
    assert "Secret" not in {o["kind"] for o in objects}
    watch = find(objects, "Deployment", "crowdcount-watch")
    assert container(watch)["args"][:3] == [
        "watch",
        "gate=$(CROWDCOUNT_CAMERA_GATE)",
        "door.2=$(CROWDCOUNT_CAMERA_DOOR_2)",
    ]
    env = env_of(watch)
    assert env["CROWDCOUNT_CAMERA_DOOR_2"] == {
        "secretKeyRef": {"name": "crowdcount-cameras", "key": "door.2", "optional": False}
    }
    # IRSA: the worker's service account names the role, the worker has no keys, KEDA uses the workload's role
    account = find(objects, "ServiceAccount", "crowdcount-worker")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE
    assert not [name for name in env_of(find(objects, "Deployment", "crowdcount-worker")) if "AWS_SECRET" in name]
    auth = find(
        documents(files["components/keda/scaledobjects.yaml"]), "TriggerAuthentication", "crowdcount-worker-aws"
    )
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}

    # no role (kind/k3s): keys from the Secret crowdcount-aws, by reference, for the worker and for KEDA
    keys = render_test_config(tmp_path, KubernetesOptions())
    worker_env = env_of(find(objects_of(keys), "Deployment", "crowdcount-worker"))
    assert worker_env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "crowdcount-aws", "key": "AWS_SECRET_ACCESS_KEY", "optional": True}
    }
    auth = find(documents(keys["components/keda/scaledobjects.yaml"]), "TriggerAuthentication", "crowdcount-worker-aws")
    assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == {"crowdcount-aws"}
    assert "annotations" not in find(objects_of(keys), "ServiceAccount", "crowdcount-worker")["metadata"]


def test_every_pod_is_hardened_probed_bounded_and_budgeted(tmp_path: Path) -> None:
    objects = objects_of(render_test_config(tmp_path))
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "crowdcount-consume",
        "crowdcount-watch",
        "crowdcount-worker",
    }
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert find(objects, "NetworkPolicy", "crowdcount-default-deny")["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        main = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]  # the only writable path
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        for bound in ("requests", "limits"):
            assert set(main["resources"][bound]) == {"cpu", "memory", "ephemeral-storage"}
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        budget = find(objects, "PodDisruptionBudget", deployment["metadata"]["name"])
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        egress = [p for p in policies if p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()]
        assert any("Egress" in p["spec"]["policyTypes"] and p["spec"]["podSelector"] for p in egress)
    # the watch Service exposes /metrics (and, when it exists, the --web dashboard)
    service = find(objects, "Service", "crowdcount-watch")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9108, "targetPort": "metrics", "protocol": "TCP"}]
    assert (
        service["spec"]["selector"].items()
        <= find(objects, "Deployment", "crowdcount-watch")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_gpu_overlay_asks_for_gpus_on_gpu_nodes_and_the_cpu_overlay_does_not(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    options = KubernetesOptions(role_arn=ROLE)
    for deployment in [o for o in build_objects(config, options, "gpu") if o["kind"] == "Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == "2"  # deploy.gpu_count
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "nvidia.com/gpu.present": "true"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert container(deployment)["image"] == "crowdcount-worker:v7"
    for deployment in [o for o in build_objects(config, options, "cpu") if o["kind"] == "Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in container(deployment)["resources"]["limits"]
        assert "tolerations" not in pod and pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert container(deployment)["image"] == "crowdcount-worker:v7-cpu"  # as `crowdcount deploy --cpu` tags it
    pinned = KubernetesOptions(role_arn=ROLE, image="registry.example/cc@sha256:" + "a" * 64)
    for overlay in ("cpu", "gpu"):
        images = {container(d)["image"] for d in build_objects(config, pinned, overlay) if d["kind"] == "Deployment"}
        assert images == {"registry.example/cc@sha256:" + "a" * 64}


def test_a_job_per_message_replaces_the_worker_deployment(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    objects = build_objects(config, KubernetesOptions(role_arn=ROLE), "gpu", "keda-jobs")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "crowdcount-worker") not in kinds and ("ScaledObject", "crowdcount-worker") not in kinds
    assert ("PodDisruptionBudget", "crowdcount-worker") not in kinds
    assert ("ScaledObject", "crowdcount-consume") in kinds and ("Deployment", "crowdcount-consume") in kinds
    job = find(objects, "ScaledJob", "crowdcount-worker")["spec"]
    assert job["maxReplicaCount"] == 9 and job["scalingStrategy"] == {"strategy": "accurate"}
    assert job["triggers"][0]["metadata"] == {
        "queueURL": "qq-jobs-7",
        "queueLength": "1",  # one Job per waiting message
        "awsRegion": "eu-west-3",
        "scaleOnInFlight": "false",  # in-flight messages have their Job already
    }
    pod = job["jobTargetRef"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["jobTargetRef"]["backoffLimit"] == 0
    assert pod["containers"][0]["args"][:5] == ["worker", "--max-jobs", "1", "--idle-timeout", "60"]
    assert pod["terminationGracePeriodSeconds"] == 270
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["containers"][0]["image"] == "crowdcount-worker:v7"
    assert pod["serviceAccountName"] == "crowdcount-worker"


def _exported_series(registry: object) -> set[str]:
    names = set()
    for family in registry.collect():  # type: ignore[attr-defined]
        if family.type == "histogram":
            names |= {f"{family.name}_sum", f"{family.name}_count", f"{family.name}_bucket"}
        else:
            names.add(family.name)
    return names


def test_every_hpa_metric_is_served_by_an_adapter_rule_over_a_series_crowdcount_exports(tmp_path: Path) -> None:
    files = render_test_config(tmp_path)
    rules = yaml.safe_load(files["components/hpa/prometheus-adapter-values.yaml"])
    assert rules == adapter_rules()
    served = {rule["name"]["as"]: rule for rule in rules["rules"]["custom"]}
    exported = _exported_series(LiveMetrics().registry) | _exported_series(WorkerMetrics().registry)
    hpas = documents(files["components/hpa/hpa.yaml"])
    assert {h["metadata"]["name"] for h in hpas} == {"crowdcount-consume", "crowdcount-worker"}
    for hpa in hpas:
        for metric in hpa["spec"]["metrics"]:
            rule = served[metric["pods"]["metric"]["name"]]
            assert rule["seriesQuery"].split("{")[0] in exported
    assert find(hpas, "HorizontalPodAutoscaler", "crowdcount-consume")["spec"]["maxReplicas"] == 12
    assert find(hpas, "HorizontalPodAutoscaler", "crowdcount-worker")["spec"]["minReplicas"] == 1


def test_the_committed_tree_is_the_rendering_of_the_repository_configuration() -> None:
    """After a change to variables.json, the config schema or the renderer, render again from the repository root
    with no CROWDCOUNT_* variables set: ``crowdcount deploy --target kubernetes --role-arn <COMMITTED_OPTIONS>``."""
    rendered = render(load(REPO / "variables.json"), COMMITTED_OPTIONS).files
    root = REPO / "deploy" / "kubernetes"
    committed = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    again = f"render again: crowdcount deploy --target kubernetes --role-arn {COMMITTED_OPTIONS.role_arn}"
    assert set(committed) == set(rendered), again
    for path, text in rendered.items():
        assert committed[path] == text, f"deploy/kubernetes/{path} differs from its rendering; {again}"


@pytest.mark.parametrize(
    ("changes", "options", "message"),
    [
        ({"live": {"redis_url": "redis://:hunter2@redis:6379/0"}}, {}, "'live.redis_url' holds a password"),
        ({"deploy": {"environment": {"API_TOKEN": "x"}}}, {}, "deploy.environment.API_TOKEN looks like a secret"),
        ({"deploy": {"min_tasks": 5, "max_tasks": 2}}, {}, "deploy.min_tasks 5 / max_tasks 2"),
        ({"live": {"kafka_bootstrap": "kafka:port"}}, {}, "live.kafka_bootstrap 'kafka:port' is not HOST:PORT"),
        ({}, {"namespace": "Crowd_Count"}, "--namespace 'Crowd_Count' is not a valid namespace name"),
        ({}, {"role_arn": "crowdcount-worker"}, "--role-arn 'crowdcount-worker' is not an IAM role ARN"),
        ({}, {"cameras": ("gate", "gate")}, "--camera names must differ"),
        (
            {},
            {"cameras": ("door-1", "door_1")},
            "--camera 'door-1' and 'door_1' would both read their URL from CROWDCOUNT_CAMERA_DOOR_1",
        ),
        ({}, {"image": "repo:v1", "tag": "v2"}, "--image 'repo:v1' has a tag or digest already"),
    ],
)
def test_a_bad_configuration_is_refused_before_rendering(
    tmp_path: Path, changes: dict, options: dict, message: str
) -> None:
    config = load(write_config(tmp_path)).with_overrides(changes)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        render(config, KubernetesOptions(**options))


def _parsed(args: list[str]) -> dict[str, Any]:
    """The parameters the real CLI parses from a container's ``args`` (options that do not exist fail here)."""
    from crowdcount.cli.main import cli

    command: click.Command = cli
    ctx = command.make_context("crowdcount", list(args), resilient_parsing=False)
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, ctx.protected_args + ctx.args)
        assert sub is not None, name
        command, ctx = sub, sub.make_context(str(name), rest, parent=ctx)
    return dict(ctx.params)


def test_every_workload_serves_metrics_where_its_probes_and_prometheus_reach_it(tmp_path: Path) -> None:
    # The commands bind /metrics to 127.0.0.1 by default; the kubelet's probes and Prometheus connect to the pod's
    # IP, so a pod rendered without --metrics-host would fail its startup probe and never be scraped.
    config = load(write_config(tmp_path))
    objects = build_objects(config, KubernetesOptions(role_arn=ROLE), "gpu", "keda-jobs")
    objects += build_objects(config, KubernetesOptions(role_arn=ROLE), "gpu")
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
    pods += [o["spec"]["jobTargetRef"]["template"]["spec"] for o in objects if o["kind"] == "ScaledJob"]
    commands = set()
    for pod in pods:
        (main,) = pod["containers"]
        params = _parsed(main["args"])
        commands.add(" ".join(main["args"][:2]))
        assert (params["metrics_port"], params["metrics_host"]) == (9108, "0.0.0.0")
        assert main["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
    assert commands == {
        "stream consume",
        "watch camera-1=$(CROWDCOUNT_CAMERA_CAMERA_1)",
        "worker --max-jobs",
        "worker --metrics-port",
    }
