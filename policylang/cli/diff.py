"""``policylang diff``: what a policy change does to real traffic."""

from __future__ import annotations

from typing import cast

import click

from policylang.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    ReadFailed,
    color_option,
    describe_os_error,
    format_option,
    guarded,
    load_policy_or_exit_code,
    max_errors_option,
    read_records,
)
from policylang.diff import Budget, DiffReport, exceeded_budgets, parse_budget
from policylang.formats import FORMATS, InputFormat, expand_inputs
from policylang.transcripts import RecordError

__all__ = ["diff_command"]


def _budgets(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[Budget]:
    budgets: list[Budget] = []
    for value in values:
        try:
            budgets.append(parse_budget(value))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param=param) from None
    return budgets


@click.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.argument("transcripts", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option(
    "--input-format",
    "input_format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Transcript record format; auto detects it per record.",
)
@format_option(
    ("human", "json"), "human", "human: a readable report; json: one versioned JSON document."
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    metavar="N",
    help="Show the first N examples of each change kind.",
)
@click.option(
    "--fail-if-changed",
    "budgets",
    multiple=True,
    metavar="KIND=RATE",
    callback=_budgets,
    help="Exit 1 when more than RATE (a share, 0.001, or a percentage, 0.1%) of the branches "
    "compared have change KIND; KIND any counts every change (repeatable).",
)
@click.option(
    "--old-tenant",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Apply this tenant file to OLD.",
)
@click.option(
    "--new-tenant",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Apply this tenant file to NEW (OLD and NEW may be the same policy).",
)
@max_errors_option
@color_option
@guarded
def diff_command(
    old: str,
    new: str,
    transcripts: tuple[str, ...],
    input_format: str,
    output_format: str,
    examples: int,
    budgets: list[Budget],
    max_errors: int | None,
    old_tenant: str | None = None,
    new_tenant: str | None = None,
) -> None:
    """Compare what OLD and NEW policies decide for the same TRANSCRIPTS.

    Each conversation branch is evaluated by both policies and classified:
    newly_ended, no_longer_ended, ended_earlier, ended_later, outcome_changed,
    rule_changed or unchanged. The report goes to stdout; invalid records are
    reported on stderr, located.

    \b
    Exit codes: 0 fine, 1 a --fail-if-changed budget exceeded, invalid records or
    a policy with errors, 2 usage or I/O problem (a transcript file that cannot be
    read: the others are still compared and the report is written), 3 internal error.
    """
    raise click.exceptions.Exit(
        _diff(
            old,
            new,
            transcripts,
            input_format=cast(InputFormat, input_format),
            output_format=output_format,
            examples=examples,
            budgets=budgets,
            max_errors=max_errors,
            old_tenant=old_tenant,
            new_tenant=new_tenant,
        )
    )


def _diff(
    old: str,
    new: str,
    transcripts: tuple[str, ...],
    *,
    input_format: InputFormat,
    output_format: str,
    examples: int,
    budgets: list[Budget],
    max_errors: int | None,
    old_tenant: str | None = None,
    new_tenant: str | None = None,
) -> int:
    # Both policies are loaded first, so that the diagnostics of both are shown.
    old_policy = load_policy_or_exit_code(old, max_errors, tenant=old_tenant)
    new_policy = load_policy_or_exit_code(new, max_errors, tenant=new_tenant)
    if isinstance(old_policy, int) or isinstance(new_policy, int):
        return max(code for code in (old_policy, new_policy) if isinstance(code, int))
    try:
        paths = expand_inputs(transcripts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    report = DiffReport(
        old_policy.info,
        new_policy.info,
        old_path=old,
        new_path=new,
        examples_per_kind=examples,
    )
    shown = 0
    code = EXIT_OK
    for path in paths:
        errors: list[RecordError] = []
        try:
            errors = report.add_records(
                old_policy, new_policy, read_records(path, input_format), errors=errors
            )
        except ReadFailed as exc:
            # Like check: say so, go on with the other files, and exit 2 at the end.
            click.echo(f"error: cannot read `{exc.path}`: {describe_os_error(exc.error)}", err=True)
            code = EXIT_USAGE
        for error in errors:
            if max_errors is None or shown < max_errors:
                click.echo(error.located(), err=True)
                shown += 1
    if report.invalid > shown:
        click.echo(f"... and {report.invalid - shown:,} more invalid records", err=True)
    click.echo(report.render_json() if output_format == "json" else report.render_human(), nl=False)
    if report.invalid:
        noun = "record is" if report.invalid == 1 else "records are"
        click.echo(f"error: {report.invalid:,} invalid {noun} not compared", err=True)
        code = max(code, EXIT_FINDINGS)
    for message in exceeded_budgets(report, budgets):
        click.echo(message, err=True)
        code = max(code, EXIT_FINDINGS)
    return code
