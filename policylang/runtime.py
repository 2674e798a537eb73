"""The typed runtime that compiled policies import, and the evaluator itself.

A compiled policy module is data plus wiring: it builds one :class:`Policy` out of
the dataclasses defined here. All behaviour lives in this module, so it is the
stable surface generated code depends on; ``RUNTIME_ABI`` changes whenever that
surface changes incompatibly.

Evaluation is incremental. A :class:`Session` observes one message at a time and
does work proportional to the length of that message; :meth:`Policy.evaluate`
is a session fed every message of a conversation, so both give identical results.
"""

from __future__ import annotations

import enum
import re
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias

from policylang.normalize import DEFAULT_NORMALIZATION, NormalizedText, normalize
from policylang.normalize import NormalizationConfig as NormalizationConfig
from policylang.prefilter import PatternSet

RUNTIME_ABI: Final = 2
"""Version of the contract between generated modules and this runtime.

2: matching runs on text normalized by the steps of each declaration's
``normalize`` configuration (invisible characters, NFKC, confusables, case folding,
spaced letters, leetspeak), and keyword patterns are built from terms normalized
the same way.
"""

REEXPORTED_CLASSES: Final[frozenset[type]] = frozenset({NormalizationConfig})
"""Classes defined elsewhere in policylang that compiled modules build through this module."""

MAX_EVIDENCE_PER_DETECTOR: Final = 3
"""At most this many matches of one detector are kept as evidence per message."""

MAX_HISTORY_PER_CATEGORY: Final = 8
"""At most this many earlier hits of a category are kept as evidence."""


class Severity(enum.IntEnum):
    """How serious a harm category is; ordered, so ``HIGH < CRITICAL``."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name used in policies and output."""
        return self.name.lower()


class Outcome(enum.Enum):
    """What the assistant does at a message, and the overall result of a conversation."""

    CONTINUE = "continue"
    WARN = "warn"
    ESCALATE = "escalate"
    END = "end"


class CounterKind(enum.Enum):
    """What a counter counts."""

    FAILED_REDIRECTS = "failed_redirects"
    """User turns that come back to a category after the assistant redirected it."""
    HARMFUL_TURNS = "harmful_turns"
    """User turns that touch a category at all."""
    REDIRECTS = "redirects"
    """Assistant turns recognised as a refusal or redirect."""


class CounterScope(enum.Enum):
    """What a counter keeps a separate count for."""

    CATEGORY = "category"
    SEVERITY = "severity"
    CONVERSATION = "conversation"


Comparator: TypeAlias = Literal[">=", "<=", "==", "!=", ">", "<"]


def compare(left: float, op: Comparator, right: float) -> bool:
    """Apply a policy comparison operator."""
    if op == ">=":
        return left >= right
    if op == ">":
        return left > right
    if op == "<=":
        return left <= right
    if op == "<":
        return left < right
    if op == "==":
        return left == right
    return left != right


# --------------------------------------------------------------------- messages


class MessageLike(Protocol):
    """What the evaluator needs from a message; transcript models satisfy it."""

    @property
    def role(self) -> str:
        """``user``, ``assistant``, ``system`` or ``tool``."""
        ...

    @property
    def content(self) -> str:
        """The message text."""
        ...

    @property
    def metadata(self) -> Mapping[str, object]:
        """Free-form data; ``scores`` and ``annotations`` are read."""
        ...


@dataclass(frozen=True, slots=True)
class Message:
    """A plain message, for callers that have no transcript model of their own."""

    role: str
    content: str
    metadata: Mapping[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------- evidence


@dataclass(frozen=True, slots=True)
class Evidence:
    """One detector match: where in the conversation, and where in the policy.

    ``start``/``end`` are code-point offsets into the original message content
    (``None`` for score and annotation detectors, which match no text).
    """

    message_index: int
    source: str
    detector: str
    line: int
    column: int
    start: int | None = None
    end: int | None = None
    text: str | None = None
    score: float | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "message_index": self.message_index,
            "source": self.source,
            "detector": self.detector,
            "policy_location": {"line": self.line, "column": self.column},
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": self.score,
        }


# --------------------------------------------------------------------- detectors


@dataclass(slots=True)
class _MatchInput:
    """A message prepared for detectors: normalized text and masked original ranges."""

    index: int
    text: NormalizedText
    metadata: Mapping[str, object]
    masked: tuple[tuple[int, int], ...] = ()
    present: frozenset[int] | None = None
    """``id()`` of the compiled patterns that may match this text (``None``: any may)."""

    def is_masked(self, start: int, end: int) -> bool:
        """Whether a normalized range lies wholly inside a masked original range."""
        o_start, o_end = self.text.to_original(start, end)
        return any(m_start <= o_start and o_end <= m_end for m_start, m_end in self.masked)


def _scan(pattern: re.Pattern[str], message: _MatchInput) -> list[tuple[int, int]]:
    """Unmasked match ranges of ``pattern`` in the normalized text, up to the evidence cap."""
    if message.present is not None and id(pattern) not in message.present:
        return []  # the prefilter proved it cannot match
    found: list[tuple[int, int]] = []
    for match in pattern.finditer(message.text.text):
        start, end = match.span()
        if message.masked and message.is_masked(start, end):
            continue
        found.append((start, end))
        if len(found) >= MAX_EVIDENCE_PER_DETECTOR:
            break
    return found


@dataclass(frozen=True, slots=True)
class Keywords:
    """Whole-word, case-insensitive phrases, compiled into one pattern."""

    label: str
    pattern: re.Pattern[str]
    line: int
    column: int

    def spans(self, message: _MatchInput) -> list[tuple[int, int]]:
        """Normalized-text ranges matched (unmasked), at most the evidence cap."""
        return _scan(self.pattern, message)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression, matched against normalized text."""

    label: str
    pattern: re.Pattern[str]
    line: int
    column: int

    def spans(self, message: _MatchInput) -> list[tuple[int, int]]:
        """Normalized-text ranges matched (unmasked), at most the evidence cap."""
        return _scan(self.pattern, message)


@dataclass(frozen=True, slots=True)
class Score:
    """A classifier score from ``metadata["scores"][key]`` compared to a threshold."""

    label: str
    key: str
    op: Comparator
    threshold: float
    line: int
    column: int

    def value(self, message: _MatchInput) -> float | None:
        """The score, or ``None`` when the message carries none (or not a number)."""
        scores = message.metadata.get("scores")
        if not isinstance(scores, Mapping):
            return None
        raw = scores.get(self.key)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return None
        return float(raw)


@dataclass(frozen=True, slots=True)
class Annotation:
    """A label in ``metadata["annotations"]`` (a list of strings)."""

    label: str
    name: str
    line: int
    column: int

    def present(self, message: _MatchInput) -> bool:
        """Whether the message carries the annotation."""
        annotations = message.metadata.get("annotations")
        if isinstance(annotations, str):
            return annotations == self.name
        if isinstance(annotations, Sequence):
            return self.name in annotations
        return False


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every part matches."""

    items: tuple[Detector, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when at least one part matches."""

    items: tuple[Detector, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """True when the part does not match; contributes no evidence."""

    item: Detector


Detector: TypeAlias = Keywords | Pattern | Score | Annotation | AllOf | AnyOf | Not


def _detect(detector: Detector, message: _MatchInput, source: str) -> list[Evidence] | None:
    """Evaluate a detector: ``None`` when it does not match, else its evidence."""
    if isinstance(detector, Keywords | Pattern):
        if message.present is not None and id(detector.pattern) not in message.present:
            return None  # the prefilter proved it cannot match
        spans = detector.spans(message)
        if not spans:
            return None
        evidence = []
        for start, end in spans:
            o_start, o_end = message.text.to_original(start, end)
            evidence.append(
                Evidence(
                    message_index=message.index,
                    source=source,
                    detector=detector.label,
                    line=detector.line,
                    column=detector.column,
                    start=o_start,
                    end=o_end,
                    text=message.text.original[o_start:o_end],
                )
            )
        return evidence
    if isinstance(detector, Score):
        value = detector.value(message)
        if value is None or not compare(value, detector.op, detector.threshold):
            return None
        return [
            Evidence(
                message_index=message.index,
                source=source,
                detector=detector.label,
                line=detector.line,
                column=detector.column,
                score=value,
            )
        ]
    if isinstance(detector, Annotation):
        if not detector.present(message):
            return None
        return [
            Evidence(
                message_index=message.index,
                source=source,
                detector=detector.label,
                line=detector.line,
                column=detector.column,
            )
        ]
    if isinstance(detector, AllOf):
        collected: list[Evidence] = []
        for item in detector.items:
            found = _detect(item, message, source)
            if found is None:
                return None
            collected.extend(found)
        return collected
    if isinstance(detector, AnyOf):
        for item in detector.items:
            found = _detect(item, message, source)
            if found is not None:
                return found
        return None
    return [] if _detect(detector.item, message, source) is None else None


# --------------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Category:
    """A harm category detected on user messages."""

    name: str
    title: str
    severity: Severity
    detect: Detector
    unless: Detector | None = None
    taxonomy: tuple[tuple[str, str], ...] = ()
    line: int = 0
    column: int = 0
    follow_up: Detector | None = None
    """Matches a user turn that comes back to this category right after a redirect."""
    normalize: NormalizationConfig = DEFAULT_NORMALIZATION
    """How messages are normalized before ``detect``, ``unless`` and ``follow_up`` match."""


@dataclass(frozen=True, slots=True)
class Signal:
    """A named detector on user messages that is not a harm (a request to end, a risk)."""

    name: str
    detect: Detector
    unless: Detector | None = None
    line: int = 0
    column: int = 0
    normalize: NormalizationConfig = DEFAULT_NORMALIZATION
    """How messages are normalized before ``detect`` and ``unless`` match."""


@dataclass(frozen=True, slots=True)
class Redirect:
    """How to recognise that the assistant refused or redirected the user."""

    name: str
    detect: Detector
    line: int = 0
    column: int = 0
    normalize: NormalizationConfig = DEFAULT_NORMALIZATION
    """How assistant messages are normalized before ``detect`` matches."""


@dataclass(frozen=True, slots=True)
class Counter:
    """A counter of failed redirects, harmful turns or redirects.

    ``reset_after`` resets every count after that many consecutive benign user
    turns. ``horizon`` is the largest window any rule asks of this counter, so
    older events can be forgotten (``0`` when no rule uses a window).
    """

    name: str
    counts: CounterKind
    per: CounterScope
    reset_after: int | None = None
    horizon: int = 0
    line: int = 0
    column: int = 0


# --------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class CounterCompare:
    """``counter[key] OP value within N turns``.

    Without ``key`` the count is the one for the category being checked (or its
    severity, or the whole conversation, by the counter's scope).
    """

    counter: str
    key: str | None
    op: Comparator
    value: int
    window: int | None = None


@dataclass(frozen=True, slots=True)
class SeverityCompare:
    """``severity OP level`` for the category being checked."""

    op: Comparator
    level: Severity


@dataclass(frozen=True, slots=True)
class CategoryIn:
    """The category being checked is one of these."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignalMatched:
    """The signal matched the current user message."""

    name: str


@dataclass(frozen=True, slots=True)
class AllConditions:
    """True when every part holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyCondition:
    """True when some part holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class NotCondition:
    """True when the part does not hold."""

    item: Condition


Condition: TypeAlias = (
    CounterCompare
    | SeverityCompare
    | CategoryIn
    | SignalMatched
    | AllConditions
    | AnyCondition
    | NotCondition
)


@dataclass(frozen=True, slots=True)
class Protection:
    """A condition under which the conversation must never end.

    When it holds, its action (escalate, or continue with a supportive message)
    is the decision for that message, and no ``end`` rule may fire for ``lasts``
    further user turns (``None``: for the rest of the conversation).
    """

    name: str
    when: Condition
    action: Outcome
    reason: str
    message: str
    lasts: int | None = None
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """A termination rule: when its condition holds, take its action (at most once)."""

    name: str
    when: Condition
    action: Outcome
    reason: str
    message: str
    line: int = 0
    column: int = 0


# --------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class PolicyLink:
    """One file of a composed policy: its role, name, version and SHA-256.

    ``role`` is ``"base"`` (a policy it extends, directly or not), ``"import"`` (a
    file it imports from), ``"policy"`` (the policy itself) or ``"tenant"``.
    """

    role: str
    name: str
    version: str
    sha256: str

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "role": self.role,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """Identity of the policy that made a decision.

    ``chain`` lists every file a composed policy was built from, base first (empty
    for a policy written in one file); ``sha256`` then covers the whole chain.
    """

    name: str
    version: str
    sha256: str
    chain: tuple[PolicyLink, ...] = ()

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary (``chain`` only for a composed policy)."""
        out: dict[str, object] = {"name": self.name, "version": self.version, "sha256": self.sha256}
        if self.chain:
            out["chain"] = [link.to_json() for link in self.chain]
        return out


@dataclass(frozen=True, slots=True)
class Event:
    """A rule or protection that fired at one user message."""

    message_index: int
    outcome: Outcome
    kind: Literal["rule", "protection"]
    rule: str
    category: str | None
    reason: str
    message: str
    evidence: tuple[Evidence, ...]
    counters: Mapping[str, int]
    blocked: tuple[str, ...] = ()
    """End rules that held at this message but were blocked by a protection."""

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "message_index": self.message_index,
            "outcome": self.outcome.value,
            "kind": self.kind,
            "rule": self.rule,
            "category": self.category,
            "reason": self.reason,
            "message": self.message,
            "evidence": [item.to_json() for item in self.evidence],
            "counters": dict(self.counters),
            "blocked": list(self.blocked),
        }


_OUTCOME_RANK: Final = {
    Outcome.CONTINUE: 0,
    Outcome.WARN: 1,
    Outcome.ESCALATE: 2,
    Outcome.END: 3,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one conversation (or branch), and why.

    The deciding event is the ``end`` if there is one, otherwise the first of
    the most serious outcome (escalate before warn). ``post_termination`` lists
    the indices of user messages that came after an end in the same branch.
    """

    conversation_id: str
    outcome: Outcome
    message_index: int | None
    rule: str | None
    category: str | None
    reason: str | None
    message: str | None
    evidence: tuple[Evidence, ...]
    counters: Mapping[str, int]
    events: tuple[Event, ...]
    post_termination: tuple[int, ...]
    messages: int
    policy: PolicyInfo

    def to_json(self) -> dict[str, object]:
        """The documented JSON shape of a decision (see docs/cli.md)."""
        return {
            "conversation_id": self.conversation_id,
            "outcome": self.outcome.value,
            "message_index": self.message_index,
            "rule": self.rule,
            "category": self.category,
            "reason": self.reason,
            "message": self.message,
            "evidence": [item.to_json() for item in self.evidence],
            "counters": dict(self.counters),
            "events": [event.to_json() for event in self.events],
            "post_termination_messages": list(self.post_termination),
            "messages": self.messages,
            "policy": self.policy.to_json(),
        }


# --------------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Policy:
    """A whole compiled policy: its identity and every declaration, in source order."""

    name: str
    version: str
    description: str
    owner: str
    source_path: str
    source_sha256: str
    categories: tuple[Category, ...]
    signals: tuple[Signal, ...]
    redirects: tuple[Redirect, ...]
    counters: tuple[Counter, ...]
    protections: tuple[Protection, ...]
    rules: tuple[Rule, ...]
    chain: tuple[PolicyLink, ...] = ()

    @property
    def info(self) -> PolicyInfo:
        """The identity recorded in every decision."""
        return PolicyInfo(self.name, self.version, self.source_sha256, self.chain)

    def session(self, conversation_id: str = "") -> Session:
        """Start incremental evaluation of one conversation (or branch)."""
        return Session(self, conversation_id)

    def evaluate(self, messages: Iterable[MessageLike], conversation_id: str = "") -> Decision:
        """Evaluate a whole conversation; identical to observing each message in turn."""
        plan = _plan_for(self)
        if plan.quiet_conversations:
            messages = messages if isinstance(messages, Sequence) else list(messages)
            if all(message.role != "user" or _is_quiet(plan, message) for message in messages):
                # Nothing can match any user message: nothing is counted, nothing fires.
                return Decision(
                    conversation_id=conversation_id,
                    outcome=Outcome.CONTINUE,
                    message_index=None,
                    rule=None,
                    category=None,
                    reason=None,
                    message=None,
                    evidence=(),
                    counters={},
                    events=(),
                    post_termination=(),
                    messages=len(messages),
                    policy=self.info,
                )
        session = Session(self, conversation_id)
        for message in messages:
            session.observe(message)
        return session.decision()


# --------------------------------------------------------------------- evaluation


@dataclass(slots=True)
class _Count:
    """A count for one counter key, with event turns kept for windowed queries."""

    total: int = 0
    turns: list[int] = field(default_factory=list)

    def add(self, turn: int, horizon: int) -> None:
        self.total += 1
        if horizon:
            self.turns.append(turn)
            # Forget events no window can reach any more (at most `horizon` stay).
            cutoff = turn - horizon
            if self.turns[0] <= cutoff:
                self.turns = [t for t in self.turns if t > cutoff]

    def within(self, turn: int, window: int) -> int:
        cutoff = turn - window
        return sum(1 for t in self.turns if t > cutoff)


_Subject: TypeAlias = Category | None
_NO_SUBJECT: Final[tuple[_Subject]] = (None,)
_QUIET_SUBJECTS: Final[tuple[_Subject, ...]] = (None,)
_NO_CATEGORIES: Final[tuple[Category, ...]] = ()
_EMPTY: Final[Mapping[str, Any]] = types.MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Observation:
    """What one message matched: for tools that explain or measure a policy.

    Maps declaration names to their evidence. A locked message (after an end)
    matched nothing because it was not evaluated.
    """

    message_index: int
    role: str
    categories: Mapping[str, tuple[Evidence, ...]]
    signals: Mapping[str, tuple[Evidence, ...]]
    redirects: Mapping[str, tuple[Evidence, ...]]
    locked: bool = False
    failed_redirects: tuple[str, ...] = ()
    """Categories this user message came back to after they had been redirected."""
    redirected: tuple[str, ...] = ()
    """Categories this assistant message redirected (those of the user message before it)."""


class _DeferredMatches(Mapping[str, tuple[Evidence, ...]]):
    """Matches worked out on first look; for a message whose matches change no state."""

    __slots__ = ("_compute", "_found")

    def __init__(self, compute: Callable[[], dict[str, tuple[Evidence, ...]]]) -> None:
        self._compute: Callable[[], dict[str, tuple[Evidence, ...]]] | None = compute
        self._found: dict[str, tuple[Evidence, ...]] | None = None

    def _matches(self) -> dict[str, tuple[Evidence, ...]]:
        if self._found is None:
            assert self._compute is not None
            self._found = self._compute()
            self._compute = None
        return self._found

    def __getitem__(self, key: str) -> tuple[Evidence, ...]:
        return self._matches()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._matches())

    def __len__(self) -> int:
        return len(self._matches())

    def __repr__(self) -> str:
        return repr(self._matches())


class Session:
    """Incremental evaluation of one conversation.

    Call :meth:`observe` with each message in order; it returns the event fired
    at that message, if any. Each call costs time proportional to the length of
    that message (detectors) plus the size of the policy, never a rescan.
    After an ``end``, the branch is locked: later user messages are recorded as
    post-termination messages and are not evaluated.
    """

    def __init__(self, policy: Policy, conversation_id: str = "") -> None:
        """Start a session for ``policy``."""
        self.policy = policy
        self.conversation_id = conversation_id
        self._plan = _plan_for(policy)
        self._index = -1
        self._turn = 0
        self._benign_streak = 0
        self._counts: dict[tuple[str, str | None], _Count] = {}
        self._counters = {counter.name: counter for counter in policy.counters}
        self._categories = {category.name: category for category in policy.categories}
        self._redirected: dict[str, int] = {}  # category -> index of the redirecting message
        self._last_user_categories: tuple[Category, ...] = ()
        self._history: dict[str, list[Evidence]] = {}
        self._protected_until: float = -1
        self._protected_by: Protection | None = None
        self._protected_since: int | None = None
        self._fired: set[str] = set()
        self._events: list[Event] = []
        self._end: Event | None = None
        self._post_termination: list[int] = []
        self._signals: Mapping[str, Sequence[Evidence]] = _EMPTY
        self._observation: Observation | None = None
        self._quiet_observation = False
        self._binds = self._plan.binds

    @property
    def ended(self) -> bool:
        """Whether an ``end`` has fired; the branch then accepts no more user messages."""
        return self._end is not None

    @property
    def events(self) -> tuple[Event, ...]:
        """Every event so far, in message order."""
        return tuple(self._events)

    def observe(self, message: MessageLike) -> Event | None:
        """Take the next message; return the event it triggered, if any."""
        self._index += 1
        role = message.role
        self._signals = _EMPTY
        self._quiet_observation = False
        if self._end is not None:
            if role == "user":
                self._post_termination.append(self._index)
            self._observation = Observation(self._index, role, {}, {}, {}, locked=True)
            return None
        if role == "user":
            return self._observe_user(message)
        if role == "assistant":
            self._observe_assistant(message)
        else:
            self._observation = Observation(self._index, role, {}, {}, {})
        return None

    # -- inspection, for tools (explain, coverage); not needed to evaluate

    @property
    def last_observation(self) -> Observation | None:
        """What the most recent message matched."""
        if self._quiet_observation:
            # A quiet user message matched nothing: its observation is made on demand.
            self._observation = Observation(self._index, "user", _EMPTY, _EMPTY, _EMPTY)
            self._quiet_observation = False
        return self._observation

    @property
    def fired(self) -> frozenset[str]:
        """Rules that have fired (each fires at most once)."""
        return frozenset(self._fired)

    @property
    def protected(self) -> bool:
        """Whether a protection currently blocks every ``end``."""
        return self._turn <= self._protected_until

    @property
    def protected_by(self) -> Protection | None:
        """The protection in force, if any."""
        return self._protected_by if self.protected else None

    @property
    def protected_since(self) -> int | None:
        """Index of the message at which the protection in force took effect."""
        return self._protected_since if self.protected else None

    @property
    def redirected(self) -> Mapping[str, int]:
        """Categories redirected and not yet come back to, with the redirecting message."""
        return dict(self._redirected)

    def counters(self) -> dict[str, int]:
        """Current non-zero counts, as ``"name[key]": n``."""
        return self._snapshot()

    def holds(self, condition: Condition, category: str | None) -> bool:
        """Whether ``condition`` holds now, checked for ``category`` (or none).

        Evaluated against the state after the most recent message, which is the
        state its rules were checked against.
        """
        return self._holds(condition, self._categories.get(category or ""), self._signals)

    def count(self, condition: CounterCompare, category: str | None) -> int:
        """The count a counter comparison sees now, for ``category`` (or none)."""
        return self._value(condition, self._categories.get(category or ""))

    # -- assistant turns

    def _observe_assistant(self, message: MessageLike) -> None:
        if not self.policy.redirects:
            self._observation = Observation(self._index, "assistant", _EMPTY, _EMPTY, _EMPTY)
            return
        if not self._last_user_categories and not self._plan.eager_redirects:
            # Nothing to redirect and nothing that counts a redirect regardless: what
            # this message matched changes no state, so it is worked out only if an
            # observer asks (most replies follow a harmless question).
            index = self._index
            deferred = _DeferredMatches(lambda: self._match_redirects(message, index))
            self._observation = Observation(index, "assistant", _EMPTY, _EMPTY, deferred)
            return
        matched = self._match_redirects(message, self._index)
        recent = self._last_user_categories if matched else ()
        self._observation = Observation(
            self._index,
            "assistant",
            _EMPTY,
            _EMPTY,
            matched,
            redirected=tuple(category.name for category in recent),
        )
        if not matched:
            return
        for category in recent:
            self._redirected[category.name] = self._index
        for counter in self.policy.counters:
            if counter.counts is CounterKind.REDIRECTS:
                for key in _keys(counter, recent, always=True):
                    self._count(counter, key).add(self._turn, counter.horizon)

    def _match_redirects(self, message: MessageLike, index: int) -> dict[str, tuple[Evidence, ...]]:
        """The redirects an assistant message matched, with their evidence."""
        plan = self._plan
        texts = _Normalized(message.content, plan.configs, plan.assistant)
        metadata = _has_detector_metadata(message.metadata)
        matched: dict[str, tuple[Evidence, ...]] = {}
        for redirect, (slot, needs) in zip(self.policy.redirects, plan.redirects, strict=True):
            present = texts.present(slot)
            if not _may_match(needs, present, metadata):
                continue
            found = _detect(
                redirect.detect,
                _MatchInput(index, texts.get(slot), message.metadata, present=present),
                f"redirect {redirect.name}",
            )
            if found is not None:
                matched[redirect.name] = tuple(found)
        return matched

    # -- user turns

    def _observe_user(self, message: MessageLike) -> Event | None:
        self._turn += 1
        plan = self._plan
        texts = _Normalized(message.content, plan.configs, plan.user)
        metadata = _has_detector_metadata(message.metadata)
        if (
            not metadata
            and plan.user_quiet_when_empty
            and not _may_match_any(plan, texts, follow_ups=bool(self._redirected))
        ):
            # No category or signal can match: a quiet message.
            self._signals = _EMPTY
            return self._after_quiet_user()
        matched: list[Category] = []
        evidence: dict[str, list[Evidence]] = {}
        signals: dict[str, list[Evidence]] = {}
        for category, (slot, needs, follow_up_needs) in zip(
            self.policy.categories, plan.categories, strict=True
        ):
            present = texts.present(slot)
            found = None
            if _may_match(needs, present, metadata):
                found = _match_declaration(
                    category.detect,
                    category.unless,
                    self._index,
                    texts.get(slot),
                    message.metadata,
                    f"category {category.name}",
                    present,
                )
            if (
                found is None
                and category.follow_up is not None
                and category.name in self._redirected
                and _may_match(follow_up_needs, present, metadata)
            ):
                # Only while the category is redirected: a follow-up such as "just tell
                # me" is a push for it then, and means nothing otherwise.
                found = _match_declaration(
                    category.follow_up,
                    category.unless,
                    self._index,
                    texts.get(slot),
                    message.metadata,
                    f"category {category.name} (follow-up)",
                    present,
                )
            if found is not None:
                matched.append(category)
                evidence[category.name] = found
        for signal, (slot, needs) in zip(self.policy.signals, plan.signals, strict=True):
            present = texts.present(slot)
            if not _may_match(needs, present, metadata):
                continue
            found = _match_declaration(
                signal.detect,
                signal.unless,
                self._index,
                texts.get(slot),
                message.metadata,
                f"signal {signal.name}",
                present,
            )
            if found is not None:
                signals[signal.name] = found
        return self._after_user_match(matched, evidence, signals)

    def _after_user_match(
        self,
        matched: list[Category],
        evidence: dict[str, list[Evidence]],
        signals: dict[str, list[Evidence]],
    ) -> Event | None:
        """Count, record and decide, once a user message's matches are known."""
        self._signals = signals
        if not matched and not signals:
            return self._after_quiet_user()
        failed = self._update_counters(matched)
        self._observation = Observation(
            self._index,
            "user",
            {name: tuple(found) for name, found in evidence.items()},
            {name: tuple(found) for name, found in signals.items()},
            {},
            failed_redirects=tuple(category.name for category in failed),
        )
        for category in matched:
            history = self._history.setdefault(category.name, [])
            history.extend(evidence[category.name])
            if len(history) > MAX_HISTORY_PER_CATEGORY:
                del history[: len(history) - MAX_HISTORY_PER_CATEGORY]
        self._last_user_categories = tuple(matched)

        subjects: list[_Subject] = list(matched) or [None]
        event = self._check_protections(subjects, signals)
        if event is None:
            event = self._check_rules(subjects, signals)
        return self._record(event)

    def _after_quiet_user(self) -> Event | None:
        """The same for a quiet user message, one that matched no category and no signal.

        Only the rules and protections that can hold without either are checked;
        the plan knows which.
        """
        self._update_counters(_NO_CATEGORIES)
        self._quiet_observation = True
        self._last_user_categories = ()
        if not self._plan.quiet_checks:
            return None
        event = self._check_protections(_QUIET_SUBJECTS, _EMPTY, quiet=True)
        if event is None:
            event = self._check_rules(_QUIET_SUBJECTS, _EMPTY, quiet=True)
        return self._record(event)

    def _record(self, event: Event | None) -> Event | None:
        if event is not None:
            self._events.append(event)
            if event.outcome is Outcome.END:
                self._end = event
        return event

    def _update_counters(self, matched: Sequence[Category]) -> tuple[Category, ...]:
        """Count this user turn; return the categories it came back to after a redirect."""
        if matched:
            self._benign_streak = 0
        else:
            self._benign_streak += 1
            for counter in self.policy.counters:
                if counter.reset_after is not None and self._benign_streak == counter.reset_after:
                    self._reset(counter)
            return ()  # nothing matched: no category to count or to have come back to
        failed = tuple(category for category in matched if category.name in self._redirected)
        for category in failed:
            del self._redirected[category.name]
        for counter in self.policy.counters:
            if counter.counts is CounterKind.FAILED_REDIRECTS:
                relevant = failed
            elif counter.counts is CounterKind.HARMFUL_TURNS:
                relevant = tuple(matched)
            else:
                continue
            for key in _keys(counter, relevant, always=False):
                self._count(counter, key).add(self._turn, counter.horizon)
        return failed

    def _reset(self, counter: Counter) -> None:
        for key in [key for key in self._counts if key[0] == counter.name]:
            del self._counts[key]
        if counter.counts is CounterKind.FAILED_REDIRECTS:
            # A fresh start: coming back after the reset is a new first ask.
            self._redirected.clear()

    def _count(self, counter: Counter, key: str | None) -> _Count:
        slot = (counter.name, key)
        count = self._counts.get(slot)
        if count is None:
            count = self._counts[slot] = _Count()
        return count

    # -- rules

    def _check_protections(
        self,
        subjects: Sequence[_Subject],
        signals: Mapping[str, Sequence[Evidence]],
        quiet: bool = False,
    ) -> Event | None:
        for protection, quiet_ok in zip(
            self.policy.protections, self._plan.quiet_protections, strict=True
        ):
            if quiet and not quiet_ok:
                continue
            for subject in subjects if self._binds[protection.name] else _NO_SUBJECT:
                if self._holds(protection.when, subject, signals):
                    lasts = protection.lasts
                    until = float("inf") if lasts is None else self._turn + lasts
                    if until >= self._protected_until:
                        in_force = self._turn <= self._protected_until
                        if not in_force or self._protected_by is not protection:
                            self._protected_since = self._index
                        self._protected_until = until
                        self._protected_by = protection
                    blocked = tuple(
                        rule.name
                        for rule in self.policy.rules
                        if rule.action is Outcome.END
                        and rule.name not in self._fired
                        and any(self._holds(rule.when, s, signals) for s in subjects)
                    )
                    return Event(
                        message_index=self._index,
                        outcome=protection.action,
                        kind="protection",
                        rule=protection.name,
                        category=subject.name if subject is not None else None,
                        reason=protection.reason,
                        message=protection.message,
                        evidence=self._evidence(protection.when, subject, signals),
                        counters=self._snapshot(),
                        blocked=blocked,
                    )
        return None

    def _check_rules(
        self,
        subjects: Sequence[_Subject],
        signals: Mapping[str, Sequence[Evidence]],
        quiet: bool = False,
    ) -> Event | None:
        protected = self._turn <= self._protected_until
        blocked: list[str] = []
        for rule, quiet_ok in zip(self.policy.rules, self._plan.quiet_rules, strict=True):
            if (quiet and not quiet_ok) or rule.name in self._fired:
                continue
            for subject in subjects if self._binds[rule.name] else _NO_SUBJECT:
                if not self._holds(rule.when, subject, signals):
                    continue
                if protected and rule.action is Outcome.END:
                    blocked.append(rule.name)
                    break
                self._fired.add(rule.name)
                return Event(
                    message_index=self._index,
                    outcome=rule.action,
                    kind="rule",
                    rule=rule.name,
                    category=subject.name if subject is not None else None,
                    reason=rule.reason,
                    message=rule.message,
                    evidence=self._evidence(rule.when, subject, signals),
                    counters=self._snapshot(),
                    blocked=tuple(blocked),
                )
        if blocked:
            # Nothing fired, but an end was held back: say so, and by which protection.
            guard = self._protected_by
            return Event(
                message_index=self._index,
                outcome=Outcome.CONTINUE,
                kind="protection",
                rule=guard.name if guard is not None else "",
                category=None,
                reason=guard.reason if guard is not None else "",
                message="",
                evidence=(),
                counters=self._snapshot(),
                blocked=tuple(blocked),
            )
        return None

    def _holds(
        self, condition: Condition, subject: _Subject, signals: Mapping[str, Sequence[Evidence]]
    ) -> bool:
        if isinstance(condition, CounterCompare):
            return compare(self._value(condition, subject), condition.op, condition.value)
        if isinstance(condition, SignalMatched):
            return condition.name in signals
        if isinstance(condition, CategoryIn):
            return subject is not None and subject.name in condition.names
        if isinstance(condition, SeverityCompare):
            return subject is not None and compare(subject.severity, condition.op, condition.level)
        if isinstance(condition, AllConditions):
            return all(self._holds(item, subject, signals) for item in condition.items)
        if isinstance(condition, AnyCondition):
            return any(self._holds(item, subject, signals) for item in condition.items)
        return not self._holds(condition.item, subject, signals)

    def _value(self, condition: CounterCompare, subject: _Subject) -> int:
        counter = self._counters[condition.counter]
        key = condition.key
        if key is None:
            if counter.per is CounterScope.CONVERSATION:
                key = None
            elif subject is None:
                return 0
            elif counter.per is CounterScope.CATEGORY:
                key = subject.name
            else:
                key = subject.severity.label
        count = self._counts.get((counter.name, key))
        if count is None:
            return 0
        if condition.window is None:
            return count.total
        return count.within(self._turn, condition.window)

    def _evidence(
        self, condition: Condition, subject: _Subject, signals: Mapping[str, Sequence[Evidence]]
    ) -> tuple[Evidence, ...]:
        collected: list[Evidence] = []
        if subject is not None:
            collected.extend(self._history.get(subject.name, ()))
        for name in _signal_names(condition):
            collected.extend(signals.get(name, ()))
        return tuple(collected)

    def _snapshot(self) -> dict[str, int]:
        snapshot: dict[str, int] = {}
        for (name, key), count in sorted(
            self._counts.items(), key=lambda item: (item[0][0], item[0][1] or "")
        ):
            if count.total:
                snapshot[name if key is None else f"{name}[{key}]"] = count.total
        return snapshot

    # -- result

    def decision(self) -> Decision:
        """The decision so far (final once every message has been observed)."""
        deciding = self._end
        if deciding is None:
            best = 0
            for event in self._events:
                rank = _OUTCOME_RANK[event.outcome]
                if rank > best:
                    best, deciding = rank, event
        info = self.policy.info
        if deciding is None:
            return Decision(
                conversation_id=self.conversation_id,
                outcome=Outcome.CONTINUE,
                message_index=None,
                rule=None,
                category=None,
                reason=None,
                message=None,
                evidence=(),
                counters=self._snapshot(),
                events=tuple(self._events),
                post_termination=(),
                messages=self._index + 1,
                policy=info,
            )
        return Decision(
            conversation_id=self.conversation_id,
            outcome=deciding.outcome,
            message_index=deciding.message_index,
            rule=deciding.rule,
            category=deciding.category,
            reason=deciding.reason,
            message=deciding.message,
            evidence=deciding.evidence,
            counters=deciding.counters,
            events=tuple(self._events),
            post_termination=tuple(self._post_termination),
            messages=self._index + 1,
            policy=info,
        )


class _Normalized:
    """One message's normalized texts and prefilter results, made once per configuration.

    Configurations are addressed by their slot in the policy's plan, so a message
    is normalized (and prefiltered) once per distinct configuration.
    """

    __slots__ = ("_configs", "_content", "_filters", "_present", "_texts")

    def __init__(
        self,
        content: str,
        configs: Sequence[NormalizationConfig],
        filters: Sequence[_Prefilter | None],
    ) -> None:
        self._content = content
        self._configs = configs
        self._filters = filters
        self._texts: list[NormalizedText | None] = [None] * len(configs)
        self._present: list[frozenset[int] | bool | None] = [False] * len(configs)

    def get(self, slot: int) -> NormalizedText:
        """The text normalized by the configuration in ``slot``."""
        text = self._texts[slot]
        if text is None:
            text = self._texts[slot] = normalize(self._content, self._configs[slot])
        return text

    def present(self, slot: int) -> frozenset[int] | None:
        """``id()`` of the patterns that may match the text of ``slot`` (``None``: any)."""
        found = self._present[slot]
        if found is False:
            prefilter = self._filters[slot]
            found = None if prefilter is None else prefilter.present(self.get(slot).text)
            self._present[slot] = found
        assert found is not True
        return found


# --------------------------------------------------------------------- prefiltering


_NOTHING: Final[frozenset[int]] = frozenset()


class _Prefilter:
    """The patterns of every declaration sharing one normalization, as one RE2 set."""

    __slots__ = ("_ids", "_set")

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self._set = PatternSet(patterns)
        self._ids = [id(pattern) for pattern in patterns]

    def present(self, text: str) -> frozenset[int]:
        """``id()`` of the patterns that may match ``text`` (all that do, and maybe more)."""
        found = self._set.candidates(text)
        if not found:
            return _NOTHING
        ids = self._ids
        return frozenset([ids[index] for index in found])


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one policy prefilters messages: one pattern set per role and normalization.

    ``configs`` lists the distinct normalization configurations (a declaration
    refers to its configuration by slot). ``categories``, ``signals`` and
    ``redirects`` align with the policy's declarations: each gives the slot and
    what its detectors need, the ``id()`` of the patterns under the detector, or
    ``None`` when it can match without any pattern matching (a score, an
    annotation, a ``not``). A detector none of whose patterns may match is skipped.
    """

    configs: tuple[NormalizationConfig, ...]
    user: tuple[_Prefilter | None, ...]
    assistant: tuple[_Prefilter | None, ...]
    categories: tuple[tuple[int, _Needs, _Needs], ...]
    signals: tuple[tuple[int, _Needs], ...]
    redirects: tuple[tuple[int, _Needs], ...]
    user_slots: tuple[int, ...]
    """The slots user-message declarations use."""
    triggers: tuple[Mapping[int, tuple[frozenset[int], ...]], ...]
    """Per slot: for each pattern, the clauses of user-message detectors that name it
    (categories' ``detect`` and signals)."""
    triggers_with_follow_ups: tuple[Mapping[int, tuple[frozenset[int], ...]], ...]
    """The same with the categories' ``follow_up`` detectors as well."""
    user_quiet_when_empty: bool
    """Whether no category or signal can match a message with no scores or annotations
    on which the prefilter found no pattern (none is a ``not``, for one)."""
    quiet_protections: tuple[bool, ...]
    quiet_rules: tuple[bool, ...]
    quiet_checks: bool
    """Whether any protection or rule can hold on a quiet user message."""
    eager_redirects: bool
    quiet_conversations: bool
    """Whether a conversation of quiet user messages can be decided without a session:
    quiet messages can be recognised, and neither a rule, a protection nor a redirect
    count can change anything on them."""
    binds: Mapping[str, bool]
    """Per protection and rule: whether its condition refers to the category checked."""
    """Whether a counter counts every redirect in the conversation, so that redirects
    must be matched even when no category was there to redirect."""
    """Per protection and rule: whether it can hold on a quiet user message, one that
    matched no category and no signal (see :func:`_may_hold_when_quiet`)."""


_Clauses: TypeAlias = tuple[frozenset[int], ...] | None
"""When a detector may match: if every pattern of some clause may match (``None``: always)."""

_Needs: TypeAlias = tuple[_Clauses, _Clauses]
"""A detector's clauses for messages without, and with, scores or annotations."""

_MAX_CLAUSES: Final = 64

_PLANS: dict[int, _Plan] = {}


def _plan_for(policy: Policy) -> _Plan:
    """The policy's prefilter plan, built on first use and kept while the policy lives."""
    plan = _PLANS.get(id(policy))
    if plan is None:
        plan = _PLANS[id(policy)] = _build_plan(policy)
        weakref.finalize(policy, _PLANS.pop, id(policy), None)
    return plan


def _build_plan(policy: Policy) -> _Plan:
    configs: list[NormalizationConfig] = []
    user: list[dict[int, re.Pattern[str]]] = []
    assistant: list[dict[int, re.Pattern[str]]] = []

    def slot_of(config: NormalizationConfig) -> int:
        if config not in configs:
            configs.append(config)
            user.append({})
            assistant.append({})
        return configs.index(config)

    def needs(
        detector: Detector | None, into: list[dict[int, re.Pattern[str]]], slot: int
    ) -> _Needs:
        if detector is None:
            return ((), ())  # an absent detector never matches
        into[slot].update((id(pattern), pattern) for pattern in _patterns(detector))
        return (_clauses(detector, metadata=False), _clauses(detector, metadata=True))

    categories: list[tuple[int, _Needs, _Needs]] = []
    for category in policy.categories:
        slot = slot_of(category.normalize)
        needs(category.unless, user, slot)
        categories.append(
            (slot, needs(category.detect, user, slot), needs(category.follow_up, user, slot))
        )
    signals: list[tuple[int, _Needs]] = []
    for signal in policy.signals:
        slot = slot_of(signal.normalize)
        needs(signal.unless, user, slot)
        signals.append((slot, needs(signal.detect, user, slot)))
    redirects: list[tuple[int, _Needs]] = []
    for redirect in policy.redirects:
        slot = slot_of(redirect.normalize)
        redirects.append((slot, needs(redirect.detect, assistant, slot)))
    quiet_protections = tuple(
        _may_hold_when_quiet(protection.when, policy) is not False
        for protection in policy.protections
    )
    quiet_rules = tuple(
        _may_hold_when_quiet(rule.when, policy) is not False for rule in policy.rules
    )
    eager_redirects = any(
        counter.counts is CounterKind.REDIRECTS and counter.per is CounterScope.CONVERSATION
        for counter in policy.counters
    )
    user_quiet_when_empty = all(
        _never_matches_alone(detect) and _never_matches_alone(follow_up)
        for _, detect, follow_up in categories
    ) and all(_never_matches_alone(detect) for _, detect in signals)
    return _Plan(
        configs=tuple(configs),
        user=tuple(_Prefilter(list(found.values())) if found else None for found in user),
        assistant=tuple(
            _Prefilter(list(found.values())) if found else None for found in assistant
        ),
        categories=tuple(categories),
        signals=tuple(signals),
        redirects=tuple(redirects),
        user_slots=tuple(
            sorted({slot for slot, _, _ in categories} | {slot for slot, _ in signals})
        ),
        triggers=_triggers(
            len(configs), [(slot, detect) for slot, detect, _ in categories], signals
        ),
        triggers_with_follow_ups=_triggers(
            len(configs), [(slot, need) for slot, *both in categories for need in both], signals
        ),
        user_quiet_when_empty=user_quiet_when_empty,
        quiet_protections=quiet_protections,
        quiet_rules=quiet_rules,
        quiet_checks=any(quiet_protections) or any(quiet_rules),
        binds={
            **{item.name: binds_category(item.when) for item in policy.protections},
            **{rule.name: binds_category(rule.when) for rule in policy.rules},
        },
        eager_redirects=eager_redirects,
        quiet_conversations=user_quiet_when_empty
        and not (any(quiet_protections) or any(quiet_rules))
        and not eager_redirects,
    )

def _triggers(
    slots: int,
    categories: Sequence[tuple[int, _Needs]],
    signals: Sequence[tuple[int, _Needs]],
) -> tuple[Mapping[int, tuple[frozenset[int], ...]], ...]:
    """Per slot, each clause of each user detector (without metadata), filed under
    every pattern it names: a detector may match only if one of its clauses is
    wholly among the patterns found."""
    found: list[dict[int, dict[frozenset[int], None]]] = [{} for _ in range(slots)]
    detectors = [*categories, *signals]
    for slot, needs in detectors:
        for clause in needs[0] or ():
            for pattern in clause:
                found[slot].setdefault(pattern, {})[clause] = None
    return tuple(
        {pattern: tuple(clauses) for pattern, clauses in by_pattern.items()}
        for by_pattern in found
    )


def _may_hold_when_quiet(condition: Condition, policy: Policy) -> bool | None:
    """Whether ``condition`` holds on a message that matched no category and no signal.

    Three-valued: ``False`` (never), ``True`` (always) or ``None`` (it depends on
    the counts). Signals, categories and severities are then absent, and a count
    keyed by the category being checked is 0; a keyed or conversation-wide count
    may be anything.
    """
    if isinstance(condition, SignalMatched | CategoryIn | SeverityCompare):
        return False
    if isinstance(condition, CounterCompare):
        counter = next((c for c in policy.counters if c.name == condition.counter), None)
        if (
            condition.key is None
            and counter is not None
            and counter.per is not CounterScope.CONVERSATION
        ):
            return compare(0, condition.op, condition.value)
        return None
    if isinstance(condition, NotCondition):
        inner = _may_hold_when_quiet(condition.item, policy)
        return None if inner is None else not inner
    parts = [_may_hold_when_quiet(item, policy) for item in condition.items]
    if isinstance(condition, AllConditions):
        if False in parts:
            return False
        return True if all(part is True for part in parts) else None
    if True in parts:
        return True
    return False if all(part is False for part in parts) else None


def _patterns(detector: Detector) -> list[re.Pattern[str]]:
    if isinstance(detector, Keywords | Pattern):
        return [detector.pattern]
    if isinstance(detector, AllOf | AnyOf):
        return [pattern for item in detector.items for pattern in _patterns(item)]
    if isinstance(detector, Not):
        return _patterns(detector.item)
    return []


def _clauses(detector: Detector, *, metadata: bool) -> _Clauses:
    """The sets of patterns of which all must match for ``detector`` to match.

    ``detector`` can match only if, for some clause, every pattern in it matches;
    ``None`` means it may match whatever matches (a ``not``, or with ``metadata`` a
    score or an annotation). Without ``metadata`` (a message with no ``scores`` or
    ``annotations``), scores and annotations never match.
    """
    if isinstance(detector, Keywords | Pattern):
        return (frozenset([id(detector.pattern)]),)
    if isinstance(detector, Score | Annotation):
        return None if metadata else ()
    if isinstance(detector, Not):
        return None
    parts = [_clauses(item, metadata=metadata) for item in detector.items]
    if isinstance(detector, AnyOf):
        if any(part is None for part in parts):
            return None
        return tuple(clause for part in parts if part is not None for clause in part)
    combined: tuple[frozenset[int], ...] = (frozenset(),)
    for part in parts:
        if part is None:
            continue  # may be true: constrains nothing
        combined = tuple(left | right for left in combined for right in part)
        if len(combined) > _MAX_CLAUSES:
            return None
    return combined


def _never_matches_alone(needs: _Needs) -> bool:
    """Whether a detector needs some pattern to match, on a message without metadata."""
    plain = needs[0]
    return plain is not None and frozenset() not in plain


def _may_match_any(plan: _Plan, texts: _Normalized, *, follow_ups: bool) -> bool:
    """Whether some category or signal may match a message without metadata.

    Looks only at the clauses that name a pattern the prefilter found (with
    ``plan.user_quiet_when_empty``, every clause names one). ``follow_ups`` says
    whether follow-up detectors count: only while some category is redirected.
    """
    for slot in plan.user_slots:
        present = texts.present(slot)
        if present is None:
            return True
        triggers = (plan.triggers_with_follow_ups if follow_ups else plan.triggers)[slot]
        for pattern in present:
            for clause in triggers.get(pattern, ()):
                if clause <= present:
                    return True
    return False


def _is_quiet(plan: _Plan, message: MessageLike) -> bool:
    """Whether a user message certainly matches no category and no signal, in a
    conversation where nothing has matched before it (so no follow-up applies)."""
    if not plan.user_quiet_when_empty or _has_detector_metadata(message.metadata):
        return False
    # The hot path of a batch run: one normalization and one set match per slot.
    for slot in plan.user_slots:
        prefilter = plan.user[slot]
        if prefilter is None:
            return False
        present = prefilter.present(normalize(message.content, plan.configs[slot]).text)
        if present:
            triggers = plan.triggers[slot]
            for pattern in present:
                for clause in triggers.get(pattern, ()):
                    if clause <= present:
                        return False
    return True


def _has_detector_metadata(metadata: Mapping[str, object]) -> bool:
    """Whether a message carries what score or annotation detectors read."""
    return bool(metadata) and ("scores" in metadata or "annotations" in metadata)


def _may_match(needs: _Needs, present: frozenset[int] | None, metadata: bool) -> bool:
    """Whether a detector can match, given the patterns the prefilter left ``present``."""
    clauses = needs[1] if metadata else needs[0]
    if clauses is None or present is None:
        return True
    return any(clause <= present for clause in clauses)


def _keys(counter: Counter, categories: Sequence[Category], *, always: bool) -> list[str | None]:
    """The counter keys one turn increments: one per category, per severity, or once."""
    if counter.per is CounterScope.CONVERSATION:
        return [None] if (categories or always) else []
    if counter.per is CounterScope.CATEGORY:
        return [category.name for category in categories]
    seen: list[str | None] = []
    for category in categories:
        label = category.severity.label
        if label not in seen:
            seen.append(label)
    return seen


def binds_category(condition: Condition) -> bool:
    """Whether a condition refers to the category being checked.

    A condition that does not (a signal alone, a keyed or conversation-wide
    counter) is checked once per message, and its event names no category.
    """
    if isinstance(condition, SeverityCompare | CategoryIn):
        return True
    if isinstance(condition, CounterCompare):
        return condition.key is None
    if isinstance(condition, AllConditions | AnyCondition):
        return any(binds_category(item) for item in condition.items)
    if isinstance(condition, NotCondition):
        return binds_category(condition.item)
    return False


def _signal_names(condition: Condition) -> list[str]:
    if isinstance(condition, SignalMatched):
        return [condition.name]
    if isinstance(condition, AllConditions | AnyCondition):
        return [name for item in condition.items for name in _signal_names(item)]
    if isinstance(condition, NotCondition):
        return []
    return []


def _match_declaration(
    detect: Detector,
    unless: Detector | None,
    index: int,
    text: NormalizedText,
    metadata: Mapping[str, object],
    source: str,
    present: frozenset[int] | None = None,
) -> list[Evidence] | None:
    """Match a category or signal, honouring its ``unless`` exclusions.

    Text an exclusion matches is masked: a detector match lying wholly inside it
    does not count ("kill the process" hides "kill"). An exclusion that matches
    without text (a score or an annotation) suppresses the declaration for the
    whole message.
    """
    prepared = _MatchInput(index, text, metadata, present=present)
    if unless is not None:
        excluded = _detect(unless, prepared, source)
        if excluded is not None:
            spans = tuple(
                (item.start, item.end)
                for item in excluded
                if item.start is not None and item.end is not None
            )
            if not spans:
                return None
            prepared.masked = spans
    return _detect(detect, prepared, source)
