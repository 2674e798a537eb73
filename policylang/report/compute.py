"""Compute a :class:`~policylang.report.model.Report`: one streaming pass per corpus.

Only aggregates are kept while reading: counters, histograms, the ids behind each
agreement measure, and at most ``examples`` example decisions per outcome (with the
conversation they were made on). Memory does not grow with the number of
conversations beyond those id lists.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from policylang.report.labels import (
    AUTO,
    GoldLabel,
    Labels,
    corpus_name,
    discover_labels,
    read_labels,
)
from policylang.report.model import (
    GOLD_LABELS,
    OUTCOMES,
    Agreement,
    Breakdown,
    Budget,
    CorpusReport,
    EventItem,
    EvidenceItem,
    Example,
    ExampleMessage,
    GoldRow,
    Histogram,
    InvalidRecord,
    LabelSource,
    PolicySummary,
    Report,
    ReportError,
    Verdict,
    rate,
)
from policylang.runtime import Decision, Outcome, Policy
from policylang.transcripts import STDIN, Conversation, Record, RecordError, iter_records

__all__ = [
    "DEFAULT_EXAMPLES",
    "LATE_AFTER_USER_TURNS",
    "MAX_IDS_LISTED",
    "MAX_INVALID_LISTED",
    "ReportError",
    "build_report",
    "judge",
]

DEFAULT_EXAMPLES: Final = 5
"""Example decisions kept per outcome and corpus, unless told otherwise."""

LATE_AFTER_USER_TURNS: Final = 2
"""An end is still *matched* up to this many user turns after ``end_at``."""

MAX_INVALID_LISTED: Final = 100
"""Invalid records listed (with file and line) per corpus; all are counted."""

MAX_IDS_LISTED: Final = 100
"""Unused label ids listed; all are counted."""

BENIGN_SOURCE: Final = "--benign"
"""The ``source`` of the ``continue`` label a benign corpus gives its rows."""

_PROBLEMS: Final[frozenset[str]] = frozenset(
    {"premature", "late", "missed", "false_end", "protection_failure"}
)


# ---------------------------------------------------------------- gold matching


def _user_turns(conversation: Conversation, after: int, upto: int) -> int:
    """User messages with an index in ``(after, upto]``."""
    return sum(
        1
        for index, message in enumerate(conversation.messages)
        if after < index <= upto and message.role == "user"
    )


def judge(
    label: str, end_at: int | None, conversation: Conversation, decision: Decision
) -> Verdict:
    """How a decision fares against a gold label (see :class:`Agreement`)."""
    ended = decision.outcome is Outcome.END and decision.message_index is not None
    if label in ("end", "user_request"):
        if not ended:
            return "missed"
        assert decision.message_index is not None and end_at is not None
        if decision.message_index < end_at:
            return "premature"
        late = _user_turns(conversation, end_at, decision.message_index)
        return "matched" if late <= LATE_AFTER_USER_TURNS else "late"
    if label == "crisis":
        return "protection_failure" if ended else "correct"
    return "false_end" if ended else "correct"


# ---------------------------------------------------------------- one corpus


@dataclass(slots=True)
class _Agreeing:
    labelled: int = 0
    unlabelled: int = 0
    confusion: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: {label: collections.Counter() for label in GOLD_LABELS}
    )
    ids: dict[str, list[str]] = field(
        default_factory=lambda: {
            verdict: []
            for verdict in (
                "matched",
                "premature",
                "late",
                "missed",
                "false_end",
                "protection_failure",
            )
        }
    )

    def finish(self, benign: bool) -> Agreement:
        return Agreement(
            labelled=self.labelled,
            unlabelled=self.unlabelled,
            benign=benign,
            confusion={
                label: {outcome: self.confusion[label][outcome] for outcome in OUTCOMES}
                for label in GOLD_LABELS
            },
            matched=tuple(self.ids["matched"]),
            premature=tuple(self.ids["premature"]),
            late=tuple(self.ids["late"]),
            missed=tuple(self.ids["missed"]),
            false_ends=tuple(self.ids["false_end"]),
            protection_failures=tuple(self.ids["protection_failure"]),
        )


class _Anchors:
    """Fragment identifiers, unique within a report."""

    _UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]+")

    def __init__(self) -> None:
        self._used: set[str] = set()

    def new(self, corpus: str, conversation_id: str) -> str:
        base = "ex-" + self._UNSAFE.sub("-", f"{corpus}-{conversation_id}").strip("-")[:80]
        anchor, number = base, 1
        while anchor in self._used:
            number += 1
            anchor = f"{base}-{number}"
        self._used.add(anchor)
        return anchor


class _Corpus:
    """The running aggregates of one corpus."""

    def __init__(
        self,
        name: str,
        path: str,
        labels: Labels,
        *,
        benign: bool,
        examples: int,
        anchors: _Anchors,
        seen_labels: set[str],
    ) -> None:
        self.name = name
        self.path = path
        self.labels = labels
        self.benign = benign
        self.examples = examples
        self.anchors = anchors
        self.seen_labels = seen_labels
        self.conversations = 0
        self.messages = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.rules: dict[str, collections.Counter[str]] = {}
        self.categories: dict[str, collections.Counter[str]] = {}
        self.blocked = 0
        self.end_index: collections.Counter[int] = collections.Counter()
        self.end_turn: collections.Counter[int] = collections.Counter()
        self.invalid = 0
        self.invalid_records: list[InvalidRecord] = []
        self.agreeing = _Agreeing()
        # Example candidates by outcome, then by priority: 0 disagrees with its gold
        # label, 1 had an end blocked by a protection, 2 anything else.
        self.candidates: dict[str, tuple[list[Example], ...]] = {
            outcome: ([], [], []) for outcome in OUTCOMES
        }

    # -- records

    def error(self, error: RecordError) -> None:
        self.invalid += 1
        if len(self.invalid_records) < MAX_INVALID_LISTED:
            self.invalid_records.append(
                InvalidRecord(error.file, error.line, error.column, error.code, error.reason)
            )

    def add(self, record: Record, decision: Decision) -> None:
        conversation = record.conversation
        outcome = decision.outcome.value
        self.conversations += 1
        self.messages += len(conversation.messages)
        self.outcomes[outcome] += 1
        if decision.outcome is not Outcome.CONTINUE:
            if decision.rule is not None:
                self.rules.setdefault(decision.rule, collections.Counter())[outcome] += 1
            if decision.category is not None:
                self.categories.setdefault(decision.category, collections.Counter())[outcome] += 1
        blocked = any(event.blocked for event in decision.events)
        if blocked:
            self.blocked += 1
        user_turn = None
        if decision.message_index is not None:
            user_turn = _user_turns(conversation, -1, decision.message_index)
        if decision.outcome is Outcome.END and decision.message_index is not None:
            self.end_index[decision.message_index] += 1
            self.end_turn[user_turn or 0] += 1

        gold = self._gold(conversation, decision)
        if gold is None:
            priority = 1 if blocked else 2
        else:
            priority = 0 if gold.verdict in _PROBLEMS else 1 if blocked else 2
        bucket = self.candidates[outcome][priority]
        if len(bucket) < self.examples:
            bucket.append(self._example(record, decision, user_turn, gold))

    def _gold(self, conversation: Conversation, decision: Decision) -> GoldRow | None:
        found: GoldLabel | None = self.labels.get(conversation.id)
        if found is not None:
            self.seen_labels.add(conversation.id)
            label, end_at, source = found.label, found.end_at, found.source
        elif self.benign:
            label, end_at, source = "continue", None, BENIGN_SOURCE
        else:
            self.agreeing.unlabelled += 1
            return None
        verdict = judge(label, end_at, conversation, decision)
        self.agreeing.labelled += 1
        self.agreeing.confusion[label][decision.outcome.value] += 1
        if verdict != "correct":
            self.agreeing.ids[verdict].append(conversation.id)
        return GoldRow(label, end_at, verdict, source)

    def _example(
        self, record: Record, decision: Decision, user_turn: int | None, gold: GoldRow | None
    ) -> Example:
        conversation = record.conversation
        return Example(
            anchor=self.anchors.new(self.name, conversation.id),
            conversation_id=conversation.id,
            file=record.file,
            line=record.line,
            outcome=decision.outcome.value,
            message_index=decision.message_index,
            user_turn=user_turn,
            rule=decision.rule,
            category=decision.category,
            reason=decision.reason,
            message=decision.message,
            evidence=tuple(
                EvidenceItem(
                    item.message_index,
                    item.source,
                    item.detector,
                    item.line,
                    item.column,
                    item.start,
                    item.end,
                    item.text,
                    item.score,
                )
                for item in decision.evidence
            ),
            events=tuple(
                EventItem(
                    event.message_index,
                    event.outcome.value,
                    event.kind,
                    event.rule,
                    event.category,
                    event.reason,
                    tuple(event.blocked),
                )
                for event in decision.events
            ),
            messages=tuple(
                ExampleMessage(message.role, message.content) for message in conversation.messages
            ),
            post_termination=tuple(decision.post_termination),
            gold=gold,
        )

    # -- result

    def finish(
        self, read_error: str | None, max_end_rate: float | None, label_files: Sequence[str]
    ) -> CorpusReport:
        labelled = self.benign or self.agreeing.labelled > 0
        ended = self.outcomes["end"]
        return CorpusReport(
            name=self.name,
            path=self.path,
            conversations=self.conversations,
            messages=self.messages,
            outcomes={outcome: self.outcomes[outcome] for outcome in OUTCOMES},
            rules=_breakdown(self.rules),
            categories=_breakdown(self.categories),
            blocked_ends=self.blocked,
            end_message_index=Histogram(tuple(sorted(self.end_index.items()))),
            end_user_turn=Histogram(tuple(sorted(self.end_turn.items()))),
            examples={
                outcome: tuple(
                    [item for bucket in self.candidates[outcome] for item in bucket][
                        : self.examples
                    ]
                )
                for outcome in OUTCOMES
            },
            invalid=self.invalid,
            invalid_records=tuple(self.invalid_records),
            read_error=read_error,
            agreement=self.agreeing.finish(self.benign) if labelled else None,
            budget=(
                None
                if max_end_rate is None
                else Budget(max_end_rate, rate(ended, self.conversations))
            ),
            label_files=tuple(label_files),
        )


def _breakdown(table: Mapping[str, collections.Counter[str]]) -> tuple[Breakdown, ...]:
    rows = [
        Breakdown(name, {outcome: counts[outcome] for outcome in OUTCOMES[:-1]})
        for name, counts in table.items()
    ]
    # Most conversations first; ties by name, so the order is deterministic.
    rows.sort(key=lambda row: (-row.total, row.name))
    return tuple(rows)


# ---------------------------------------------------------------- the report


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _check_names(
    corpora: Sequence[str], benign: Collection[str], max_end_rates: Mapping[str, float]
) -> list[str]:
    names: list[str] = []
    owner: dict[str, str] = {}
    for path in corpora:
        name = corpus_name(path)
        if name in owner:
            raise ReportError(
                f"two corpora are named `{name}` ({owner[name]} and {path}); "
                "corpus names (file names without .jsonl and .gz) must differ"
            )
        owner[name] = path
        names.append(name)
    known = ", ".join(names) or "none"
    for name in benign:
        if name not in owner:
            raise ReportError(f"--benign `{name}` is not one of the corpora ({known})")
    for name, value in max_end_rates.items():
        if name not in owner:
            raise ReportError(f"--max-end-rate `{name}` is not one of the corpora ({known})")
        if not 0.0 <= value <= 1.0:
            raise ReportError(f"--max-end-rate for `{name}` should be between 0 and 1")
    return names


def build_report(
    policy: Policy,
    corpora: Sequence[str],
    *,
    labels: Sequence[str] = (),
    benign: Collection[str] = (),
    max_end_rates: Mapping[str, float] | None = None,
    examples: int = DEFAULT_EXAMPLES,
    tool_version: str | None = None,
) -> Report:
    """Run ``policy`` over every corpus and measure what it does.

    ``corpora`` are transcript files (plain or gzip JSONL; ``-`` for stdin), each
    read once, streaming. ``labels`` are gold label files, or ``"auto"`` for
    ``gold/<corpus>.jsonl`` beside each corpus; they are matched to conversations by
    id. ``benign`` names corpora whose unlabelled conversations all count as
    ``continue``. ``max_end_rates`` maps corpus names to the largest share of
    conversations they may see ended (a fraction). ``examples`` is how many example
    decisions to keep per outcome and corpus.

    Nothing is printed. Raises :class:`ReportError` for an unknown or ambiguous
    corpus name, and :class:`LabelError` (a subclass) for a label file that cannot
    be read or is malformed. A corpus that cannot be read is reported in its
    ``read_error`` and the others are still measured.
    """
    if examples < 0:
        raise ReportError("examples should be 0 or more")
    rates = dict(max_end_rates or {})
    names = _check_names(corpora, benign, rates)

    gold = Labels()
    sources: list[LabelSource] = []
    read: set[str] = set()

    def load(path: str, auto: bool) -> None:
        key = os.path.normcase(os.path.realpath(path))
        if key in read:
            return
        read.add(key)
        rows = gold.add(read_labels(path))
        sources.append(LabelSource(path, rows, auto))

    auto_files: dict[str, list[str]] = {name: [] for name in names}
    explicit = [item for item in labels if item != AUTO]
    for path in explicit:
        load(path, auto=False)
    if AUTO in labels:
        for path, name in zip(corpora, names, strict=True):
            found = discover_labels(path)
            if found is not None:
                load(found, auto=True)
                auto_files[name].append(found)

    if tool_version is None:
        from policylang import __version__

        tool_version = __version__

    anchors = _Anchors()
    seen: set[str] = set()
    reports: list[CorpusReport] = []
    for path, name in zip(corpora, names, strict=True):
        corpus = _Corpus(
            name,
            STDIN if path == STDIN else path,
            gold,
            benign=name in benign,
            examples=examples,
            anchors=anchors,
            seen_labels=seen,
        )
        read_error: str | None = None
        try:
            for result in iter_records(path):
                if isinstance(result, RecordError):
                    corpus.error(result)
                    continue
                conversation = result.conversation
                corpus.add(result, policy.evaluate(conversation.messages, conversation.id))
        except OSError as exc:
            read_error = _describe(exc)
        reports.append(corpus.finish(read_error, rates.get(name), auto_files[name]))

    unused = [label_id for label_id in gold.ids() if label_id not in seen]
    return Report(
        tool_version=tool_version,
        policy=PolicySummary(
            policy.name, policy.version, policy.source_sha256, policy.source_path, policy.chain
        ),
        examples_per_outcome=examples,
        label_sources=tuple(sources),
        benign=tuple(name for name in names if name in benign),
        corpora=tuple(reports),
        unused_labels=len(unused),
        unused_label_ids=tuple(unused[:MAX_IDS_LISTED]),
    )
