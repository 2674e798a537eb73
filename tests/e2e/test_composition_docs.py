"""docs/composition.md: the worked examples are real output of the bundled policies."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from policylang.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "composition.md"


def block(first_line: str) -> str:
    """The fenced block of the guide that starts with ``first_line``."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"no single block starting with {first_line!r}"
    return found[0]


def cat_then_lint(text: str) -> tuple[str, str, str, str]:
    """``$ cat FILE``, its content, ``$ policylang lint ...``, and what lint printed."""
    cat, rest = text.split("\n", 1)
    content, lint = rest.split("$ policylang lint ", 1)
    command, output = lint.split("\n", 1)
    return cat.removeprefix("$ cat "), content, command, output


@pytest.fixture
def copy_of_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundled policies, copied so that the guide's new files can be written beside them."""
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("copy_of_policies")
@pytest.mark.parametrize(
    "first_line", ["$ cat policies/dev_tools.policy", "$ cat policies/tenants/eager.tenant"]
)
def test_a_diagnostic_example_is_the_real_output(first_line: str) -> None:
    path, content, command, output = cat_then_lint(block(first_line))
    Path(path).write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["--color", "never", "lint", *shlex.split(command)])
    assert result.exit_code == 1
    assert result.stderr == output


def test_the_recorded_chain_is_the_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = json.loads("{" + block('"policy": {').strip() + "}")["policy"]
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        main,
        [
            "check",
            "policies/security_research.policy",
            "samples/conversations.jsonl",
            "--tenant",
            "policies/tenants/acme_support.tenant",
            "--quiet",
        ],
    )
    assert result.exit_code == 0
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert {json.dumps(d["policy"], sort_keys=True) for d in decisions} == {
        json.dumps(documented, sort_keys=True)
    }
