"""Helpers for the ``policylang test`` tests (imported by the test modules beside it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner, Result

from policylang.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = FIXTURES / "small.policy"
REPO = Path(__file__).resolve().parents[2]


def write(folder: Path, text: str, name: str = "small.cases.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run(args: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None) -> Result:
    """Invoke ``policylang`` in-process; a traceback must never reach the user."""
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def last_line(text: str) -> str:
    lines = text.splitlines()
    return lines[-1] if lines else ""
