"""``crowdcount detectors``: what can be run, with which arguments, on which model."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from crowdcount.detectors import ALIASES, DETECTORS, detector_parameters


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def detectors(as_json: bool) -> None:
    """List the registered detectors, their arguments (with defaults) and the model each loads."""
    entries: list[dict[str, Any]] = []
    for name, cls in DETECTORS.items():
        entries.append(
            {
                "name": name,
                "aliases": sorted(a for a, target in ALIASES.items() if target == name),
                "category": cls.category,
                "arguments": detector_parameters(name),
                "default_model": cls.default_model_info(),
                "description": next(iter((cls.__doc__ or "").strip().splitlines()), ""),
            }
        )
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    table = Table(title="crowdcount detectors")
    for column in ("Name", "Aliases", "Category", "Arguments (defaults)", "Default model"):
        table.add_column(column)
    for e in entries:
        args = "\n".join(f"{k}={v!r}" for k, v in e["arguments"].items())
        model = e["default_model"]
        table.add_row(
            e["name"],
            ", ".join(e["aliases"]),
            e["category"],
            args,
            f"{model.get('name', '-')}\n{model.get('source', '')}\n{model.get('licence', '')}",
        )
    Console(soft_wrap=True).print(table)
