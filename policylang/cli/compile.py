"""``policylang compile``: compile a policy to a Python module, or check one is up to date.

The module is written atomically (a temporary file in the target's directory, then
``os.replace``), so a reader never sees half a module and a failed compile leaves
the previous output in place. Nothing is written when the policy has errors.
"""

from __future__ import annotations

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
    format_option,
    guarded,
    max_errors_option,
    open_output,
    read_source,
    report,
    tenant_option,
)
from policylang.diagnostics import DiagnosticSink

__all__ = ["compile_command", "write_atomic"]

STDOUT = "-"


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as :func:`open_output` does; raises ``OSError``."""
    with open_output(path) as stream:
        stream.write(text)


def _check_fresh(policy: str, out: str, tenant: str | None) -> int:
    from policylang.compiler import is_stale

    with_tenant = "" if tenant is None else f" --tenant {tenant}"
    regenerate = f"run `policylang compile {policy}{with_tenant} -o {out}`"
    if not os.path.exists(out):
        click.echo(f"{out}: missing; {regenerate}", err=True)
        return EXIT_FINDINGS
    try:
        stale, reason = is_stale(policy, out, tenant=tenant)
    except OSError as exc:
        fail(f"cannot read `{exc.filename or out}`: {describe_os_error(exc)}")
        return EXIT_USAGE
    if stale:
        click.echo(f"{out}: stale: {reason}; {regenerate}", err=True)
        return EXIT_FINDINGS
    return EXIT_OK


@click.command("compile")
@click.argument("policy", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    metavar="OUT",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where to write the module; - for stdout.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if OUT is missing or stale, 0 if it is up to date.",
)
@click.option(
    "--emit",
    type=click.Choice(("python",)),
    default="python",
    show_default=True,
    help="What to generate.",
)
@tenant_option
@format_option(("human", "short"), "human", "How to print diagnostics (on stderr).")
@max_errors_option
@color_option
@guarded
def compile_command(
    policy: str,
    out: str,
    check: bool,
    emit: str,
    tenant: str | None,
    output_format: str,
    max_errors: int | None,
) -> None:
    """Compile POLICY to a typed Python module at OUT.

    Refuses (exit 1, nothing written) when the policy has errors; warnings are
    printed but do not block. Exit codes: 0 written or fresh, 1 errors or stale,
    2 usage or I/O problem, 3 internal error.
    """
    if check:
        if out == STDOUT:
            raise click.UsageError("--check compares against a file; `-o -` has nothing to check")
        raise click.exceptions.Exit(_check_fresh(policy, out, tenant))

    from policylang.compiler import compile_source

    try:
        source, decoding = read_source(policy)
    except OSError as exc:
        fail(f"cannot read `{policy}`: {describe_os_error(exc)}")
        raise click.exceptions.Exit(EXIT_USAGE) from None
    sink = DiagnosticSink()
    sink.extend(decoding)
    compiled = compile_source(source, sink, tenant=tenant)
    diagnostics = sink.sorted()
    report(diagnostics, {policy: source}, output_format=output_format, max_errors=max_errors)
    code = exit_code_for(diagnostics)
    if code != EXIT_OK:
        raise click.exceptions.Exit(code)
    if compiled is None:
        # A compiler bug: guarded() reports it as an internal error (exit 3).
        raise RuntimeError("the compiler returned no module and reported no error")

    if out == STDOUT:
        stream = sys.stdout.buffer
        stream.write(compiled.code.encode("utf-8"))
        stream.flush()
        return
    try:
        write_atomic(out, compiled.code)
    except OSError as exc:
        fail(f"cannot write `{out}`: {describe_os_error(exc)}")
        raise click.exceptions.Exit(EXIT_USAGE) from None
