"""Configuration values that kubectl (or the pods) would refuse are refused before rendering, one line each; odd
but valid values render as meant."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.errors import ConfigError
from crowdcount.kubernetes import KubernetesOptions, render

from .helpers import TEST_CONFIG, load, write_config


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://sandbox:99999", "its port is not in 1-65535"),
        ("http://sandbox:0", "its port is not in 1-65535"),
        ("sandbox:5000", "it is not http(s)://HOST[:PORT]"),
    ],
)
def test_an_endpoint_the_pods_cannot_reach_is_refused(tmp_path: Path, endpoint: str, reason: str) -> None:
    config = load(write_config(tmp_path, aws_endpoint_url=endpoint))
    with pytest.raises(ConfigError) as error:
        render(config, KubernetesOptions())
    assert (
        str(error.value)
        == f"config key 'aws_endpoint_url' {endpoint!r}: {reason} (e.g. http://sandbox.default.svc:5000)"
    )


def test_the_command_says_so_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, aws_endpoint_url="http://sandbox:99999")
    result = CliRunner().invoke(cli, ["deploy", "--target", "kubernetes", "--dry-run", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: config key 'aws_endpoint_url' 'http://sandbox:99999': its port is not in 1-65535 "
        "(e.g. http://sandbox.default.svc:5000)"
    ]


@pytest.mark.parametrize("name", ["MY=VAR", "1ST", "A B", ""])
def test_an_environment_variable_kubernetes_refuses_is_refused(tmp_path: Path, name: str) -> None:
    config = load(write_config(tmp_path, deploy={**TEST_CONFIG["deploy"], "environment": {name: "x"}}))
    with pytest.raises(ConfigError) as error:
        render(config, KubernetesOptions())
    assert str(error.value) == (
        f"deploy.environment.{name} is not a variable name Kubernetes takes "
        "(letters, digits, '_', '-' and '.', not starting with a digit)"
    )


def test_a_variable_name_with_dots_and_dashes_renders(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, deploy={**TEST_CONFIG["deploy"], "environment": {"my.var-1": "x"}}))
    worker = yaml.safe_load_all(render(config, KubernetesOptions()).files["base/worker.yaml"])
    env = next(o for o in worker if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "my.var-1", "value": "x"} in env


def test_an_image_pinned_by_digest_on_a_registry_with_a_port_keeps_its_name(tmp_path: Path) -> None:
    image = "localhost:5001/crowdcount-worker@sha256:" + "a" * 64
    files = render(load(write_config(tmp_path)), KubernetesOptions(image=image)).files
    for overlay in ("cpu", "gpu"):
        (kustomization,) = yaml.safe_load_all(files[f"overlays/{overlay}/kustomization.yaml"])
        assert kustomization["images"] == [{"name": "localhost:5001/crowdcount-worker", "digest": "sha256:" + "a" * 64}]
