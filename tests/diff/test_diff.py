"""policylang diff: change kinds, the report, budgets and the command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import policylang
from policylang.cli import main
from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.diff import (
    CHANGE_KINDS,
    UNCHANGED,
    DiffReport,
    classify,
    exceeded_budgets,
    parse_budget,
)
from policylang.runtime import Decision, Outcome, Policy
from policylang.transcripts import iter_records

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "old.policy"
NEW = FIXTURES / "new.policy"
TRANSCRIPTS = FIXTURES / "transcripts.jsonl"
VALID = FIXTURES / "valid.jsonl"


def policy(path: Path) -> Policy:
    loaded = load_policy(str(path), DiagnosticSink())
    assert loaded is not None
    return loaded


@pytest.fixture(scope="module")
def base() -> Decision:
    return policy(OLD).evaluate([], "c1")


def decision(base: Decision, outcome: Outcome, index: int | None, rule: str | None,
             message: str | None = None) -> Decision:
    return dataclasses.replace(
        base, outcome=outcome, message_index=index, rule=rule, reason=message, message=message
    )


def run(*args: object) -> Result:
    result = CliRunner().invoke(main, ["diff", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ((Outcome.CONTINUE, None, None, None), (Outcome.END, 2, "r", "bye"), "newly_ended"),
        ((Outcome.ESCALATE, 0, "p", "help"), (Outcome.END, 2, "r", "bye"), "newly_ended"),
        ((Outcome.END, 2, "r", "bye"), (Outcome.WARN, 2, "w", "careful"), "no_longer_ended"),
        ((Outcome.END, 4, "r", "bye"), (Outcome.END, 2, "r", "bye"), "ended_earlier"),
        ((Outcome.END, 2, "r", "bye"), (Outcome.END, 4, "r", "bye"), "ended_later"),
        ((Outcome.CONTINUE, None, None, None), (Outcome.ESCALATE, 0, "p", "help"),
         "outcome_changed"),
        ((Outcome.WARN, 0, "w", "careful"), (Outcome.WARN, 2, "w", "careful"),
         "outcome_changed"),
        ((Outcome.END, 2, "r", "bye"), (Outcome.END, 2, "r", "goodbye"), "outcome_changed"),
        ((Outcome.END, 2, "r", "bye"), (Outcome.END, 2, "s", "bye"), "rule_changed"),
        ((Outcome.WARN, 1, "w", "careful"), (Outcome.WARN, 1, "v", "careful"), "rule_changed"),
        ((Outcome.END, 2, "r", "bye"), (Outcome.END, 2, "r", "bye"), UNCHANGED),
        ((Outcome.CONTINUE, None, None, None), (Outcome.CONTINUE, None, None, None), UNCHANGED),
    ],
)
def test_classify_hand_made_pairs(
    base: Decision, old: tuple[Any, ...], new: tuple[Any, ...], kind: str
) -> None:
    assert classify(decision(base, *old), decision(base, *new)) == kind


def kinds_by_id(old: Path, new: Path, transcripts: Path = TRANSCRIPTS) -> dict[str, str]:
    old_policy, new_policy = policy(old), policy(new)
    out: dict[str, str] = {}
    for record in iter_records(str(transcripts)):
        if hasattr(record, "conversation"):
            messages = record.conversation.messages
            out[record.conversation.id] = classify(
                old_policy.evaluate(messages, record.conversation.id),
                new_policy.evaluate(messages, record.conversation.id),
            )
    return out


def test_classify_fixture_policies_forward() -> None:
    assert kinds_by_id(OLD, NEW) == {
        "benign": UNCHANGED,
        "request": UNCHANGED,
        "persistent": "ended_earlier",
        "twice": "newly_ended",
        "danger": "outcome_changed",
    }


def test_classify_fixture_policies_backward() -> None:
    assert kinds_by_id(NEW, OLD) == {
        "benign": UNCHANGED,
        "request": UNCHANGED,
        "persistent": "ended_later",
        "twice": "no_longer_ended",
        "danger": "outcome_changed",
    }


def test_classify_rule_changed_fixture() -> None:
    kinds = kinds_by_id(OLD, FIXTURES / "renamed.policy")
    assert kinds["request"] == "rule_changed"
    assert set(kinds.values()) == {UNCHANGED, "rule_changed"}


# ---------------------------------------------------------------- the report


def report_for(old: Path, new: Path, examples: int = 5) -> DiffReport:
    old_policy, new_policy = policy(old), policy(new)
    report = DiffReport(old_policy.info, new_policy.info, examples_per_kind=examples)
    errors = report.add_records(old_policy, new_policy, iter_records(str(TRANSCRIPTS)))
    assert [error.line for error in errors] == [6]
    return report


def test_report_counts_rates_and_examples() -> None:
    report = report_for(OLD, NEW)
    assert (report.records, report.conversations, report.branches, report.invalid) == (6, 5, 5, 1)
    assert report.count("any") == 3
    assert report.rate("newly_ended") == pytest.approx(1 / 5)
    (example,) = report.examples["newly_ended"]
    assert (example.conversation_id, example.line, example.location) == (
        "twice", 4, f"{TRANSCRIPTS}:4",
    )
    assert example.old["outcome"] == "continue"
    assert example.new["outcome"] == "end"
    assert example.new["rule"] == "end_persistent"
    assert "zapgun" in example.evidence


def test_examples_are_limited() -> None:
    report = report_for(OLD, NEW, examples=0)
    assert report.examples.get("newly_ended", []) == []
    assert report.count("newly_ended") == 1


def test_json_document_shape() -> None:
    document = json.loads(report_for(OLD, NEW).render_json())
    assert set(document) == {
        "format", "version", "tool", "old", "new", "totals", "changes", "invalid"
    }
    assert document["format"] == "policylang-diff"
    assert document["version"] == 1
    assert document["tool"] == {"name": "policylang", "version": policylang.__version__}
    assert document["invalid"] == 1
    assert set(document["old"]) == {"name", "version", "sha256", "path"}
    assert document["totals"]["branches"] == 5
    assert document["totals"]["changed"] == 3
    assert list(document["changes"]) == list(CHANGE_KINDS)
    for kind, change in document["changes"].items():
        assert set(change) == {"count", "rate", "examples"}
        assert len(change["examples"]) == change["count"], kind
        for example in change["examples"]:
            assert set(example) == {
                "conversation_id", "branch", "file", "line", "index", "old", "new", "evidence"
            }
            assert set(example["old"]) == {"outcome", "rule", "message_index", "reason", "message"}
    assert document["changes"]["ended_earlier"]["examples"][0]["conversation_id"] == "persistent"


def test_human_report_lists_kinds_and_examples() -> None:
    text = report_for(OLD, NEW).render_human()
    assert "6 records: 5 conversations (5 branches compared) + 1 invalid" in text
    for kind in CHANGE_KINDS:
        assert kind in text
    assert "newly_ended (first 1 of 1):" in text
    assert f"{TRANSCRIPTS}:4  twice" in text
    assert "no_longer_ended (first" not in text


# ---------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    "text",
    [
        "newly_ended", "=0.1", "ended=0.1", "any=lots", "any=2", "any=-1", "any=101%",
        "any=%", "any=nan", "any=inf", "any=0.1%%",
    ],
)
def test_bad_budget(text: str) -> None:
    with pytest.raises(ValueError, match=r"newly_ended|share from 0 to 1"):
        parse_budget(text)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("newly_ended=0.001", 0.001),
        ("newly_ended=0.1%", 0.001),
        ("any = 100%", 1.0),
        ("rule_changed=0", 0.0),
        ("ended_later= 2.5% ", 0.025),
    ],
)
def test_budget_share_or_percentage(text: str, rate: float) -> None:
    budget = parse_budget(text)
    assert budget.rate == pytest.approx(rate)
    assert budget.text == text


def test_budgets_exceeded() -> None:
    report = report_for(OLD, NEW)
    budgets = [parse_budget(text) for text in ("newly_ended=0.2", "ended_earlier=0.1", "any=0")]
    messages = exceeded_budgets(report, budgets)
    assert len(messages) == 2
    assert messages[0].startswith("error: ended_earlier changed 1 of 5 branches (20.00%)")
    assert "any changed 3 of 5" in messages[1]


# ---------------------------------------------------------------- the command


def test_command_identical_policies_exit_0() -> None:
    result = run(OLD, OLD, VALID, "--fail-if-changed", "any=0")
    assert result.exit_code == 0, result.output
    assert "0 changed (0.00%), 5 unchanged" in result.stdout


def test_command_changes_without_budget_exit_0() -> None:
    result = run(OLD, NEW, VALID)
    assert result.exit_code == 0, result.output
    assert "newly_ended" in result.stdout


def test_command_budget_exceeded_exit_1() -> None:
    result = run(OLD, NEW, VALID, "--fail-if-changed", "newly_ended=0.001",
                 "--fail-if-changed", "ended_later=0")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: newly_ended changed 1 of 5 branches")


def test_command_budget_within_exit_0() -> None:
    result = run(OLD, NEW, VALID, "--fail-if-changed", "newly_ended=0.2", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["changes"]["newly_ended"]["count"] == 1


def test_command_bad_budget_is_usage_error() -> None:
    result = run(OLD, NEW, VALID, "--fail-if-changed", "ended=0.1")
    assert result.exit_code == 2
    assert "unknown change kind `ended`" in result.stderr
    assert "newly_ended, no_longer_ended" in result.stderr


def test_command_invalid_records_located_exit_1() -> None:
    result = run(OLD, NEW, TRANSCRIPTS, "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["invalid"] == 1
    assert f"{TRANSCRIPTS}:6:1: error[PL802]" in result.stderr
    assert "1 invalid record is not compared" in result.stderr


def test_command_missing_transcripts_exit_2(tmp_path: Path) -> None:
    result = run(OLD, NEW, tmp_path / "missing.jsonl")
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_command_broken_policy_exit_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text(OLD.read_text().replace("severity: critical", "severity: critcal"))
    result = run(OLD, broken, VALID)
    assert result.exit_code == 1
    assert "broken.policy" in result.stderr


def test_command_is_listed() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "diff" in result.stdout



# ---------------------------------------------------------------- rates as text


def big_report(changed: int, branches: int) -> DiffReport:
    old_policy = policy(OLD)
    report = DiffReport(old_policy.info, old_policy.info)
    report.branches = report.conversations = report.records = branches
    report.counts["newly_ended"] = changed
    report.counts[UNCHANGED] = branches - changed
    return report


def table_rate(text: str, kind: str) -> str:
    (row,) = [line for line in text.splitlines() if line.startswith(f"{kind} ")]
    return row.split()[2]


def test_small_rates_are_not_shown_as_zero() -> None:
    text = big_report(3, 1_000_000).render_human()
    assert table_rate(text, "newly_ended") == "0.0003%"
    assert table_rate(text, "ended_later") == "0.00%"
    assert "3 changed (0.0003%), 999,997 unchanged" in text


def test_rates_below_one_are_not_shown_as_whole() -> None:
    text = big_report(999_999, 1_000_000).render_human()
    assert table_rate(text, "newly_ended") == "99.9999%"


def test_budget_message_shows_rate_above_budget() -> None:
    report = big_report(3, 1_000_000)
    (message,) = exceeded_budgets(report, [parse_budget("newly_ended=0.0001%")])
    assert message == (
        "error: newly_ended changed 3 of 1,000,000 branches (0.0003%),"
        " over the budget of 0.0001% (newly_ended=0.0001%)"
    )
    (message,) = exceeded_budgets(big_report(200_001, 1_000_000), [parse_budget("any=0.2")])
    assert "(20.0001%), over the budget of 20% (any=0.2)" in message


# ---------------------------------------------------------------- text from transcripts


def write_odd_ids(tmp_path: Path) -> Path:
    """Two conversations the new policy ends, with a lone surrogate and a newline in ids."""
    lines = VALID.read_text(encoding="utf-8").splitlines()
    (twice,) = [line for line in lines if '"id": "twice"' in line]
    odd = tmp_path / "odd.jsonl"
    odd.write_text(
        twice.replace('"twice"', '"lone\\ud800"').replace("zapgun?", "zapgun? \\u00e9\\ud800")
        + "\n"
        + twice.replace('"twice"', '"two\\nlines\\u2028"')
        + "\n",
        encoding="utf-8",
    )
    return odd


def test_json_is_ascii_and_keeps_lone_surrogates(tmp_path: Path) -> None:
    result = run(OLD, NEW, write_odd_ids(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout.isascii()
    examples = json.loads(result.stdout)["changes"]["newly_ended"]["examples"]
    assert [example["conversation_id"] for example in examples] == [
        "lone\ud800", "two\nlines\u2028"
    ]


def test_human_report_escapes_ids_onto_one_line(tmp_path: Path) -> None:
    odd = write_odd_ids(tmp_path)
    result = run(OLD, NEW, odd)
    assert result.exit_code == 0, result.output
    assert f"  {odd}:1  lone\\ud800\n" in result.stdout
    assert f"  {odd}:2  two\\nlines\\u2028\n" in result.stdout


def test_human_sides_leave_out_what_a_decision_lacks() -> None:
    text = report_for(OLD, NEW).render_human()
    assert "    old: continue\n" in text
    ended = "    new: end by end_persistent at message 4: \"I'm ending this conversation.\"\n"
    assert ended in text
    assert " by -" not in text


def test_branches_of_json_array_are_named_like_check() -> None:
    result = run(OLD, NEW, FIXTURES / "branches.json", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["totals"]["conversations"], document["totals"]["branches"]) == (2, 3)
    (example,) = document["changes"]["newly_ended"]["examples"]
    assert (example["conversation_id"], example["branch"], example["index"]) == ("tree", "5a", 0)
    human = run(OLD, NEW, FIXTURES / "branches.json").stdout
    assert f"  {FIXTURES / 'branches.json'}:2[0]  tree@5a\n" in human


# ---------------------------------------------------------------- command behaviour


def test_command_unreadable_file_others_still_compared_exit_2(tmp_path: Path) -> None:
    result = run(OLD, NEW, tmp_path / "missing.jsonl", VALID, "--format", "json",
                 "--fail-if-changed", "any=0")
    assert result.exit_code == 2
    assert f"error: cannot read `{tmp_path / 'missing.jsonl'}`" in result.stderr
    assert json.loads(result.stdout)["totals"]["branches"] == 5
    assert "error: any changed 3 of 5 branches" in result.stderr


def test_command_budget_in_percent_exit_1() -> None:
    result = run(OLD, NEW, VALID, "--fail-if-changed", "newly_ended=0.1%")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: newly_ended changed 1 of 5 branches (20.00%),"
        " over the budget of 0.1% (newly_ended=0.1%)\n"
    )


def test_command_both_broken_policies_are_reported(tmp_path: Path) -> None:
    broken_old = tmp_path / "broken_old.policy"
    broken_new = tmp_path / "broken_new.policy"
    broken_old.write_text(OLD.read_text().replace("severity: critical", "severity: critcal"))
    broken_new.write_text(NEW.read_text().replace("action: continue", "action: contine"))
    result = run(broken_old, broken_new, VALID)
    assert result.exit_code == 1
    assert "broken_old.policy" in result.stderr
    assert "broken_new.policy" in result.stderr
    assert result.stdout == ""


def test_command_color_option(tmp_path: Path) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text(OLD.read_text().replace("severity: critical", "severity: critcal"))
    assert "\x1b[" in run(OLD, broken, VALID, "--color", "always").stderr
    assert "\x1b[" not in run(OLD, broken, VALID, "--color", "never").stderr
    result = CliRunner().invoke(main, ["--color", "always", "diff", "--color", "never",
                                       str(OLD), str(broken), str(VALID)])
    assert "\x1b[" not in result.stderr
