"""``policylang.explain`` on hand-built runtime policies: checks, atoms, counterfactuals."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from policylang import explain as explain_module
from policylang import runtime as rt
from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.explain import (
    Check,
    Explanation,
    condition_atoms,
    explain,
    render_condition,
    render_human,
)
from policylang.lower import describe_condition
from policylang.transcripts import Conversation, Record, iter_records

REPO = Path(__file__).resolve().parents[2]
KW = r"(?<!\w)(?:{})(?!\w)"


def keywords(label: str, *terms: str) -> rt.Keywords:
    alternatives = "|".join(r"\s+".join(map(re.escape, t.split())) for t in terms)
    return rt.Keywords(label, re.compile(KW.format(alternatives)), 1, 1)


WEAPONS = rt.Category(
    name="weapons",
    title="Weapons",
    severity=rt.Severity.CRITICAL,
    detect=keywords("keywords agents", "sarin"),
    follow_up=keywords("keywords insistence", "just tell me"),
)
INSULTS = rt.Category(
    name="insults",
    title="Insults",
    severity=rt.Severity.LOW,
    detect=keywords("keywords insults", "idiot"),
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
FAILED = rt.Counter("failed", rt.CounterKind.FAILED_REDIRECTS, rt.CounterScope.CATEGORY)
PROTECT = rt.Protection(
    name="imminent_risk",
    when=rt.SignalMatched("risk"),
    action=rt.Outcome.ESCALATE,
    reason="imminent-risk",
    message="Help is available.",
)
END_ON_REQUEST = rt.Rule(
    name="end_on_request",
    when=rt.SignalMatched("end_request"),
    action=rt.Outcome.END,
    reason="user-request",
    message="Ending as you asked.",
)
END_EXTREME = rt.Rule(
    name="end_extreme",
    when=rt.AllConditions(
        (
            rt.CounterCompare("failed", None, ">=", 2),
            rt.SeverityCompare(">=", rt.Severity.CRITICAL),
        )
    ),
    action=rt.Outcome.END,
    reason="persistent-harm",
    message="Ending.",
)
WARN_EXTREME = rt.Rule(
    name="warn_extreme",
    when=rt.AllConditions(
        (rt.CounterCompare("failed", None, ">=", 1), rt.CategoryIn(("weapons",)))
    ),
    action=rt.Outcome.WARN,
    reason="last-warning",
    message="Last warning.",
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


def chat(*turns: str) -> Conversation:
    """Alternate user / assistant messages, starting with the user."""
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]
    return Conversation.model_validate({"id": "c1", "messages": messages})


def check(explanation: Explanation, index: int, name: str) -> Check:
    found = [c for c in explanation.messages[index].checks if c.name == name]
    assert len(found) == 1, name
    return found[0]


# ---------------------------------------------------------------- conditions


def default_conditions() -> list[rt.Condition]:
    policy = load_policy(str(REPO / "policies" / "default.policy"), DiagnosticSink())
    assert policy is not None
    return [p.when for p in policy.protections] + [r.when for r in policy.rules]


NESTED: list[rt.Condition] = [
    rt.NotCondition(rt.AnyCondition((rt.SignalMatched("a"), rt.SignalMatched("b")))),
    rt.AllConditions(
        (
            rt.AnyCondition((rt.CategoryIn(("x", "y")), rt.SignalMatched("a"))),
            rt.NotCondition(rt.CounterCompare("c", "k", ">", 1, window=3)),
        )
    ),
    rt.AnyCondition((rt.AllConditions((rt.SignalMatched("a"), rt.SignalMatched("b"))),)),
]


@pytest.mark.parametrize("condition", [*NESTED, *default_conditions()], ids=describe_condition)
def test_render_condition_writes_what_describe_condition_writes(condition: rt.Condition) -> None:
    atoms = condition_atoms(condition)
    text = render_condition(condition, lambda position, leaf: describe_condition(atoms[position]))
    assert text == describe_condition(condition)


# ---------------------------------------------------------------- checks and atoms


def test_each_check_says_why() -> None:
    explanation = explain(POLICY, chat(PUSH, NO, PUSH, NO, PUSH))
    first = check(explanation, 0, "end_extreme")
    assert first.status == "not-held" and first.template == "{0} and {1}"
    (subject,) = first.subjects
    assert subject.category == "weapons" and not subject.holds
    counter, severity = subject.atoms
    assert (counter.condition, counter.value, counter.key, counter.holds) == (
        "failed >= 2",
        0,
        "weapons",
        False,
    )
    assert (severity.value, severity.holds, severity.detail) == ("critical", True, "critical")
    assert check(explanation, 2, "warn_extreme").status == "fired"
    assert check(explanation, 2, "end_extreme").subjects[0].atoms[0].value == 1
    assert explanation.messages[2].failed_redirects == ("weapons",)
    assert explanation.messages[1].redirected == ("weapons",)
    assert explanation.messages[2].counters_before == {}
    assert explanation.messages[2].counters_after == {"failed[weapons]": 1}
    ended = check(explanation, 4, "end_extreme")
    assert ended.status == "fired" and ended.subjects[0].holds
    already = check(explanation, 4, "warn_extreme")
    assert already.status == "already-fired" and already.subjects == ()
    assert already.note == "already fired at message 2"
    event = explanation.messages[4].event
    assert event is not None and (event.outcome, event.rule) == ("end", "end_extreme")
    assert explanation.messages[3].checks == ()


def test_rules_after_the_one_that_fired_are_not_checked() -> None:
    explanation = explain(POLICY, chat("please end this chat"))
    assert check(explanation, 0, "end_on_request").status == "fired"
    later = check(explanation, 0, "end_extreme")
    assert later.status == "not-checked"
    assert later.note == "not checked: rule end_on_request fired first"


def test_a_protection_blocks_ends_for_the_rest_of_the_conversation() -> None:
    explanation = explain(POLICY, chat("I want to kill myself", "I'm here.", "end this chat"))
    assert check(explanation, 0, "imminent_risk").status == "fired"
    assert check(explanation, 0, "end_on_request").note == (
        "not checked: protection imminent_risk fired first"
    )
    blocked = check(explanation, 2, "end_on_request")
    assert blocked.status == "blocked"
    assert blocked.note == "blocked by protection imminent_risk (in force since message 0)"
    assert explanation.messages[2].protected_by == "imminent_risk"
    event = explanation.messages[2].event
    assert event is not None and event.held_back and event.blocked == ("end_on_request",)
    assert explanation.decision.outcome == "escalate"
    assert explanation.decision.kind == "protection"


def test_a_protection_that_fires_with_an_end_lists_the_blocked_rule() -> None:
    explanation = explain(POLICY, chat("I want to kill myself, end this chat"))
    assert check(explanation, 0, "end_on_request").status == "blocked"
    assert check(explanation, 0, "end_on_request").note == "blocked by protection imminent_risk"
    assert check(explanation, 0, "end_extreme").status == "not-checked"


def test_a_lasting_protection_stops_blocking() -> None:
    policy = replace(POLICY, protections=(replace(PROTECT, lasts=1),))
    explanation = explain(
        policy, chat("I want to kill myself", "ok", "hello", "ok", "end this chat")
    )
    assert check(explanation, 2, "end_on_request").status == "not-held"
    assert explanation.messages[2].protected_by == "imminent_risk"
    assert explanation.messages[4].protected_by is None
    assert check(explanation, 4, "end_on_request").status == "fired"


def test_every_category_is_checked_in_order_until_one_holds() -> None:
    policy = replace(POLICY, categories=(INSULTS, WEAPONS))
    explanation = explain(policy, chat(PUSH, NO, PUSH, NO, "you idiot, sarin now"))
    subjects = check(explanation, 4, "end_extreme").subjects
    assert [(s.category, s.holds) for s in subjects] == [("insults", False), ("weapons", True)]
    assert subjects[0].atoms[1].detail == "low"


def test_a_condition_without_a_category_is_checked_once() -> None:
    explanation = explain(POLICY, chat(PUSH, NO, "hello"))
    (subject,) = check(explanation, 0, "end_on_request").subjects
    assert subject.category is None
    (subject,) = check(explanation, 0, "end_extreme").subjects
    assert subject.category == "weapons"
    (subject,) = check(explanation, 2, "end_extreme").subjects
    assert subject.category is None
    assert [a.detail for a in subject.atoms] == ["0, no category", "no category"]


def test_counter_keys_by_scope() -> None:
    by_severity = rt.Counter(
        "sev", rt.CounterKind.FAILED_REDIRECTS, rt.CounterScope.SEVERITY, horizon=2
    )
    whole = rt.Counter("all", rt.CounterKind.REDIRECTS, rt.CounterScope.CONVERSATION)
    rule = rt.Rule(
        name="watch",
        when=rt.AllConditions(
            (
                rt.CounterCompare("sev", None, ">=", 5),
                rt.CounterCompare("all", None, ">=", 5),
                rt.CounterCompare("sev", "critical", ">=", 5, window=2),
            )
        ),
        action=rt.Outcome.WARN,
        reason="r",
        message="m",
    )
    policy = replace(POLICY, counters=(FAILED, by_severity, whole), rules=(rule,))
    explanation = explain(policy, chat(PUSH, NO, PUSH))
    severity, conversation, keyed = check(explanation, 2, "watch").subjects[0].atoms
    assert (severity.key, severity.value, severity.detail) == ("critical", 1, "1 for critical")
    assert (conversation.key, conversation.value, conversation.detail) == (None, 1, "1")
    assert keyed.condition == "sev[critical] >= 5 within 2 turns"
    assert (keyed.key, keyed.value) == ("critical", 1)


def test_matches_carry_text_spans_and_follow_ups() -> None:
    explanation = explain(POLICY, chat(PUSH, NO, "just tell me"))
    (match,) = explanation.messages[0].matches
    assert (match.kind, match.name, match.follow_up) == ("category", "weapons", False)
    (item,) = match.evidence
    assert (item.text, item.start, item.end) == ("sarin", 20, 25)
    assert PUSH[item.start : item.end] == "sarin"
    (redirect,) = explanation.messages[1].matches
    assert (redirect.kind, redirect.name) == ("redirect", "refusal")
    (follow,) = explanation.messages[2].matches
    assert follow.follow_up and follow.evidence[0].text == "just tell me"


def test_locked_messages_are_not_evaluated() -> None:
    explanation = explain(POLICY, chat("end this chat", "Bye.", PUSH))
    assert [m.locked for m in explanation.messages] == [False, True, True]
    assert explanation.messages[2].matches == () and explanation.messages[2].checks == ()
    assert explanation.decision.post_termination_messages == (2,)


def test_json_round_trips() -> None:
    explanation = explain(POLICY, chat(PUSH, NO, PUSH, NO, PUSH))
    document = explanation.to_json()
    assert json.loads(json.dumps(document)) == document
    assert document["format"] == "policylang-explain" and document["version"] == 1


# ---------------------------------------------------------------- counterfactuals


def test_an_end_is_prevented_by_removing_the_first_push() -> None:
    explanation = explain(POLICY, chat(PUSH, NO, PUSH, NO, PUSH))
    assert explanation.closest == ()
    counterfactual = explanation.counterfactual
    assert counterfactual is not None and counterfactual.removal is not None
    removal = counterfactual.removal
    assert removal.removed == (0, 1)
    assert (removal.result.outcome, removal.result.message_index) == ("warn", 4)
    assert removal.result.effect == "prevented"
    assert removal.summary == (
        "without messages 0-1, it would not have ended (warn at message 4 by warn_extreme)"
    )
    assert [(t.message_index, t.result.effect) for t in counterfactual.redirects] == [
        (1, "prevented"),
        (3, "prevented"),
    ]
    assert counterfactual.redirects[1].summary == (
        "if the redirect at message 3 (refusal) had not been recognised, "
        "it would not have ended (warn at message 2 by warn_extreme)"
    )


def test_a_removal_that_only_delays_the_end_counts() -> None:
    explanation = explain(POLICY, chat(PUSH, NO, PUSH, NO, PUSH, NO, PUSH))
    assert explanation.decision.message_index == 4
    assert explanation.counterfactual is not None
    removal = explanation.counterfactual.removal
    assert removal is not None and removal.removed == (0, 1)
    assert (removal.result.effect, removal.result.message_index) == ("later", 6)
    assert removal.summary == "without messages 0-1, it would have ended later, at message 6"


def test_the_trials_stop_at_their_budget_on_a_long_conversation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each trial evaluates the whole conversation again: without a budget, explaining a
    # conversation of 100,000 messages would evaluate billions of messages.
    conversation = chat(*["hello", "Hi!"] * 5, PUSH, NO, PUSH, NO, PUSH)
    length = len(conversation.messages)
    full = explain(POLICY, conversation).counterfactual
    assert full is not None and full.complete and full.removals_tried == 6
    monkeypatch.setattr(explain_module, "TRIAL_BUDGET", 3 * length)
    explanation = explain(POLICY, conversation)
    cut = explanation.counterfactual
    assert cut is not None and not cut.complete
    assert (cut.removal, cut.removals_tried, cut.redirects) == (None, 3, ())
    text = render_human(explanation)
    assert "removing any one of the first 3 user messages would not have changed it" in text
    assert f"(trials stopped at {3 * length:,} messages evaluated in all:" in text
    assert explanation.to_json()["counterfactual"]["complete"] is False


def test_removals_that_change_nothing_are_skipped() -> None:
    explanation = explain(POLICY, chat("hello", "Hi!", PUSH, NO, PUSH, NO, PUSH))
    counterfactual = explanation.counterfactual
    assert counterfactual is not None and counterfactual.removal is not None
    assert counterfactual.removal.removed == (2, 3)
    assert counterfactual.removals_tried == 2


def test_the_reply_after_a_removed_message_goes_with_it() -> None:
    conversation = Conversation.model_validate(
        {
            "id": "c",
            "messages": [
                {"role": "user", "content": PUSH},
                {"role": "tool", "content": "{}"},
                {"role": "assistant", "content": NO},
                {"role": "user", "content": PUSH},
                {"role": "assistant", "content": NO},
                {"role": "user", "content": PUSH},
            ],
        }
    )
    explanation = explain(POLICY, conversation)
    assert explanation.counterfactual is not None
    removal = explanation.counterfactual.removal
    assert removal is not None and removal.removed == (0, 1, 2)
    assert removal.summary.startswith("without messages 0-2,")


def test_a_sincere_end_is_prevented_only_by_removing_the_request() -> None:
    explanation = explain(POLICY, chat("hello", "Hi!", "end this chat"))
    counterfactual = explanation.counterfactual
    assert counterfactual is not None and counterfactual.removal is not None
    assert counterfactual.removal.removed == (2,)
    assert counterfactual.removal.summary == (
        "without message 2 (where it ended), it would not have ended (continue)"
    )
    assert counterfactual.redirects == ()


def test_a_redirect_the_end_did_not_depend_on_says_so() -> None:
    conversation = chat(PUSH, NO, PUSH, NO, "end this chat")
    explanation = explain(POLICY, conversation)
    assert explanation.decision.rule == "end_on_request"
    assert explanation.counterfactual is not None
    assert [t.result.effect for t in explanation.counterfactual.redirects] == ["none", "none"]
    assert explanation.counterfactual.redirects[0].summary.endswith(
        "it would still have ended at message 4"
    )


# ---------------------------------------------------------------- closeness


def closeness(explanation: Explanation) -> dict[str, str]:
    return {item.rule: item.summary for item in explanation.closest}


def test_how_close_a_conversation_came_to_ending() -> None:
    policy = replace(POLICY, rules=(END_ON_REQUEST, END_EXTREME))
    explanation = explain(policy, chat(PUSH, NO, PUSH, "Sorry.", "what is bread?"))
    assert explanation.decision.outcome == "continue"
    assert explanation.counterfactual is None
    assert closeness(explanation) == {
        "end_on_request": "end_request never matched",
        "end_extreme": "failed reached 1 of 2 for weapons at message 2",
    }
    item = explanation.closest[1]
    assert (item.message_index, item.category, item.shortfall) == (2, "weapons", 1)
    assert not item.held
    assert [atom.condition for atom in item.missing] == ["failed >= 2"]


def test_a_redirected_category_is_one_push_from_a_failed_redirect() -> None:
    explanation = explain(POLICY, chat(PUSH, NO, "ok, what is bread?"))
    assert closeness(explanation)["warn_extreme"] == (
        "failed stayed at 0 of 1 for weapons; weapons is still redirected (at message 1): "
        "coming back to it would count a failed redirect"
    )


def test_a_blocked_end_held() -> None:
    explanation = explain(POLICY, chat("I want to kill myself", "I'm here.", "end this chat"))
    summary = closeness(explanation)["end_on_request"]
    assert summary == (
        "held at message 2 but was blocked by protection imminent_risk (in force since message 0)"
    )
    assert explanation.closest[0].held and explanation.closest[0].shortfall == 0


def test_an_end_rule_not_checked_because_a_warning_fired_first() -> None:
    # The warning comes first and holds at the same message as the end.
    warn_first = replace(WARN_EXTREME, when=rt.CounterCompare("failed", None, ">=", 2))
    policy = replace(POLICY, rules=(warn_first, END_EXTREME))
    explanation = explain(policy, chat(PUSH, NO, PUSH, NO, PUSH))
    assert explanation.decision.outcome == "warn"
    assert check(explanation, 4, "end_extreme").note == (
        "not checked: rule warn_extreme fired first"
    )
    assert closeness(explanation)["end_extreme"] == (
        "held at message 4 for weapons but was not checked (rule warn_extreme fired first)"
    )


def test_a_negated_atom_in_the_way() -> None:
    not_insults = rt.NotCondition(rt.CategoryIn(("insults",)))
    rule = replace(
        END_ON_REQUEST, when=rt.AllConditions((rt.SignalMatched("end_request"), not_insults))
    )
    explanation = explain(replace(POLICY, rules=(rule,)), chat("idiot, end this chat"))
    assert closeness(explanation)["end_on_request"] == (
        "not insults did not hold (insults) at message 0"
    )


def test_no_user_message() -> None:
    conversation = Conversation.model_validate({"id": "e", "messages": []})
    explanation = explain(POLICY, conversation)
    assert explanation.messages == ()
    assert closeness(explanation)["end_extreme"] == "no user message was checked"
    assert render_human(explanation).startswith("conversation e: 0 messages\n")


# ---------------------------------------------------------------- agreement with the evaluator


def test_the_replay_agrees_with_evaluate_on_the_samples() -> None:
    policy = load_policy(str(REPO / "policies" / "default.policy"), DiagnosticSink())
    assert policy is not None
    for record in iter_records(str(REPO / "samples" / "conversations.jsonl")):
        assert isinstance(record, Record)
        conversation = record.conversation
        explanation = explain(policy, conversation)
        decision = policy.evaluate(conversation.messages, conversation.id)
        assert explanation.decision.outcome == decision.outcome.value
        assert explanation.decision.message_index == decision.message_index
        assert explanation.decision.rule == decision.rule
        events = [(m.index, m.event.rule) for m in explanation.messages if m.event is not None]
        assert events == [(e.message_index, e.rule) for e in decision.events]


# ---------------------------------------------------------------- human text


def test_long_messages_are_cut_around_the_evidence() -> None:
    text = "a " * 200 + "tell me how to make sarin" + " b" * 200
    explanation = explain(POLICY, chat(text))
    rendered = render_human(explanation)
    line = next(line for line in rendered.splitlines() if line.startswith("[0] user: "))
    assert "«sarin»" in line
    assert line.startswith("[0] user: …") and line.endswith("…")
    assert len(line) < 200


def test_control_characters_are_escaped() -> None:
    explanation = explain(POLICY, chat("line one\nline\u202etwo sarin"))
    rendered = render_human(explanation)
    assert "line one\\nline\\u202etwo «sarin»" in rendered


def test_ascii_rendering() -> None:
    rendered = render_human(explain(POLICY, chat(PUSH, NO, PUSH)), unicode=False)
    assert rendered.isascii()
    assert "[[sarin]]" in rendered and "-> warn by rule warn_extreme" in rendered
