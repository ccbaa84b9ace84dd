"""The overlays: ``cpu`` and ``gpu`` (the image tag; GPUs, GPU nodes, their taint), and :func:`build_objects`, the
objects ``kubectl kustomize`` builds from an overlay (the tests compare the two)."""

from __future__ import annotations

import copy
from typing import Any

from crowdcount.config import Config
from crowdcount.errors import ConfigError
from crowdcount.kubernetes.manifests import OVERLAYS, KubernetesOptions, base_objects, image_reference
from crowdcount.kubernetes.scaling import KEDA_JOBS_REPLACES, hpa_objects, keda_jobs_objects, keda_objects

#: Where the pod spec is in the objects the ``gpu`` overlay patches.
POD_SPEC = {"Deployment": "/spec/template/spec", "ScaledJob": "/spec/jobTargetRef/template/spec"}


def gpu_patch(config: Config, options: KubernetesOptions, kind: str = "Deployment") -> list[dict[str, Any]]:
    """The ``gpu`` overlay's JSON patch of every ``kind`` (a Deployment, or a ScaledJob's Job template): a GPU limit,
    GPU nodes, their taint tolerated."""
    pod = POD_SPEC[kind]
    return [
        {
            "op": "add",
            "path": f"{pod}/containers/0/resources/limits/nvidia.com~1gpu",
            "value": str(max(1, config.deploy.gpu_count)),
        },
        {
            "op": "add",
            "path": f"{pod}/nodeSelector",
            "value": {"kubernetes.io/os": "linux", **dict(options.gpu_node_selector)},
        },
        {
            "op": "add",
            "path": f"{pod}/tolerations",
            "value": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    ]


def _apply_add(obj: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    """Apply JSON-patch ``add`` operations (what kustomize does with the overlay's patch)."""
    for op in ops:
        assert op["op"] == "add"
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = copy.deepcopy(op["value"])


SCALERS = ("keda", "keda-jobs", "hpa")


def build_objects(
    config: Config, options: KubernetesOptions, overlay: str, scaler: str = "keda"
) -> list[dict[str, Any]]:
    """Every object of ``overlay`` (``cpu`` or ``gpu``) with ``scaler`` (``keda``: the overlays' own;
    ``keda-jobs``: ``components/keda`` then ``components/keda-jobs``; ``hpa``: ``components/hpa`` instead): what
    ``kubectl kustomize`` builds from the rendered tree."""
    if overlay not in OVERLAYS or scaler not in SCALERS:
        raise ConfigError(f"unknown overlay {overlay!r} or scaler {scaler!r}")
    objects = [obj for group in base_objects(config, options).values() for obj in copy.deepcopy(group)]
    objects += hpa_objects(config, options) if scaler == "hpa" else keda_objects(config, options)
    if scaler == "keda-jobs":
        replaced = {(kind, name) for _, kind, name in KEDA_JOBS_REPLACES}
        objects = [o for o in objects if (o["kind"], o["metadata"]["name"]) not in replaced]
        objects += keda_jobs_objects(config, options)
    image = image_reference(config, options, overlay)
    for obj in objects:
        if obj["kind"] in POD_SPEC:
            pod = obj["spec"]["template"] if obj["kind"] == "Deployment" else obj["spec"]["jobTargetRef"]["template"]
            pod["spec"]["containers"][0]["image"] = image
            if overlay == "gpu":
                _apply_add(obj, gpu_patch(config, options, obj["kind"]))
    return objects
