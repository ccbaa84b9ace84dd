"""``crowdcount deploy``: build and push the worker image, then run it on ECS (a one-off task or an
autoscaled service), directly or through CloudFormation; or (``--target kubernetes``) render the Kubernetes
manifests of the live consumers, the camera watcher and the worker."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import click

from crowdcount.cli.common import FloatRange, config_option, get_config

logger = logging.getLogger(__name__)


def _say(text: str) -> None:
    click.echo(text, err=True)


def _print_dry_run(result: Any) -> None:
    if result.method == "ecs":
        click.echo(f"# task definition {result.taskdef['family']} (rendered, image {result.image})")
        click.echo(json.dumps(result.taskdef, indent=2))
        if result.registered is None:
            click.echo(f"# no registered revision of {result.taskdef['family']}: deploying registers revision 1")
        elif result.unchanged:
            click.echo(f"# no difference from {result.registered}: deploying reuses it")
        else:
            click.echo(f"# difference from {result.registered}")
            for line in result.diff.splitlines():
                color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
                click.secho(line, fg=color)
    else:
        click.echo(f"# stack parameters (image {result.image})")
        click.echo(json.dumps(result.stack_parameters, indent=2))
        click.echo("# changes" if result.parameter_changes else "# no parameter changes (template changes still apply)")
        for line in result.parameter_changes:
            click.echo(line)


def _print_summary(result: Any) -> None:
    for line in result.done:
        click.echo(f"done: {line}")
    if result.taskdef_arn:
        click.echo(f"task definition: {result.taskdef_arn}")
    if result.task_arn:
        click.echo(f"task: {result.task_arn}")
    if result.outcome is not None:
        click.echo(f"task exit code: {result.outcome.exit_code}")
    if result.service_arn:
        click.echo(f"service: {result.service_arn}")
    if result.scaling:
        s = result.scaling
        click.echo(f"autoscaling: {s['min_tasks']}..{s['max_tasks']} tasks, {s['backlog_per_task']} jobs per task")
    if result.stack is not None:
        click.echo(f"stack {result.stack.stack_name}: {result.stack.status} ({result.stack.action})")
        for key, value in sorted(result.stack.outputs.items()):
            click.echo(f"  {key}: {value}")


#: Options that only --target kubernetes reads, and those it does not (ECS's).
_KUBERNETES_ONLY = ("output", "namespace", "role_arn", "cameras")
_ECS_ONLY = (
    *("method", "run_task service", "build", "cpu", "wait", "wait_timeout", "poll_interval", "cluster"),
    *("context", "registry", "templates_dir", "stack_name", "skip_gpu_check", "endpoint_url"),
)


def _check_target_options(ctx: click.Context, target: str) -> None:
    """An option of the other target, given on the command line, is a usage error (exit 2); so are --run-task
    and --service together."""
    other = _ECS_ONLY if target == "kubernetes" else _KUBERNETES_ONLY
    for names in other:
        if any(ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE for n in names.split()):
            flags = "/".join(p.opts[-1] for p in ctx.command.params if p.name in names.split())
            raise click.UsageError(f"{flags} does not apply to --target {target}", ctx)
    if ctx.params.get("run_task") and ctx.params.get("service"):
        raise click.UsageError("--run-task and --service exclude each other (give one)", ctx)


def _deploy_kubernetes(
    config_path: str | None, options: dict[str, Any], output: str | None, dry_run: bool, as_json: bool
) -> None:
    """Render the manifests (checked before anything is written), then print them or write them."""
    from crowdcount.kubernetes import KubernetesOptions, render, write

    rendering = render(get_config(config_path), KubernetesOptions(**options))
    for warning in rendering.warnings:
        click.echo(f"warning: {warning}", err=True)
    folder = output or os.path.join("deploy", "kubernetes")
    if dry_run:
        if as_json:
            click.echo(json.dumps({"files": rendering.files, "warnings": rendering.warnings}, indent=2))
            return
        for path, text in rendering.files.items():
            click.echo(f"# ---- {os.path.join(folder, path)}")
            click.echo(text, nl=False)
        return
    written = write(rendering, folder)
    if as_json:
        click.echo(json.dumps({"output": folder, "files": [str(p) for p in written]}, indent=2))
        return
    click.echo(f"wrote {len(written)} files under {folder}")
    click.echo(f"apply with: kubectl apply -k {os.path.join(folder, 'overlays', 'gpu')}  (or overlays/cpu)")


@click.command()
@click.option(
    "--target",
    type=click.Choice(["ecs", "kubernetes"]),
    default="ecs",
    show_default=True,
    help="ECS (build, push, run), or render Kubernetes manifests from variables.json (docs/kubernetes.md).",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default=None,
    help="--target kubernetes: write the kustomize tree here (default: deploy/kubernetes).",
)
@click.option("--namespace", default="crowdcount", show_default=True, help="--target kubernetes: the namespace.")
@click.option("--role-arn", default=None, metavar="ARN", help="--target kubernetes: the worker's IRSA IAM role.")
@click.option(
    "--camera",
    "cameras",
    multiple=True,
    metavar="NAME",
    help="--target kubernetes: a camera of the watch Deployment, repeatable (its URL: key NAME of the Secret "
    "crowdcount-cameras). Default: camera-1.",
)
@click.option(
    "--method",
    type=click.Choice(["ecs", "cloudformation"]),
    default="ecs",
    show_default=True,
    help="Call the ECS/IAM/Auto Scaling APIs directly, or create/update the CloudFormation stack.",
)
@click.option("--run-task", "run_task", is_flag=True, help="Run one task (default with --method ecs).")
@click.option("--service", "service", is_flag=True, help="Create/update the autoscaled service.")
@click.option("--dry-run", is_flag=True, help="Print what would be deployed and the difference; change nothing.")
@click.option("--image", metavar="URI", default=None, help="Deploy this existing image (no build).")
@click.option("--build/--no-build", default=True, show_default=True, help="--no-build: deploy the pushed tag.")
@click.option("--tag", default=None, help="Image tag (default: deploy.image_tag; '-cpu' added with --cpu).")
@click.option("--cpu", is_flag=True, help="The CPU variant: CPU base image, no GPU requirement or constraint.")
@click.option("--wait/--no-wait", default=False, show_default=True, help="Wait for the task and exit with its code.")
@click.option("--wait-timeout", type=FloatRange(min=0), default=3600, show_default=True, help="Seconds.")
@click.option("--poll-interval", type=FloatRange(min=0), default=10, show_default=True, help="Seconds.")
@click.option("--cluster", default=None, help="ECS cluster (default: deploy.cluster).")
@click.option("--context", type=click.Path(file_okay=False), default=".", show_default=True, help="Build context.")
@click.option("--registry", default=None, metavar="HOST[:PORT]", help="Push here instead of ECR (local registry).")
@click.option("--templates", "templates_dir", default=None, help="Template folder (default: ./taskdefs).")
@click.option("--stack-name", default=None, help="CloudFormation stack (default: deploy.stack_name).")
@click.option("--skip-gpu-check", is_flag=True, help="Do not check the cluster for GPU instances first.")
@click.option("--endpoint-url", default=None, help="AWS endpoint, e.g. the sandbox (default: $AWS_ENDPOINT_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_option
def deploy(
    target: str,
    output: str | None,
    namespace: str,
    role_arn: str | None,
    cameras: tuple[str, ...],
    method: str,
    run_task: bool,
    service: bool,
    dry_run: bool,
    image: str | None,
    build: bool,
    tag: str | None,
    cpu: bool,
    wait: bool,
    wait_timeout: float,
    poll_interval: float,
    cluster: str | None,
    context: str,
    registry: str | None,
    templates_dir: str | None,
    stack_name: str | None,
    skip_gpu_check: bool,
    endpoint_url: str | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Deploy the worker to ECS: build the image and push it to ECR, register the task definition
    rendered from taskdefs/, then run a one-off task (--run-task, optionally --wait for its exit code) or
    create/update the service with autoscaling on the SQS backlog per task (--service).

    --dry-run prints the rendered task definition (or stack parameters) and the difference from what is
    registered, and changes nothing.

    --target kubernetes renders the Kubernetes manifests instead (kustomize: base, components keda/keda-jobs/hpa,
    overlays cpu/gpu) from variables.json into --output, or prints them with --dry-run; it changes no cluster.
    """
    _check_target_options(click.get_current_context(), target)
    if target == "kubernetes":
        kubernetes: dict[str, Any] = {"namespace": namespace, "role_arn": role_arn, "image": image, "tag": tag}
        if cameras:
            kubernetes["cameras"] = cameras
        _deploy_kubernetes(config_path, kubernetes, output, dry_run, as_json)
        return
    from crowdcount.aws.deploy.deployer import Deployer, DeployOptions
    from crowdcount.aws.deploy.ecs import check_outcome
    from crowdcount.aws.session import make_context

    config = get_config(config_path, {"deploy": {"cluster": cluster}})
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or config.aws_endpoint_url
    ctx = make_context(config.aws_region, endpoint)
    options = DeployOptions(
        method=method,
        mode="task" if run_task else "service" if service else None,
        dry_run=dry_run,
        image=image,
        build=build,
        tag=tag,
        cpu=cpu,
        wait=wait,
        wait_timeout=wait_timeout,
        poll=poll_interval,
        context=context,
        registry=registry,
        templates_dir=templates_dir,
        stack_name=stack_name,
        gpu_check=not skip_gpu_check,
    )
    result = Deployer(ctx, config, options, say=_say).run()
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    elif dry_run:
        _print_dry_run(result)
    else:
        _print_summary(result)
    if result.outcome is not None:
        check_outcome(result.outcome)
