"""``crowdcount deploy --target kubernetes``: what it writes and prints, and bad input (one line, exit 2, nothing
written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crowdcount.cli.main import cli
from crowdcount.kubernetes import KubernetesOptions, render

from .helpers import ROLE, TEST_CONFIG, load, write_config


def deploy(*args: str) -> Result:
    return CliRunner().invoke(cli, ["deploy", *args], env={"CROWDCOUNT_CONFIG": None}, catch_exceptions=False)


def files_under(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding only the test variables.json, as the current directory."""
    write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_it_writes_the_rendered_tree_to_deploy_kubernetes_or_output(workdir: Path) -> None:
    result = deploy("--target", "kubernetes", "--role-arn", ROLE, "--camera", "gate")
    assert result.exit_code == 0, result.output
    expected = render(load(workdir / "variables.json"), KubernetesOptions(role_arn=ROLE, cameras=("gate",))).files
    assert files_under(workdir / "deploy" / "kubernetes") == expected
    assert result.stdout.splitlines()[0] == f"wrote {len(expected)} files under deploy/kubernetes"
    assert result.stderr == ""  # no warnings with a role

    result = deploy("--target", "kubernetes", "--output", "elsewhere", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["files"]) == sorted(f"elsewhere/{p}" for p in expected)
    assert "warning: no --role-arn" in result.stderr


def test_dry_run_prints_every_file_and_writes_nothing(workdir: Path) -> None:
    result = deploy("--target", "kubernetes", "--dry-run", "--namespace", "people", "--tag", "v9")
    assert result.exit_code == 0, result.output
    assert sorted(workdir.iterdir()) == [workdir / "variables.json"]
    rendering = render(load(workdir / "variables.json"), KubernetesOptions(namespace="people", tag="v9"))
    printed = [
        line[len("# ---- deploy/kubernetes/") :] for line in result.stdout.splitlines() if line.startswith("# ---- ")
    ]
    assert printed == list(rendering.files)
    assert result.stdout == "".join(f"# ---- deploy/kubernetes/{p}\n{t}" for p, t in rendering.files.items())
    assert "namespace: people" in result.stdout and "newTag: v9-cpu" in result.stdout
    as_json = deploy("--target", "kubernetes", "--dry-run", "--json", "--namespace", "people", "--tag", "v9")
    assert json.loads(as_json.stdout)["files"] == rendering.files


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (
            [],
            {"aws_queues": {"human_detektion": "q"}},
            "Error: unknown config key 'aws_queues.human_detektion' (did you mean 'human_detection'?",
        ),
        ([], {"live": {"redis_url": "redis://u:pw@redis:6379"}}, "Error: config key 'live.redis_url' holds a password"),
        ([], {"deploy": {"max_tasks": 0}}, "Error: deploy.min_tasks 0 / max_tasks 0: need 0 <= min <= max, max >= 1"),
        (["--camera", "Front Door"], {}, "Error: --camera 'Front Door' is not a valid camera name"),
        (
            ["--role-arn", "arn:aws:iam::1:role/x"],
            {},
            "Error: --role-arn 'arn:aws:iam::1:role/x' is not an IAM role ARN",
        ),
        (["--namespace", "-x-"], {}, "Error: --namespace '-x-' is not a valid namespace name"),
        (["--method", "cloudformation"], {}, "Error: --method does not apply to --target kubernetes"),
        (["--service"], {}, "Error: --run-task/--service does not apply to --target kubernetes"),
        (["--target", "ecs", "--output", "x"], {}, "Error: --output does not apply to --target ecs"),
    ],
)
def test_a_bad_configuration_is_one_line_exit_2_and_nothing_written(
    workdir: Path, args: list[str], config: dict, message: str
) -> None:
    (workdir / "variables.json").write_text(json.dumps({**TEST_CONFIG, **config}))
    target = [] if "--target" in args else ["--target", "kubernetes"]
    result = deploy(*target, *args, "--output", "out") if "--output" not in args else deploy(*target, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(message), line
    assert sorted(workdir.iterdir()) == [workdir / "variables.json"]


def test_ecs_stays_the_default_target() -> None:
    result = deploy("--help")
    assert "--target [ecs|kubernetes]" in result.stdout
    assert "[default: ecs]" in result.stdout
