"""Every manifest against the Kubernetes API schema of the current and the two previous minor versions
(``kubernetes-validate``, offline), the KEDA objects against KEDA's documented fields, and ``kubectl kustomize``
building each overlay into exactly the objects the renderer means (where a kubectl with kustomize v4+ exists)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from crowdcount.kubernetes import KubernetesOptions, build_objects, render, write
from crowdcount.kubernetes.overlays import SCALERS

from .helpers import ROLE, documents, load, objects_of, write_config


def _newest_minors(count: int = 3) -> list[str]:
    minors = sorted({tuple(int(x) for x in v.split(".")[:2]) for v in all_versions()})
    return [f"{major}.{minor}.0" for major, minor in minors[-count:]]


VERSIONS = _newest_minors()
#: Both ways AWS is reached (IRSA, or keys from a Secret): the manifests differ.
OPTIONS = {"irsa": KubernetesOptions(role_arn=ROLE, cameras=("gate", "door")), "keys": KubernetesOptions()}


def _every_object(tmp_path: Path, options: KubernetesOptions) -> list[dict[str, Any]]:
    """The rendered files' objects and those of every overlay with either scaler, each distinct object once."""
    config = load(write_config(tmp_path))
    objects = objects_of(render(config, options).files)
    for overlay in ("cpu", "gpu"):
        for scaler in SCALERS:
            objects += build_objects(config, options, overlay, scaler)
    return list({json.dumps(o, sort_keys=True): o for o in objects}.values())


# ------------------------------------------------------------------------------------------------- KEDA

_SCALED_OBJECT_FIELDS = {
    *("scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount"),
    *("minReplicaCount", "maxReplicaCount", "advanced", "triggers", "fallback"),
}
_SCALED_JOB_FIELDS = {
    *("jobTargetRef", "pollingInterval", "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "minReplicaCount"),
    *("maxReplicaCount", "scalingStrategy", "triggers", "rollout", "envSourceContainerName"),
}
_TRIGGER_METADATA = {  # required, then optional keys (KEDA's scaler documentation)
    "kafka": (
        {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"},
        {"offsetResetPolicy", "allowIdleConsumers", "activationLagThreshold", "limitToPartitionsWithLag"},
    ),
    "aws-sqs-queue": ({"queueURL", "awsRegion", "queueLength"}, {"scaleOnInFlight", "awsEndpoint", "identityOwner"}),
}


def check_keda(obj: dict[str, Any], objects: list[dict[str, Any]], version: str) -> None:
    """KEDA's CRDs are not in the Kubernetes schema: check their fields here (values of ``metadata`` must be
    strings: KEDA's CRD types it as a map of strings)."""
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    spec = obj["spec"]
    if obj["kind"] == "TriggerAuthentication":
        assert set(spec) <= {"podIdentity", "secretTargetRef", "env"}, spec
        if "podIdentity" in spec:
            assert spec["podIdentity"]["provider"] == "aws"
            assert spec["podIdentity"].get("identityOwner") in {"keda", "workload"}
        for ref in spec.get("secretTargetRef", []):
            assert set(ref) == {"parameter", "name", "key"} and all(isinstance(v, str) for v in ref.values())
        return
    if obj["kind"] == "ScaledJob":
        assert set(spec) <= _SCALED_JOB_FIELDS, set(spec) - _SCALED_JOB_FIELDS
        assert spec["maxReplicaCount"] >= 1 and spec["scalingStrategy"]["strategy"] in {"default", "accurate", "eager"}
        # jobTargetRef is a Job's spec: validate it as one
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job-check"}, "spec": spec["jobTargetRef"]}
        kubernetes_validate.validate(job, version, strict=True)
    else:
        assert obj["kind"] == "ScaledObject", obj["kind"]
        assert set(spec) <= _SCALED_OBJECT_FIELDS, set(spec) - _SCALED_OBJECT_FIELDS
        assert ("Deployment", spec["scaleTargetRef"]["name"]) in names
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] and spec["maxReplicaCount"] >= 1
        # advanced.horizontalPodAutoscalerConfig.behavior is the HPA's own type: validate it as one
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "behavior-check"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1, "behavior": behavior},
        }
        kubernetes_validate.validate(hpa, version, strict=True)
    for trigger in spec["triggers"]:
        required, optional = _TRIGGER_METADATA[trigger["type"]]
        metadata = trigger["metadata"]
        assert required <= set(metadata) <= required | optional, set(metadata) ^ required
        assert all(isinstance(value, str) and value for value in metadata.values()), metadata
        for key in ("lagThreshold", "queueLength"):
            if key in metadata:
                assert re.fullmatch(r"[1-9][0-9]*", metadata[key]), metadata[key]
        if "authenticationRef" in trigger:
            assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in names


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("aws", sorted(OPTIONS))
def test_every_manifest_is_valid_for_the_current_and_previous_two_minor_versions(
    tmp_path: Path, version: str, aws: str
) -> None:
    objects = _every_object(tmp_path, OPTIONS[aws])
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "HorizontalPodAutoscaler"} <= kinds
    assert {"ScaledObject", "ScaledJob", "TriggerAuthentication"} <= kinds
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            check_keda(obj, objects, version)
        else:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version}: {exc.message}")
        checked += 1
    assert checked == len(objects) > 25


def test_the_validator_does_reject_a_broken_manifest(tmp_path: Path) -> None:
    deployment = next(o for o in _every_object(tmp_path, OPTIONS["irsa"]) if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = ["4"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 120  # misspelt field: strict rejects it
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


# ------------------------------------------------------------------------------------------------- kubectl


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: kustomize builds not checked")
    out = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"Kustomize Version: v(\d+)", out)
    if match is None or int(match.group(1)) < 4:
        pytest.skip(f"kubectl's kustomize is older than v4 (no components): {out.strip()!r}")
    return kubectl


def _by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.mark.parametrize("aws", sorted(OPTIONS))
def test_kubectl_kustomize_builds_each_overlay_into_the_objects_meant(tmp_path: Path, aws: str) -> None:
    kubectl = _kubectl()
    config = load(write_config(tmp_path))
    options = OPTIONS[aws]
    tree = tmp_path / "k8s"
    write(render(config, options), tree)
    # the alternatives, as overlays of the user's own: the cpu overlay with components/hpa instead of keda, the
    # gpu overlay with a Job per message (components/keda-jobs after components/keda)
    for name, overlay, components in [("hpa", "cpu", ["hpa"]), ("jobs", "gpu", ["keda", "keda-jobs"])]:
        fields = yaml.safe_load((tree / "overlays" / overlay / "kustomization.yaml").read_text())
        (tree / "overlays" / name).mkdir()
        (tree / "overlays" / name / "kustomization.yaml").write_text(
            yaml.safe_dump({**fields, "components": [f"../../components/{c}" for c in components]})
        )
    for name, expected in [
        ("cpu", build_objects(config, options, "cpu")),
        ("gpu", build_objects(config, options, "gpu")),
        ("hpa", build_objects(config, options, "cpu", "hpa")),
        ("jobs", build_objects(config, options, "gpu", "keda-jobs")),
    ]:
        built = subprocess.run(
            [kubectl, "kustomize", str(tree / "overlays" / name)], capture_output=True, text=True, timeout=120
        )
        assert built.returncode == 0, built.stderr
        # the same objects as build_objects gives, which the test above validates
        assert _by_key(documents(built.stdout)) == _by_key(expected), name
