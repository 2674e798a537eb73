"""Conformance: did a deployed assistant end conversations where the policy would have?

A transcript logged from a deployed assistant may record that the assistant ended
the conversation: the ``end_conversation`` marker on the assistant message that did
it (see docs/conformance.md for every input format). :func:`compare` sets that
against the policy's :class:`~policylang.runtime.Decision` for the same messages and
says whether they agree, and which user messages the system accepted after its own
end. :class:`ConformanceSummary` counts the results of a whole run.

Positions are message indices of the branch being compared (the messages of one
root-to-leaf path, as :meth:`policylang.transcripts.Conversation.paths` gives them),
the same indices a decision uses.

The policy ends *at a user message*; the system ends *with an assistant message*,
its reply to a user message. The two are the same end when the marked message
answers the user message at which the policy ended: that user message is the last
one before the marked message. Assistant, tool and system messages in between (a
tool call, its result, a closing line) do not change the turn.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from policylang.runtime import Decision, Outcome

__all__ = [
    "Conformance",
    "ConformanceStatus",
    "ConformanceSummary",
    "MarkedMessage",
    "answered_index",
    "compare",
    "system_end_index",
]


class ConformanceStatus(enum.Enum):
    """How the system's end compares with the policy's decision; values are stable JSON strings."""

    AGREE = "agree"
    """Both continue, or both end at the same turn."""
    MISSED_END = "missed_end"
    """The policy ends; the system never did."""
    UNJUSTIFIED_END = "unjustified_end"
    """The system ended; the policy would not have ended at all."""
    ENDED_EARLIER = "ended_earlier"
    """Both end, and the system ended at an earlier turn than the policy."""
    ENDED_LATER = "ended_later"
    """Both end, and the system ended at a later turn than the policy."""


class MarkedMessage(Protocol):
    """What conformance needs from a message: its role and its end marker.

    :class:`policylang.transcripts.Message` satisfies it.
    """

    @property
    def role(self) -> str:
        """``user``, ``assistant``, ``system`` or ``tool``."""
        ...

    @property
    def end_conversation(self) -> bool:
        """Whether the assistant ended the conversation with this message."""
        ...


def system_end_index(messages: Sequence[MarkedMessage]) -> int | None:
    """Index of the first assistant message that carries the end marker, or ``None``.

    The first marker is the system's end; a later one is an end the system should
    never have reached, and the user messages that led to it are post-termination
    messages. A marker on any other role is not an end (the transcript models reject
    it when a record is read).
    """
    for index, message in enumerate(messages):
        if message.end_conversation and message.role == "assistant":
            return index
    return None


def answered_index(messages: Sequence[MarkedMessage], index: int) -> int | None:
    """Index of the user message that the message at ``index`` answers, or ``None``.

    That is the last user message before it; ``None`` when there is none (the
    assistant spoke first).
    """
    for position in range(index - 1, -1, -1):
        if messages[position].role == "user":
            return position
    return None


@dataclass(frozen=True, slots=True)
class Conformance:
    """The system's end set against the policy's decision, for one conversation (or branch)."""

    status: ConformanceStatus
    system_end: int | None
    """Branch message index of the system's end marker (the first one), or ``None``."""
    policy_end: int | None
    """The decision's ``message_index`` when its outcome is ``end``, else ``None``."""
    post_termination: tuple[int, ...]
    """Branch indices of user messages after the system's end, which it should not have taken."""

    @property
    def agrees(self) -> bool:
        """Whether the system and the policy agree."""
        return self.status is ConformanceStatus.AGREE

    def to_json(self) -> dict[str, object]:
        """The documented JSON shape (see docs/conformance.md)."""
        return {
            "status": self.status.value,
            "system_end": self.system_end,
            "policy_end": self.policy_end,
            "post_termination_messages": list(self.post_termination),
        }


def compare(messages: Sequence[MarkedMessage], decision: Decision) -> Conformance:
    """Compare the end recorded in ``messages`` with the policy's ``decision`` for them.

    ``messages`` are the messages of one branch in order, and ``decision`` is what
    the policy decided for exactly those messages (``policy.evaluate(messages)``):
    the policy judges every message, including any the system took after its own
    end. Raises ``ValueError`` when the decision is for a different number of
    messages.
    """
    if decision.messages != len(messages):
        raise ValueError(
            f"the decision is for {decision.messages} messages, but {len(messages)} were given;"
            " compare a branch with the decision the policy made for that branch"
        )
    system_end = system_end_index(messages)
    policy_end = decision.message_index if decision.outcome is Outcome.END else None
    post_termination: tuple[int, ...] = ()
    if system_end is not None:
        post_termination = tuple(
            index
            for index in range(system_end + 1, len(messages))
            if messages[index].role == "user"
        )
    if system_end is None:
        status = ConformanceStatus.AGREE if policy_end is None else ConformanceStatus.MISSED_END
    elif policy_end is None:
        status = ConformanceStatus.UNJUSTIFIED_END
    else:
        answered = answered_index(messages, system_end)
        if answered == policy_end:
            status = ConformanceStatus.AGREE
        elif answered is None or answered < policy_end:
            status = ConformanceStatus.ENDED_EARLIER
        else:
            status = ConformanceStatus.ENDED_LATER
    return Conformance(status, system_end, policy_end, post_termination)


def _zero_counts() -> dict[ConformanceStatus, int]:
    return dict.fromkeys(ConformanceStatus, 0)


@dataclass(slots=True)
class ConformanceSummary:
    """Counts over many comparisons; a branch counts as one conversation.

    Build one per run with :meth:`add`, or one per worker and combine them with
    :meth:`merge`.
    """

    by_status: dict[ConformanceStatus, int] = field(default_factory=_zero_counts)
    """How many conversations have each status (every status is present)."""
    with_post_termination: int = 0
    """Conversations in which the system took user messages after its own end."""
    post_termination_messages: int = 0
    """Those user messages, over all conversations."""

    @property
    def conversations(self) -> int:
        """How many conversations were compared."""
        return sum(self.by_status.values())

    @property
    def disagreements(self) -> int:
        """Conversations whose status is not ``agree``."""
        return self.conversations - self.by_status[ConformanceStatus.AGREE]

    def add(self, conformance: Conformance) -> None:
        """Count one comparison."""
        self.by_status[conformance.status] += 1
        if conformance.post_termination:
            self.with_post_termination += 1
            self.post_termination_messages += len(conformance.post_termination)

    def merge(self, other: ConformanceSummary) -> None:
        """Add every count of ``other`` to this summary."""
        for status, count in other.by_status.items():
            self.by_status[status] += count
        self.with_post_termination += other.with_post_termination
        self.post_termination_messages += other.post_termination_messages

    def to_json(self) -> dict[str, object]:
        """The documented JSON shape (see docs/conformance.md); every status is listed."""
        return {
            "conversations": self.conversations,
            "statuses": {status.value: self.by_status[status] for status in ConformanceStatus},
            "post_termination": {
                "conversations": self.with_post_termination,
                "messages": self.post_termination_messages,
            },
        }

    def lines(self) -> list[str]:
        """The summary for people, one or two lines (see docs/conformance.md)."""
        counts = ", ".join(
            f"{self.by_status[status]} {status.value}" for status in ConformanceStatus
        )
        lines = [f"conformance: {counts}"]
        if self.post_termination_messages:
            messages = self.post_termination_messages
            conversations = self.with_post_termination
            lines.append(
                f"post-termination: {messages} user message{'' if messages == 1 else 's'}"
                f" taken after the system's end, in {conversations}"
                f" conversation{'' if conversations == 1 else 's'}"
            )
        return lines
