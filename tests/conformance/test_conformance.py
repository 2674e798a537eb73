"""Conformance: the system's recorded end against the policy's decision.

Each fixture record carries its own expectation, written by hand from the
conversation: ``expect`` (one branch), ``expect_branches`` (by branch id) or
``expect_error`` (the pointer of the PL802 error the record must give).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest

from policylang.compiler import load_policy
from policylang.conformance import (
    Conformance,
    ConformanceStatus,
    ConformanceSummary,
    answered_index,
    compare,
    system_end_index,
)
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Policy
from policylang.transcripts import Conversation, Message, Record, RecordError, iter_records

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
REPO = HERE.parents[1]
TEST_POLICY = FIXTURES / "conformance.policy"
DEFAULT_POLICY = REPO / "policies" / "default.policy"

Expectation = dict[str, Any]
Case = tuple[str, Conversation, str, list[Message], Expectation]


def _policy(path: Path) -> Policy:
    sink = DiagnosticSink()
    policy = load_policy(str(path), sink)
    assert policy is not None, [d.message for d in sink.diagnostics]
    return policy


@pytest.fixture(scope="module")
def test_policy() -> Policy:
    return _policy(TEST_POLICY)


@pytest.fixture(scope="module")
def default_policy() -> Policy:
    if not DEFAULT_POLICY.exists():
        pytest.skip("policies/default.policy is not available")
    return _policy(DEFAULT_POLICY)


def _raw(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _cases(name: str) -> list[Case]:
    """Every branch of every valid record of a fixture file, with its expectation."""
    path = FIXTURES / name
    raw = _raw(path)
    cases: list[Case] = []
    for result in iter_records(str(path)):
        assert isinstance(result, Record), result
        source = raw[result.line - 1]
        conversation = result.conversation
        for branch, messages in conversation.branches():
            expected = source["expect_branches"][branch] if branch else source["expect"]
            label = f"{name}:{result.line}:{conversation.id}@{branch}"
            cases.append((label, conversation, branch, messages, expected))
    return cases


def _check(policy: Policy, case: Case) -> Conformance:
    label, conversation, _, messages, expected = case
    decision = policy.evaluate(messages, conversation.id)
    result = compare(messages, decision)
    assert result.to_json() == {
        "status": expected["status"],
        "system_end": expected["system_end"],
        "policy_end": expected["policy_end"],
        "post_termination_messages": expected["post_termination"],
    }, label
    return result


NATIVE = _cases("native.jsonl")
FORMATS = _cases("formats.jsonl")
DEFAULT = _cases("default-policy.jsonl")


@pytest.mark.parametrize("case", NATIVE, ids=[case[0] for case in NATIVE])
def test_native_fixtures(test_policy: Policy, case: Case) -> None:
    _check(test_policy, case)


@pytest.mark.parametrize("case", FORMATS, ids=[case[0] for case in FORMATS])
def test_markers_in_every_format(test_policy: Policy, case: Case) -> None:
    _check(test_policy, case)


@pytest.mark.parametrize("case", DEFAULT, ids=[case[0] for case in DEFAULT])
def test_default_policy_fixtures(default_policy: Policy, case: Case) -> None:
    _check(default_policy, case)


def test_fixtures_cover_every_status() -> None:
    seen = {case[4]["status"] for case in NATIVE + FORMATS + DEFAULT}
    assert seen == {status.value for status in ConformanceStatus}


def test_formats_fixture_uses_every_format() -> None:
    from policylang.formats import detect_format

    formats = {detect_format(record) for record in _raw(FIXTURES / "formats.jsonl")}
    assert formats == {"openai", "sharegpt", "anthropic"}


def test_bad_markers_are_error_records_and_the_rest_is_compared(test_policy: Policy) -> None:
    path = FIXTURES / "bad-markers.jsonl"
    raw = _raw(path)
    results = list(iter_records(str(path)))
    # Records in = conversations + errors.
    assert len(results) == len(raw)
    compared = 0
    for result in results:
        source = raw[result.line - 1]
        if "expect_error" in source:
            assert isinstance(result, RecordError), source
            assert (result.code, result.pointer) == ("PL802", source["expect_error"])
            assert result.located().startswith(f"{path}:{result.line}:1: error[PL802] ")
        else:
            assert isinstance(result, Record), result
            messages = result.conversation.messages
            expected = source["expect"]
            conformance = compare(messages, test_policy.evaluate(messages))
            assert conformance.status.value == expected["status"]
            compared += 1
    assert compared == 2


# ---------------------------------------------------------------- semantics


def _m(role: str, content: str = "text", *, end: bool = False) -> Message:
    return Message(role=role, content=content, end_conversation=end)  # type: ignore[arg-type]


def test_system_end_index_is_the_first_assistant_marker() -> None:
    assert system_end_index([]) is None
    assert system_end_index([_m("user"), _m("assistant")]) is None
    messages = [_m("user"), _m("assistant", end=True), _m("user"), _m("assistant", end=True)]
    assert system_end_index(messages) == 1
    # Objects that only follow the protocol: a marker on another role is no end.
    Plain = collections.namedtuple("Plain", "role end_conversation")
    assert system_end_index([Plain("user", True), Plain("assistant", True)]) == 1


def test_answered_index_skips_assistant_tool_and_system_messages() -> None:
    messages = [_m("system"), _m("user"), _m("assistant"), _m("tool"), _m("assistant")]
    assert answered_index(messages, 4) == 1
    assert answered_index(messages, 2) == 1
    assert answered_index(messages, 0) is None
    assert answered_index(messages, 1) is None


def test_the_marker_does_not_change_the_policy_decision(test_policy: Policy) -> None:
    # The policy judges the conversation on its own; the recorded end is only compared.
    texts = ["Hi there.", "Goodbye.", "Please end this chat.", "Ending."]
    roles = ["user", "assistant", "user", "assistant"]
    plain = [_m(role, text) for role, text in zip(roles, texts, strict=True)]
    marked = [
        _m(role, text, end=role == "assistant") for role, text in zip(roles, texts, strict=True)
    ]
    assert test_policy.evaluate(plain, "c").to_json() == test_policy.evaluate(marked, "c").to_json()


def test_compare_refuses_a_decision_for_other_messages(test_policy: Policy) -> None:
    messages = [_m("user", "Please end this chat."), _m("assistant", end=True)]
    decision = test_policy.evaluate(messages[:1])
    with pytest.raises(ValueError, match="the decision is for 1 messages, but 2 were given"):
        compare(messages, decision)


def test_ended_earlier_always_comes_with_post_termination_messages(test_policy: Policy) -> None:
    # The policy can only end after the system's end at a user message the system took.
    for case in NATIVE + FORMATS:
        result = _check(test_policy, case)
        if result.status is ConformanceStatus.ENDED_EARLIER:
            assert result.policy_end in result.post_termination


def test_statuses_are_stable_strings() -> None:
    assert [status.value for status in ConformanceStatus] == [
        "agree",
        "missed_end",
        "unjustified_end",
        "ended_earlier",
        "ended_later",
    ]


def test_conformance_json_and_agrees() -> None:
    result = Conformance(ConformanceStatus.ENDED_EARLIER, 1, 2, (2, 4))
    assert result.to_json() == {
        "status": "ended_earlier",
        "system_end": 1,
        "policy_end": 2,
        "post_termination_messages": [2, 4],
    }
    assert not result.agrees
    assert Conformance(ConformanceStatus.AGREE, None, None, ()).agrees
    json.dumps(result.to_json())


# ---------------------------------------------------------------- summary


def _all_results(test_policy: Policy) -> list[Conformance]:
    return [_check(test_policy, case) for case in NATIVE + FORMATS]


def test_summary_counts(test_policy: Policy) -> None:
    results = _all_results(test_policy)
    summary = ConformanceSummary()
    for result in results:
        summary.add(result)
    # Expected counts come from the fixtures' own expectations, not from the results.
    expected = [case[4] for case in NATIVE + FORMATS]
    by_status = collections.Counter(str(e["status"]) for e in expected)
    posts = [e["post_termination"] for e in expected]
    document = summary.to_json()
    assert document == {
        "conversations": len(expected),
        "statuses": {status.value: by_status[status.value] for status in ConformanceStatus},
        "post_termination": {
            "conversations": sum(1 for p in posts if p),
            "messages": sum(len(p) for p in posts),
        },
    }
    assert summary.conversations == len(expected)
    assert summary.disagreements == len(expected) - by_status["agree"]
    json.dumps(document)


def test_summary_merge_equals_adding_everything(test_policy: Policy) -> None:
    results = _all_results(test_policy)
    whole, left, right = ConformanceSummary(), ConformanceSummary(), ConformanceSummary()
    for index, result in enumerate(results):
        whole.add(result)
        (left if index % 3 else right).add(result)
    left.merge(right)
    assert left == whole
    assert left.to_json() == whole.to_json()
    empty = ConformanceSummary()
    empty.merge(ConformanceSummary())
    assert empty.conversations == 0
    assert empty.to_json()["statuses"] == {status.value: 0 for status in ConformanceStatus}


def test_summary_lines() -> None:
    summary = ConformanceSummary()
    assert summary.lines() == [
        "conformance: 0 agree, 0 missed_end, 0 unjustified_end, 0 ended_earlier, 0 ended_later"
    ]
    summary.add(Conformance(ConformanceStatus.AGREE, 1, 0, (2,)))
    assert summary.lines()[1] == (
        "post-termination: 1 user message taken after the system's end, in 1 conversation"
    )
    summary.add(Conformance(ConformanceStatus.UNJUSTIFIED_END, 1, None, (2, 4)))
    summary.add(Conformance(ConformanceStatus.MISSED_END, None, 0, ()))
    assert summary.lines() == [
        "conformance: 1 agree, 1 missed_end, 1 unjustified_end, 0 ended_earlier, 0 ended_later",
        "post-termination: 3 user messages taken after the system's end, in 2 conversations",
    ]
