"""The whole deployment, in two phases so that bad input never leaves anything half-registered:

1. **check** (read-only): credentials, limits, the cluster and its GPU instances, the image (or the Docker
   engine that will build it), the rendered task definition or stack parameters, and the difference from
   what is deployed. ``--dry-run`` stops here and reports.
2. **apply**: build and push the image, create/update the roles and the log group, register the task
   definition (only when it changed), then run a one-off task or create/update the service and its
   autoscaling, or create/update the CloudFormation stack. If a step fails, the error says what the
   earlier steps already changed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from crowdcount.aws.deploy import cloudformation as cfn_mod
from crowdcount.aws.deploy import ecs as ecs_mod
from crowdcount.aws.deploy import iam as iam_mod
from crowdcount.aws.deploy import image as image_mod
from crowdcount.aws.deploy import scaling as scaling_mod
from crowdcount.aws.deploy import taskdef as taskdef_mod
from crowdcount.aws.deploy.errors import DeployError, TaskFailedError, aws_errors, error_code, with_progress
from crowdcount.aws.session import AwsContext
from crowdcount.config import Config
from crowdcount.errors import ConfigError, CrowdcountError

logger = logging.getLogger(__name__)

Say = Callable[[str], None]

METHODS = ("ecs", "cloudformation")
MODES = ("task", "service")
LOG_RETENTION_DAYS = 30


@dataclass
class DeployOptions:
    """How to deploy (the CLI's options)."""

    method: str = "ecs"
    #: ``task`` (one-off run_task) or ``service``; None: ``task`` for ecs, ``service`` for cloudformation.
    mode: str | None = None
    dry_run: bool = False
    #: Deploy this image as it is (no build); it must exist.
    image: str | None = None
    #: False: deploy ``repository:tag`` from ECR without building; it must exist.
    build: bool = True
    tag: str | None = None
    #: The CPU variant: CPU base image, no GPU requirement, no instance-type constraint, tag ``<tag>-cpu``.
    cpu: bool = False
    wait: bool = False
    wait_timeout: float = 3600
    poll: float = 10
    #: The Docker build context (the repository root).
    context: str = "."
    #: Push to this registry (``host:port``) instead of ECR, e.g. a local registry with the sandbox.
    registry: str | None = None
    templates_dir: str | None = None
    stack_name: str | None = None
    gpu_check: bool = True


@dataclass
class DeployResult:
    """What a deployment found and did."""

    method: str
    mode: str
    dry_run: bool
    image: str
    taskdef: dict[str, Any] | None = None
    registered: str | None = None
    diff: str = ""
    unchanged: bool = False
    taskdef_arn: str | None = None
    task_arn: str | None = None
    outcome: ecs_mod.TaskOutcome | None = None
    service_arn: str | None = None
    scaling: dict[str, Any] | None = None
    stack: cfn_mod.StackOutcome | None = None
    stack_parameters: dict[str, str] | None = None
    parameter_changes: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def variant_config(config: Config, cpu: bool) -> Config:
    """``config`` for the CPU variant when ``cpu``: no GPU requirement, no instance-type constraint."""
    if not cpu:
        return config
    return config.with_overrides({"deploy": {"gpu_count": 0, "instance_type": ""}})


def cpu_base_image(dockerfile: Path) -> str:
    """The CPU base image for ``--cpu``: the Dockerfile's default ``BASE_IMAGE`` without its ``-gpu`` suffix."""
    try:
        text = dockerfile.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {dockerfile}: {exc}") from None
    match = re.search(r"^ARG\s+BASE_IMAGE=(\S+)-gpu\s*$", text, re.MULTILINE)
    if not match:
        raise ConfigError(f"{dockerfile} has no 'ARG BASE_IMAGE=...-gpu' line", "--cpu swaps that base image")
    return match.group(1)


def check_limits(config: Config) -> None:
    """Task counts and the scaling target make sense."""
    deploy = config["deploy"]
    if deploy["min_tasks"] < 0 or deploy["max_tasks"] < max(1, deploy["min_tasks"]):
        raise ConfigError(
            f"deploy.min_tasks {deploy['min_tasks']} and max_tasks {deploy['max_tasks']} do not fit 0 <= min <= max",
            "max_tasks must be 1 or more",
        )
    if deploy["backlog_per_task"] < 1:
        raise ConfigError(f"deploy.backlog_per_task must be 1 or more, got {deploy['backlog_per_task']}")


class Deployer:
    """Runs one deployment against the AWS of ``ctx`` (AWS, the sandbox or moto)."""

    def __init__(
        self,
        ctx: AwsContext,
        config: Config,
        options: DeployOptions,
        say: Say | None = None,
        docker_factory: Callable[[], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options.method not in METHODS:
            raise ConfigError(f"unknown deploy method {options.method!r}", f"use one of: {', '.join(METHODS)}")
        mode = options.mode or ("service" if options.method == "cloudformation" else "task")
        if mode not in MODES:
            raise ConfigError(f"unknown deploy mode {mode!r}", f"use one of: {', '.join(MODES)}")
        if options.method == "cloudformation" and mode == "task":
            raise ConfigError(
                "--method cloudformation deploys a service", "use --method ecs --run-task for a one-off task"
            )
        if options.wait and mode != "task":
            raise ConfigError("--wait waits for a one-off task's exit code", "use it with --run-task")
        if options.image and options.registry:
            raise ConfigError("--registry is where a built image is pushed; --image deploys one that exists")
        self.ctx = ctx
        self.options = options
        self.mode = mode
        self.config = variant_config(config, options.cpu)
        self.say = say or (lambda text: None)
        self.docker_factory = docker_factory or (lambda: image_mod.docker_client())
        self.sleep = sleep
        self.clock = clock
        self.region = self.config["aws_region"]
        deploy = self.config["deploy"]
        tag = options.tag or deploy["image_tag"]
        self.tag = f"{tag}-cpu" if options.cpu and not options.tag else tag
        self.cluster = deploy["cluster"]
        self.templates_dir = options.templates_dir or deploy["templates_dir"]
        self._clients: dict[str, Any] = {}
        self._docker: Any = None

    def client(self, service: str) -> Any:
        """A cached client of the context."""
        if service not in self._clients:
            self._clients[service] = self.ctx.client(service, region=self.region)
        return self._clients[service]

    # -- check -------------------------------------------------------------------------------------------

    def _soft(self, result: DeployResult, check: Callable[[], Any]) -> Any:
        """Run ``check``; in a dry run a failure becomes a warning instead of the end."""
        try:
            return check()
        except CrowdcountError as exc:
            if not self.options.dry_run:
                raise
            result.warnings.append(str(exc))
            return None

    def _account(self) -> str:
        with aws_errors("checking AWS credentials (sts get-caller-identity)"):
            return str(self.client("sts").get_caller_identity()["Account"])

    def _resolve_image(self, result: DeployResult, account: str) -> str:
        deploy = self.config["deploy"]
        ecr = self.client("ecr")
        if self.options.image:
            uri = str(self.options.image)
            docker = None
            if image_mod.parse_ecr_uri(uri) is None:
                try:  # a registry other than ECR can be asked through a Docker engine, if there is one
                    docker = self.docker_factory()
                except DeployError:
                    docker = None
            self._soft(result, lambda: image_mod.check_image_exists(ecr, uri, docker))
            return uri
        if self.options.registry:
            return f"{self.options.registry.rstrip('/')}/{deploy['repository']}:{self.tag}"
        uri, exists = image_mod.repository_uri(ecr, deploy["repository"], account, self.region)
        image = f"{uri}:{self.tag}"
        if not self.options.build:

            def check() -> None:
                if not exists:
                    raise DeployError(
                        f"ECR repository {deploy['repository']} does not exist, so neither does {image}",
                        "leave out --no-build to build and push it",
                    )
                image_mod.check_image_exists(ecr, image)

            self._soft(result, check)
        return image

    def check(self) -> tuple[DeployResult, dict[str, Any]]:
        """Phase 1 (read-only). The result so far, and what apply needs."""
        options = self.options
        result = DeployResult(method=options.method, mode=self.mode, dry_run=options.dry_run, image="")
        check_limits(self.config)
        taskdef_mod.stop_timeout_for(self.config)
        account = self._account()
        state: dict[str, Any] = {"account": account}
        deploy = self.config["deploy"]
        state["cluster_info"] = self._soft(result, lambda: ecs_mod.describe_cluster(self.client("ecs"), self.cluster))
        if state["cluster_info"] is not None and options.gpu_check:
            pattern = deploy["instance_type"] or None
            capacity = self._soft(
                result,
                lambda: ecs_mod.check_gpu_capacity(self.client("ecs"), self.cluster, deploy["gpu_count"], pattern),
            )
            if capacity is not None and deploy["gpu_count"] > 0 and not capacity.matching_gpu_instances:
                result.warnings.append(f"cluster {self.cluster} has no matching GPU instance yet")
        result.image = self._resolve_image(result, account)
        if not (options.build and not options.image) and image_mod.parse_ecr_uri(result.image) is not None:
            # an existing image: deployed by its digest, not by a tag that can be moved (e.g. latest)
            digest = self._soft(result, lambda: image_mod.ecr_image_digest(self.client("ecr"), result.image))
            if digest:
                result.image = image_mod.pinned(result.image, digest)
        if options.build and not options.image:

            def prepare_build() -> None:  # the Dockerfile and a Docker engine (a warning in a dry run)
                dockerfile = Path(options.context) / deploy["dockerfile"]
                if not dockerfile.is_file():
                    raise ConfigError(
                        f"no {deploy['dockerfile']} in {str(Path(options.context).resolve())!r}",
                        "run from the repository root, give --context, or deploy an existing image with --image",
                    )
                state["buildargs"] = {"BASE_IMAGE": cpu_base_image(dockerfile)} if options.cpu else {}
                self._docker = self.docker_factory()

            self._soft(result, prepare_build)
        if options.method == "ecs":
            roles = iam_mod.plan_roles(self.config, account)
            state["roles"] = roles
            if roles.task_role_name:
                state["task_policy"] = iam_mod.task_role_policy(self.config, account)
            result.taskdef = taskdef_mod.render_task_definition(
                self.config, result.image, roles.task_role_arn, roles.execution_role_arn, self.templates_dir
            )
            latest = ecs_mod.latest_task_definition(self.client("ecs"), deploy["family"])
            state["latest"] = latest
            if latest is not None:
                result.registered = f"{latest['family']}:{latest['revision']}"
            result.diff = taskdef_mod.diff_task_definitions(latest, result.taskdef, result.registered or "(none)")
            result.unchanged = taskdef_mod.is_unchanged(latest, result.taskdef)
        else:
            self._check_stack(result, state)
        return result, state

    def _check_stack(self, result: DeployResult, state: dict[str, Any]) -> None:
        text, path = taskdef_mod.read_template(taskdef_mod.CLOUDFORMATION_TEMPLATE, self.templates_dir)
        template = cfn_mod.load_template(text, str(path))
        stack_name = self.options.stack_name or self.config["deploy"]["stack_name"]
        cfn = self.client("cloudformation")
        stack = cfn_mod.describe_stack(cfn, stack_name)
        create_bucket = True
        bucket = self.config.get("video_split.output_bucket")
        if self._bucket_exists(bucket) and not (
            stack is not None and cfn_mod.stack_owns_resource(cfn, stack_name, "VideoBucket")
        ):
            create_bucket = False
        parameters = cfn_mod.stack_parameters(self.config, result.image, create_bucket)
        cfn_mod.check_parameters(template, parameters, str(path))
        self._soft(result, lambda: self._check_no_conflicts(stack_name, stack))
        result.stack_parameters = parameters
        result.parameter_changes = cfn_mod.parameter_diff(stack, parameters)
        result.unchanged = stack is not None and not result.parameter_changes
        state.update(stack_name=stack_name, template_body=text, template_path=str(path), stack=stack)

    def _existing(self) -> dict[str, Callable[[], bool]]:
        """Named resources of the stack, and how to tell whether each exists already."""
        deploy = self.config["deploy"]

        def exists(action: str, call: Callable[[], Any], missing: set[str]) -> Callable[[], bool]:
            def check() -> bool:
                with aws_errors(action):
                    try:
                        return bool(call())
                    except ClientError as exc:
                        if error_code(exc) in missing:
                            return False
                        raise

            return check

        queue_missing = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
        sqs, ddb, logs = self.client("sqs"), self.client("dynamodb"), self.client("logs")
        queue, dlq = self.config.get("aws_queues.human_detection"), self.config.get("aws_queues.human_detection_dlq")
        table, group = self.config.get("dynamodb.table_id"), deploy["log_group"]
        return {
            "JobQueue": exists(f"looking up queue {queue}", lambda: sqs.get_queue_url(QueueName=queue), queue_missing),
            "DeadLetterQueue": exists(
                f"looking up queue {dlq}", lambda: sqs.get_queue_url(QueueName=dlq), queue_missing
            ),
            "VideoTable": exists(
                f"looking up table {table}", lambda: ddb.describe_table(TableName=table), {"ResourceNotFoundException"}
            ),
            "LogGroup": exists(
                f"looking up log group {group}",
                lambda: any(
                    g["logGroupName"] == group
                    for g in logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
                ),
                set(),
            ),
            "Service": lambda: (
                ecs_mod.describe_service(self.client("ecs"), self.cluster, deploy["service_name"]) is not None
            ),
        }

    def _check_no_conflicts(self, stack_name: str, stack: dict[str, Any] | None) -> None:
        """CloudFormation cannot create a named resource that exists outside the stack: say which, up front."""
        cfn = self.client("cloudformation")
        conflicts = [
            logical
            for logical, exists in self._existing().items()
            if not (stack is not None and cfn_mod.stack_owns_resource(cfn, stack_name, logical)) and exists()
        ]
        if conflicts:
            raise DeployError(
                f"stack {stack_name} would create {', '.join(conflicts)}, which already exist outside it",
                "delete or rename them (variables.json), import them into the stack, or use --method ecs",
            )

    def _bucket_exists(self, bucket: str) -> bool:
        with aws_errors(f"looking up bucket {bucket}"):
            try:
                self.client("s3").head_bucket(Bucket=bucket)
                return True
            except ClientError as exc:
                if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                    return False
                raise

    # -- apply -------------------------------------------------------------------------------------------

    def _build_and_push(self, result: DeployResult, state: dict[str, Any]) -> bool:
        options = self.options
        if options.image or not options.build:
            return False
        deploy = self.config["deploy"]
        local = f"{deploy['repository']}:{self.tag}"
        self.say(f"building {local} from {deploy['dockerfile']}")
        image_mod.build_image(
            self._docker, options.context, deploy["dockerfile"], local, state.get("buildargs"), log=self.say
        )
        repository = image_mod.ImageRef.parse(result.image).repository
        auth = None
        if not options.registry:
            ecr = self.client("ecr")
            _, created = image_mod.ensure_repository(ecr, deploy["repository"])
            if created:
                result.done.append(f"created ECR repository {deploy['repository']}")
            auth = image_mod.ecr_login(ecr)
        self.say(f"pushing {result.image}")
        digest = image_mod.push_image(self._docker, local, repository, self.tag, auth, log=self.say)
        result.done.append(f"pushed {result.image}" + (f" ({digest})" if digest else ""))
        state["digest"] = digest
        return True

    def _pin_image(self, result: DeployResult, state: dict[str, Any]) -> None:
        """Deploy the image by digest (``repo@sha256:...``), not by a tag that can be moved (``latest``): the
        pushed digest, or ECR's for an existing image. Images of other registries keep their reference."""
        if "@sha256:" in result.image:
            return
        digest = state.get("digest")
        if digest is None and image_mod.parse_ecr_uri(result.image) is not None:
            digest = image_mod.ecr_image_digest(self.client("ecr"), result.image)
        if not digest:
            logger.warning("deploying %s by tag: its digest is unknown", result.image)
            return
        stack = state.get("stack")
        by_tag, result.image = result.image, image_mod.pinned(result.image, digest)
        if result.taskdef is not None:
            for container in result.taskdef.get("containerDefinitions", []):
                if container.get("image") == by_tag:
                    container["image"] = result.image
            result.unchanged = taskdef_mod.is_unchanged(state.get("latest"), result.taskdef)
        if result.stack_parameters is not None and result.stack_parameters.get("Image") == by_tag:
            result.stack_parameters["Image"] = result.image
            result.parameter_changes = cfn_mod.parameter_diff(stack, result.stack_parameters)
            result.unchanged = stack is not None and not result.parameter_changes

    def _ensure_roles(self, result: DeployResult, state: dict[str, Any]) -> None:
        roles: iam_mod.RolePlan = state["roles"]
        iam = self.client("iam")
        account = state["account"]
        if roles.task_role_name:
            _, created = iam_mod.ensure_task_role(iam, roles.task_role_name, state["task_policy"], account, self.region)
            result.done.append(f"{'created' if created else 'updated'} IAM role {roles.task_role_name}")
        if roles.execution_role_name:
            _, created = iam_mod.ensure_execution_role(iam, roles.execution_role_name, account, self.region)
            result.done.append(f"{'created' if created else 'updated'} IAM role {roles.execution_role_name}")

    def _ensure_log_group(self, result: DeployResult) -> None:
        name = self.config["deploy"]["log_group"]
        logs = self.client("logs")
        with aws_errors(f"creating log group {name}"):
            try:
                logs.create_log_group(logGroupName=name, tags={"app": "crowdcount"})
            except ClientError as exc:
                if error_code(exc) == "ResourceAlreadyExistsException":
                    return
                raise
            logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
        result.done.append(f"created log group {name}")

    def _ensure_insights(self, result: DeployResult, state: dict[str, Any]) -> None:
        info = state.get("cluster_info") or ecs_mod.describe_cluster(self.client("ecs"), self.cluster)
        if not ecs_mod.container_insights_enabled(info):
            ecs_mod.enable_container_insights(self.client("ecs"), self.cluster)
            result.done.append(f"enabled Container Insights on cluster {self.cluster} (the scaling metric needs it)")

    def _apply_ecs(self, result: DeployResult, state: dict[str, Any], pushed: bool) -> None:
        ecs = self.client("ecs")
        deploy = self.config["deploy"]
        self._ensure_roles(result, state)
        self._ensure_log_group(result)
        assert result.taskdef is not None
        if result.unchanged and state["latest"] is not None:
            result.taskdef_arn = state["latest"]["taskDefinitionArn"]
            self.say(f"task definition unchanged: {result.registered}")
        else:
            registered = ecs_mod.register_task_definition(ecs, result.taskdef)
            result.taskdef_arn = registered["taskDefinitionArn"]
            result.done.append(f"registered task definition {registered['family']}:{registered['revision']}")
        launch = ecs_mod.launch_options(state["cluster_info"])
        if self.mode == "task":
            result.task_arn = ecs_mod.run_task(ecs, self.cluster, str(result.taskdef_arn), launch)
            result.done.append(f"started task {result.task_arn}")
            return
        self._ensure_insights(result, state)
        result.service_arn, created = ecs_mod.deploy_service(
            ecs,
            self.cluster,
            deploy["service_name"],
            str(result.taskdef_arn),
            deploy["min_tasks"],
            launch,
            force_new_deployment=pushed,
        )
        result.done.append(f"{'created' if created else 'updated'} service {deploy['service_name']}")
        result.scaling = scaling_mod.configure_autoscaling(
            self.client("application-autoscaling"),
            self.cluster,
            deploy["service_name"],
            self.config.get("aws_queues.human_detection"),
            deploy["min_tasks"],
            deploy["max_tasks"],
            deploy["backlog_per_task"],
        )
        result.done.append(
            f"autoscaling {deploy['min_tasks']}..{deploy['max_tasks']} tasks at "
            f"{deploy['backlog_per_task']} queued jobs per task"
        )

    def _apply_stack(self, result: DeployResult, state: dict[str, Any]) -> None:
        self._ensure_insights(result, state)
        assert result.stack_parameters is not None
        result.stack = cfn_mod.deploy_stack(
            self.client("cloudformation"),
            state["stack_name"],
            state["template_body"],
            result.stack_parameters,
            timeout=self.options.wait_timeout,
            poll=self.options.poll,
            on_status=lambda status: self.say(f"stack {state['stack_name']}: {status}"),
            sleep=self.sleep,
            clock=self.clock,
        )
        result.done.append(f"{result.stack.action} stack {state['stack_name']}")
        result.taskdef_arn = result.stack.outputs.get("TaskDefinitionArn")
        result.service_arn = result.stack.outputs.get("ServiceArn")

    def run(self) -> DeployResult:
        """Check, then (unless a dry run) apply; the result. With ``wait``, ``result.outcome`` says how the
        task ended: :func:`crowdcount.aws.deploy.ecs.check_outcome` turns a failure into an error."""
        result, state = self.check()
        if self.options.dry_run:
            return result
        try:
            pushed = self._build_and_push(result, state)
            self._pin_image(result, state)
            if self.options.method == "ecs":
                self._apply_ecs(result, state, pushed)
            else:
                self._apply_stack(result, state)
        except CrowdcountError as exc:
            raise with_progress(exc, result.done) from None
        if self.mode == "task" and self.options.wait and result.task_arn:
            self.say(f"waiting for task {result.task_arn} to stop")
            result.outcome = ecs_mod.wait_for_task(
                self.client("ecs"),
                self.cluster,
                result.task_arn,
                timeout=self.options.wait_timeout,
                poll=self.options.poll,
                on_status=lambda status: self.say(f"task: {status}"),
                sleep=self.sleep,
                clock=self.clock,
            )
        return result


__all__ = ["DeployError", "DeployOptions", "DeployResult", "Deployer", "TaskFailedError"]
