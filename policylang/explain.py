"""Explain one conversation: why a policy decided what it did, message by message.

:func:`explain` replays a conversation through a :class:`~policylang.runtime.Session`
and records, for every message, what matched (categories, follow-ups, signals,
redirects, with the matched text and its offsets), how the counters moved and, for a
user message, every protection and rule in the order they were checked, with the
value of each atom of its condition for each category checked (read with
:meth:`Session.holds` and :meth:`Session.count` right after the message was
observed, which is the state its rules were checked against). Then it asks what
would have changed the outcome:

- for an end, the earliest user message whose removal (with the replies after it,
  so turns stay aligned) prevents the end or moves it later, and which recognised
  redirects the end depended on;
- otherwise, how close each rule that did not fire came to firing.

The result is plain frozen dataclasses; :meth:`Explanation.to_json` gives the
documented JSON (``docs/schemas/explain.schema.json``) and :func:`render_human` a
compact text listing.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypeAlias

from policylang.lower import describe_condition
from policylang.runtime import (
    AllConditions,
    AnyCondition,
    CategoryIn,
    Condition,
    CounterCompare,
    CounterKind,
    CounterScope,
    Decision,
    Event,
    Evidence,
    Message,
    MessageLike,
    NotCondition,
    Observation,
    Outcome,
    Policy,
    PolicyLink,
    Protection,
    Rule,
    SeverityCompare,
    SignalMatched,
    binds_category,
)

__all__ = [
    "EXPLAIN_FORMAT",
    "EXPLAIN_VERSION",
    "Atom",
    "Check",
    "Closeness",
    "ConversationLike",
    "ConversationRef",
    "Counterfactual",
    "DecisionSummary",
    "EventInfo",
    "EvidenceItem",
    "ExplainError",
    "Explanation",
    "Match",
    "MessageExplanation",
    "PolicyLocation",
    "PolicyRef",
    "RedirectTrial",
    "Removal",
    "SubjectCheck",
    "Trial",
    "binds_category",
    "condition_atoms",
    "explain",
    "render_condition",
    "render_human",
]

EXPLAIN_FORMAT: Final = "policylang-explain"
"""``format`` field of the JSON document."""

EXPLAIN_VERSION: Final = 1
"""``version`` field of the JSON document; incremented on incompatible changes."""

Status: TypeAlias = Literal["fired", "blocked", "not-held", "already-fired", "not-checked"]
AtomKind: TypeAlias = Literal["counter", "severity", "category", "signal"]
MatchKind: TypeAlias = Literal["category", "signal", "redirect"]
Effect: TypeAlias = Literal["prevented", "later", "none"]
Leaf: TypeAlias = CounterCompare | SeverityCompare | CategoryIn | SignalMatched

_FOLLOW_UP_SUFFIX: Final = " (follow-up)"


class ConversationLike(Protocol):
    """What :func:`explain` needs: an id and messages (a transcript ``Conversation``)."""

    @property
    def id(self) -> str:
        """The conversation id."""
        ...

    @property
    def messages(self) -> Sequence[MessageLike]:
        """The messages, in order."""
        ...


class ExplainError(RuntimeError):
    """The replay disagrees with the evaluator: a bug in policylang, never bad input."""


# --------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class PolicyLocation:
    """1-based line and column of a detector in the policy file."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One detector match; ``start``/``end`` are code-point offsets into the message text."""

    detector: str
    policy_location: PolicyLocation
    start: int | None
    end: int | None
    text: str | None
    score: float | None


@dataclass(frozen=True, slots=True)
class Match:
    """A category, signal or redirect that matched a message, with its evidence."""

    kind: MatchKind
    name: str
    follow_up: bool
    """A category matched by its ``follow_up`` right after a redirect, not by ``detect``."""
    evidence: tuple[EvidenceItem, ...]


@dataclass(frozen=True, slots=True)
class Atom:
    """One leaf of a condition and its value for the category being checked.

    ``value`` is the count for a counter comparison (``key`` is the counter key it
    was read for), the severity label or category name of the category being
    checked (``None`` without one), or whether a signal matched.
    """

    condition: str
    kind: AtomKind
    key: str | None
    value: int | str | bool | None
    holds: bool
    detail: str


@dataclass(frozen=True, slots=True)
class SubjectCheck:
    """A condition checked once, for one category (``None``: no category)."""

    category: str | None
    holds: bool
    atoms: tuple[Atom, ...]


@dataclass(frozen=True, slots=True)
class Check:
    """A protection or rule at one user message: whether it held, and why.

    ``subjects`` lists the categories it was checked for, in order, up to the first
    for which it held; it is empty when the check did not happen (``already-fired``,
    ``not-checked``), and ``note`` then says why.
    """

    kind: Literal["protection", "rule"]
    name: str
    action: str
    condition: str
    template: str
    """``condition`` with atom number ``n`` (in ``SubjectCheck.atoms``) written ``{n}``."""
    status: Status
    note: str | None
    subjects: tuple[SubjectCheck, ...]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What happened at a user message (see ``Event`` in the runtime).

    ``held_back`` is true for the event the runtime reports when nothing fired but
    an end rule held and was blocked: ``rule`` then names the protection in force.
    """

    outcome: str
    kind: Literal["rule", "protection"]
    rule: str
    category: str | None
    reason: str
    message: str
    blocked: tuple[str, ...]
    held_back: bool


@dataclass(frozen=True, slots=True)
class MessageExplanation:
    """One message of the replay."""

    index: int
    role: str
    text: str
    locked: bool
    """After an end: not evaluated."""
    matches: tuple[Match, ...]
    failed_redirects: tuple[str, ...]
    """Categories this user message came back to after they had been redirected."""
    redirected: tuple[str, ...]
    """Categories this assistant message redirected (those of the user message before it)."""
    counters_before: dict[str, int]
    counters_after: dict[str, int]
    protected_by: str | None
    """The protection in force when this user message's rules were checked."""
    checks: tuple[Check, ...]
    event: EventInfo | None


@dataclass(frozen=True, slots=True)
class DecisionSummary:
    """The decision for the whole conversation."""

    outcome: str
    message_index: int | None
    kind: Literal["rule", "protection"] | None
    rule: str | None
    category: str | None
    reason: str | None
    message: str | None
    post_termination_messages: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Trial:
    """The decision of a counterfactual re-evaluation, in the original message numbering."""

    outcome: str
    message_index: int | None
    rule: str | None
    effect: Effect
    """``prevented``: no end; ``later``: an end at a later message; ``none``: no change."""


@dataclass(frozen=True, slots=True)
class Removal:
    """The conversation without one user message and the replies after it."""

    removed: tuple[int, ...]
    result: Trial
    summary: str


@dataclass(frozen=True, slots=True)
class RedirectTrial:
    """The conversation with one recognised redirect not recognised."""

    message_index: int
    redirects: tuple[str, ...]
    result: Trial
    summary: str


@dataclass(frozen=True, slots=True)
class Counterfactual:
    """What would have prevented an end.

    ``removal`` is the earliest user message (at or before the end) whose removal
    prevents the end or moves it later, ``None`` when no single one does;
    ``redirects`` tries every recognised redirect before the end.
    """

    removal: Removal | None
    removals_tried: int
    redirects: tuple[RedirectTrial, ...]
    complete: bool = True
    """False when the trials stopped at :data:`TRIAL_BUDGET` (a very long conversation)."""


@dataclass(frozen=True, slots=True)
class Closeness:
    """How close a rule that never fired came to firing.

    The closest point is the user message and category with the smallest shortfall:
    the sum, over the atoms that must change, of how far each is from holding (a
    count below its threshold by 2 is 2 short; any other atom that does not hold is
    1 short). ``missing`` lists those atoms there; ``held`` means the condition held
    but the rule was blocked or not checked.
    """

    rule: str
    action: str
    held: bool
    message_index: int | None
    category: str | None
    shortfall: int | None
    missing: tuple[Atom, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """Which policy explained the conversation."""

    name: str
    version: str
    sha256: str
    path: str
    chain: tuple[PolicyLink, ...] = ()
    """For a composed policy, every file it was built from (omitted from JSON when empty)."""


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Which conversation, and where it came from (``file``/``line`` when read from one)."""

    id: str
    file: str | None
    line: int | None
    messages: int


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything :func:`explain` found; ``to_json`` gives the documented document."""

    policy: PolicyRef
    conversation: ConversationRef
    messages: tuple[MessageExplanation, ...]
    decision: DecisionSummary
    counterfactual: Counterfactual | None
    """For an end: what would have prevented it; else ``None``."""
    closest: tuple[Closeness, ...]
    """For a conversation that did not end: every rule that did not fire, in policy order."""

    def to_json(self) -> dict[str, object]:
        """The JSON document described by ``docs/schemas/explain.schema.json``."""
        from policylang import __version__

        body = _plain(dataclasses.asdict(self))
        assert isinstance(body, dict)
        policy = body.get("policy")
        if isinstance(policy, dict) and not policy.get("chain"):
            policy.pop("chain", None)
        return {
            "format": EXPLAIN_FORMAT,
            "version": EXPLAIN_VERSION,
            "tool": {"name": "policylang", "version": __version__},
            **body,
        }


def _plain(value: object) -> object:
    """Tuples to lists, recursively, so the result is what ``json.loads`` would give."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------- conditions


def condition_atoms(condition: Condition) -> list[Leaf]:
    """The leaves of a condition, in the order :func:`render_condition` writes them."""
    if isinstance(condition, AllConditions | AnyCondition):
        return [leaf for item in condition.items for leaf in condition_atoms(item)]
    if isinstance(condition, NotCondition):
        return condition_atoms(condition.item)
    return [condition]


def _precedence(condition: Condition) -> int:
    if isinstance(condition, AnyCondition):
        return 1
    if isinstance(condition, AllConditions):
        return 2
    return 3


def render_condition(condition: Condition, leaf: Callable[[int, Leaf], str]) -> str:
    """Write a condition in policy syntax with each leaf written by ``leaf(position, atom)``.

    Parenthesized exactly as :func:`policylang.lower.describe_condition`, which it
    equals when ``leaf`` describes the atom; positions follow :func:`condition_atoms`.
    """
    positions = itertools.count()

    def walk(part: Condition, at_least: int) -> str:
        if isinstance(part, AllConditions):
            text = " and ".join(walk(item, 2) for item in part.items)
        elif isinstance(part, AnyCondition):
            text = " or ".join(walk(item, 1) for item in part.items)
        elif isinstance(part, NotCondition):
            text = f"not {walk(part.item, 3)}"
        else:
            text = leaf(next(positions), part)
        return f"({text})" if _precedence(part) < at_least else text

    return walk(condition, 0)


# --------------------------------------------------------------------- replay


@dataclass(slots=True)
class _Point:
    """A rule's condition evaluated at one user message for one category."""

    message_index: int
    category: str | None
    atoms: tuple[Atom, ...]
    holds: bool
    status: Status | None
    note: str | None


class _Replay:
    """Feeds a session message by message and records what it checked."""

    def __init__(self, policy: Policy, conversation: ConversationLike) -> None:
        self.policy = policy
        self.conversation = conversation
        self.session = policy.session(conversation.id)
        self.counters = {counter.name: counter for counter in policy.counters}
        self.severity = {category.name: category.severity.label for category in policy.categories}
        self.binds: dict[str, bool] = {p.name: binds_category(p.when) for p in policy.protections}
        self.binds.update((rule.name, binds_category(rule.when)) for rule in policy.rules)
        self.last_user: tuple[str, ...] = ()
        self.fired_at: dict[str, int] = {}
        # Every rule's condition at every evaluated user message, for closeness.
        self.points: dict[str, list[_Point]] = {rule.name: [] for rule in policy.rules}
        self.messages: list[MessageExplanation] = []

    def run(self) -> None:
        for index, message in enumerate(self.conversation.messages):
            before = self.session.counters()
            fired_before = self.session.fired
            event = self.session.observe(message)
            observation = self.session.last_observation
            if observation is None or observation.message_index != index:
                raise ExplainError(f"no observation for message {index}")
            after = self.session.counters()
            self.messages.append(
                self._message(message, observation, event, fired_before, before, after)
            )

    # -- one message

    def _message(
        self,
        message: MessageLike,
        observation: Observation,
        event: Event | None,
        fired_before: frozenset[str],
        before: dict[str, int],
        after: dict[str, int],
    ) -> MessageExplanation:
        index = observation.message_index
        matches = _matches(observation)
        failed: tuple[str, ...] = ()
        redirected: tuple[str, ...] = ()
        checks: tuple[Check, ...] = ()
        protected_by: str | None = None
        if not observation.locked and observation.role == "user":
            failed = self._track_user(observation)
            checks, protected_by = self._check(index, event, fired_before)
            if event is not None:
                self.fired_at.setdefault(event.rule, index)
        elif not observation.locked and observation.role == "assistant":
            redirected = observation.redirected
        return MessageExplanation(
            index=index,
            role=message.role,
            text=message.content,
            locked=observation.locked,
            matches=matches,
            failed_redirects=failed,
            redirected=redirected,
            counters_before=before,
            counters_after=after,
            protected_by=protected_by,
            checks=checks,
            event=None if event is None else _event_info(event, checks),
        )

    def _track_user(self, observation: Observation) -> tuple[str, ...]:
        """Remember the categories of this user message; return those it came back to."""
        self.last_user = tuple(
            c.name for c in self.policy.categories if c.name in observation.categories
        )
        return observation.failed_redirects

    # -- protections and rules

    def _subjects(self, name: str) -> list[str | None]:
        if not self.binds[name]:
            return [None]
        return list(self.last_user) or [None]

    def _subject_check(self, condition: Condition, category: str | None) -> SubjectCheck:
        atoms = tuple(self._atom(leaf, category) for leaf in condition_atoms(condition))
        return SubjectCheck(category, self.session.holds(condition, category), atoms)

    def _check_until_held(
        self, name: str, condition: Condition
    ) -> tuple[tuple[SubjectCheck, ...], str | None, bool]:
        """Check for each category in order until it holds, like the runtime."""
        checked: list[SubjectCheck] = []
        for category in self._subjects(name):
            result = self._subject_check(condition, category)
            checked.append(result)
            if result.holds:
                return tuple(checked), category, True
        return tuple(checked), None, False

    def _check(
        self, index: int, event: Event | None, fired_before: frozenset[str]
    ) -> tuple[tuple[Check, ...], str | None]:
        """Every protection, then every rule, as the runtime checked them at this message."""
        checks, protection, protection_category = self._check_protections(index)
        protected = self.session.protected
        guard = protection or self.session.protected_by
        since = self.session.protected_since
        guard_note = None
        if guard is not None:
            guard_note = f"blocked by protection {guard.name}"
            if protection is None and since is not None:
                guard_note += f" (in force since message {since})"

        fired_rule: Rule | None = None
        rule_category: str | None = None
        blocked: list[str] = []
        for rule in self.policy.rules:
            self._record_point(rule, index)
            status: Status
            note: str | None = None
            subjects: tuple[SubjectCheck, ...] = ()
            if rule.name in fired_before:
                status = "already-fired"
                note = f"already fired at message {self.fired_at.get(rule.name, index)}"
            elif protection is not None and event is not None and rule.name in event.blocked:
                status, note = "blocked", guard_note
                subjects = self._check_until_held(rule.name, rule.when)[0]
            elif protection is not None:
                status = "not-checked"
                note = f"not checked: protection {protection.name} fired first"
            elif fired_rule is not None:
                status = "not-checked"
                note = f"not checked: rule {fired_rule.name} fired first"
            else:
                subjects, category, held = self._check_until_held(rule.name, rule.when)
                if held and protected and rule.action is Outcome.END:
                    status, note = "blocked", guard_note
                elif held:
                    status = "fired"
                    fired_rule, rule_category = rule, category
                else:
                    status = "not-held"
            if status == "blocked":
                blocked.append(rule.name)
            for point in self.points[rule.name]:
                if point.message_index == index:
                    point.status, point.note = status, note
            checks.append(_make_check("rule", rule, status, note, subjects))

        self._verify(
            index, event, (protection, protection_category), (fired_rule, rule_category), blocked
        )
        return tuple(checks), None if guard is None else guard.name

    def _check_protections(self, index: int) -> tuple[list[Check], Protection | None, str | None]:
        """The protections in order, up to the first that holds (which then fires)."""
        checks: list[Check] = []
        fired: Protection | None = None
        fired_category: str | None = None
        for protection in self.policy.protections:
            if fired is not None:
                note = f"not checked: protection {fired.name} fired first"
                checks.append(_make_check("protection", protection, "not-checked", note, ()))
                continue
            subjects, category, held = self._check_until_held(protection.name, protection.when)
            status: Status = "fired" if held else "not-held"
            checks.append(_make_check("protection", protection, status, None, subjects))
            if not held:
                continue
            fired, fired_category = protection, category
        return checks, fired, fired_category

    def _verify(
        self,
        index: int,
        event: Event | None,
        protection_fired: tuple[Protection | None, str | None],
        rule_fired: tuple[Rule | None, str | None],
        blocked: list[str],
    ) -> None:
        """The replay must reach the evaluator's decision; anything else is a bug."""
        protection, protection_category = protection_fired
        rule, rule_category = rule_fired
        expected: tuple[object, ...] | None
        if protection is not None:
            expected = ("protection", protection.name, protection_category, tuple(blocked))
        elif rule is not None:
            expected = ("rule", rule.name, rule_category, tuple(blocked))
        elif blocked:
            guard = self.session.protected_by
            expected = ("protection", guard.name if guard else "", None, tuple(blocked))
        else:
            expected = None
        actual = (
            None
            if event is None
            else (event.kind, event.rule, event.category, tuple(event.blocked))
        )
        if expected != actual:
            raise ExplainError(
                f"replay disagrees with the evaluator at message {index}: "
                f"expected {expected}, the evaluator gave {actual}"
            )

    def _record_point(self, rule: Rule, index: int) -> None:
        """The rule's condition now, for every category it would be checked for."""
        for category in self._subjects(rule.name):
            check = self._subject_check(rule.when, category)
            self.points[rule.name].append(
                _Point(index, category, check.atoms, check.holds, None, None)
            )

    # -- atoms

    def _atom(self, leaf: Leaf, category: str | None) -> Atom:
        text = describe_condition(leaf)
        holds = self.session.holds(leaf, category)
        if isinstance(leaf, CounterCompare):
            count = self.session.count(leaf, category)
            key, detail = self._counter_key(leaf, category, count)
            return Atom(text, "counter", key, count, holds, detail)
        if isinstance(leaf, SeverityCompare):
            level = None if category is None else self.severity.get(category)
            return Atom(text, "severity", None, level, holds, level or "no category")
        if isinstance(leaf, CategoryIn):
            return Atom(text, "category", None, category, holds, category or "no category")
        return Atom(text, "signal", None, holds, holds, "matched" if holds else "no match")

    def _counter_key(
        self, leaf: CounterCompare, category: str | None, count: int
    ) -> tuple[str | None, str]:
        counter = self.counters[leaf.counter]
        if leaf.key is not None:
            return leaf.key, str(count)
        if counter.per is CounterScope.CONVERSATION:
            return None, str(count)
        if category is None:
            return None, f"{count}, no category"
        if counter.per is CounterScope.CATEGORY:
            return category, str(count)
        level = self.severity[category]
        return level, f"{count} for {level}"


def _make_check(
    kind: Literal["protection", "rule"],
    declaration: Protection | Rule,
    status: Status,
    note: str | None,
    subjects: tuple[SubjectCheck, ...],
) -> Check:
    when = declaration.when
    template = render_condition(when, lambda position, _: f"{{{position}}}")
    return Check(
        kind=kind,
        name=declaration.name,
        action=declaration.action.value,
        condition=describe_condition(when),
        template=template,
        status=status,
        note=note,
        subjects=subjects,
    )


def _evidence_item(evidence: Evidence) -> EvidenceItem:
    return EvidenceItem(
        detector=evidence.detector,
        policy_location=PolicyLocation(evidence.line, evidence.column),
        start=evidence.start,
        end=evidence.end,
        text=evidence.text,
        score=evidence.score,
    )


def _dedupe(evidence: Sequence[Evidence]) -> tuple[EvidenceItem, ...]:
    seen: set[tuple[str, int | None, int | None]] = set()
    items: list[EvidenceItem] = []
    for item in evidence:
        identity = (item.detector, item.start, item.end)
        if identity not in seen:
            seen.add(identity)
            items.append(_evidence_item(item))
    return tuple(items)


def _matches(observation: Observation) -> tuple[Match, ...]:
    found: list[Match] = []
    for name, evidence in observation.categories.items():
        follow_up = any(item.source.endswith(_FOLLOW_UP_SUFFIX) for item in evidence)
        found.append(Match("category", name, follow_up, _dedupe(evidence)))
    for name, evidence in observation.signals.items():
        found.append(Match("signal", name, False, _dedupe(evidence)))
    for name, evidence in observation.redirects.items():
        found.append(Match("redirect", name, False, _dedupe(evidence)))
    return tuple(found)


def _event_info(event: Event, checks: Sequence[Check]) -> EventInfo:
    # A protection event without a protection that fired is the runtime's report
    # of an end held back by one in force.
    held_back = event.kind == "protection" and not any(
        check.kind == "protection" and check.status == "fired" for check in checks
    )
    return EventInfo(
        outcome=event.outcome.value,
        kind=event.kind,
        rule=event.rule,
        category=event.category,
        reason=event.reason,
        message=event.message,
        blocked=tuple(event.blocked),
        held_back=held_back,
    )


# --------------------------------------------------------------------- counterfactuals


def _message_range(indices: Sequence[int]) -> str:
    if len(indices) == 1:
        return f"message {indices[0]}"
    return f"messages {indices[0]}-{indices[-1]}"


def _at(outcome: str, index: int | None, rule: str | None) -> str:
    if index is None:
        return outcome
    by = f" by {rule}" if rule else ""
    return f"{outcome} at message {index}{by}"


def _trial(decision: Decision, end_index: int, mapping: Callable[[int], int]) -> Trial:
    index = None if decision.message_index is None else mapping(decision.message_index)
    if decision.outcome is not Outcome.END:
        effect: Effect = "prevented"
    elif index is not None and index > end_index:
        effect = "later"
    else:
        effect = "none"
    return Trial(decision.outcome.value, index, decision.rule, effect)


def _effect_text(result: Trial) -> str:
    if result.effect == "prevented":
        return f"it would not have ended ({_at(result.outcome, result.message_index, result.rule)})"
    if result.effect == "later":
        return f"it would have ended later, at message {result.message_index}"
    return f"it would still have ended at message {result.message_index}"


#: The most messages the counterfactual trials evaluate in all. Each trial evaluates the
#: whole conversation again, so trying every message is quadratic in its length; the
#: budget keeps a conversation of 100,000 messages to seconds, not hours.
TRIAL_BUDGET: Final = 1_000_000


def _counterfactual(
    policy: Policy,
    conversation: ConversationLike,
    messages: Sequence[MessageExplanation],
    end_index: int,
) -> Counterfactual:
    original = list(conversation.messages)
    removal: Removal | None = None
    tried = 0
    left = TRIAL_BUDGET // max(len(original), 1)  # each trial evaluates every message
    complete = True
    for explained in messages:
        if explained.index > end_index or removal is not None:
            break
        if explained.role != "user":
            continue
        if not left:
            complete = False
            break
        left -= 1
        start = explained.index
        stop = start + 1
        while stop < len(original) and original[stop].role != "user":
            stop += 1
        removed = tuple(range(start, stop))
        kept = original[:start] + original[stop:]
        decision = policy.evaluate(kept, conversation.id)
        tried += 1
        width = stop - start

        def mapping(i: int, start: int = start, width: int = width) -> int:
            return i if i < start else i + width

        result = _trial(decision, end_index, mapping)
        if result.effect != "none":
            where = " (where it ended)" if start == end_index else ""
            summary = f"without {_message_range(removed)}{where}, {_effect_text(result)}"
            removal = Removal(removed, result, summary)

    trials: list[RedirectTrial] = []
    for explained in messages:
        if explained.index >= end_index:
            break
        names = tuple(match.name for match in explained.matches if match.kind == "redirect")
        if explained.role != "assistant" or explained.locked or not names:
            continue
        if not left:
            complete = False
            break
        left -= 1
        # A message the evaluator ignores has exactly the effect of an assistant
        # message that no redirect recognises, and keeps the numbering.
        changed = list(original)
        changed[explained.index] = Message("system", "")
        decision = policy.evaluate(changed, conversation.id)
        result = _trial(decision, end_index, lambda i: i)
        label = ", ".join(names)
        summary = (
            f"if the redirect at message {explained.index} ({label}) had not been recognised, "
            f"{_effect_text(result)}"
        )
        trials.append(RedirectTrial(explained.index, names, result, summary))
    return Counterfactual(removal, tried, tuple(trials), complete)


# --------------------------------------------------------------------- closeness


def _needed(leaf: CounterCompare) -> int | None:
    """The count a ``>=`` or ``>`` comparison needs; ``None`` for other operators."""
    if leaf.op == ">=":
        return leaf.value
    if leaf.op == ">":
        return leaf.value + 1
    return None


_Blocker: TypeAlias = tuple[int, bool]
"""An atom in the way of a condition: its position, and whether it is under a ``not``."""


def _shortfall(
    condition: Condition, atoms: Iterator[tuple[int, Atom, Leaf]], negated: bool = False
) -> tuple[int, list[_Blocker]]:
    """How far a condition is from holding, and the atoms in the way.

    ``atoms`` gives each leaf with its value, in :func:`condition_atoms` order. Under
    a ``not``, ``and`` and ``or`` swap roles and an atom is in the way when it holds.
    """
    if isinstance(condition, AllConditions | AnyCondition):
        parts = [_shortfall(item, atoms, negated) for item in condition.items]
        if isinstance(condition, AllConditions) != negated:
            return sum(part[0] for part in parts), [b for part in parts for b in part[1]]
        return min(parts, key=lambda part: part[0])
    if isinstance(condition, NotCondition):
        return _shortfall(condition.item, atoms, not negated)
    position, atom, leaf = next(atoms)
    if atom.holds != negated:
        return 0, []
    if not negated and isinstance(leaf, CounterCompare) and isinstance(atom.value, int):
        needed = _needed(leaf)
        if needed is not None:
            return max(1, needed - atom.value), [(position, negated)]
    return 1, [(position, negated)]


def _for_key(leaf: CounterCompare, atom: Atom) -> str:
    if leaf.key is not None:
        return ""
    if atom.key is not None:
        return f" for {atom.key}"
    if atom.detail.endswith("no category"):
        return " (no category)"
    return ""


def _held_reason(point: _Point) -> str:
    if point.status == "blocked" and point.note:
        return f"was {point.note}"
    if point.status == "not-checked" and point.note:
        return "was not checked (" + point.note.removeprefix("not checked: ") + ")"
    return "did not fire"


def _closeness(
    rule: Rule,
    points: Sequence[_Point],
    kinds: Mapping[str, CounterKind],
    redirected: Mapping[str, int],
) -> Closeness:
    action = rule.action.value
    if not points:
        return Closeness(
            rule.name, action, False, None, None, None, (), "no user message was checked"
        )
    leaves = condition_atoms(rule.when)
    ever_held = [any(point.atoms[i].holds for point in points) for i in range(len(leaves))]
    ever_counted = [
        any(isinstance(point.atoms[i].value, int) and point.atoms[i].value for point in points)
        for i in range(len(leaves))
    ]
    best: tuple[int, list[_Blocker]] | None = None
    point = points[0]
    for candidate in points:
        found = _shortfall(rule.when, zip(itertools.count(), candidate.atoms, leaves, strict=True))
        if best is None or found[0] < best[0]:
            best, point = found, candidate
    assert best is not None
    shortfall, blockers = best
    if shortfall == 0:
        on = f" for {point.category}" if point.category else ""
        summary = f"held at message {point.message_index}{on} but {_held_reason(point)}"
        return Closeness(
            rule.name, action, True, point.message_index, point.category, 0, (), summary
        )
    at_point: list[str] = []
    never: list[str] = []
    notes: list[str] = []
    for position, negated in blockers:
        atom = point.atoms[position]
        leaf = leaves[position]
        needed = _needed(leaf) if isinstance(leaf, CounterCompare) else None
        if negated:
            at_point.append(f"not {atom.condition} did not hold ({atom.detail})")
        elif isinstance(leaf, CounterCompare) and isinstance(atom.value, int) and needed:
            name = leaf.counter if leaf.key is None else f"{leaf.counter}[{leaf.key}]"
            window = "" if leaf.window is None else f" within {leaf.window} turns"
            if not ever_counted[position]:
                where = _for_key(leaf, atom) if atom.key is not None else ""
                never.append(f"{name} stayed at 0 of {needed}{window}{where}")
            else:
                verb = "reached" if atom.value else "was"
                where = _for_key(leaf, atom)
                at_point.append(f"{name} {verb} {atom.value} of {needed}{window}{where}")
            if (
                kinds.get(leaf.counter) is CounterKind.FAILED_REDIRECTS
                and atom.key is not None
                and atom.key in redirected
            ):
                notes.append(
                    f"{atom.key} is still redirected (at message {redirected[atom.key]}): "
                    "coming back to it would count a failed redirect"
                )
        elif not ever_held[position]:
            verb = "matched" if atom.kind == "signal" else "held"
            never.append(f"{atom.condition} never {verb}")
        else:
            at_point.append(f"{atom.condition} did not hold ({atom.detail})")
    parts: list[str] = []
    if at_point:
        parts.append(" and ".join(at_point) + f" at message {point.message_index}")
    parts.extend(never)
    parts.extend(notes)
    return Closeness(
        rule.name,
        action,
        False,
        point.message_index,
        point.category,
        shortfall,
        tuple(point.atoms[position] for position, _ in blockers),
        "; ".join(parts),
    )


# --------------------------------------------------------------------- the entry point


def explain(
    policy: Policy,
    conversation: ConversationLike,
    *,
    file: str | None = None,
    line: int | None = None,
) -> Explanation:
    """Explain how ``policy`` decides ``conversation``, message by message.

    ``file`` and ``line`` say where the conversation was read from, for the record.
    Raises :class:`ExplainError` only if the replay disagrees with the evaluator,
    which is a bug.
    """
    replay = _Replay(policy, conversation)
    replay.run()
    decision = replay.session.decision()
    kind: Literal["rule", "protection"] | None = None
    for event in decision.events:
        if event.message_index == decision.message_index and event.rule == decision.rule:
            kind = event.kind
            break
    summary = DecisionSummary(
        outcome=decision.outcome.value,
        message_index=decision.message_index,
        kind=kind,
        rule=decision.rule,
        category=decision.category,
        reason=decision.reason,
        message=decision.message,
        post_termination_messages=tuple(decision.post_termination),
    )
    counterfactual: Counterfactual | None = None
    closest: tuple[Closeness, ...] = ()
    if decision.outcome is Outcome.END and decision.message_index is not None:
        counterfactual = _counterfactual(
            policy, conversation, replay.messages, decision.message_index
        )
    else:
        kinds = {counter.name: counter.counts for counter in policy.counters}
        closest = tuple(
            _closeness(rule, replay.points[rule.name], kinds, replay.session.redirected)
            for rule in policy.rules
            if rule.name not in replay.session.fired
        )
    return Explanation(
        policy=PolicyRef(
            policy.name, policy.version, policy.source_sha256, policy.source_path, policy.chain
        ),
        conversation=ConversationRef(conversation.id, file, line, len(conversation.messages)),
        messages=tuple(replay.messages),
        decision=summary,
        counterfactual=counterfactual,
        closest=closest,
    )


# --------------------------------------------------------------------- human output

MAX_TEXT: Final = 240
"""Messages longer than this (in characters) are shown as windows around their evidence."""

CONTEXT: Final = 60
"""Characters kept on each side of a match in a shortened message."""

MAX_WINDOWS: Final = 4
"""At most this many windows of a shortened message are shown."""

MAX_QUOTE: Final = 100
"""Matched text and rule messages longer than this are cut."""

_RESET: Final = "\x1b[0m"
_STYLES: Final[dict[str, str]] = {
    "match": "\x1b[1;33m",
    "ok": "\x1b[32m",
    "no": "\x1b[31m",
    "skip": "\x1b[2m",
    "head": "\x1b[1m",
    "end": "\x1b[1;31m",
    "escalate": "\x1b[1;35m",
    "warn": "\x1b[1;33m",
    "continue": "\x1b[2m",
}


@dataclass(frozen=True, slots=True)
class _Symbols:
    ok: str
    no: str
    skip: str
    arrow: str
    open: str
    close: str
    ellipsis: str


_UNICODE: Final = _Symbols("✓", "✗", "·", "→", "«", "»", "…")
_ASCII: Final = _Symbols("+", "-", ".", "->", "[[", "]]", "...")


class _Writer:
    """Styles and symbols for one rendering."""

    def __init__(self, color: bool, unicode: bool) -> None:
        self.color = color
        self.symbols = _UNICODE if unicode else _ASCII

    def paint(self, text: str, style: str) -> str:
        if not self.color or not text:
            return text
        return f"{_STYLES[style]}{text}{_RESET}"

    def mark(self, text: str) -> str:
        """Matched text: coloured, or between markers without colour."""
        if self.color:
            return self.paint(text, "match")
        return f"{self.symbols.open}{text}{self.symbols.close}"

    def tick(self, holds: bool) -> str:
        return self.paint(self.symbols.ok, "ok") if holds else self.paint(self.symbols.no, "no")


def _escape(text: str) -> str:
    """One line, with control, format and separator characters shown as escapes."""
    out: list[str] = []
    for char in text:
        if char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _cut(text: str, limit: int, ellipsis: str) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ellipsis


def _merge(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _spans(message: MessageExplanation) -> list[tuple[int, int]]:
    size = len(message.text)
    ranges = [
        (min(item.start, size), min(item.end, size))
        for match in message.matches
        for item in match.evidence
        if item.start is not None and item.end is not None and item.end > item.start
    ]
    return _merge(ranges)


def _window(text: str, start: int, end: int) -> tuple[int, int]:
    """About :data:`CONTEXT` characters each side of a match, cut at spaces when possible."""
    low, high = max(0, start - CONTEXT), min(len(text), end + CONTEXT)
    if low > 0:
        space = text.find(" ", low, start)
        low = space + 1 if space >= 0 else low
    if high < len(text):
        space = text.rfind(" ", end, high)
        high = space if space >= 0 else high
    return low, high


def _message_text(message: MessageExplanation, out: _Writer) -> str:
    """The message on one line, matches marked; a long one cut to windows around them."""
    text = message.text
    spans = _spans(message)
    if len(text) <= MAX_TEXT:
        windows = [(0, len(text))]
    elif spans:
        windows = _merge([_window(text, s, e) for s, e in spans[:MAX_WINDOWS]])
    else:
        windows = [(0, MAX_TEXT)]
    ellipsis = out.symbols.ellipsis
    pieces: list[str] = [ellipsis] if windows[0][0] > 0 else []
    for number, (low, high) in enumerate(windows):
        if number:
            pieces.append(f" {ellipsis} ")
        position = low
        for start, end in spans:
            if end <= low or start >= high:
                continue
            start, end = max(start, low), min(end, high)
            pieces.append(_escape(text[position:start]))
            pieces.append(out.mark(_escape(text[start:end])))
            position = end
        pieces.append(_escape(text[position:high]))
    if windows[-1][1] < len(text):
        pieces.append(ellipsis)
    return "".join(pieces)


def _evidence_text(item: EvidenceItem, out: _Writer) -> str:
    if item.text is not None:
        return out.mark(_escape(_cut(item.text, MAX_QUOTE, out.symbols.ellipsis)))
    if item.score is not None:
        return f"({item.score:g})"
    return ""


def _match_line(match: Match, out: _Writer) -> str:
    grouped: dict[str, list[str]] = {}
    for item in match.evidence:
        shown = grouped.setdefault(item.detector, [])
        text = _evidence_text(item, out)
        if text:
            shown.append(text)
    detectors = ", ".join(" ".join([detector, *texts]) for detector, texts in grouped.items())
    follow = " (follow-up)" if match.follow_up else ""
    return f"{match.kind} {match.name}{follow}: {detectors}"


def _redirect_note(message: MessageExplanation) -> str:
    if message.redirected:
        return f"; redirects {', '.join(message.redirected)}"
    return "; no category to redirect"


def _counter_line(message: MessageExplanation, out: _Writer) -> str | None:
    before, after = message.counters_before, message.counters_after
    changed = [
        f"{name} {before.get(name, 0)} {out.symbols.arrow} {after.get(name, 0)}"
        for name in sorted(set(before) | set(after))
        if before.get(name, 0) != after.get(name, 0)
    ]
    return f"counters: {', '.join(changed)}" if changed else None


_PLACEHOLDER: Final = re.compile(r"\{(\d+)\}")


def _annotated(template: str, subject: SubjectCheck, out: _Writer) -> str:
    """The condition with each atom followed by its value and a tick."""

    def leaf(match: re.Match[str]) -> str:
        atom = subject.atoms[int(match.group(1))]
        return f"{atom.condition} [{atom.detail} {out.tick(atom.holds)}]"

    return _PLACEHOLDER.sub(leaf, template)


def _check_lines(check: Check, out: _Writer) -> list[str]:
    symbols = out.symbols
    if check.status in ("already-fired", "not-checked"):
        head = out.paint(f"{symbols.skip} {check.kind} {check.name}", "skip")
        return [f"{head}: {out.paint(check.note or check.status, 'skip')}"]
    held = check.status in ("fired", "blocked")
    head = f"{out.tick(held)} {check.kind} {check.name}"
    note = f"; {check.note}" if check.note else ""
    if len(check.subjects) == 1:
        subject = check.subjects[0]
        on = f" for {subject.category}" if subject.category else ""
        return [f"{head}{on}: {_annotated(check.template, subject, out)}{note}"]
    lines = [f"{head}:{note}"]
    for subject in check.subjects:
        on = f"for {subject.category}" if subject.category else "for no category"
        lines.append(f"    {on}: {_annotated(check.template, subject, out)}")
    return lines


def _event_line(event: EventInfo | None, out: _Writer) -> str:
    arrow = out.symbols.arrow
    if event is None:
        return f"{arrow} {out.paint('continue', 'continue')}"
    outcome = out.paint(event.outcome, event.outcome)
    if event.held_back:
        return f"{arrow} {outcome}: {', '.join(event.blocked)} blocked by protection {event.rule}"
    on = f" for {event.category}" if event.category else ""
    said = f': "{_escape(_cut(event.message, MAX_QUOTE, out.symbols.ellipsis))}"'
    blocked = f"; blocked: {', '.join(event.blocked)}" if event.blocked else ""
    line = f"{arrow} {outcome} by {event.kind} {event.rule}{on} ({event.reason})"
    return line + (said if event.message else "") + blocked


def _decision_lines(explanation: Explanation, out: _Writer) -> list[str]:
    decision = explanation.decision
    outcome = out.paint(decision.outcome, decision.outcome)
    if decision.message_index is None:
        lines = [f"{out.paint('decision', 'head')}: {outcome} (no rule fired)"]
    else:
        on = f" for {decision.category}" if decision.category else ""
        lines = [
            f"{out.paint('decision', 'head')}: {outcome} at message {decision.message_index} "
            f"by {decision.kind or 'rule'} {decision.rule}{on} ({decision.reason})"
        ]
    if decision.post_termination_messages:
        indices = ", ".join(str(i) for i in decision.post_termination_messages)
        lines.append(f"  after the end, not evaluated: {indices}")
    return lines


def _counterfactual_lines(counterfactual: Counterfactual, out: _Writer) -> list[str]:
    lines = [out.paint("what would have prevented the end:", "head")]
    if counterfactual.removal is not None:
        lines.append(f"  {counterfactual.removal.summary}")
    elif counterfactual.complete:
        lines.append(
            f"  removing any one user message would not have changed it "
            f"({counterfactual.removals_tried} tried)"
        )
    elif counterfactual.removals_tried:
        lines.append(
            f"  removing any one of the first {counterfactual.removals_tried} user messages"
            " would not have changed it"
        )
    lines.extend(f"  {trial.summary}" for trial in counterfactual.redirects)
    if not counterfactual.complete:
        lines.append(
            f"  (trials stopped at {TRIAL_BUDGET:,} messages evaluated in all:"
            " the conversation is too long to try every message)"
        )
    return lines


def _closeness_lines(closest: Sequence[Closeness], out: _Writer) -> list[str]:
    lines = [out.paint("how close the rules that did not fire came:", "head")]
    lines.extend(f"  {item.rule} ({item.action}): {item.summary}" for item in closest)
    return lines


def render_human(explanation: Explanation, *, color: bool = False, unicode: bool = True) -> str:
    """A compact listing: each message, what matched, the checks, then what would change it.

    With ``color``, matched text and marks are coloured with ANSI codes; without, matches
    are marked ``«like this»`` (``[[like this]]`` when not ``unicode``). ``unicode``
    false also uses ``+``/``-``/``.`` for ✓/✗/· and ``->`` for →.
    """
    out = _Writer(color, unicode)
    conversation = explanation.conversation
    where = (
        f" ({conversation.file}:{conversation.line})"
        if conversation.file is not None and conversation.line is not None
        else ""
    )
    noun = "message" if conversation.messages == 1 else "messages"
    ref = explanation.policy
    lines = [
        out.paint(f"conversation {_escape(conversation.id)}", "head")
        + f"{where}: {conversation.messages} {noun}",
        f"policy {ref.name} {ref.version} ({ref.path})",
    ]
    for message in explanation.messages:
        lines.append("")
        role = out.paint(message.role, "head")
        lines.append(f"[{message.index}] {role}: {_message_text(message, out)}")
        body: list[str] = []
        if message.locked:
            body.append(out.paint("after the end: not evaluated", "skip"))
        for match in message.matches:
            line = _match_line(match, out)
            body.append(line + _redirect_note(message) if match.kind == "redirect" else line)
        if message.failed_redirects:
            names = ", ".join(message.failed_redirects)
            body.append(f"failed redirect: comes back to {names} after a redirect")
        counters = _counter_line(message, out)
        if counters is not None:
            body.append(counters)
        for check in message.checks:
            body.extend(_check_lines(check, out))
        if message.role == "user" and not message.locked:
            body.append(_event_line(message.event, out))
        lines.extend(f"    {line}" for line in body)
    lines.append("")
    lines.extend(_decision_lines(explanation, out))
    if explanation.counterfactual is not None:
        lines.append("")
        lines.extend(_counterfactual_lines(explanation.counterfactual, out))
    if explanation.closest:
        lines.append("")
        lines.extend(_closeness_lines(explanation.closest, out))
    return "\n".join(lines) + "\n"
