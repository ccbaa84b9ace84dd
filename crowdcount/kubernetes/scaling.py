"""How the workloads scale: KEDA (``components/keda``: the consumers on Kafka lag, the worker on the SQS backlog),
a Job per message (``components/keda-jobs``), or HPAs on the pods' own Prometheus metrics served by
prometheus-adapter (``components/hpa``)."""

from __future__ import annotations

import copy
from typing import Any

from crowdcount.config import Config
from crowdcount.kubernetes.manifests import AWS_SECRET, METRICS_ARGS, KubernetesOptions, base_objects, object_meta

#: Scale in one pod a minute at most, after 5 minutes of lower demand (the ECS service's 300 s scale-in cooldown).
_SCALE_DOWN = {"stabilizationWindowSeconds": 300, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}


def keda_objects(config: Config, options: KubernetesOptions) -> list[dict[str, Any]]:
    """KEDA: the consumers on the group's Kafka lag, the worker on the SQS backlog (waiting + in flight)."""
    live, deploy = config.live, config.deploy
    scale_down = _SCALE_DOWN
    if options.role_arn is not None:
        # KEDA assumes the role annotated on the worker's service account (its trust policy must allow that).
        auth_spec: dict[str, Any] = {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}
    else:
        auth_spec = {
            "secretTargetRef": [
                {"parameter": "awsAccessKeyID", "name": AWS_SECRET, "key": "AWS_ACCESS_KEY_ID"},
                {"parameter": "awsSecretAccessKey", "name": AWS_SECRET, "key": "AWS_SECRET_ACCESS_KEY"},
            ]
        }
    return [
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": object_meta("crowdcount-worker-aws", options, "worker"),
            "spec": auth_spec,
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": object_meta("crowdcount-consume", options, "consume"),
            "spec": {
                "scaleTargetRef": {"name": "crowdcount-consume"},
                "pollingInterval": 15,
                "cooldownPeriod": 300,
                "minReplicaCount": 1,
                "maxReplicaCount": live.kafka_partitions,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": scale_down}}},
                "triggers": [
                    {
                        "type": "kafka",
                        "metadata": {
                            "bootstrapServers": live.kafka_bootstrap,
                            "consumerGroup": live.kafka_group,
                            "topic": live.kafka_raw_topic,
                            "lagThreshold": str(options.kafka_lag_threshold),
                            "offsetResetPolicy": "earliest",
                            "allowIdleConsumers": "false",
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": object_meta("crowdcount-worker", options, "worker"),
            "spec": {
                "scaleTargetRef": {"name": "crowdcount-worker"},
                "pollingInterval": 30,
                "cooldownPeriod": 300,
                "minReplicaCount": deploy.min_tasks,
                "maxReplicaCount": deploy.max_tasks,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": scale_down}}},
                "triggers": [_sqs_trigger(config, deploy.backlog_per_task, in_flight=True)],
            },
        },
    ]


def _sqs_trigger(config: Config, per_replica: int, in_flight: bool) -> dict[str, Any]:
    metadata = {
        "queueURL": config.aws_queues.human_detection,
        "queueLength": str(per_replica),
        "awsRegion": config.aws_region,
        "scaleOnInFlight": "true" if in_flight else "false",
    }
    if config.aws_endpoint_url:
        metadata["awsEndpoint"] = config.aws_endpoint_url
    return {"type": "aws-sqs-queue", "authenticationRef": {"name": "crowdcount-worker-aws"}, "metadata": metadata}


#: What ``components/keda-jobs`` removes (listed after ``components/keda``): the worker Deployment, its budget and
#: its ScaledObject, as (apiVersion, kind, name).
KEDA_JOBS_REPLACES = (
    ("apps/v1", "Deployment", "crowdcount-worker"),
    ("policy/v1", "PodDisruptionBudget", "crowdcount-worker"),
    ("keda.sh/v1alpha1", "ScaledObject", "crowdcount-worker"),
)


def keda_jobs_objects(config: Config, options: KubernetesOptions) -> list[dict[str, Any]]:
    """A Job per message instead of the worker Deployment: KEDA starts one ``crowdcount worker --max-jobs 1`` per
    waiting message (up to ``deploy.max_tasks`` at once); a Job is never scaled in under its job."""
    worker = next(o for o in base_objects(config, options)["worker.yaml"] if o["kind"] == "Deployment")
    template = copy.deepcopy(worker["spec"]["template"])
    template["spec"]["restartPolicy"] = "Never"
    main = template["spec"]["containers"][0]
    # one message, then exit 0; a Job started for a message another took stops after a minute without one
    main["args"] = ["worker", "--max-jobs", "1", "--idle-timeout", "60", *METRICS_ARGS]
    del main["readinessProbe"]  # nothing routes to a Job's pod
    return [
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledJob",
            "metadata": object_meta(
                "crowdcount-worker", options, "worker", annotations=worker["metadata"]["annotations"]
            ),
            "spec": {
                "jobTargetRef": {"parallelism": 1, "completions": 1, "backoffLimit": 0, "template": template},
                "pollingInterval": 30,
                "successfulJobsHistoryLimit": 5,
                "failedJobsHistoryLimit": 5,
                "maxReplicaCount": config.deploy.max_tasks,
                # waiting messages only (in-flight ones have their Job): "accurate" subtracts the running Jobs
                "scalingStrategy": {"strategy": "accurate"},
                "triggers": [_sqs_trigger(config, 1, in_flight=False)],
            },
        }
    ]


def _pods_metric(name: str, target: str) -> dict[str, Any]:
    target_spec = {"type": "AverageValue", "averageValue": target}
    return {"type": "Pods", "pods": {"metric": {"name": name}, "target": target_spec}}


def _quantity(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


#: The custom metrics ``components/hpa`` scales on, as prometheus-adapter serves them (see :func:`adapter_rules`).
HPA_METRICS = {
    "crowdcount_live_dropped_fps": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    "crowdcount_live_latency_seconds_mean": (
        "sum(rate(crowdcount_live_latency_seconds_sum{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"
        " / sum(rate(crowdcount_live_latency_seconds_count{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"
    ),
    "crowdcount_worker_busy": "max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
}
#: The Prometheus series each rule discovers its pods from.
HPA_SERIES = {
    "crowdcount_live_dropped_fps": "crowdcount_live_dropped_fps",
    "crowdcount_live_latency_seconds_mean": "crowdcount_live_latency_seconds_count",
    "crowdcount_worker_busy": "crowdcount_worker_busy",
}


def hpa_objects(config: Config, options: KubernetesOptions) -> list[dict[str, Any]]:
    """Without KEDA: HPAs on the workloads' own Prometheus metrics, served by prometheus-adapter."""
    deploy = config.deploy
    behavior = {"scaleDown": _SCALE_DOWN}

    def hpa(component: str, low: int, high: int, metrics: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": object_meta(f"crowdcount-{component}", options, component),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"crowdcount-{component}"},
                "minReplicas": low,
                "maxReplicas": high,
                "metrics": metrics,
                "behavior": behavior,
            },
        }

    return [
        hpa(
            "consume",
            1,
            config.live.kafka_partitions,
            [
                _pods_metric("crowdcount_live_dropped_fps", _quantity(options.dropped_fps_target)),
                _pods_metric("crowdcount_live_latency_seconds_mean", _quantity(options.latency_target_s)),
            ],
        ),
        hpa(
            "worker",
            max(1, deploy.min_tasks),  # an HPA cannot start the first pod: nothing to measure at zero
            deploy.max_tasks,
            # busy share: every worker busy (1.0) against 0.8 adds a pod; idle workers are removed. (Not the
            # queue lag gauge: it keeps the age of the last message received while a worker idles.)
            [_pods_metric("crowdcount_worker_busy", "800m")],
        ),
    ]


def adapter_rules() -> dict[str, Any]:
    """prometheus-adapter's Helm values: one custom-metrics rule per :data:`HPA_METRICS` entry, per pod."""
    return {
        "rules": {
            "default": False,
            "custom": [
                {
                    "seriesQuery": f'{HPA_SERIES[name]}{{namespace!="",pod!=""}}',
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                    "name": {"matches": f"^{HPA_SERIES[name]}$", "as": name},
                    "metricsQuery": query,
                }
                for name, query in HPA_METRICS.items()
            ],
        }
    }
