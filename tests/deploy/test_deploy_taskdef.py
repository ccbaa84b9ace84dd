"""Task definition templates: rendering, the GPU/CPU variants, validation, template lookup and diffs."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path
from typing import Any

import pytest

from crowdcount.aws.deploy import taskdef as td
from crowdcount.aws.deploy.deployer import variant_config
from crowdcount.config import Config
from crowdcount.errors import ConfigError

from .helpers import EXECUTION_ROLE, IMAGE, REPO, TASK_ROLE, TEST_CONFIG, expected_taskdef


def test_renders_the_gpu_task_definition(config: Config) -> None:
    assert td.render_task_definition(config, IMAGE, TASK_ROLE, EXECUTION_ROLE) == expected_taskdef()


def test_stop_timeout_follows_the_worker_grace_period() -> None:
    config = Config({**TEST_CONFIG, "worker": {"grace_period_seconds": 45}})
    rendered = td.render_task_definition(config, IMAGE, TASK_ROLE, EXECUTION_ROLE)
    container = rendered["containerDefinitions"][0]
    # SIGKILL comes STOP_MARGIN after the grace period: time to checkpoint, record the error, release the message
    assert container["stopTimeout"] == 45 + td.STOP_MARGIN == 75
    assert {"name": "CROWDCOUNT_WORKER__GRACE_PERIOD_SECONDS", "value": "45"} in container["environment"]
    default = td.render_task_definition(Config(TEST_CONFIG), IMAGE, TASK_ROLE, EXECUTION_ROLE)
    assert default["containerDefinitions"][0]["stopTimeout"] == 120  # the default 90 s grace + 30


@pytest.mark.parametrize("grace", [91, 120, 600])
def test_grace_period_ecs_cannot_honour_is_a_config_error(grace: int) -> None:
    config = Config({**TEST_CONFIG, "worker": {"grace_period_seconds": grace}})
    with pytest.raises(ConfigError, match=r"worker.grace_period_seconds is \d+, but ECS waits at most 120 s"):
        td.render_task_definition(config, IMAGE, TASK_ROLE, EXECUTION_ROLE)


def test_configured_roles_instance_type_and_environment() -> None:
    config = Config(
        {
            **TEST_CONFIG,
            "deploy": {
                **TEST_CONFIG["deploy"],
                "task_role_arn": "arn:aws:iam::1:role/given-task",
                "execution_role_arn": "arn:aws:iam::1:role/given-exec",
                "instance_type": "g5.*",
                "gpu_count": 2,
                "environment": {"EXTRA": "1", "CROWDCOUNT_WORKER__HEARTBEAT_SECONDS": "30"},
            },
        }
    )
    rendered = td.render_task_definition(config, IMAGE)
    assert rendered["taskRoleArn"] == "arn:aws:iam::1:role/given-task"
    assert rendered["executionRoleArn"] == "arn:aws:iam::1:role/given-exec"
    assert rendered["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:ecs.instance-type =~ g5.*"}
    ]
    container = rendered["containerDefinitions"][0]
    assert container["resourceRequirements"] == [{"type": "GPU", "value": "2"}]
    names = [e["name"] for e in container["environment"]]
    assert names == sorted(names)
    assert {"name": "EXTRA", "value": "1"} in container["environment"]
    assert {"name": "CROWDCOUNT_WORKER__HEARTBEAT_SECONDS", "value": "30"} in container["environment"]


def test_cpu_variant_has_no_gpu_requirement_and_no_instance_constraint(config: Config) -> None:
    rendered = td.render_task_definition(variant_config(config, cpu=True), IMAGE, TASK_ROLE, EXECUTION_ROLE)
    expected = expected_taskdef()
    del expected["placementConstraints"]
    del expected["containerDefinitions"][0]["resourceRequirements"]
    assert rendered == expected


def test_render_keeps_types_of_whole_placeholders_and_escapes() -> None:
    template = {"n": "${n}", "l": "${l}", "s": "a-${n}-$${x}", "keep": [1, True, None]}
    assert td.render(template, {"n": 3, "l": [{"a": 1}]}) == {
        "n": 3,
        "l": [{"a": 1}],
        "s": "a-3-${x}",
        "keep": [1, True, None],
    }
    assert td.placeholders(template) == {"n", "l"}


def test_missing_value_names_the_placeholder_and_where() -> None:
    with pytest.raises(ConfigError) as info:
        td.render({"containerDefinitions": [{"image": "${image}", "x": "${nope}"}]}, {"image": "i"}, "t.json")
    message = str(info.value)
    assert message.startswith("t.json: no value for ${nope} at containerDefinitions[0].x")
    assert "\n" not in message


def test_a_list_inside_text_is_an_error() -> None:
    with pytest.raises(ConfigError, match="must be the whole string"):
        td.render({"x": "env: ${environment}"}, {"environment": [1]})


def test_missing_template_value_from_a_custom_template(config: Config, tmp_path: Path) -> None:
    template = json.loads((REPO / "taskdefs" / td.TASKDEF_TEMPLATE).read_text())
    template["containerDefinitions"][0]["command"] = ["--queue", "${queue_url}"]
    (tmp_path / td.TASKDEF_TEMPLATE).write_text(json.dumps(template))
    with pytest.raises(ConfigError, match=r"no value for \$\{queue_url\} at containerDefinitions\[0\].command\[1\]"):
        td.render_task_definition(config, IMAGE, TASK_ROLE, EXECUTION_ROLE, templates_dir=str(tmp_path))


def test_invalid_template_json_is_a_config_error(config: Config, tmp_path: Path) -> None:
    (tmp_path / td.TASKDEF_TEMPLATE).write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        td.render_task_definition(config, IMAGE, TASK_ROLE, EXECUTION_ROLE, templates_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update(requiresCompatibilities=["FARGATE"]), "Fargate has no GPUs"),
        (lambda t: t.update(cpu="four"), "cpu must be a positive number"),
        (lambda t: t["containerDefinitions"][0].update(stopTimeout=300), "stopTimeout must be 2..120"),
        (lambda t: t["containerDefinitions"][0].update(image=""), "needs a name and an image"),
        (lambda t: t.update(containerDefinitions=[]), "non-empty list"),
        (
            lambda t: t["containerDefinitions"][0]["logConfiguration"]["options"].pop("awslogs-group"),
            "awslogs needs awslogs-group",
        ),
    ],
)
def test_validation(config: Config, change: Any, message: str) -> None:
    taskdef = expected_taskdef()
    change(taskdef)
    with pytest.raises(ConfigError, match=message):
        td.validate_task_definition(taskdef, config)


def test_gpu_without_placement_constraint_warns(config: Config, caplog: pytest.LogCaptureFixture) -> None:
    taskdef = expected_taskdef()
    del taskdef["placementConstraints"]
    td.validate_task_definition(taskdef, config)
    assert "no ecs.instance-type placement constraint" in caplog.text


@pytest.mark.parametrize("name", [td.TASKDEF_TEMPLATE, td.CLOUDFORMATION_TEMPLATE])
def test_packaged_templates_are_identical_to_taskdefs(name: str) -> None:
    """taskdefs/ is the canonical copy; the package ships the same files so an installed crowdcount works.
    If this fails: cp taskdefs/* crowdcount/aws/deploy/templates/"""
    assert filecmp.cmp(REPO / "taskdefs" / name, td.PACKAGE_TEMPLATES / name, shallow=False)


def test_template_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert td.find_templates_dir() == td.PACKAGE_TEMPLATES
    (tmp_path / "taskdefs").mkdir()
    (tmp_path / "taskdefs" / td.TASKDEF_TEMPLATE).write_text("{}")
    assert td.find_templates_dir() == Path("taskdefs")
    with pytest.raises(ConfigError, match=r"template folder .elsewhere. has no task-definition\.json"):
        td.find_templates_dir("elsewhere")


def test_diff_ignores_what_ecs_adds_and_shows_real_changes(config: Config) -> None:
    rendered = expected_taskdef()
    registered: dict[str, Any] = json.loads(json.dumps(rendered))
    registered.update(
        taskDefinitionArn="arn:aws:ecs:us-east-1:123456789012:task-definition/crowdcount-worker:3",
        revision=3,
        status="ACTIVE",
        compatibilities=["EC2"],
        requiresAttributes=[{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.29"}],
        volumes=[],
        registeredAt="2026-01-01T00:00:00Z",
    )
    container = registered["containerDefinitions"][0]
    container.update(cpu=0, portMappings=[], mountPoints=[], volumesFrom=[])
    container["environment"] = list(reversed(container["environment"]))
    assert td.is_unchanged(registered, rendered)
    assert td.diff_task_definitions(registered, rendered, "crowdcount-worker:3") == ""

    changed = json.loads(json.dumps(rendered))
    changed["cpu"] = "4096"
    diff = td.diff_task_definitions(registered, changed, "crowdcount-worker:3")
    assert not td.is_unchanged(registered, changed)
    assert diff.startswith("--- crowdcount-worker:3\n+++ rendered\n")
    assert '-  "cpu": "2048",' in diff.splitlines()
    assert '+  "cpu": "4096",' in diff.splitlines()


def test_diff_against_nothing_registered() -> None:
    diff = td.diff_task_definitions(None, expected_taskdef(), "(none)")
    assert not td.is_unchanged(None, expected_taskdef())
    assert all(line.startswith(("+", "-", "@")) for line in diff.splitlines())


def _dockerfile_healthcheck() -> dict[str, Any]:
    """The image's HEALTHCHECK as ECS's ``healthCheck`` says it (durations in seconds)."""
    import re

    text = (REPO / "Dockerfile").read_text()
    match = re.search(r"^HEALTHCHECK (?P<options>.*?)\\\n\s*CMD (?P<command>\[.*\])$", text, re.MULTILINE)
    assert match, "no HEALTHCHECK ... CMD [...] in the Dockerfile"
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", match["options"]))
    return {
        "command": ["CMD", *json.loads(match["command"])],
        "interval": int(options["interval"].rstrip("s")),
        "timeout": int(options["timeout"].rstrip("s")),
        "retries": int(options["retries"]),
        "startPeriod": int(options["start-period"].rstrip("s")),
    }


def test_the_task_runs_the_images_health_check(config: Config) -> None:
    """ECS ignores a HEALTHCHECK baked into an image: only the container definition's healthCheck makes a hung
    worker (no receive or heartbeat for 5 minutes) unhealthy, and its service task replaced."""
    rendered = td.render_task_definition(config, IMAGE, TASK_ROLE, EXECUTION_ROLE)
    assert rendered["containerDefinitions"][0]["healthCheck"] == _dockerfile_healthcheck()
