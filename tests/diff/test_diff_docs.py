"""docs/cli.md, ``## diff``: the worked example is real output; every JSON field is described."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from policylang.cli import main

REPO = Path(__file__).resolve().parents[2]
CLI_DOC = REPO / "docs" / "cli.md"
FIXTURES = Path(__file__).parent / "fixtures"


def diff_section() -> str:
    text = CLI_DOC.read_text(encoding="utf-8")
    start = text.index("\n## diff\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_worked_example_is_the_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```\n(\$ policylang diff .*?)```", diff_section(), re.DOTALL)
    assert len(blocks) == 1
    (block,) = blocks
    command = block.splitlines()[0]
    monkeypatch.chdir(REPO)  # the example names the fixtures relative to the repository
    result = CliRunner().invoke(main, shlex.split(command)[2:])  # after "$ policylang"
    assert f"{command}\n{result.stdout}{result.stderr}$ echo $?\n{result.exit_code}\n" == block


def documented_fields(section: str, heading: str) -> set[str]:
    """The names in backquotes in the first column of the tables after ``heading``."""
    part = section[section.index(heading):]
    cells = re.findall(r"^\| ([^|]*`[^|]*)\|", part, re.MULTILINE)
    return {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}


def test_every_json_field_is_described() -> None:
    section = diff_section()
    fields = documented_fields(section, "### JSON diff report")
    result = CliRunner().invoke(
        main,
        ["diff", str(FIXTURES / "old.policy"), str(FIXTURES / "new.policy"),
         str(FIXTURES / "valid.jsonl"), "--format", "json"],
    )
    document = json.loads(result.stdout)
    for key, value in document.items():
        if key == "totals":
            assert {f"totals.{name}" for name in value} <= fields
        elif key == "changes":
            (change, *_) = value.values()
            assert {f"changes.KIND.{name}" for name in change} <= fields
        else:
            assert key in fields
    (example,) = document["changes"]["newly_ended"]["examples"]
    assert set(example) <= fields


def test_every_change_kind_is_defined() -> None:
    from policylang.diff import CHANGE_KINDS

    kinds = documented_fields(diff_section(), "### Change kinds")
    assert set(CHANGE_KINDS) | {"unchanged"} <= kinds
