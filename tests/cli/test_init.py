"""``policylang init`` and the repository's pre-commit hooks (``.pre-commit-hooks.yaml``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

import policylang
from policylang.cli import main
from policylang.cli.init import TEMPLATES
from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Message

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / ".pre-commit-hooks.yaml"

FILES = (
    "policies/{name}.policy",
    "policies/{name}.cases.yaml",
    "samples/conversations.jsonl",
    ".github/workflows/policylang.yml",
    ".pre-commit-config.yaml",
    "README.md",
)


def run(args: Sequence[str | os.PathLike[str]]) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def expected_files(root: Path, name: str) -> list[Path]:
    return [root / rel.format(name=name) for rel in FILES]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "acme-support"
    result = run(["init", root])
    assert result.exit_code == 0, result.stderr
    return root


# ---------------------------------------------------------------- the project


def test_init_creates_every_file(tmp_path: Path) -> None:
    root = tmp_path / "acme-support"
    result = run(["init", root])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    for path in expected_files(root, "acme-support"):
        assert path.is_file(), path
        assert f"created {path}" in result.stderr
    assert "next: policylang lint" in result.stderr
    created = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert created == sorted(rel.format(name="acme-support") for rel in FILES)


def test_the_starter_policy_lints_with_no_diagnostics(project: Path) -> None:
    result = run(["lint", project / "policies"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == ""
    document = json.loads(run(["lint", "--format", "json", project]).stdout)
    assert document["diagnostics"] == []
    verbose = run(["lint", "-v", project]).stderr
    assert "1 file checked, no problems" in verbose
    assert "end rule `end_on_request`" in verbose
    assert "end rule `end_persistent_harm`" in verbose
    assert "blocked while any of `imminent_risk` holds" in verbose


def test_the_starter_policy_has_what_it_promises(project: Path) -> None:
    text = (project / "policies" / "acme-support.policy").read_text(encoding="utf-8")
    assert "policy acme-support {" in text
    assert len(re.findall(r"^category ", text, re.M)) == 1
    assert re.search(r"^redirect ", text, re.M)
    assert "counts: failed_redirects" in text
    assert "protection imminent_risk {" in text
    assert "rule end_on_request {" in text
    assert "rule end_persistent_harm {" in text
    assert text.count("\n#") > 10, "the starter is commented"


def test_the_starter_policy_is_formatted(project: Path) -> None:
    # The pre-commit fmt hook must leave a fresh project alone.
    result = run(["fmt", "--check", project / "policies"])
    assert result.exit_code == 0, result.stderr + result.stdout


def test_the_starter_cases_hold(project: Path) -> None:
    cases_file = project / "policies" / "acme-support.cases.yaml"
    document = yaml.safe_load(cases_file.read_text(encoding="utf-8"))
    assert document["policy"] == "acme-support.policy"
    assert (cases_file.parent / document["policy"]).is_file()
    sink = DiagnosticSink()
    policy = load_policy(str(cases_file.parent / document["policy"]), sink)
    assert policy is not None, sink.sorted()
    outcomes = set()
    for case in document["cases"]:
        messages = []
        for turn in case["conversation"]:
            ((role, content),) = turn.items()
            assert role in {"user", "assistant"}
            messages.append(Message(role, content))
        decision = policy.evaluate(messages, conversation_id=case["name"])
        expect = case["expect"]
        assert set(expect) <= {"outcome", "at", "rule"}
        assert decision.outcome.value == expect["outcome"], case["name"]
        assert decision.message_index == expect.get("at"), case["name"]
        assert decision.rule == expect.get("rule"), case["name"]
        outcomes.add(expect["outcome"])
    assert outcomes == {"continue", "end", "escalate"}


def test_policylang_test_passes_on_a_new_project(project: Path) -> None:
    assert "test" in main.commands, "`policylang test` is missing"
    result = run(["test", project / "policies"])
    assert result.exit_code == 0, result.stderr + result.stdout


def test_the_samples_are_valid_transcripts(project: Path) -> None:
    samples = project / "samples" / "conversations.jsonl"
    result = run(["check", project / "policies" / "acme-support.policy", samples])
    assert result.exit_code == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    records = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    assert 2 <= len(records) <= 3
    assert [d["outcome"] for d in decisions] == [r["labels"]["expected"] for r in records]


def test_the_workflow_lints_and_tests(project: Path) -> None:
    workflow = yaml.safe_load(
        (project / ".github" / "workflows" / "policylang.yml").read_text(encoding="utf-8")
    )
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    assert any(step.get("uses", "").startswith("actions/setup-python@") for step in steps)
    runs = [step["run"] for step in steps if "run" in step]
    assert f'pip install "policylang=={policylang.__version__}"' in runs
    assert "policylang lint policies/" in runs
    assert "policylang test policies/" in runs


def test_the_pre_commit_config_uses_the_hooks(project: Path) -> None:
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    (repo,) = config["repos"]
    assert repo["rev"] == f"v{policylang.__version__}"
    ids = [hook["id"] for hook in repo["hooks"]]
    assert sorted(ids) == sorted(hook["id"] for hook in load_hooks())


def test_the_readme_names_the_layout_and_commands(project: Path) -> None:
    readme = (project / "README.md").read_text(encoding="utf-8")
    for rel in FILES[:-1]:
        assert rel.format(name="acme-support") in readme
    for command in ("policylang lint", "policylang test", "policylang check"):
        assert command in readme


def test_templates_are_package_data() -> None:
    folder = resources.files("policylang.init_templates")
    for spec in TEMPLATES:
        assert folder.joinpath(spec.template).is_file(), spec.template
    assert [spec.target for spec in TEMPLATES] == list(FILES)


# ---------------------------------------------------------------- existing files


def test_a_second_run_refuses_and_changes_nothing(project: Path) -> None:
    policy = project / "policies" / "acme-support.policy"
    policy.write_text("# mine\n", encoding="utf-8")
    result = run(["init", project])
    assert result.exit_code == 1
    assert "refusing to overwrite existing files" in result.stderr
    assert "--force" in result.stderr
    for path in expected_files(project, "acme-support"):
        assert f"  {path}\n" in result.stderr
    assert policy.read_text(encoding="utf-8") == "# mine\n"


def test_only_the_existing_files_are_listed(project: Path) -> None:
    (project / "README.md").unlink()
    (project / ".pre-commit-config.yaml").unlink()
    result = run(["init", project])
    assert result.exit_code == 1
    assert f"  {project / 'policies' / 'acme-support.policy'}\n" in result.stderr
    assert "README.md" not in result.stderr
    assert not (project / "README.md").exists(), "nothing is written when refusing"


def test_force_overwrites(project: Path) -> None:
    policy = project / "policies" / "acme-support.policy"
    fresh = policy.read_text(encoding="utf-8")
    policy.write_text("# mine\n", encoding="utf-8")
    (project / "README.md").unlink()
    result = run(["init", project, "--force"])
    assert result.exit_code == 0, result.stderr
    assert policy.read_text(encoding="utf-8") == fresh
    assert f"overwrote {policy}" in result.stderr
    assert f"created {project / 'README.md'}" in result.stderr


def test_an_existing_directory_is_fine(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["init", empty]).exit_code == 0
    busy = tmp_path / "busy"
    (busy / "policies").mkdir(parents=True)
    (busy / "notes.txt").write_text("keep\n", encoding="utf-8")
    result = run(["init", busy, "--name", "bot"])
    assert result.exit_code == 0, result.stderr
    assert (busy / "notes.txt").read_text(encoding="utf-8") == "keep\n"
    assert (busy / "policies" / "bot.policy").is_file()


def test_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "support_bot"
    here.mkdir()
    monkeypatch.chdir(here)
    result = run(["init", "."])
    assert result.exit_code == 0, result.stderr
    assert "created policies/support_bot.policy\n" in result.stderr
    assert (here / "policies" / "support_bot.policy").is_file()


def test_a_file_in_the_way(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("", encoding="utf-8")
    assert run(["init", target]).exit_code == 2
    root = tmp_path / "p"
    (root / "README.md").mkdir(parents=True)
    result = run(["init", root, "--force"])
    assert result.exit_code == 2
    assert "directories exist" in result.stderr
    assert not (root / "policies").exists()
    blocked = tmp_path / "q"
    blocked.mkdir()
    (blocked / "samples").write_text("", encoding="utf-8")  # a file where a folder must go
    result = run(["init", blocked])
    assert result.exit_code == 2
    assert f"cannot write `{blocked / 'samples' / 'conversations.jsonl'}`" in result.stderr
    assert f"created {blocked / 'policies' / 'q.policy'}" in result.stderr


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["bot", "acme-support", "_private", "Bot2", "a"])
def test_valid_names(tmp_path: Path, name: str) -> None:
    result = run(["init", tmp_path / "x", "--name", name])
    assert result.exit_code == 0, result.stderr
    policy = tmp_path / "x" / "policies" / f"{name}.policy"
    assert f"policy {name} {{" in policy.read_text(encoding="utf-8")
    cases = yaml.safe_load((policy.parent / f"{name}.cases.yaml").read_text(encoding="utf-8"))
    assert cases["policy"] == f"{name}.policy"
    assert run(["lint", policy]).exit_code == 0


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("1abc", "starts with a letter"),
        ("-x", "starts with a letter"),
        ("a b", "starts with a letter"),
        ("a.b", "starts with a letter"),
        ("caf\u00e9", "starts with a letter"),
        ("", "starts with a letter"),
        ("severity", "reserved"),
        ("imminent_risk", "duplicate definition"),
        ("end_on_request", "duplicate definition"),
    ],
)
def test_invalid_names_are_usage_errors(tmp_path: Path, name: str, why: str) -> None:
    result = run(["init", tmp_path / "x", "--name", name])
    assert result.exit_code == 2
    assert "--name" in result.stderr
    assert why in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_directory_name_that_cannot_name_a_policy(tmp_path: Path) -> None:
    result = run(["init", tmp_path / "2024 policies"])
    assert result.exit_code == 2
    assert "choose one with --name" in result.stderr
    assert not (tmp_path / "2024 policies").exists()
    assert run(["init", tmp_path / "2024 policies", "--name", "p2024"]).exit_code == 0


# ---------------------------------------------------------------- pre-commit hooks


def load_hooks() -> list[dict[str, Any]]:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert isinstance(hooks, list)
    return hooks


def test_hooks_file_parses() -> None:
    hooks = {hook["id"]: hook for hook in load_hooks()}
    assert set(hooks) == {"policylang-lint", "policylang-fmt", "policylang-test"}
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["name"]
        assert set(hook) <= {
            "id",
            "name",
            "description",
            "entry",
            "language",
            "files",
            "pass_filenames",
        }
        re.compile(hook["files"])
    for hook_id in ("policylang-lint", "policylang-fmt"):
        files = re.compile(hooks[hook_id]["files"])
        assert files.search("policies/default.policy")
        assert not files.search("policies/default.policy.bak")
        assert not files.search("setup.py")
        assert hooks[hook_id].get("pass_filenames", True) is True
    assert hooks["policylang-lint"]["entry"] == "policylang lint"
    # pre-commit expects fixers to modify files: no --check.
    assert hooks["policylang-fmt"]["entry"] == "policylang fmt"
    assert hooks["policylang-test"]["entry"] == "policylang test"
    assert hooks["policylang-test"]["pass_filenames"] is False
    test_files = re.compile(hooks["policylang-test"]["files"])
    assert test_files.search("policies/bot.cases.yaml")
    assert test_files.search("policies/bot.policy")


@pytest.mark.parametrize("hook_id", ["policylang-lint", "policylang-fmt", "policylang-test"])
def test_each_hook_runs_a_real_command(hook_id: str) -> None:
    (hook,) = [hook for hook in load_hooks() if hook["id"] == hook_id]
    program, command, *_ = hook["entry"].split()
    assert program == "policylang"  # the console script in pyproject.toml
    help_text = run(["--help"]).stdout
    listed = re.findall(r"^  ([a-z-]+)\s", help_text.split("Commands:", 1)[1], re.M)
    assert command in listed, f"`policylang {command}` is not a command"


def test_the_hooks_run_clean_on_a_new_project(project: Path) -> None:
    policies = sorted(str(p) for p in (project / "policies").glob("*.policy"))
    for hook in load_hooks():
        args = hook["entry"].split()[1:]
        args += policies if hook.get("pass_filenames", True) else [str(project / "policies")]
        result = run(args)
        assert result.exit_code == 0, (hook["id"], result.stderr, result.stdout)
