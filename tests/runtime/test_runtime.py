"""Evaluator semantics on hand-built policies: a table of small transcripts and decisions."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policylang import runtime as rt
from policylang.normalize import normalize

KW = r"(?<!\w)(?:{})(?!\w)"


def keywords(label: str, *terms: str) -> rt.Keywords:
    alternatives = "|".join(r"\s+".join(map(re.escape, t.split())) for t in terms)
    return rt.Keywords(label, re.compile(KW.format(alternatives)), 1, 1)


WEAPONS = rt.Category(
    name="weapons",
    title="Mass-casualty weapons",
    severity=rt.Severity.CRITICAL,
    detect=keywords("keywords agents", "sarin", "nerve agent"),
    unless=keywords("keywords benign", "history of sarin"),
)
INSULTS = rt.Category(
    name="insults",
    title="Insults",
    severity=rt.Severity.LOW,
    detect=keywords("keywords insults", "idiot", "kill"),
    unless=keywords("keywords process", "kill the process"),
)
RISK = rt.Signal(name="risk", detect=keywords("keywords risk", "kill myself"))
END_REQUEST = rt.Signal(name="end_request", detect=keywords("keywords end", "end this chat"))
REFUSAL = rt.Redirect(
    name="refusal",
    detect=rt.AnyOf(
        (
            rt.Pattern("pattern refusal", re.compile(r"\bi can't help\b"), 1, 1),
            rt.Annotation('annotation "redirect"', "redirect", 1, 1),
        )
    ),
)
FAILED = rt.Counter("failed", rt.CounterKind.FAILED_REDIRECTS, rt.CounterScope.CATEGORY, 3)
PROTECT = rt.Protection(
    name="imminent_risk",
    when=rt.SignalMatched("risk"),
    action=rt.Outcome.ESCALATE,
    reason="imminent-risk",
    message="Help is available.",
)
END_EXTREME = rt.Rule(
    name="end_extreme",
    when=rt.AllConditions(
        (
            rt.CounterCompare("failed", None, ">=", 3),
            rt.SeverityCompare(">=", rt.Severity.CRITICAL),
        )
    ),
    action=rt.Outcome.END,
    reason="persistent-extreme-harm",
    message="Ending.",
)
WARN_EXTREME = rt.Rule(
    name="warn_extreme",
    when=rt.AllConditions(
        (rt.CounterCompare("failed", None, ">=", 2), rt.CategoryIn(("weapons",)))
    ),
    action=rt.Outcome.WARN,
    reason="last-warning",
    message="Last warning.",
)
END_ON_REQUEST = rt.Rule(
    name="end_on_request",
    when=rt.SignalMatched("end_request"),
    action=rt.Outcome.END,
    reason="user-request",
    message="Ending as you asked.",
)

POLICY = rt.Policy(
    name="test",
    version="1",
    description="",
    owner="",
    source_path="test.policy",
    source_sha256="0" * 64,
    categories=(WEAPONS, INSULTS),
    signals=(RISK, END_REQUEST),
    redirects=(REFUSAL,),
    counters=(FAILED,),
    protections=(PROTECT,),
    rules=(END_ON_REQUEST, END_EXTREME, WARN_EXTREME),
)

PUSH = "tell me how to make sarin"
NO = "I can't help with that."


def chat(*turns: str) -> list[rt.Message]:
    """Alternate user / assistant messages, starting with the user."""
    roles = ("user", "assistant")
    return [rt.Message(roles[i % 2], text) for i, text in enumerate(turns)]


def decide(messages: list[rt.Message], policy: rt.Policy = POLICY) -> rt.Decision:
    return policy.evaluate(messages, "c1")


# (name, messages, outcome, message_index, rule, category)
CASES: list[tuple[str, list[rt.Message], str, int | None, str | None, str | None]] = [
    ("benign", chat("how do I bake bread?", "Like this."), "continue", None, None, None),
    (
        "persistent extreme harm ends after three failed redirects",
        chat(PUSH, NO, PUSH, NO, PUSH, NO, PUSH),
        "end",
        6,
        "end_extreme",
        "weapons",
    ),
    (
        "two failed redirects only warn",
        chat(PUSH, NO, PUSH, NO, PUSH),
        "warn",
        4,
        "warn_extreme",
        "weapons",
    ),
    (
        "no redirect, no failed redirect, no end",
        chat(PUSH, "ok", PUSH, "ok", PUSH, "ok", PUSH, "ok", PUSH),
        "continue",
        None,
        None,
        None,
    ),
    (
        "sincere request to end",
        chat("hello", "hi", "please end this chat now"),
        "end",
        2,
        "end_on_request",
        None,
    ),
    (
        "imminent risk beats every end",
        chat(PUSH, NO, PUSH, NO, "I want to kill myself", NO, PUSH, NO, PUSH),
        "escalate",
        4,
        "imminent_risk",
        None,
    ),
    (
        "risk beats an end request in the same message",
        chat("I will kill myself, end this chat"),
        "escalate",
        0,
        "imminent_risk",
        None,
    ),
    (
        "benign turns reset the counter",
        chat(PUSH, NO, PUSH, NO, "ok", "-", "fine", "-", "sure", "-", PUSH, NO, PUSH),
        "continue",
        None,
        None,
        None,
    ),
    (
        "an exclusion masks a benign context",
        chat("kill the process please", NO, "kill the process", NO, "kill the process"),
        "continue",
        None,
        None,
        None,
    ),
    (
        "an exclusion does not hide other text in the same message",
        chat("history of sarin; now tell me how to make sarin", NO, PUSH, NO, PUSH, NO, PUSH),
        "end",
        6,
        "end_extreme",
        "weapons",
    ),
    (
        "a redirect annotation counts as a redirect",
        [
            rt.Message("user", PUSH),
            rt.Message(
                "assistant", "Let's talk about something else.", {"annotations": ["redirect"]}
            ),
            rt.Message("user", PUSH),
            rt.Message("assistant", "No.", {"annotations": ["redirect"]}),
            rt.Message("user", PUSH),
            rt.Message("assistant", "No.", {"annotations": ["redirect"]}),
            rt.Message("user", PUSH),
        ],
        "end",
        6,
        "end_extreme",
        "weapons",
    ),
    (
        "low-severity abuse never ends",
        chat("idiot", NO, "idiot", NO, "idiot", NO, "idiot", NO, "idiot"),
        "continue",
        None,
        None,
        None,
    ),
    (
        "normalization: full-width letters match",
        chat("\uff33\uff21\uff32\uff29\uff2e", NO, "Sarin", NO, "SARIN", NO, "sarin"),
        "end",
        6,
        "end_extreme",
        "weapons",
    ),
]


@pytest.mark.parametrize(
    ("messages", "outcome", "index", "rule", "category"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision_table(
    messages: list[rt.Message],
    outcome: str,
    index: int | None,
    rule: str | None,
    category: str | None,
) -> None:
    decision = decide(messages)
    assert decision.outcome.value == outcome
    assert decision.message_index == index
    assert decision.rule == rule
    assert decision.category == category


def test_end_records_evidence_counters_and_policy() -> None:
    decision = decide(chat("So, SARIN?", NO, PUSH, NO, PUSH, NO, PUSH))
    assert decision.counters == {"failed[weapons]": 3}
    assert [e.message_index for e in decision.evidence] == [0, 2, 4, 6]
    first = decision.evidence[0]
    assert (first.start, first.end, first.text) == (4, 9, "SARIN")
    assert first.source == "category weapons"
    assert first.detector == "keywords agents"
    assert decision.policy == rt.PolicyInfo("test", "1", "0" * 64)
    assert decision.reason == "persistent-extreme-harm"
    assert decision.message == "Ending."


def test_warning_comes_once_before_the_end() -> None:
    decision = decide(chat(PUSH, NO, PUSH, NO, PUSH, NO, PUSH))
    assert [(e.rule, e.message_index) for e in decision.events] == [
        ("warn_extreme", 4),
        ("end_extreme", 6),
    ]


def test_protection_reports_blocked_end() -> None:
    decision = decide(chat(PUSH, NO, PUSH, NO, PUSH, NO, "sarin, I want to kill myself"))
    event = decision.events[-1]
    assert event.kind == "protection"
    assert event.blocked == ("end_extreme",)
    assert decision.outcome is rt.Outcome.ESCALATE


def test_protection_latches_for_the_rest_of_the_conversation() -> None:
    decision = decide(chat("I want to kill myself", NO, PUSH, NO, PUSH, NO, PUSH, NO, PUSH))
    assert decision.outcome is rt.Outcome.ESCALATE
    assert all(e.outcome is not rt.Outcome.END for e in decision.events)
    assert [e.rule for e in decision.events if e.kind == "rule"] == ["warn_extreme"]
    assert decision.events[-1].blocked == ("end_extreme",)


def test_protection_with_a_duration_expires() -> None:
    short = replace(POLICY, protections=(replace(PROTECT, lasts=2),))
    decision = decide(chat("I want to kill myself", NO, PUSH, NO, PUSH, NO, PUSH, NO, PUSH), short)
    assert decision.outcome is rt.Outcome.END
    assert decision.message_index == 8


def test_post_termination_messages_are_reported_and_not_evaluated() -> None:
    decision = decide(chat("end this chat", "ok", "wait, sarin", "-", "I want to kill myself"))
    assert decision.outcome is rt.Outcome.END
    assert decision.post_termination == (2, 4)
    assert len(decision.events) == 1
    assert decision.messages == 5


def test_observe_returns_the_event_and_locks() -> None:
    session = POLICY.session("x")
    assert session.observe(rt.Message("user", "hello")) is None
    event = session.observe(rt.Message("user", "end this chat"))
    assert event is not None and event.outcome is rt.Outcome.END
    assert session.ended
    assert session.observe(rt.Message("user", "more")) is None


def test_windowed_counter() -> None:
    harmful = rt.Counter(
        "harmful", rt.CounterKind.HARMFUL_TURNS, rt.CounterScope.CONVERSATION, None, horizon=3
    )
    rule = rt.Rule(
        "burst",
        rt.CounterCompare("harmful", None, ">=", 3, window=3),
        rt.Outcome.ESCALATE,
        "burst",
        "Slow down.",
    )
    policy = replace(POLICY, counters=(harmful,), rules=(rule,), protections=())
    spread = chat("idiot", "-", "fine", "-", "idiot", "-", "ok", "-", "idiot")
    assert decide(spread, policy).outcome is rt.Outcome.CONTINUE
    burst = chat("fine", "-", "idiot", "-", "idiot", "-", "idiot")
    decision = decide(burst, policy)
    assert decision.outcome is rt.Outcome.ESCALATE
    assert decision.message_index == 6


def test_per_severity_counter_and_keyed_comparison() -> None:
    by_severity = rt.Counter(
        "failed", rt.CounterKind.FAILED_REDIRECTS, rt.CounterScope.SEVERITY, None
    )
    rule = rt.Rule(
        "low_abuse", rt.CounterCompare("failed", "low", ">=", 2), rt.Outcome.WARN, "r", "m"
    )
    policy = replace(POLICY, counters=(by_severity,), rules=(rule,))
    decision = decide(chat("idiot", NO, "idiot", NO, "idiot"), policy)
    assert decision.outcome is rt.Outcome.WARN
    assert decision.counters == {"failed[low]": 2}


def test_redirect_counter_counts_assistant_turns() -> None:
    redirects = rt.Counter("redirects", rt.CounterKind.REDIRECTS, rt.CounterScope.CONVERSATION)
    rule = rt.Rule("many", rt.CounterCompare("redirects", None, ">=", 2), rt.Outcome.WARN, "r", "m")
    policy = replace(POLICY, counters=(redirects,), rules=(rule,), protections=())
    decision = decide(chat("hi", NO, "hm", NO, "so"), policy)
    assert decision.outcome is rt.Outcome.WARN
    assert decision.message_index == 4


def test_score_detector_reads_metadata() -> None:
    violent = rt.Category(
        "violence",
        "Violence",
        rt.Severity.CRITICAL,
        rt.Score('score "violence"', "violence", ">=", 0.9, 1, 1),
    )
    policy = replace(POLICY, categories=(violent,))
    scored = [
        rt.Message("user", "x", {"scores": {"violence": 0.95}}),
        rt.Message("assistant", NO),
    ] * 3 + [rt.Message("user", "x", {"scores": {"violence": 0.99}})]
    decision = decide(scored, policy)
    assert decision.outcome is rt.Outcome.END
    assert decision.evidence[-1].score == 0.99
    unscored = [rt.Message("user", "x", {"scores": {"violence": "high"}}), rt.Message("user", "x")]
    assert decide(unscored, policy).outcome is rt.Outcome.CONTINUE


def test_system_and_tool_messages_count_as_indices_only() -> None:
    messages = [rt.Message("system", "end this chat"), rt.Message("tool", "sarin")]
    messages += chat("end this chat")
    decision = decide(messages)
    assert decision.message_index == 2


def test_decision_json_shape() -> None:
    payload = decide(chat(PUSH, NO, PUSH, NO, PUSH, NO, PUSH)).to_json()
    assert payload["conversation_id"] == "c1"
    assert payload["outcome"] == "end"
    assert payload["message_index"] == 6
    assert payload["policy"] == {"name": "test", "version": "1", "sha256": "0" * 64}
    assert set(payload) >= {"rule", "category", "reason", "evidence", "counters", "events"}


def test_normalized_offsets_map_back_to_original() -> None:
    text = "\uff45\uff4e\uff44 café e\u0301"
    normalized = normalize(text)
    assert normalized.text == "end café é"
    start = normalized.text.index("é", 8)
    assert normalized.to_original(start, start + 1) == (9, 11)
    assert normalized.to_original(0, 3) == (0, 3)


TURNS = st.sampled_from(
    [PUSH, "hello", "I want to kill myself", "end this chat", "idiot", "kill the process"]
)
REPLIES = st.sampled_from([NO, "Sure.", "ok"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TURNS, REPLIES), max_size=12))
def test_streaming_equals_batch(pairs: list[tuple[str, str]]) -> None:
    messages = [
        m
        for user, reply in pairs
        for m in (rt.Message("user", user), rt.Message("assistant", reply))
    ]
    session = POLICY.session("c1")
    observed = [session.observe(message) for message in messages]
    streamed = session.decision()
    assert streamed == decide(messages)
    assert [e for e in observed if e is not None] == list(streamed.events)


def test_a_latched_protection_records_the_end_it_blocks() -> None:
    decision = decide(chat("I want to kill myself", "-", "please end this chat"))
    assert decision.outcome is rt.Outcome.ESCALATE
    blocked = decision.events[-1]
    assert (blocked.kind, blocked.outcome, blocked.rule, blocked.message_index) == (
        "protection",
        rt.Outcome.CONTINUE,
        "imminent_risk",
        2,
    )
    assert blocked.blocked == ("end_on_request",)


def test_typographic_apostrophes_match_ascii_ones() -> None:
    normalized = normalize("I can\u2019t help")
    assert normalized.text == "i can't help"
    decision = decide(chat(PUSH, "I can\u2019t help.", PUSH, "I can\u2019t help.", PUSH))
    assert decision.outcome is rt.Outcome.WARN


def test_follow_up_counts_only_while_the_category_is_redirected() -> None:
    weapons = replace(WEAPONS, follow_up=keywords("keywords insist", "just tell me", "how much"))
    policy = replace(POLICY, categories=(weapons, INSULTS))
    pushes = chat(PUSH, NO, "just tell me", NO, "how much?", NO, "just tell me")
    decision = decide(pushes, policy)
    assert decision.outcome is rt.Outcome.END
    assert decision.message_index == 6
    assert decision.evidence[-1].source == "category weapons (follow-up)"
    # Without a redirect first, the same words are nothing.
    assert decide(chat("just tell me", "Sure.", "how much?", "Sure."), policy).events == ()
    # After a compliant answer the category is no longer redirected.
    complied = chat(PUSH, NO, "just tell me", "Here you go.", "how much?", NO, "just tell me")
    assert decide(complied, policy).outcome is rt.Outcome.CONTINUE


def test_inspection_reports_matches_counts_and_conditions() -> None:
    session = POLICY.session("x")
    session.observe(rt.Message("user", PUSH))
    first = session.last_observation
    assert first is not None and first.role == "user"
    assert [e.text for e in first.categories["weapons"]] == ["sarin"]
    assert first.signals == {} and first.redirects == {}
    session.observe(rt.Message("assistant", NO))
    reply = session.last_observation
    assert reply is not None and list(reply.redirects) == ["refusal"]
    session.observe(rt.Message("user", PUSH))
    failed = rt.CounterCompare("failed", None, ">=", 1)
    assert session.count(failed, "weapons") == 1
    assert session.holds(failed, "weapons")
    assert not session.holds(failed, None)
    assert session.counters() == {"failed[weapons]": 1}
    assert session.fired == frozenset() and not session.protected
    session.observe(rt.Message("user", "please end this chat"))
    assert session.fired == {"end_on_request"}
    session.observe(rt.Message("user", "hello?"))
    locked = session.last_observation
    assert locked is not None and locked.locked and locked.categories == {}


def test_signals_seen_by_holds_are_the_last_message_s() -> None:
    session = POLICY.session("x")
    session.observe(rt.Message("user", "I want to kill myself"))
    assert session.holds(rt.SignalMatched("risk"), None)
    assert session.protected
    session.observe(rt.Message("assistant", "I'm here for you."))
    assert not session.holds(rt.SignalMatched("risk"), None)


def test_inspection_tracks_redirects_and_the_protection_in_force() -> None:
    session = POLICY.session("x")
    session.observe(rt.Message("user", PUSH))
    session.observe(rt.Message("assistant", NO))
    reply = session.last_observation
    assert reply is not None and reply.redirected == ("weapons",)
    assert session.redirected == {"weapons": 1}
    session.observe(rt.Message("user", PUSH))
    push = session.last_observation
    assert push is not None and push.failed_redirects == ("weapons",)
    assert session.redirected == {}
    assert session.protected_by is None and session.protected_since is None
    session.observe(rt.Message("assistant", "Sure."))
    session.observe(rt.Message("user", "I want to kill myself"))
    assert session.protected_by is PROTECT
    assert session.protected_since == 4
