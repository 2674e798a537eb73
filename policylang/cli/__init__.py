"""The ``policylang`` command: a click group with global options and one module per command.

Exit codes (see docs/cli.md): 0 clean, 1 findings, 2 usage or I/O problem,
3 internal error.
"""

from __future__ import annotations

import click

from policylang.cli._common import (
    COLOR_CHOICES,
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    ColorMode,
    Settings,
    tool_version,
)
from policylang.cli.check import check_command
from policylang.cli.compile import compile_command
from policylang.cli.explain import explain_command
from policylang.cli.fmt import fmt_command
from policylang.cli.init import init_command
from policylang.cli.lint import lint_command
from policylang.cli.report import report_command
from policylang.cli.test import testing_command

__all__ = ["EXIT_FINDINGS", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "main"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(
    tool_version(), "--version", prog_name="policylang", message="%(prog)s %(version)s"
)
@click.option(
    "--color",
    type=click.Choice(COLOR_CHOICES),
    default="auto",
    show_default=True,
    help="Colour diagnostics: auto colours a terminal unless NO_COLOR is set.",
)
@click.pass_context
def main(ctx: click.Context, color: ColorMode) -> None:
    """Lint, compile and run conversation-ending policies.

    \b
    Exit codes: 0 clean, 1 findings, 2 usage or I/O problem, 3 internal error.
    """
    ctx.obj = Settings(color=color)


main.add_command(lint_command)
main.add_command(compile_command)
main.add_command(check_command)
main.add_command(report_command)
main.add_command(fmt_command)
main.add_command(init_command)
main.add_command(explain_command)
main.add_command(testing_command)
