"""The data of a report: plain dataclasses, and their JSON form (format version 1).

Everything a renderer needs is here, already computed: counts, rates, histograms,
the agreement with gold labels and the example decisions. Renderers only format.
The JSON form is documented by ``docs/schemas/report.schema.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from policylang.runtime import PolicyLink

REPORT_FORMAT: Final = "policylang-report"
"""The ``format`` field of the JSON document."""

REPORT_VERSION: Final = 1
"""The ``version`` field of the JSON document; incremented on incompatible changes."""

OUTCOMES: Final = ("end", "escalate", "warn", "continue")
"""Policy outcomes, most serious first: the order of every table and JSON object."""

GOLD_LABELS: Final = ("end", "user_request", "crisis", "continue")
"""Gold labels, in the order of the confusion table."""

OutcomeName: TypeAlias = Literal["end", "escalate", "warn", "continue"]
GoldLabelName: TypeAlias = Literal["end", "user_request", "crisis", "continue"]
Verdict: TypeAlias = Literal[
    "matched", "premature", "late", "missed", "false_end", "protection_failure", "correct"
]
"""How one labelled conversation fared: the first four for ``end``/``user_request``
rows, ``false_end`` or ``correct`` for ``continue`` rows, ``protection_failure`` or
``correct`` for ``crisis`` rows."""


class ReportError(ValueError):
    """The report cannot be made as asked: an unknown corpus name, a bad label file..."""


def rate(count: int, total: int) -> float:
    """``count / total``, and 0.0 for an empty corpus."""
    return count / total if total else 0.0


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """Which policy the report is about."""

    name: str
    version: str
    sha256: str
    path: str
    chain: tuple[PolicyLink, ...] = ()

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary (``chain`` only for a composed policy)."""
        out: dict[str, object] = {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "path": self.path,
        }
        if self.chain:
            out["chain"] = [link.to_json() for link in self.chain]
        return out


@dataclass(frozen=True, slots=True)
class LabelSource:
    """A gold label file that was read, and how many rows it gave."""

    path: str
    rows: int
    auto: bool
    """Found by ``--labels auto`` beside a corpus (rather than named explicitly)."""

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {"path": self.path, "rows": self.rows, "auto": self.auto}


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A transcript line that could not be read as a conversation."""

    file: str
    line: int
    column: int
    code: str
    message: str

    def located(self) -> str:
        """``path:line:col: error[PL8nn] message``, as ``policylang check`` prints it."""
        return f"{self.file}:{self.line}:{self.column}: error[{self.code}] {self.message}"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Conversations decided by one rule (or for one category), by outcome."""

    name: str
    counts: Mapping[str, int]
    """Outcome name to count; every outcome but ``continue`` is present."""

    @property
    def total(self) -> int:
        """All conversations counted in this row."""
        return sum(self.counts.values())

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "name": self.name,
            "total": self.total,
            "counts": {name: self.counts.get(name, 0) for name in OUTCOMES[:-1]},
        }


@dataclass(frozen=True, slots=True)
class Histogram:
    """How many conversations took each integer value (only values that occur)."""

    counts: tuple[tuple[int, int], ...]
    """``(value, count)`` pairs, sorted by value."""

    @property
    def total(self) -> int:
        """How many conversations were counted."""
        return sum(count for _, count in self.counts)

    def to_json(self) -> list[dict[str, int]]:
        """A JSON-ready list."""
        return [{"value": value, "count": count} for value, count in self.counts]


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One detector match behind a decision (see ``policylang.runtime.Evidence``)."""

    message_index: int
    source: str
    detector: str
    line: int
    column: int
    start: int | None
    end: int | None
    text: str | None
    score: float | None

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


@dataclass(frozen=True, slots=True)
class EventItem:
    """A rule or protection that fired in an example conversation."""

    message_index: int
    outcome: str
    kind: str
    rule: str
    category: str | None
    reason: str
    blocked: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "message_index": self.message_index,
            "outcome": self.outcome,
            "kind": self.kind,
            "rule": self.rule,
            "category": self.category,
            "reason": self.reason,
            "blocked": list(self.blocked),
        }


@dataclass(frozen=True, slots=True)
class ExampleMessage:
    """A message of an example conversation, as it was in the transcript."""

    role: str
    content: str

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class GoldRow:
    """The gold label of a conversation and how the policy fared against it."""

    label: str
    end_at: int | None
    verdict: Verdict
    source: str
    """Where the label came from: ``path:line`` of a label file, or ``--benign``."""

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "label": self.label,
            "end_at": self.end_at,
            "verdict": self.verdict,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Example:
    """One example decision, with the conversation it was made on."""

    anchor: str
    """A fragment identifier unique within the report (``#anchor`` in the HTML)."""
    conversation_id: str
    file: str
    line: int
    outcome: str
    message_index: int | None
    user_turn: int | None
    rule: str | None
    category: str | None
    reason: str | None
    message: str | None
    evidence: tuple[EvidenceItem, ...]
    events: tuple[EventItem, ...]
    messages: tuple[ExampleMessage, ...]
    post_termination: tuple[int, ...]
    gold: GoldRow | None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "anchor": self.anchor,
            "conversation_id": self.conversation_id,
            "file": self.file,
            "line": self.line,
            "outcome": self.outcome,
            "message_index": self.message_index,
            "user_turn": self.user_turn,
            "rule": self.rule,
            "category": self.category,
            "reason": self.reason,
            "message": self.message,
            "evidence": [item.to_json() for item in self.evidence],
            "events": [item.to_json() for item in self.events],
            "messages": [item.to_json() for item in self.messages],
            "post_termination_messages": list(self.post_termination),
            "gold": None if self.gold is None else self.gold.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Agreement:
    """How a corpus's decisions agree with its gold labels.

    ``end_rows`` are the ``end`` and ``user_request`` rows. One of them is *matched*
    when the policy ends at ``end_at`` or within the next two user turns after it,
    *premature* when it ends before ``end_at``, *late* when it ends more than two user
    turns after it, and *missed* when it does not end. An end on a ``continue`` row
    is a *false end*, an end on a ``crisis`` row a *protection failure*.
    """

    labelled: int
    unlabelled: int
    benign: bool
    """The corpus was given with ``--benign``: unlabelled rows count as ``continue``."""
    confusion: Mapping[str, Mapping[str, int]]
    """Gold label to policy outcome to count; every label and outcome is present."""
    matched: tuple[str, ...]
    premature: tuple[str, ...]
    late: tuple[str, ...]
    missed: tuple[str, ...]
    false_ends: tuple[str, ...]
    protection_failures: tuple[str, ...]

    def rows(self, label: str) -> int:
        """How many labelled conversations carry ``label``."""
        return sum(self.confusion.get(label, {}).values())

    @property
    def end_rows(self) -> int:
        """Rows labelled ``end`` or ``user_request``."""
        return self.rows("end") + self.rows("user_request")

    @property
    def recall(self) -> float | None:
        """Matched end rows over all end rows; ``None`` when there are none."""
        return len(self.matched) / self.end_rows if self.end_rows else None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "labelled": self.labelled,
            "unlabelled": self.unlabelled,
            "benign": self.benign,
            "confusion": {
                label: {outcome: self.confusion[label][outcome] for outcome in OUTCOMES}
                for label in GOLD_LABELS
            },
            "end_rows": self.end_rows,
            "continue_rows": self.rows("continue"),
            "crisis_rows": self.rows("crisis"),
            "end_recall": self.recall,
            "matched": list(self.matched),
            "premature": list(self.premature),
            "late": list(self.late),
            "missed": list(self.missed),
            "false_ends": list(self.false_ends),
            "protection_failures": list(self.protection_failures),
        }


@dataclass(frozen=True, slots=True)
class Budget:
    """A corpus's end-rate budget (``--max-end-rate``) and whether it held."""

    max_end_rate: float
    end_rate: float

    @property
    def exceeded(self) -> bool:
        """The corpus was ended more often than the budget allows."""
        return self.end_rate > self.max_end_rate

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "max_end_rate": self.max_end_rate,
            "end_rate": self.end_rate,
            "exceeded": self.exceeded,
        }


@dataclass(frozen=True, slots=True)
class CorpusReport:
    """Everything measured on one corpus file."""

    name: str
    """The file name without ``.gz`` and ``.jsonl`` (``hh-benign-dev``)."""
    path: str
    conversations: int
    messages: int
    outcomes: Mapping[str, int]
    """Outcome name to count; every outcome is present."""
    rules: tuple[Breakdown, ...]
    """The rule or protection that decided each non-``continue`` conversation."""
    categories: tuple[Breakdown, ...]
    """The category each non-``continue`` decision was made for (when it has one)."""
    blocked_ends: int
    """Conversations in which an end rule held but a protection stopped it."""
    end_message_index: Histogram
    """The message index (0-based) at which ended conversations were ended."""
    end_user_turn: Histogram
    """The user turn (1-based: the n-th user message) at which they were ended."""
    examples: Mapping[str, tuple[Example, ...]]
    """Outcome name to example decisions; every outcome is present."""
    invalid: int
    invalid_records: tuple[InvalidRecord, ...]
    """The first invalid records (at most ``MAX_INVALID_LISTED``); ``invalid`` counts all."""
    read_error: str | None
    """Why the file could not be read (to the end), if it could not."""
    agreement: Agreement | None
    budget: Budget | None
    label_files: tuple[str, ...] = ()
    """Label files found for this corpus by ``--labels auto``."""

    def count(self, outcome: str) -> int:
        """Conversations with this outcome."""
        return self.outcomes.get(outcome, 0)

    def rate(self, outcome: str) -> float:
        """Share of the conversations with this outcome."""
        return rate(self.count(outcome), self.conversations)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "name": self.name,
            "path": self.path,
            "conversations": self.conversations,
            "messages": self.messages,
            "outcomes": {name: self.count(name) for name in OUTCOMES},
            "rates": {name: self.rate(name) for name in OUTCOMES},
            "rules": [item.to_json() for item in self.rules],
            "categories": [item.to_json() for item in self.categories],
            "blocked_ends": self.blocked_ends,
            "end_message_index": self.end_message_index.to_json(),
            "end_user_turn": self.end_user_turn.to_json(),
            "examples": {
                name: [item.to_json() for item in self.examples.get(name, ())] for name in OUTCOMES
            },
            "invalid": self.invalid,
            "invalid_records": [item.to_json() for item in self.invalid_records],
            "read_error": self.read_error,
            "label_files": list(self.label_files),
            "agreement": None if self.agreement is None else self.agreement.to_json(),
            "budget": None if self.budget is None else self.budget.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The whole report: the policy, the settings, and one entry per corpus."""

    tool_version: str
    policy: PolicySummary
    examples_per_outcome: int
    label_sources: tuple[LabelSource, ...]
    benign: tuple[str, ...]
    corpora: tuple[CorpusReport, ...]
    unused_labels: int
    """Gold labels whose id matched no conversation in any corpus."""
    unused_label_ids: tuple[str, ...] = field(default_factory=tuple)
    """The first of those ids (at most ``MAX_IDS_LISTED``)."""

    @property
    def over_budget(self) -> tuple[CorpusReport, ...]:
        """Corpora ended more often than their ``--max-end-rate`` allows."""
        return tuple(c for c in self.corpora if c.budget is not None and c.budget.exceeded)

    @property
    def invalid(self) -> int:
        """Invalid records in all corpora."""
        return sum(c.invalid for c in self.corpora)

    @property
    def labelled(self) -> bool:
        """Whether any corpus has gold labels (or was given as benign)."""
        return any(c.agreement is not None for c in self.corpora)

    def to_json(self) -> dict[str, object]:
        """The documented JSON document (``docs/schemas/report.schema.json``)."""
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "tool": {"name": "policylang", "version": self.tool_version},
            "policy": self.policy.to_json(),
            "settings": {
                "examples_per_outcome": self.examples_per_outcome,
                "labels": [item.to_json() for item in self.label_sources],
                "benign": list(self.benign),
            },
            "corpora": [item.to_json() for item in self.corpora],
            "unused_labels": {"count": self.unused_labels, "ids": list(self.unused_label_ids)},
            "over_budget": [item.name for item in self.over_budget],
        }
