"""``policylang init``: create a new policy project from the templates in package data.

The project has a starter policy that lints clean, its test cases, sample
conversations, a CI workflow, a pre-commit configuration and a README. Existing files
are never overwritten without ``--force``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import click

from policylang.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    describe_os_error,
    fail,
    guarded,
    tool_version,
)

__all__ = ["NAME_RE", "TEMPLATES", "ProjectFile", "init_command", "project_files"]

NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
"""A policy name: what the grammar accepts as a name (letters, digits, ``_`` and ``-``)."""

_TEMPLATE_PACKAGE: Final = "policylang.init_templates"


@dataclass(frozen=True, slots=True)
class ProjectFile:
    """One file of a new project: its template and its place, with ``{name}`` filled in."""

    template: str
    target: str


TEMPLATES: Final[tuple[ProjectFile, ...]] = (
    ProjectFile("starter.policy.tmpl", "policies/{name}.policy"),
    ProjectFile("starter.cases.yaml.tmpl", "policies/{name}.cases.yaml"),
    ProjectFile("conversations.jsonl.tmpl", "samples/conversations.jsonl"),
    ProjectFile("github-workflow.yml.tmpl", ".github/workflows/policylang.yml"),
    ProjectFile("pre-commit-config.yaml.tmpl", ".pre-commit-config.yaml"),
    ProjectFile("README.md.tmpl", "README.md"),
)


def _render(template: str, name: str, version: str) -> str:
    text = resources.files(_TEMPLATE_PACKAGE).joinpath(template).read_text(encoding="utf-8")
    return text.replace("@@name@@", name).replace("@@version@@", version)


def project_files(name: str, version: str | None = None) -> dict[str, str]:
    """The new project's files: relative path (with ``/``) to content, in creation order."""
    version = tool_version() if version is None else version
    return {
        spec.target.format(name=name): _render(spec.template, name, version) for spec in TEMPLATES
    }


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot name the starter policy, or ``None`` when it can."""
    if not NAME_RE.fullmatch(name):
        return "a policy name starts with a letter or `_` and has only letters, digits, `_` and `-`"
    # The name must also fit the starter itself (no clash with its declarations, not a
    # reserved word): check the rendered policy, which must lint clean.
    from policylang.checker import analyze
    from policylang.diagnostics import DiagnosticSink
    from policylang.source import SourceFile

    text = _render(TEMPLATES[0].template, name, tool_version())
    sink = DiagnosticSink()
    analyze(SourceFile.from_text(f"{name}.policy", text), sink)
    found = sink.sorted()
    if found:
        return f"in the starter policy: {found[0].message}"
    return None


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, dir_okay=True))
@click.option(
    "--name",
    metavar="NAME",
    help="The policy's name, used for policies/NAME.policy (default: the directory's name).",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@guarded
def init_command(directory: str, name: str | None, force: bool) -> None:
    """Create a new policy project in DIRECTORY.

    The project has a starter policy, its test cases, sample conversations, a CI
    workflow, a pre-commit configuration and a README.

    DIRECTORY is created if needed; it may already exist, but no file in it is
    overwritten without --force. Exit codes: 0 created, 1 files already exist,
    2 usage or I/O problem.
    """
    # The name is checked here rather than in a click callback so that @guarded covers it.
    given = name is not None
    if name is None:
        name = os.path.basename(os.path.normpath(os.path.abspath(directory)))
    problem = _name_problem(name)
    if problem is not None and given:
        message = f"`{name}` cannot name a policy: {problem}"
        raise click.BadParameter(message, param_hint="'--name'")
    if problem is not None:
        fail(f"the directory name `{name}` cannot name a policy: {problem}; choose one with --name")
        raise click.exceptions.Exit(EXIT_USAGE)

    files = project_files(name)
    paths = {rel: os.path.normpath(os.path.join(directory, *rel.split("/"))) for rel in files}

    blocked = [path for path in paths.values() if os.path.isdir(path)]
    if blocked:
        fail("cannot create files where directories exist: " + ", ".join(blocked))
        raise click.exceptions.Exit(EXIT_USAGE)
    existing = [path for path in paths.values() if os.path.lexists(path)]
    if existing and not force:
        fail("refusing to overwrite existing files (use --force to overwrite them):")
        for path in existing:
            click.echo(f"  {path}", err=True)
        raise click.exceptions.Exit(EXIT_FINDINGS)

    for rel, content in files.items():
        path = paths[rel]
        try:
            os.makedirs(os.path.dirname(path) or os.curdir, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(content)
        except OSError as exc:
            fail(f"cannot write `{path}`: {describe_os_error(exc)}")
            raise click.exceptions.Exit(EXIT_USAGE) from None
        click.echo(f"{'overwrote' if path in existing else 'created'} {path}", err=True)
    policies = os.path.join(os.path.normpath(directory), "policies", "")
    click.echo(f"next: policylang lint {policies} && policylang test {policies}", err=True)
    raise click.exceptions.Exit(EXIT_OK)
