"""``policylang lint``: parse and check policy files, and report diagnostics.

Prints nothing when every file is clean (like OPA's ``check``); ``-v`` adds a count
and, for each policy, the proof that every termination path is guarded. ``--format
json`` and ``--format sarif`` always print one document on stdout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import click

from policylang.cli._common import (
    EXIT_INTERNAL,
    EXIT_USAGE,
    color_option,
    complete_sources,
    describe_os_error,
    exit_code_for,
    fail,
    format_option,
    guarded,
    max_errors_option,
    read_source,
    report,
    tool_version,
)
from policylang.diagnostics import DiagnosticSink
from policylang.source import SourceFile

__all__ = ["discover", "lint_command"]

POLICY_SUFFIX = ".policy"


def discover(paths: Iterable[str]) -> list[str]:
    """Expand arguments into policy files, each once, in a stable order.

    A file argument is used as given, whatever its name. A directory is searched
    recursively for ``*.policy`` files, skipping hidden directories (``.git``,
    ``.venv``); its files are sorted by path.
    """
    found: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.normcase(os.path.realpath(path))
        if key not in seen:
            seen.add(key)
            found.append(path)

    for path in paths:
        if not os.path.isdir(path):
            add(path)
            continue
        matches: list[str] = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            matches.extend(
                os.path.join(root, name) for name in files if name.endswith(POLICY_SUFFIX)
            )
        for match in sorted(matches):
            add(match)
    return found


@click.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@format_option(
    ("human", "short", "json", "sarif"),
    "human",
    "human and short go to stderr; json and sarif (SARIF 2.1.0) are one document on stdout.",
)
@max_errors_option
@click.option(
    "--warnings-as-errors",
    is_flag=True,
    help="Exit with code 1 when there are warnings, not only errors.",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Say how many files were checked, and show each policy's termination paths.",
)
@click.option(
    "--tenant",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Also check this tenant file's settings against the policy (one policy only).",
)
@color_option
@guarded
def lint_command(
    paths: tuple[str, ...],
    output_format: str,
    max_errors: int | None,
    warnings_as_errors: bool,
    verbose: bool,
    tenant: str | None = None,
) -> None:
    """Check policy files for errors and warnings.

    PATHS are .policy files or directories searched for them. Exit codes: 0 clean,
    1 findings (errors, or warnings with --warnings-as-errors), 2 usage or I/O
    problem, 3 internal error.
    """
    from policylang.checker import analyze, termination_paths

    files = discover(paths)
    if not files:
        fail(f"no `{POLICY_SUFFIX}` files found in {', '.join(paths)}")
        raise click.exceptions.Exit(EXIT_USAGE)
    if tenant is not None and len(files) != 1:
        raise click.UsageError(
            f"--tenant applies to one policy, and {len(files)} were given; "
            "name the policy the tenant is for"
        )

    sink = DiagnosticSink()
    sources: dict[str, SourceFile] = {}
    proofs: list[tuple[str, list[str]]] = []
    io_errors: list[tuple[str, str]] = []
    for path in files:
        try:
            source, decoding = read_source(path)
        except OSError as exc:
            message = f"cannot read `{path}`: {describe_os_error(exc)}"
            fail(message)
            io_errors.append((path, message))
            continue
        sources[path] = source
        sink.extend(decoding)
        spec = analyze(source, sink, tenant=tenant)
        if verbose and spec is not None:
            proofs.append((path, [item.describe() for item in termination_paths(spec)]))

    diagnostics = sink.sorted()
    code = exit_code_for(diagnostics, warnings_as_errors=warnings_as_errors)
    if io_errors:
        # Precedence: internal error (3) > I/O problem (2) > findings (1) > clean (0).
        code = max(code, EXIT_USAGE)
    if output_format == "sarif":
        from policylang.sarif import Notification, render_sarif

        document = render_sarif(
            diagnostics,
            complete_sources(diagnostics, sources),
            tool_version=tool_version(),
            root=os.getcwd(),
            artifacts=files,
            execution_successful=not io_errors and code != EXIT_INTERNAL,
            exit_code=code,
            notifications=[Notification(message, path) for path, message in io_errors],
        )
        click.echo(document, nl=False)
    else:
        report(diagnostics, sources, output_format=output_format, max_errors=max_errors)

    if verbose:
        for path, lines in proofs:
            click.echo(f"{path}: termination paths", err=True)
            for line in lines or ["(none: this policy never ends a conversation)"]:
                click.echo(f"  {line}", err=True)
        checked = len(sources)
        noun = "file" if checked == 1 else "files"
        if diagnostics:
            from policylang.render import summary_line

            click.echo(f"{checked} {noun} checked: {summary_line(diagnostics)}", err=True)
        else:
            click.echo(f"{checked} {noun} checked, no problems", err=True)

    raise click.exceptions.Exit(code)
