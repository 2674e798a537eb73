"""``policylang fmt``: lay policy files out in the canonical style, in place or as a check.

Each file is formatted by :func:`policylang.fmt.format_source`, which re-parses its
output and refuses (PL900) unless the policy is unchanged. Files are rewritten
atomically; ``--check`` and ``--diff`` write nothing. ``-`` formats stdin to stdout.
"""

from __future__ import annotations

import difflib
import os
import sys

import click

from policylang.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    color_option,
    describe_os_error,
    exit_code_for,
    fail,
    guarded,
    max_errors_option,
    report,
)
from policylang.cli.compile import write_atomic
from policylang.cli.lint import POLICY_SUFFIX, discover
from policylang.diagnostics import DiagnosticSink
from policylang.source import SourceFile

__all__ = ["fmt_command"]

STDIN = "-"
#: How stdin is named in messages and diffs.
STDIN_NAME = "<stdin>"


def _format(path: str, data: bytes, limit: int, max_errors: int | None) -> tuple[int, str | None]:
    """Format one file's bytes: ``(exit code, formatted text or None)``.

    Diagnostics are printed only when the file cannot be formatted: a decoding or
    syntax error (exit 1), a file over the size ``limit`` (PL003, exit 1; ``data`` then
    holds the limit's worth and one byte more) or a formatter bug (exit 3).
    """
    from policylang.fmt import format_source
    from policylang.source import too_large

    if len(data) > limit:
        refused = too_large(path, None, limit)
        report([refused], {path: SourceFile(path, "")}, output_format="human")
        return EXIT_FINDINGS, None
    source, decoding = SourceFile.from_bytes(path, data)
    sink = DiagnosticSink()
    sink.extend(decoding)
    formatted = None if sink.has_errors else format_source(source, sink)
    if formatted is not None:
        return EXIT_OK, formatted
    diagnostics = sink.sorted()
    report(diagnostics, {path: source}, output_format="human", max_errors=max_errors)
    return max(exit_code_for(diagnostics), EXIT_FINDINGS), None


def _diff(path: str, data: bytes, formatted: str) -> bytes:
    # The original as it is on disk (CRLF line ends and a BOM show up as changes).
    before = data.decode("utf-8").splitlines(keepends=True)
    after = formatted.splitlines(keepends=True)
    lines = difflib.unified_diff(before, after, path, path)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode()


def _write_stdout(data: bytes) -> None:
    stream = sys.stdout.buffer
    stream.write(data)
    stream.flush()


@click.command("fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; list the files that would change and exit 1 if there are any.",
)
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Write nothing; print a unified diff of the changes on stdout, exit 1 if any.",
)
@max_errors_option
@color_option
@guarded
def fmt_command(
    paths: tuple[str, ...], check: bool, show_diff: bool, max_errors: int | None
) -> None:
    """Format policy files in the canonical layout, in place.

    PATHS are .policy files or directories searched for them; - formats stdin to
    stdout. A file with syntax errors is left alone and its errors are printed. Exit
    codes: 0 formatted (or, with --check/--diff, nothing to change), 1 files would
    change or have syntax errors, 2 usage or I/O problem, 3 internal error.
    """
    file_paths = [path for path in paths if path != STDIN]
    files = discover(file_paths)
    if file_paths and not files:
        fail(f"no `{POLICY_SUFFIX}` files found in {', '.join(file_paths)}")
        raise click.exceptions.Exit(EXIT_USAGE)

    from policylang.limits import PolicyLimits

    limit = PolicyLimits.from_environment().max_policy_size
    # At most the size limit and one byte more: enough to refuse a larger file (PL003).
    most = limit + 1
    code = EXIT_OK
    if STDIN in paths:
        data = sys.stdin.buffer.read(most)
        result, formatted = _format(STDIN_NAME, data, limit, max_errors)
        code = max(code, result)
        if formatted is not None:
            changed = formatted.encode("utf-8") != data
            if show_diff and changed:
                _write_stdout(_diff(STDIN_NAME, data, formatted))
            if check and changed:
                click.echo(f"would reformat {STDIN_NAME}", err=True)
            if (check or show_diff) and changed:
                code = max(code, EXIT_FINDINGS)
            if not (check or show_diff):
                _write_stdout(formatted.encode("utf-8"))

    for path in files:
        try:
            with open(path, "rb") as handle:
                data = handle.read(most)
        except OSError as exc:
            fail(f"cannot read `{path}`: {describe_os_error(exc)}")
            code = max(code, EXIT_USAGE)
            continue
        result, formatted = _format(path, data, limit, max_errors)
        code = max(code, result)
        if formatted is None or formatted.encode("utf-8") == data:
            continue
        if show_diff:
            _write_stdout(_diff(path, data, formatted))
        if check:
            click.echo(f"would reformat {path}", err=True)
        if check or show_diff:
            code = max(code, EXIT_FINDINGS)
            continue
        try:
            # Through a symbolic link, rewrite the file it points to, not the link.
            write_atomic(os.path.realpath(path), formatted)
        except OSError as exc:
            fail(f"cannot write `{path}`: {describe_os_error(exc)}")
            code = max(code, EXIT_USAGE)
            continue
        click.echo(f"reformatted {path}", err=True)
    raise click.exceptions.Exit(code)
