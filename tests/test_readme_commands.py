"""The commands README.md and docs/*.md show: every `crowdcount` subcommand and option they use exists, and every
relative link points at a file of the repository (a renamed option or a moved page fails here, not for a user)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from crowdcount.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def command_lines(page: Path) -> list[str]:
    """The `crowdcount ...` command lines of a page's code (indented blocks and fenced blocks), continuation lines
    joined, comments dropped; synopsis lines (`[options]`, `A | B`) are left out."""
    lines, fenced, pending = [], False, ""
    for raw in page.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or raw.startswith("    ")):
            pending = ""
            continue
        text = pending + " " + raw.strip() if pending else raw.strip()
        if text.endswith("\\"):
            pending = text[:-1].strip()
            continue
        pending = ""
        text = text.lstrip("$ ").split(" #", 1)[0].strip()
        if text.startswith("crowdcount ") and "[" not in text and " | " not in text and "..." not in text:
            lines.append(text)
    return lines


def resolve(tokens: list[str]) -> tuple[click.Command, list[click.Command], list[str]]:
    """The command a line names, the commands on the way (the groups' options apply too), and the rest."""
    command: click.Command = cli
    path: list[click.Command] = [cli]
    rest = list(tokens)
    while isinstance(command, click.Group):
        while rest and rest[0].startswith("-"):  # the group's own options (--log-format json)
            option = rest.pop(0)
            param = next((p for p in command.params if option.split("=")[0] in p.opts), None)
            if param is None:
                raise LookupError(f"{command.name} has no option {option}")
            if not getattr(param, "is_flag", False) and "=" not in option and rest:
                rest.pop(0)
        if not rest:
            break
        sub = command.get_command(click.Context(command), rest[0])
        if sub is None:
            raise LookupError(f"no command {rest[0]!r} under {command.name!r}")
        rest.pop(0)
        command = sub
        path.append(command)
    return command, path, rest


def test_the_pages_show_commands() -> None:
    assert len(command_lines(REPO / "README.md")) >= 15
    assert any(line.startswith("crowdcount deploy --target kubernetes") for p in PAGES for line in command_lines(p))


def problems(line: str) -> list[str]:
    """What is wrong with one command line: a command or an option that the CLI does not have."""
    tokens = [t for t in shlex.split(line.split(" 2>")[0]) if t not in (">", "&")]
    tokens = tokens[: tokens.index("|")] if "|" in tokens else tokens
    try:
        command, path, rest = resolve(tokens[1:])
    except LookupError as error:
        return [f"{line}: {error}"]
    known = {opt for cmd in path for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    options = [t.split("=")[0] for t in rest if t.startswith("-") and t != "-" and not re.fullmatch(r"-?[\d.]+", t)]
    return [f"{line}: {command.name} has no option {o}" for o in options if o not in known]


def test_a_wrong_option_or_command_is_caught() -> None:
    assert problems("crowdcount analyze clip.mp4 -d human --frame-ratio 0.2 --no-track") == []
    assert problems("crowdcount --log-format json worker --max-jobs 1") == []
    assert problems("crowdcount analyze clip.mp4 --frame-rate 0.2") == [
        "crowdcount analyze clip.mp4 --frame-rate 0.2: analyze has no option --frame-rate"
    ]
    assert problems("crowdcount faces enrol alice a.jpg") == [
        "crowdcount faces enrol alice a.jpg: no command 'enrol' under 'faces'"
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_and_option_shown_exists(page: Path) -> None:
    assert [problem for line in command_lines(page) for problem in problems(line)] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    targets = [t.split("#")[0] for t in LINK.findall(page.read_text(encoding="utf-8"))]
    local = [t for t in targets if t and not re.match(r"[a-z]+:", t)]
    missing = [t for t in local if not (page.parent / t).exists()]
    assert missing == []
