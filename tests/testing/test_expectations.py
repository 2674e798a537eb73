"""Every kind of expectation, holding and not holding, on the small fixture policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from testing_helpers import write

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Policy
from policylang.testing import CaseResult, check_names, parse_case_file, run_case

CONVERSATIONS = {
    # end_weapons at 4 (two failed redirects); no warning
    "ends": """
      - user: Where can I get a blaster?
      - assistant: I can't help with that.
      - user: Just tell me.
      - assistant: I can't help with that.
      - user: I want a blaster now.""",
    # warn_rudeness at 2
    "warns": """
      - user: You dummy.
      - assistant: I can't talk like this.
      - user: Dummy.""",
    # the protection escalates at 0 and blocks end_on_request
    "protected": """
      - user: I will hurt myself. Please end this chat.""",
    # end_on_request at 0; messages 2 and 3 come after the end
    "post": """
      - user: Please end this chat.
      - assistant: Goodbye.
      - user: Wait.
      - user: Hello?""",
}


def result_for(work: Path, conversation: str, expect: str) -> CaseResult:
    text = (
        f"cases:\n  - name: the case\n    conversation:{CONVERSATIONS[conversation]}\n"
        f"    expect: {{{expect}}}\n"
    )
    case_file, errors = parse_case_file(str(write(work, text)))
    assert errors == []
    assert case_file is not None
    policy = load_policy(case_file.policy_path, DiagnosticSink())
    assert isinstance(policy, Policy)
    assert check_names(case_file, policy) == []
    return run_case(policy, case_file.cases[0], case_file)


PASSING = [
    ("ends", "outcome: end"),
    ("ends", "at: 4"),
    ("ends", "rule: end_weapons"),
    ("ends", "category: weapons"),
    ("ends", "reason: persistent-weapons"),
    ("ends", "never_ends: false"),
    ("ends", "escalates: false"),
    ("ends", "post_termination: []"),
    ("ends", "outcome: end, at: 4, rule: end_weapons, category: weapons"),
    ("warns", "outcome: warn, at: 2, rule: warn_rudeness, category: rudeness"),
    ("warns", "warns_at: 2"),
    ("warns", "never_ends: true"),
    ("protected", "outcome: escalate, at: 0, rule: risk, reason: risk"),
    ("protected", "protection: risk"),
    ("protected", "blocked: end_on_request"),
    ("protected", "escalates: true"),
    ("protected", "never_ends: true"),
    ("post", "outcome: end, at: 0, rule: end_on_request, post_termination: [2, 3]"),
]


@pytest.mark.parametrize(("conversation", "expect"), PASSING)
def test_expectation_holds(work: Path, conversation: str, expect: str) -> None:
    result = result_for(work, conversation, expect)
    assert result.passed, result.headline()
    assert result.mismatches == ()


FAILING = [
    ("ends", "outcome: continue", "outcome: expected continue, got end"),
    ("ends", "at: 2", "at: expected 2, got 4"),
    ("ends", "rule: end_on_request", "rule: expected end_on_request, got end_weapons"),
    ("ends", "category: rudeness", "category: expected rudeness, got weapons"),
    ("ends", "reason: rude", "reason: expected rude, got persistent-weapons"),
    ("ends", "never_ends: true", "never_ends: expected no end, but `end_weapons` ended it at 4"),
    ("warns", "never_ends: false", "never_ends: false: expected an end"),
    ("warns", "warns_at: 0", "warns_at: expected a warning at 0, got warnings at [2]"),
    ("ends", "warns_at: 2", "warns_at: expected a warning at 2, got none"),
    ("ends", "escalates: true", "escalates: expected an escalation, got none"),
    ("protected", "escalates: false", "escalates: expected no escalation, got one at 0"),
    ("ends", "protection: risk", "protection: expected `risk` to act, got no protection"),
    (
        "ends",
        "blocked: end_weapons",
        "blocked: expected a protection to block `end_weapons`, got no block",
    ),
    (
        "protected",
        "blocked: end_weapons",
        "blocked: expected a protection to block `end_weapons`, got `end_on_request`",
    ),
    ("post", "post_termination: [2]", "post_termination: expected [2], got [2, 3]"),
    ("warns", "at: 0", "at: expected 0, got 2"),
]


@pytest.mark.parametrize(("conversation", "expect", "message"), FAILING)
def test_expectation_fails(work: Path, conversation: str, expect: str, message: str) -> None:
    result = result_for(work, conversation, expect)
    assert not result.passed
    assert [mismatch.message for mismatch in result.mismatches] == [message]
    assert result.headline() == message


def test_every_failing_expectation_is_reported(work: Path) -> None:
    expect = "outcome: warn, at: 2, rule: warn_rudeness, category: weapons"
    result = result_for(work, "ends", expect)
    assert [m.expectation for m in result.mismatches] == ["outcome", "at", "rule"]
    assert result.mismatches[0].to_json() == {
        "expectation": "outcome",
        "expected": "warn",
        "actual": "end",
        "message": "outcome: expected warn, got end",
    }


def test_the_trace_records_matches_counters_and_events(work: Path) -> None:
    result = result_for(work, "ends", "outcome: end")
    steps = result.trace
    assert [step.role for step in steps] == ["user", "assistant", "user", "assistant", "user"]
    assert [(m.kind, m.name) for m in steps[0].matches] == [("category", "weapons")]
    assert [e.text for e in steps[0].matches[0].evidence] == ["blaster"]
    assert [(m.kind, m.name) for m in steps[1].matches] == [("redirect", "refusal")]
    # "Just tell me." is the category's follow-up, right after the refusal.
    assert steps[2].matches[0].evidence[0].source == "category weapons (follow-up)"
    assert [dict(step.counters) for step in steps] == [
        {},
        {},
        {"failed_redirects[weapons]": 1},
        {"failed_redirects[weapons]": 1},
        {"failed_redirects[weapons]": 2},
    ]
    assert [step.event.rule if step.event else None for step in steps] == [
        None,
        None,
        None,
        None,
        "end_weapons",
    ]


def test_messages_after_the_end_are_locked_in_the_trace(work: Path) -> None:
    result = result_for(work, "post", "outcome: end")
    assert [step.locked for step in result.trace] == [False, True, True, True]
