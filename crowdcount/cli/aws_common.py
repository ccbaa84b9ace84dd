"""Options shared by the commands that talk to AWS (or the sandbox)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def endpoint_option(func: F) -> F:
    """``--endpoint-url URL``: talk to this endpoint (the sandbox) instead of AWS."""
    return click.option(
        "--endpoint-url",
        "endpoint_url",
        default=None,
        metavar="URL",
        help="AWS endpoint, e.g. the sandbox's http://127.0.0.1:4566 (default: $AWS_ENDPOINT_URL, "
        "else the config's aws_endpoint_url, else AWS).",
    )(func)
