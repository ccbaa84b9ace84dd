"""Task definitions: finding the templates, rendering them from ``variables.json``, checking and diffing them.

Templates are JSON with ``${name}`` placeholders (``$$`` is a literal ``$``). A string that is exactly one
placeholder takes the value with its type (a number, a list), so ``"stopTimeout": "${stop_timeout}"``
renders as a number and ``"environment": "${environment}"`` as a list; placeholders inside longer strings
are replaced by text. A placeholder with no value is a one-line :class:`ConfigError` naming it and where it
is. After rendering, two rules make one template serve both variants:

* a ``GPU`` resource requirement of ``"0"`` is dropped (the CPU variant), and
* a placement constraint ending in ``=~`` with nothing after it (an empty ``deploy.instance_type``) is dropped.

Where templates come from, first match wins: ``deploy.templates_dir`` (or ``--templates``), ``./taskdefs``
when it holds the template, else the copy shipped inside the package (identical to the repository's
``taskdefs/``; a test keeps them so).
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crowdcount.aws.deploy.iam import result_prefix_for
from crowdcount.config import Config
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

TASKDEF_TEMPLATE = "task-definition.json"
CLOUDFORMATION_TEMPLATE = "cloudformation.yaml"
#: The templates shipped inside the package (copies of the repository's ``taskdefs/``).
PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
#: The name of the worker's container in the task definition.
CONTAINER_NAME = "worker"
#: ECS stops a container at most this many seconds after SIGTERM (the ``stopTimeout`` cap).
MAX_STOP_TIMEOUT = 120
#: Seconds between the end of the worker's grace period and SIGKILL: the long poll in progress (up to 20 s),
#: then the checkpoint, the error write and the message's release.
STOP_MARGIN = 30

_PLACEHOLDER = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Keys ECS adds to a registered task definition that are not part of what was sent.
_SERVER_KEYS = {
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
}


def find_templates_dir(explicit: str | None = None, name: str = TASKDEF_TEMPLATE) -> Path:
    """The folder to read ``name`` from: ``explicit``, ``./taskdefs``, else the package's copy."""
    if explicit:
        folder = Path(explicit)
        if not (folder / name).is_file():
            raise ConfigError(f"template folder {explicit!r} has no {name}", "check deploy.templates_dir / --templates")
        return folder
    local = Path("taskdefs")
    if (local / name).is_file():
        return local
    return PACKAGE_TEMPLATES


def read_template(name: str, templates_dir: str | None = None) -> tuple[str, Path]:
    """The text of template ``name`` and the path it was read from."""
    path = find_templates_dir(templates_dir, name) / name
    try:
        return path.read_text(encoding="utf-8"), path
    except OSError as exc:
        raise ConfigError(f"cannot read template {str(path)!r}: {exc}") from None


def placeholders(template: Any) -> set[str]:
    """Every placeholder name used in ``template`` (parsed JSON)."""
    if isinstance(template, str):
        return {m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)}
    if isinstance(template, Mapping):
        return set().union(*(placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()


def render(template: Any, values: Mapping[str, Any], source: str = "template", where: str = "") -> Any:
    """Substitute ``values`` into ``template`` (parsed JSON); :class:`ConfigError` names a missing value."""
    if isinstance(template, Mapping):
        return {k: render(v, values, source, f"{where}.{k}" if where else k) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, values, source, f"{where}[{i}]") for i, v in enumerate(template)]
    if not isinstance(template, str):
        return template

    def lookup(name: str) -> Any:
        if values.get(name) is None:
            known = ", ".join(sorted(k for k, v in values.items() if v is not None))
            raise ConfigError(f"{source}: no value for ${{{name}}} at {where or 'top level'}", f"known: {known}")
        return values[name]

    whole = _WHOLE.fullmatch(template)
    if whole:
        return copy.deepcopy(lookup(whole.group(1)))

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        value = lookup(match.group(1))
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{source}: ${{{match.group(1)}}} at {where} must be the whole string (it is a list)")
        return str(value)

    return _PLACEHOLDER.sub(replace, template)


def environment_for(config: Config) -> list[dict[str, str]]:
    """The container's environment: the config keys the worker needs as ``CROWDCOUNT_*`` overrides (so the
    task definition says which queue, table and bucket it serves), then ``deploy.environment``."""
    env: dict[str, str] = {
        "AWS_DEFAULT_REGION": config["aws_region"],
        "CROWDCOUNT_AWS_REGION": config["aws_region"],
        "CROWDCOUNT_LOG_FORMAT": "json",  # one JSON object per log line in CloudWatch
        "CROWDCOUNT_AWS_QUEUES__HUMAN_DETECTION": config.get("aws_queues.human_detection"),
        "CROWDCOUNT_DYNAMODB__REGION": config.get("dynamodb.region"),
        "CROWDCOUNT_DYNAMODB__TABLE_ID": config.get("dynamodb.table_id"),
        "CROWDCOUNT_VIDEO_SPLIT__OUTPUT_BUCKET": config.get("video_split.output_bucket"),
        "CROWDCOUNT_VIDEO_SPLIT__INPUT_PREFIX": config.get("video_split.input_prefix"),
        "CROWDCOUNT_WORKER__GRACE_PERIOD_SECONDS": str(config.get("worker.grace_period_seconds")),
        "CROWDCOUNT_WORKER__VISIBILITY_TIMEOUT": str(config.get("worker.visibility_timeout")),
    }
    env["CROWDCOUNT_HUMAN_DETECTION__RESULT_PREFIX"] = result_prefix_for(config)
    env.update(config.get("deploy.environment"))
    return [{"name": name, "value": env[name]} for name in sorted(env)]


def stop_timeout_for(config: Config) -> int:
    """``stopTimeout``: the worker's SIGTERM grace period plus :data:`STOP_MARGIN` (for the receive in
    progress, the checkpoint, the error write and the release after the grace period), which ECS caps at 120 s.
    Equal to the grace period, SIGKILL would land before the worker hands its message back."""
    grace = config.get("worker.grace_period_seconds")
    if not 0 <= grace <= MAX_STOP_TIMEOUT - STOP_MARGIN:
        raise ConfigError(
            f"worker.grace_period_seconds is {grace}, but ECS waits at most {MAX_STOP_TIMEOUT} s between SIGTERM "
            f"and SIGKILL, and the worker needs {STOP_MARGIN} s after its grace period to hand its job back",
            f"set it between 0 and {MAX_STOP_TIMEOUT - STOP_MARGIN}",
        )
    return int(grace) + STOP_MARGIN


def template_values(
    config: Config, image: str, task_role_arn: str | None, execution_role_arn: str | None
) -> dict[str, Any]:
    """The placeholder values for the task definition template."""
    deploy = config["deploy"]
    try:
        memory_reservation = int(deploy["memory"])
    except ValueError:
        raise ConfigError(f"deploy.memory must be a number of MiB, got {deploy['memory']!r}") from None
    return {
        "family": deploy["family"],
        "container_name": CONTAINER_NAME,
        "image": image,
        "cpu": deploy["cpu"],
        "memory": deploy["memory"],
        "memory_reservation": memory_reservation,
        "gpu_count": str(deploy["gpu_count"]),
        "instance_type": deploy["instance_type"],
        "task_role_arn": task_role_arn or deploy["task_role_arn"],
        "execution_role_arn": execution_role_arn or deploy["execution_role_arn"],
        "log_group": deploy["log_group"],
        "log_stream_prefix": deploy["family"],
        "region": config["aws_region"],
        "stop_timeout": stop_timeout_for(config),
        "environment": environment_for(config),
        "cluster": deploy["cluster"],
        "queue": config.get("aws_queues.human_detection"),
        "table": config.get("dynamodb.table_id"),
        "bucket": config.get("video_split.output_bucket"),
    }


def _apply_variant_rules(taskdef: dict[str, Any]) -> dict[str, Any]:
    for container in taskdef.get("containerDefinitions", []):
        requirements = [
            r
            for r in container.get("resourceRequirements", [])
            if not (r.get("type") == "GPU" and str(r.get("value", "")).strip() in {"", "0"})
        ]
        if requirements:
            container["resourceRequirements"] = requirements
        else:
            container.pop("resourceRequirements", None)
    constraints = [
        c for c in taskdef.get("placementConstraints", []) if not str(c.get("expression", "")).rstrip().endswith("=~")
    ]
    if constraints:
        taskdef["placementConstraints"] = constraints
    else:
        taskdef.pop("placementConstraints", None)
    return taskdef


def render_task_definition(
    config: Config,
    image: str,
    task_role_arn: str | None = None,
    execution_role_arn: str | None = None,
    templates_dir: str | None = None,
) -> dict[str, Any]:
    """Render and validate the task definition for ``image`` (the register_task_definition arguments)."""
    text, path = read_template(TASKDEF_TEMPLATE, templates_dir or config.get("deploy.templates_dir"))
    try:
        template = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"template {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    values = template_values(config, image, task_role_arn, execution_role_arn)
    taskdef = _apply_variant_rules(render(template, values, str(path)))
    validate_task_definition(taskdef, config, str(path))
    return taskdef


def gpu_requirement(taskdef: Mapping[str, Any]) -> int:
    """The GPUs the task definition's containers ask for."""
    return sum(
        int(r["value"])
        for c in taskdef.get("containerDefinitions", [])
        for r in c.get("resourceRequirements", [])
        if r.get("type") == "GPU"
    )


def instance_type_constraint(taskdef: Mapping[str, Any]) -> str | None:
    """The pattern of an ``attribute:ecs.instance-type =~ PATTERN`` placement constraint, if any."""
    for constraint in taskdef.get("placementConstraints", []):
        match = re.search(r"attribute:ecs\.instance-type\s*=~\s*(\S+)", str(constraint.get("expression", "")))
        if constraint.get("type") == "memberOf" and match:
            return match.group(1)
    return None


def validate_task_definition(taskdef: Mapping[str, Any], config: Config, source: str = "task definition") -> None:
    """Check what ECS would reject late (or accept and then never place); one-line :class:`ConfigError`."""
    if not taskdef.get("family"):
        raise ConfigError(f"{source}: family is empty", "set deploy.family")
    containers = taskdef.get("containerDefinitions")
    if not isinstance(containers, list) or not containers:
        raise ConfigError(f"{source}: containerDefinitions must be a non-empty list")
    for container in containers:
        if not container.get("name") or not container.get("image"):
            raise ConfigError(f"{source}: every container needs a name and an image")
        stop = container.get("stopTimeout")
        if stop is not None and (not isinstance(stop, int) or not 2 <= stop <= MAX_STOP_TIMEOUT):
            raise ConfigError(f"{source}: stopTimeout must be 2..{MAX_STOP_TIMEOUT} seconds, got {stop!r}")
    for key in ("cpu", "memory"):
        value = taskdef.get(key)
        if value is not None and not (isinstance(value, str) and value.isdigit() and int(value) > 0):
            raise ConfigError(f"{source}: {key} must be a positive number as text, got {value!r}", f"set deploy.{key}")
    gpus = gpu_requirement(taskdef)
    if config.get("deploy.gpu_count") < 0:
        raise ConfigError("deploy.gpu_count must be 0 (the CPU variant) or more")
    if gpus and "FARGATE" in taskdef.get("requiresCompatibilities", []):
        raise ConfigError(f"{source}: Fargate has no GPUs; a GPU task definition must require EC2")
    if gpus and instance_type_constraint(taskdef) is None:
        logger.warning(
            "%s asks for a GPU but has no ecs.instance-type placement constraint: ECS may try to place it on "
            "instances whose GPUs this image does not support",
            source,
        )
    for container in containers:
        log = container.get("logConfiguration") or {}
        if log.get("logDriver") == "awslogs":
            options = log.get("options") or {}
            missing = [k for k in ("awslogs-group", "awslogs-region") if not options.get(k)]
            if missing:
                raise ConfigError(f"{source}: awslogs needs {', '.join(missing)}", "set deploy.log_group / aws_region")


def _empty(value: Any) -> bool:
    return value in (None, "", [], {}, 0) and value is not False


def normalise(registered: Mapping[str, Any] | None, rendered: Mapping[str, Any]) -> dict[str, Any] | None:
    """A registered revision reduced to what ``rendered`` can express: server-side keys and defaults that ECS
    fills in (empty lists, ``cpu: 0``...) are dropped, so that comparing the two shows real changes only."""
    if registered is None:
        return None

    def prune(old: Any, new: Any, top: bool = False) -> Any:
        if isinstance(old, Mapping):
            new_map = new if isinstance(new, Mapping) else {}
            out = {}
            for key, value in old.items():
                if top and key in _SERVER_KEYS:
                    continue
                if key not in new_map and _empty(value):
                    continue
                out[key] = prune(value, new_map.get(key))
            return out
        if isinstance(old, list):
            new_list = new if isinstance(new, list) else []
            items = [prune(v, new_list[i] if i < len(new_list) else None) for i, v in enumerate(old)]
            return _sort_named(items)
        return old

    return prune(registered, rendered, top=True)


def _sort_named(items: list[Any]) -> list[Any]:
    if items and all(isinstance(i, Mapping) and set(i) == {"name", "value"} for i in items):
        return sorted(items, key=lambda i: str(i["name"]))
    return items


def canonical(taskdef: Mapping[str, Any] | None) -> str:
    """Stable JSON text for comparing and diffing task definitions."""
    if taskdef is None:
        return ""
    return json.dumps(taskdef, indent=2, sort_keys=True) + "\n"


def diff_task_definitions(
    registered: Mapping[str, Any] | None, rendered: Mapping[str, Any], registered_label: str
) -> str:
    """A unified diff from the (normalised) registered revision to the rendered task definition."""
    old = canonical(normalise(registered, rendered))
    new = canonical(rendered)
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), registered_label, "rendered", n=3
        )
    )


def is_unchanged(registered: Mapping[str, Any] | None, rendered: Mapping[str, Any]) -> bool:
    """True when ``registered`` already says everything ``rendered`` says."""
    return registered is not None and canonical(normalise(registered, rendered)) == canonical(rendered)
