"""Kubernetes manifests for the live Kafka consumers, the camera watcher and the SQS batch worker.

``manifests`` holds the base (the three workloads, their ConfigMap, service accounts, budgets and network
policies, and the checks of the configuration), ``scaling`` the KEDA and HPA components, ``overlays`` the ``cpu``
and ``gpu`` overlays, ``render`` the files.

:func:`render` turns a validated :class:`~crowdcount.config.Config` (``variables.json``) and
:class:`KubernetesOptions` into a kustomize tree (``base/``, ``components/keda``, ``components/hpa``,
``overlays/cpu``, ``overlays/gpu``) held in memory as ``{relative path: text}``; :func:`write` puts it on disk.
``crowdcount deploy --target kubernetes`` is the command line over both; ``deploy/kubernetes/`` in the repository
is the rendering of the repository's ``variables.json``. See docs/kubernetes.md.
"""

from crowdcount.kubernetes.manifests import KubernetesOptions
from crowdcount.kubernetes.overlays import build_objects
from crowdcount.kubernetes.render import Rendering, render, write

__all__ = ["KubernetesOptions", "Rendering", "build_objects", "render", "write"]
