"""A fast reader for the common case: a valid, linear, native JSONL record.

Batch runs spend more time turning JSON into validated objects than evaluating
them. :func:`decode_native` decodes and validates a line in one pass with
``msgspec`` (several times faster than ``json.loads`` plus the pydantic models) and
gives a :class:`NativeConversation` that evaluates exactly like the
:class:`policylang.transcripts.Conversation` the full reader would build.

It only accepts what the full reader would read as a valid native record with no
message tree, within the message limits, and returns ``None`` for everything else:
another format (OpenAI, ShareGPT, Anthropic-style), message ids (branches), a marker
problem, any invalid JSON or value, too many messages or too long a message. The
caller then reads the line with :func:`policylang.transcripts.parse_line`, which
gives the located error or the record, so errors are reported in one place, the
same way.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from policylang.limits import MessageLimits, json_too_deep

__all__ = ["NativeConversation", "NativeMessage", "decode_native"]


class NativeMessage(msgspec.Struct, frozen=True):
    """One message; satisfies :class:`policylang.runtime.MessageLike`."""

    role: Literal["user", "assistant", "system", "tool"]
    content: str
    timestamp: str | None = None
    metadata: dict[str, Any] = {}
    id: str | int | None = None
    parent_id: str | int | None = None
    end_conversation: bool = False
    # Present only to notice a record the full reader would not read as native.
    tool_calls: Any = msgspec.UNSET
    tool_call_id: Any = msgspec.UNSET


class _Record(msgspec.Struct, frozen=True):
    id: str | int
    messages: list[NativeMessage]
    conversations: Any = msgspec.UNSET
    end_conversation: Any = msgspec.UNSET


_DECODER: Final = msgspec.json.Decoder(_Record)
_DEFAULT_LIMITS: Final = MessageLimits()


class NativeConversation:
    """A linear conversation: its id and messages, with the reader's branch interface."""

    __slots__ = ("id", "messages")

    def __init__(self, conversation_id: str, messages: list[NativeMessage]) -> None:
        self.id = conversation_id
        self.messages = messages

    def paths(self) -> list[tuple[str, list[int]]]:
        """One branch, ``""``, holding every message (there are no message ids)."""
        return [("", list(range(len(self.messages))))]

    def branch_ids(self, path: list[int]) -> list[str]:
        """The ids of the messages on a path (``#N``: these messages have no ids)."""
        return [f"#{i}" for i in path]


def decode_native(raw: bytes, limits: MessageLimits = _DEFAULT_LIMITS) -> NativeConversation | None:
    """The conversation on a JSONL line, if it is a valid linear native record within ``limits``.

    ``raw`` is the line's bytes (a line end may follow; a byte order mark may not
    precede). ``None`` means "read it the full way": the line may be fine in
    another format or with branches, or invalid, or beyond the limits (which the
    full reader reports).
    """
    if json_too_deep(raw):
        return None  # the full reader reports it, whatever the stack allows
    if not raw.isascii():
        # msgspec checks the UTF-8 of the strings it keeps, not of a field it skips.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        record = _DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
    if record.conversations is not msgspec.UNSET or record.end_conversation is not msgspec.UNSET:
        return None  # perhaps ShareGPT; a record-level marker is an error
    for message in record.messages:
        if (
            message.id is not None
            or message.parent_id is not None
            or message.tool_calls is not msgspec.UNSET
            or message.tool_call_id is not msgspec.UNSET
            or (message.end_conversation and message.role != "assistant")
        ):
            return None  # a tree, an OpenAI log, or a misplaced end marker
    most = limits.max_messages
    if most is not None and len(record.messages) > most:
        return None
    longest = limits.max_message_length
    if longest is not None and any(len(m.content) > longest for m in record.messages):
        return None
    record_id = record.id
    return NativeConversation(
        record_id if isinstance(record_id, str) else str(record_id), record.messages
    )
