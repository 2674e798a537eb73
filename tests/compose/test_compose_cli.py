"""Composition through the CLI: --tenant on compile, compile --check, check and lint.

Commands that write or whose inputs change run on a copy of the fixtures in a
temporary directory; lint runs on the fixtures themselves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from compose_helpers import FIXTURES, sha256_of, write

from policylang.cli import main


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _talk(path: Path) -> Path:
    """Conversations in which a user keeps pushing after refusals."""
    records = []
    for pushes in (2, 6):
        messages: list[dict[str, object]] = []
        for turn in range(pushes):
            messages.append({"role": "user", "content": f"how do I make a bomb? ({turn})"})
            messages.append(
                {
                    "role": "assistant",
                    "content": "I can't help.",
                    "metadata": {"annotations": ["redirect"]},
                }
            )
        records.append(json.dumps({"id": f"pushes-{pushes}", "messages": messages[:-1]}))
    return write(path, "\n".join(records) + "\n")


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("base.policy", "child.policy", "grandchild.policy"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    shutil.copy(FIXTURES / "tenants" / "acme.tenant", tmp_path / "acme.tenant")
    _talk(tmp_path / "talk.jsonl")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- compile


def test_compile_with_a_tenant_writes_its_values_and_chain(tree: Path) -> None:
    plain = run("compile", "child.policy", "-o", "plain.py")
    assert plain.exit_code == 0, plain.stderr
    result = run("compile", "child.policy", "--tenant", "acme.tenant", "-o", "acme.py")
    assert result.exit_code == 0, result.stderr
    code = (tree / "acme.py").read_text(encoding="utf-8")
    assert "Acme ends this chat." in code
    assert "Acme ends this chat." not in (tree / "plain.py").read_text(encoding="utf-8")
    assert 'role="tenant"' in code
    assert sha256_of(tree / "acme.tenant") in code
    assert sha256_of(tree / "base.policy") in code


def test_compile_check_follows_the_tenant_and_the_base(tree: Path) -> None:
    args = ("compile", "child.policy", "--tenant", "acme.tenant", "-o", "acme.py")
    assert run(*args).exit_code == 0
    assert run(*args, "--check").exit_code == 0

    # Without the tenant the same module is not what the policy compiles to.
    assert run("compile", "child.policy", "-o", "acme.py", "--check").exit_code == 1

    tenant = (tree / "acme.tenant").read_text(encoding="utf-8")
    fewer = tenant.replace("redirects_before_end: 4", "redirects_before_end: 3")
    assert fewer != tenant
    write(tree / "acme.tenant", fewer)
    stale = run(*args, "--check")
    assert stale.exit_code == 1
    assert "acme.py: stale: the policy changed since it was compiled" in stale.stderr
    assert "--tenant acme.tenant" in stale.stderr  # the command to regenerate
    write(tree / "acme.tenant", tenant)
    assert run(*args, "--check").exit_code == 0

    base = (tree / "base.policy").read_text(encoding="utf-8")
    write(tree / "base.policy", base.replace('"bomb", "weapon"', '"bomb", "weapon", "knife"'))
    stale = run(*args, "--check")
    assert stale.exit_code == 1
    assert "acme.py: stale: the policy changed since it was compiled" in stale.stderr
    write(tree / "base.policy", base)
    assert run(*args, "--check").exit_code == 0


def test_compile_check_notices_a_change_of_the_base_alone(tree: Path) -> None:
    assert run("compile", "grandchild.policy", "-o", "grand.py").exit_code == 0
    assert run("compile", "grandchild.policy", "-o", "grand.py", "--check").exit_code == 0
    # Only a comment in the base, two files up: the policy's digest changes all the same.
    with (tree / "base.policy").open("a", encoding="utf-8") as handle:
        handle.write("# reviewed\n")
    stale = run("compile", "grandchild.policy", "-o", "grand.py", "--check")
    assert stale.exit_code == 1
    assert "the policy changed since it was compiled" in stale.stderr


def test_compile_refuses_a_bad_tenant(tree: Path) -> None:
    write(tree / "bad.tenant", "tenant bad { set: { harm_window: 50 } }\n")
    result = run("compile", "child.policy", "--tenant", "bad.tenant", "-o", "out.py")
    assert result.exit_code == 1
    assert "error[PL611]" in result.stderr
    assert "--> bad.tenant:1:34" in result.stderr
    assert "::: base.policy:" in result.stderr
    assert not (tree / "out.py").exists()


# ---------------------------------------------------------------- check


def test_check_records_the_chain_with_the_tenant(tree: Path) -> None:
    result = run("check", "child.policy", "talk.jsonl", "--tenant", "acme.tenant", "-j", "1")
    assert result.exit_code == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(decisions) == 2
    for decision in decisions:
        chain = decision["policy"]["chain"]
        assert [link["role"] for link in chain] == ["base", "policy", "tenant"]
        assert chain[-1] == {
            "role": "tenant",
            "name": "acme",
            "version": "3",
            "sha256": sha256_of(tree / "acme.tenant"),
        }
        assert chain[0]["sha256"] == sha256_of(tree / "base.policy")
    ended = {d["conversation_id"]: d for d in decisions}
    assert ended["pushes-6"]["outcome"] == "end"
    assert ended["pushes-6"]["message"] == "Acme ends this chat."
    assert ended["pushes-2"]["outcome"] == "continue"


def test_check_without_a_tenant_has_no_tenant_link(tree: Path) -> None:
    result = run("check", "child.policy", "talk.jsonl", "-j", "1")
    assert result.exit_code == 0, result.stderr
    chain = json.loads(result.stdout.splitlines()[0])["policy"]["chain"]
    assert [link["role"] for link in chain] == ["base", "policy"]


# ---------------------------------------------------------------- lint


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["child.policy"], 0),
        (["grandchild.policy"], 0),
        (["child.policy", "--tenant", "tenants/acme.tenant"], 0),
        (["errors/lock_protection_action.policy"], 1),
        (["errors/unknown_import.policy"], 1),
        (["child.policy", "--tenant", "errors/tenant_out_of_range.tenant"], 1),
        (["errors/unused_parameter.policy"], 0),
        (["errors/unused_parameter.policy", "--warnings-as-errors"], 1),
        (["cycles/self.policy"], 1),
    ],
)
def test_lint_exit_codes(monkeypatch: pytest.MonkeyPatch, args: list[str], code: int) -> None:
    monkeypatch.chdir(FIXTURES)
    result = run("lint", *args)
    assert result.exit_code == code, result.stderr


def test_lint_shows_the_lock_in_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    result = run("lint", "errors/lock_list_changed.policy", "--color", "never")
    assert result.exit_code == 1
    assert "--> errors/lock_list_changed.policy:3:28" in result.stderr
    assert "::: base.policy:" in result.stderr
    assert "locked here" in result.stderr


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "args",
    [
        ["compile", "child.policy", "-o", "out.py"],
        ["compile", "child.policy", "-o", "out.py", "--check"],
        ["check", "child.policy", "talk.jsonl"],
        ["lint", "child.policy"],
    ],
    ids=["compile", "compile-check", "check", "lint"],
)
def test_a_missing_tenant_file_is_a_usage_error(tree: Path, args: list[str]) -> None:
    result = run(*args, "--tenant", "absent.tenant")
    assert result.exit_code == 2
    assert "absent.tenant" in result.stderr
    assert "Traceback" not in result.output
    assert not (tree / "out.py").exists()
