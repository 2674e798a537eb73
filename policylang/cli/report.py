"""``policylang report``: measure a policy on corpora and write an HTML or JSON report.

Thin: the work is done by :mod:`policylang.report`. This module parses the
options, prints the terminal summary on stderr, writes the outputs and picks
the exit code.
"""

from __future__ import annotations

import math
import os
import sys

import click

from policylang.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    color_option,
    describe_os_error,
    fail,
    guarded,
    load_policy_or_exit_code,
    max_errors_option,
    tenant_option,
)
from policylang.cli.compile import write_atomic

__all__ = ["parse_rate", "report_command"]

STDOUT = "-"


def parse_rate(text: str) -> float:
    """A rate as a fraction: ``0.005`` or ``0.5%``; raises ``ValueError`` otherwise."""
    raw = text.strip()
    percent = raw.endswith("%")
    number = float(raw[:-1] if percent else raw)  # ValueError for non-numbers
    if not math.isfinite(number):
        raise ValueError(text)
    value = number / 100 if percent else number
    if not 0.0 <= value <= 1.0:
        raise ValueError(text)
    return value


def _end_rates(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, float], ...]:
    """Split and check the ``--max-end-rate CORPUS=RATE`` values."""
    parsed = []
    for text in values:
        corpus, equals, rate = text.rpartition("=")
        if not equals or not corpus:
            raise click.BadParameter(
                f"`{text}` should be CORPUS=RATE, e.g. hh-benign-dev=0.5%", ctx, param
            )
        try:
            parsed.append((corpus, parse_rate(rate)))
        except ValueError:
            raise click.BadParameter(
                f"`{rate}` in `{text}` is not a rate: give a fraction between 0 and 1 "
                "(0.005) or a percentage (0.5%)",
                ctx,
                param,
            ) from None
    return tuple(parsed)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_usage(
    corpora: tuple[str, ...],
    benign: tuple[str, ...],
    budgets: tuple[tuple[str, float], ...],
    outputs: list[tuple[str, str]],
    inputs: list[str],
) -> dict[str, float]:
    from policylang.report import corpus_name

    names: dict[str, str] = {}
    for path in corpora:
        name = corpus_name(path)
        if name in names:
            raise click.UsageError(
                f"two corpora are named `{name}` ({names[name]} and {path}); corpus names "
                "(file names without .jsonl and .gz) must differ"
            )
        names[name] = path
    known = ", ".join(names)
    for name in benign:
        if name not in names:
            raise click.BadParameter(
                f"`{name}` is not the name of a corpus (corpora: {known})", param_hint="'--benign'"
            )
    rates: dict[str, float] = {}
    for name, value in budgets:
        if name not in names:
            raise click.BadParameter(
                f"`{name}` is not the name of a corpus (corpora: {known})",
                param_hint="'--max-end-rate'",
            )
        if name in rates:
            raise click.BadParameter(f"`{name}` is given twice", param_hint="'--max-end-rate'")
        rates[name] = value
    if [target for _, target in outputs].count(STDOUT) > 1:
        raise click.UsageError("only one of --html and --json can write to stdout (-)")
    for option, target in outputs:
        if target == STDOUT:
            continue
        for path in inputs:
            if path != STDOUT and _same_file(path, target):
                raise click.UsageError(f"{option} `{target}` is also an input file")
    return rates


def _write(target: str, text: str) -> bool:
    if target == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return True
    try:
        write_atomic(target, text)
    except OSError as exc:
        fail(f"cannot write `{target}`: {describe_os_error(exc)}")
        return False
    return True


@click.command("report")
@click.argument("policy", type=click.Path(exists=True, dir_okay=False))
@click.argument(
    "corpora",
    metavar="CORPUS...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option(
    "--labels",
    "labels",
    multiple=True,
    metavar="FILE|auto",
    help="Gold labels (JSONL) matched to conversations by id (repeatable); "
    "auto: gold/<corpus>.jsonl beside each corpus.",
)
@click.option(
    "--benign",
    multiple=True,
    metavar="CORPUS",
    help="Treat every unlabelled conversation of this corpus as `continue` (repeatable).",
)
@click.option(
    "--html",
    "html_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the report as a self-contained HTML page (- for stdout).",
)
@click.option(
    "--json",
    "json_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the report as JSON (- for stdout); see docs/schemas/report.schema.json.",
)
@click.option(
    "--max-end-rate",
    "budgets",
    multiple=True,
    metavar="CORPUS=RATE",
    callback=_end_rates,
    help="Exit 1 if CORPUS is ended more often than RATE (0.005 or 0.5%); repeatable.",
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    metavar="N",
    help="Example decisions to show per outcome and corpus.",
)
@tenant_option
@max_errors_option
@color_option
@guarded
def report_command(
    policy: str,
    corpora: tuple[str, ...],
    labels: tuple[str, ...],
    benign: tuple[str, ...],
    html_path: str | None,
    json_path: str | None,
    budgets: tuple[tuple[str, float], ...],
    examples: int,
    max_errors: int | None,
    tenant: str | None = None,
) -> None:
    """Run POLICY over each CORPUS and report what it decides.

    CORPUS files are JSONL transcripts, plain or gzip (- for stdin); a corpus is
    named by its file name without .jsonl and .gz. Prints a summary on stderr and
    writes the report with --html and --json. Exit codes: 0 done, 1 an end-rate
    budget exceeded or an invalid record (or the policy has errors), 2 usage or
    I/O problem, 3 internal error.
    """
    from policylang.report import (
        AUTO,
        LabelError,
        ReportError,
        build_report,
        render_html,
        render_json,
        render_summary,
    )

    outputs = [
        (option, target)
        for option, target in (("--html", html_path), ("--json", json_path))
        if target is not None
    ]
    label_files = [item for item in labels if item != AUTO]
    rates = _check_usage(corpora, benign, budgets, outputs, [policy, *corpora, *label_files])

    loaded = load_policy_or_exit_code(policy, max_errors, tenant=tenant)
    if isinstance(loaded, int):
        raise click.exceptions.Exit(loaded)

    try:
        report = build_report(
            loaded, corpora, labels=labels, benign=benign, max_end_rates=rates, examples=examples
        )
    except LabelError as exc:
        fail(str(exc))
        raise click.exceptions.Exit(EXIT_USAGE) from None
    except ReportError as exc:
        raise click.UsageError(str(exc)) from None

    code = EXIT_OK
    shown = hidden = 0
    for corpus in report.corpora:
        for record in corpus.invalid_records:
            if max_errors is None or shown < max_errors:
                click.echo(record.located(), err=True)
                shown += 1
        hidden += corpus.invalid
    hidden -= shown
    if hidden:
        click.echo(f"... and {hidden} more invalid records (counted in the report)", err=True)
    for corpus in report.corpora:
        if corpus.read_error is not None:
            fail(f"cannot read `{corpus.path}`: {corpus.read_error}")
            code = EXIT_USAGE
    if report.invalid:
        code = max(code, EXIT_FINDINGS)

    if html_path is not None and not _write(html_path, render_html(report)):
        code = EXIT_USAGE
    if json_path is not None and not _write(json_path, render_json(report)):
        code = EXIT_USAGE

    for line in render_summary(report):
        click.echo(line, err=True)
    for corpus in report.over_budget:
        assert corpus.budget is not None
        fail(
            f"`{corpus.name}` ended {corpus.budget.end_rate * 100:.2f}% of its conversations "
            f"({corpus.count('end'):,} of {corpus.conversations:,}), more than its "
            f"--max-end-rate budget of {round(corpus.budget.max_end_rate * 100, 6):g}%"
        )
        code = max(code, EXIT_FINDINGS)
    raise click.exceptions.Exit(code)
