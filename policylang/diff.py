"""What a policy change does to real traffic: two policies over the same transcripts.

Each conversation branch is evaluated by the old and the new policy, and the pair of
decisions is classified (:func:`classify`) into one change kind. A :class:`DiffReport`
accumulates counts and the first examples of each kind, renders them for humans or as
a versioned JSON document, and checks change budgets (``--fail-if-changed``).
"""

from __future__ import annotations

import collections
import json
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from policylang.runtime import Decision, Outcome, Policy, PolicyInfo
from policylang.transcripts import RecordError, RecordResult

__all__ = [
    "ANY",
    "CHANGE_KINDS",
    "JSON_FORMAT",
    "JSON_VERSION",
    "UNCHANGED",
    "Budget",
    "DiffExample",
    "DiffReport",
    "classify",
    "exceeded_budgets",
    "parse_budget",
]

JSON_FORMAT: Final = "policylang-diff"
"""The ``format`` of the JSON document."""

JSON_VERSION: Final = 1
"""The ``version`` of the JSON document; raised when a field changes meaning."""

UNCHANGED: Final = "unchanged"
"""The kind of a branch both policies decide alike."""

CHANGE_KINDS: Final[tuple[str, ...]] = (
    "newly_ended",
    "no_longer_ended",
    "ended_earlier",
    "ended_later",
    "outcome_changed",
    "rule_changed",
)
"""Every change kind, in report order."""

DESCRIPTIONS: Final[dict[str, str]] = {
    "newly_ended": "the old policy did not end, the new one ends",
    "no_longer_ended": "the old policy ended, the new one does not",
    "ended_earlier": "both end, the new one at an earlier message",
    "ended_later": "both end, the new one at a later message",
    "outcome_changed": "no end change; another outcome, message index, reason or text",
    "rule_changed": "same outcome at the same message, decided by another rule",
}
"""One line per change kind, for the human report and usage hints."""

ANY: Final = "any"
"""The budget kind that counts every change."""


def classify(old: Decision, new: Decision) -> str:
    """The change kind from ``old`` to ``new`` (one of :data:`CHANGE_KINDS`) or ``unchanged``.

    Ends come first: a branch one policy ends and the other does not is newly or no
    longer ended; two ends at different messages ended earlier or later. Otherwise a
    different outcome, deciding message or wording is ``outcome_changed``, and the same
    outcome at the same message with the same wording but another rule is ``rule_changed``.
    """
    old_end = old.outcome is Outcome.END
    new_end = new.outcome is Outcome.END
    if new_end and not old_end:
        return "newly_ended"
    if old_end and not new_end:
        return "no_longer_ended"
    if old_end and new_end and old.message_index != new.message_index:
        assert old.message_index is not None and new.message_index is not None
        return "ended_earlier" if new.message_index < old.message_index else "ended_later"
    if (old.outcome, old.message_index, old.reason, old.message) != (
        new.outcome,
        new.message_index,
        new.reason,
        new.message,
    ):
        return "outcome_changed"
    if old.rule != new.rule:
        return "rule_changed"
    return UNCHANGED


def _side(decision: Decision) -> dict[str, object]:
    return {
        "outcome": decision.outcome.value,
        "rule": decision.rule,
        "message_index": decision.message_index,
        "reason": decision.reason,
        "message": decision.message,
    }


@dataclass(frozen=True, slots=True)
class DiffExample:
    """One changed branch: where it is, both decisions, and the evidence that decided."""

    kind: str
    conversation_id: str
    branch: str
    file: str
    line: int
    index: int | None
    old: dict[str, object]
    new: dict[str, object]
    evidence: tuple[str, ...]
    """Matched text of the new decision's evidence, or of the old one's when it has none."""

    @property
    def location(self) -> str:
        """``file:line``, or ``file:line[index]`` for an element of a JSON array file."""
        where = f"{self.file}:{self.line}"
        return where if self.index is None else f"{where}[{self.index}]"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary (see docs/cli.md, ``## diff``)."""
        return {
            "conversation_id": self.conversation_id,
            "branch": self.branch,
            "file": self.file,
            "line": self.line,
            "index": self.index,
            "old": self.old,
            "new": self.new,
            "evidence": list(self.evidence),
        }


def _evidence(old: Decision, new: Decision) -> tuple[str, ...]:
    for decision in (new, old):
        texts = tuple(item.text for item in decision.evidence if item.text)
        if texts:
            return texts
    return ()


def _counter() -> collections.Counter[str]:
    return collections.Counter()


@dataclass(slots=True)
class DiffReport:
    """Counts and examples of the changes from ``old`` to ``new`` over some transcripts."""

    old: PolicyInfo
    new: PolicyInfo
    old_path: str = ""
    new_path: str = ""
    examples_per_kind: int = 5
    records: int = 0
    """Records read: valid conversations plus invalid records."""
    conversations: int = 0
    """Valid conversations compared."""
    branches: int = 0
    """Branch decision pairs compared (one per conversation without branches)."""
    invalid: int = 0
    counts: collections.Counter[str] = field(default_factory=_counter)
    examples: dict[str, list[DiffExample]] = field(default_factory=dict)

    def add_pair(
        self,
        old: Decision,
        new: Decision,
        *,
        file: str,
        line: int,
        index: int | None = None,
        branch: str = "",
    ) -> str:
        """Count one branch's decision pair and keep it as an example if there is room."""
        kind = classify(old, new)
        self.branches += 1
        self.counts[kind] += 1
        if kind != UNCHANGED:
            kept = self.examples.setdefault(kind, [])
            if len(kept) < self.examples_per_kind:
                kept.append(
                    DiffExample(
                        kind=kind,
                        conversation_id=new.conversation_id,
                        branch=branch,
                        file=file,
                        line=line,
                        index=index,
                        old=_side(old),
                        new=_side(new),
                        evidence=_evidence(old, new),
                    )
                )
        return kind

    def add_records(
        self,
        old: Policy,
        new: Policy,
        results: Iterable[RecordResult],
        errors: list[RecordError] | None = None,
    ) -> list[RecordError]:
        """Evaluate every branch of each record with both policies; return the invalid records.

        Invalid records are counted in :attr:`invalid` and appended, in order, to
        ``errors`` (a new list when it is not given), which is returned for the caller
        to report. When reading ``results`` raises, the records read until then are
        counted and ``errors`` holds their invalid ones.
        """
        if errors is None:
            errors = []
        for result in results:
            self.records += 1
            if isinstance(result, RecordError):
                self.invalid += 1
                errors.append(result)
                continue
            conversation = result.conversation
            self.conversations += 1
            # The reader has checked the message tree, so paths() does not raise here.
            for branch, indices in conversation.paths():
                messages = [conversation.messages[i] for i in indices]
                self.add_pair(
                    old.evaluate(messages, conversation.id),
                    new.evaluate(messages, conversation.id),
                    file=result.file,
                    line=result.line,
                    index=result.index,
                    branch=branch,
                )
        return errors

    @property
    def changed(self) -> int:
        """Branches with any change."""
        return self.branches - self.counts[UNCHANGED]

    def count(self, kind: str) -> int:
        """Branches of change ``kind`` (``any`` for every change)."""
        return self.changed if kind == ANY else self.counts[kind]

    def rate(self, kind: str) -> float:
        """:meth:`count` as a share of every branch compared (0 when none was)."""
        return self.count(kind) / self.branches if self.branches else 0.0

    def to_json(self) -> dict[str, object]:
        """The versioned JSON document (see docs/cli.md, ``## diff``)."""
        from policylang import __version__

        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "tool": {"name": "policylang", "version": __version__},
            "old": {**self.old.to_json(), "path": self.old_path},
            "new": {**self.new.to_json(), "path": self.new_path},
            "totals": {
                "records": self.records,
                "conversations": self.conversations,
                "branches": self.branches,
                "unchanged": self.counts[UNCHANGED],
                "changed": self.changed,
                "changed_rate": self.rate(ANY),
            },
            "changes": {
                kind: {
                    "count": self.count(kind),
                    "rate": self.rate(kind),
                    "examples": [item.to_json() for item in self.examples.get(kind, [])],
                }
                for kind in CHANGE_KINDS
            },
            "invalid": self.invalid,
        }

    def render_json(self) -> str:
        """:meth:`to_json` as indented JSON text, with a final newline.

        ASCII-only, like every JSON output of policylang, so that it survives any
        encoding and lone surrogates in transcripts do not break it.
        """
        return json.dumps(self.to_json(), indent=2, ensure_ascii=True) + "\n"

    def render_human(self) -> str:
        """A readable report: totals, a table of change kinds, then examples per kind.

        Text from the transcripts is shown on one line, with control, format,
        separator and lone surrogate characters as ``\\uNNNN`` escapes.
        """
        lines = [
            f"old: {_policy_line(self.old, self.old_path)}",
            f"new: {_policy_line(self.new, self.new_path)}",
            "",
            f"{self.records:,} records: {self.conversations:,} conversations"
            f" ({self.branches:,} branches compared) + {self.invalid:,} invalid",
            f"{self.changed:,} changed ({_percent(self.rate(ANY))}),"
            f" {self.counts[UNCHANGED]:,} unchanged",
            "",
        ]
        width = max(len(kind) for kind in CHANGE_KINDS)
        lines.append(f"{'change':<{width}}  {'count':>9}  {'rate':>8}  meaning")
        for kind in CHANGE_KINDS:
            lines.append(
                f"{kind:<{width}}  {self.count(kind):>9,}  {_percent(self.rate(kind)):>8}"
                f"  {DESCRIPTIONS[kind]}"
            )
        for kind in CHANGE_KINDS:
            kept = self.examples.get(kind, [])
            if not kept:
                continue
            shown = f"first {len(kept)} of {self.count(kind):,}"
            lines.extend(["", f"{kind} ({shown}):"])
            for item in kept:
                name = item.conversation_id + (f"@{item.branch}" if item.branch else "")
                lines.append(f"  {_one_line(item.location)}  {_one_line(name)}")
                lines.append(f"    old: {_side_line(item.old)}")
                lines.append(f"    new: {_side_line(item.new)}")
                if item.evidence:
                    quoted = ", ".join(_quoted(text) for text in item.evidence)
                    lines.append(f"    evidence: {quoted}")
        return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """``text`` on one line: control, format, separator and surrogate characters escaped."""
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


def _quoted(text: str) -> str:
    """``text`` as a JSON string literal that keeps printable non-ASCII characters."""
    return _one_line(json.dumps(text, ensure_ascii=False))


def _policy_line(info: PolicyInfo, path: str) -> str:
    where = f" ({path})" if path else ""
    tenants = "".join(
        f" + tenant {link.name}{' ' + link.version if link.version else ''}"
        for link in info.chain
        if link.role == "tenant"
    )
    return _one_line(f"{info.name} {info.version}{where}{tenants} sha256 {info.sha256[:12]}")


def _percent(rate: float, above: float | None = None) -> str:
    """``rate`` as a percentage with two decimals, or as many more as it takes to be true.

    A rate that is not 0 is never shown as ``0.00%``, one below 1 never as
    ``100.00%``, and one above ``above`` never as that rate's own figure.
    """
    value = rate * 100
    for decimals in range(2, 11):
        shown = f"{value:.{decimals}f}"
        if (
            (float(shown) != 0 or value == 0)
            and (float(shown) != 100 or value == 100)
            and (above is None or value <= above * 100 or shown != f"{above * 100:.{decimals}f}")
        ):
            break
    return f"{shown}%"


def _budget_percent(rate: float) -> str:
    """A budget as a percentage, as short as it can be: 0.001 is ``0.1%``."""
    return f"{rate * 100:.10f}".rstrip("0").rstrip(".") + "%"


def _side_line(side: dict[str, object]) -> str:
    text = str(side["outcome"])
    if side["rule"] is not None:
        text += f" by {_one_line(str(side['rule']))}"
    if side["message_index"] is not None:
        text += f" at message {side['message_index']}"
    if side["message"]:
        text += f": {_quoted(str(side['message']))}"
    return text


# ---------------------------------------------------------------- budgets


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``rate`` (a share, 0 to 1) of the branches may have change ``kind``."""

    kind: str
    rate: float
    text: str


def parse_budget(text: str) -> Budget:
    """Parse ``KIND=RATE``, e.g. ``newly_ended=0.001`` or ``newly_ended=0.1%``.

    ``RATE`` is a share from 0 to 1, or a percentage from 0% to 100%. Raises
    ``ValueError`` with a hint.
    """
    kinds = ", ".join((*CHANGE_KINDS, ANY))
    kind, sep, value = text.partition("=")
    kind = kind.strip()
    if not sep or not kind:
        raise ValueError(f"`{text}` is not KIND=RATE (e.g. newly_ended=0.001); kinds: {kinds}")
    if kind not in (*CHANGE_KINDS, ANY):
        raise ValueError(f"unknown change kind `{kind}` in `{text}`; kinds: {kinds}")
    raw = value.strip()
    percent = raw.endswith("%")
    hint = "give a share from 0 to 1 (0.001) or a percentage (0.1%)"
    try:
        number = float(raw[:-1] if percent else raw)
    except ValueError:
        raise ValueError(f"`{raw}` in `{text}` is not a rate; {hint}") from None
    rate = number / 100 if percent else number
    if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate {raw} in `{text}` is out of range; {hint}")
    return Budget(kind, rate, text)


def exceeded_budgets(report: DiffReport, budgets: Sequence[Budget]) -> list[str]:
    """One message per budget the report exceeds (rate strictly above the budget)."""
    messages: list[str] = []
    for budget in budgets:
        rate = report.rate(budget.kind)
        if rate > budget.rate:
            messages.append(
                f"error: {budget.kind} changed {report.count(budget.kind):,} of"
                f" {report.branches:,} branches ({_percent(rate, above=budget.rate)}),"
                f" over the budget of {_budget_percent(budget.rate)} ({budget.text})"
            )
    return messages
