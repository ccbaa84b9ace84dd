"""The kustomize tree as text, and writing it.

Layout (relative to the output folder, ``deploy/kubernetes`` by default)::

    base/                     namespace, ConfigMap (variables.json), service accounts, NetworkPolicies,
                              consume.yaml, watch.yaml, worker.yaml (Deployment, PDB, the watch Service)
    components/keda/          ScaledObjects (Kafka lag, SQS backlog) and the SQS scaler's TriggerAuthentication
    components/keda-jobs/     after components/keda: a Job per message (KEDA ScaledJob) instead of the worker Deployment
    components/hpa/           the alternative without KEDA: HPAs on the pods' Prometheus metrics, and
                              prometheus-adapter-values.yaml (Helm values that serve those metrics)
    overlays/cpu/, gpu/       base + components/keda; the image tag; gpu: GPU limit, node selector, tolerations
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import yaml

from crowdcount.config import Config
from crowdcount.errors import ConfigError
from crowdcount.kubernetes import manifests, overlays, scaling
from crowdcount.kubernetes.manifests import KubernetesOptions

logger = logging.getLogger(__name__)

HEADER = (
    "# Rendered from variables.json by `crowdcount deploy --target kubernetes` (docs/kubernetes.md).\n"
    "# Render again rather than edit; change what rendering cannot say in an overlay of your own.\n"
)


#: What a file's reader should know beyond its objects.
NOTES = {
    "watch.yaml": (
        "# The `watch --web` dashboard (not rendered) plugs in here: a `web` containerPort on the watch container,\n"
        "# a `web` port on the crowdcount-watch Service beside `metrics`, and an ingress rule for it in\n"
        "# networkpolicies.yaml (all three from base_objects in crowdcount/kubernetes/manifests.py).\n"
    ),
    "config.yaml": "# variables.json; the name carries a hash of it, so a changed configuration rolls the pods.\n",
}


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the ConfigMap's variables.json), lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(documents: list[Any]) -> str:
    """YAML documents, keys in the order given."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


@dataclasses.dataclass
class Rendering:
    """A rendered tree: ``files`` maps relative paths to their text; ``warnings`` are for the user."""

    files: dict[str, str]
    warnings: list[str]


def _kustomization(kind: str = "Kustomization", **fields: Any) -> str:
    version = "v1alpha1" if kind == "Component" else "v1beta1"
    return HEADER + to_yaml([{"apiVersion": f"kustomize.config.k8s.io/{version}", "kind": kind, **fields}])


def render(config: Config, options: KubernetesOptions) -> Rendering:
    """Render the tree for ``config`` (checked first: a :class:`ConfigError` before anything is produced)."""
    warnings = manifests.check(config, options)
    files: dict[str, str] = {}
    base = manifests.base_objects(config, options)
    for name, objects in base.items():
        files[f"base/{name}"] = HEADER + NOTES.get(name, "") + to_yaml(objects)
    files["base/kustomization.yaml"] = _kustomization(resources=list(base))

    files["components/keda/scaledobjects.yaml"] = HEADER + to_yaml(scaling.keda_objects(config, options))
    files["components/keda/kustomization.yaml"] = _kustomization("Component", resources=["scaledobjects.yaml"])
    files["components/keda-jobs/scaledjob.yaml"] = HEADER + to_yaml(scaling.keda_jobs_objects(config, options))
    files["components/keda-jobs/kustomization.yaml"] = _kustomization(
        "Component",
        resources=["scaledjob.yaml"],
        patches=[
            {
                "patch": to_yaml(
                    [
                        {
                            "$patch": "delete",
                            "apiVersion": api_version,
                            "kind": kind,
                            "metadata": {"name": name, "namespace": options.namespace},
                        }
                    ]
                )
            }
            for api_version, kind, name in scaling.KEDA_JOBS_REPLACES
        ],
    )
    files["components/hpa/hpa.yaml"] = HEADER + to_yaml(scaling.hpa_objects(config, options))
    files["components/hpa/kustomization.yaml"] = _kustomization("Component", resources=["hpa.yaml"])
    files["components/hpa/prometheus-adapter-values.yaml"] = (
        HEADER
        + "# Not a Kubernetes object: Helm values for prometheus-adapter, which serves the HPAs' custom metrics:\n"
        + "#   helm install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring \\\n"
        + "#     -f prometheus-adapter-values.yaml --set prometheus.url=http://prometheus-server.monitoring.svc\n"
        + to_yaml([scaling.adapter_rules()])
    )

    image_name = manifests.image_name(config, options)
    for overlay in manifests.OVERLAYS:
        reference = manifests.image_reference(config, options, overlay)
        image: dict[str, str] = {"name": image_name}
        if "@" in reference:
            image["digest"] = reference.split("@", 1)[1]
        else:
            image["newTag"] = reference.rsplit(":", 1)[1]
        fields: dict[str, Any] = {
            "resources": ["../../base"],
            "components": ["../../components/keda"],
            "images": [image],
        }
        if overlay == "gpu":  # the ScaledJob's patch matters with components/keda-jobs only
            fields["patches"] = [
                {
                    "target": {"kind": kind, "labelSelector": "app.kubernetes.io/part-of=crowdcount"},
                    "patch": to_yaml([overlays.gpu_patch(config, options, kind)]),
                }
                for kind in overlays.POD_SPEC
            ]
        files[f"overlays/{overlay}/kustomization.yaml"] = _kustomization(**fields)
    return Rendering(files=files, warnings=warnings)


def write(rendering: Rendering, output: str | Path) -> list[Path]:
    """Write the tree under ``output`` (created if missing); other files there are left alone."""
    root = Path(output)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--output {str(root)!r} is a file, not a folder")
    written = []
    for relative, text in rendering.files.items():
        path = root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}", "check --output") from None
        written.append(path)
    logger.info("wrote %d files under %s", len(written), root)
    return written
