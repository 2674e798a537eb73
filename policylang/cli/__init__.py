"""The ``policylang`` command: a click group with global options and one module per command.

Exit codes (see docs/cli.md): 0 clean, 1 findings, 2 usage or I/O problem,
3 internal error.
"""

from __future__ import annotations

import importlib
from typing import Final

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

__all__ = ["EXIT_FINDINGS", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "main"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

COMMANDS: Final = {
    "lint": ("policylang.cli.lint", "lint_command"),
    "compile": ("policylang.cli.compile", "compile_command"),
    "check": ("policylang.cli.check", "check_command"),
    "diff": ("policylang.cli.diff", "diff_command"),
    "report": ("policylang.cli.report", "report_command"),
    "fmt": ("policylang.cli.fmt", "fmt_command"),
    "init": ("policylang.cli.init", "init_command"),
    "explain": ("policylang.cli.explain", "explain_command"),
    "test": ("policylang.cli.test", "testing_command"),
}
"""Each command's module and object, imported only when the command is used (or listed)."""


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, so one command starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted."""
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module the first time."""
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module_name, attribute = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module_name}.{attribute} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
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

