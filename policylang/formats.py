"""Input formats for transcript records, and input path expansion.

Every record is turned into the native shape (``{"id": ..., "messages": [{"role":
..., "content": ...}]}``) before it is validated, so the pydantic models and their
located errors are shared by every format. :func:`detect_format` picks the format
of one record; :func:`to_native` converts it, end markers included (the
``end_conversation`` field that says which assistant message ended the conversation;
see docs/conformance.md).
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "END_MARKER",
    "END_TOOL",
    "FORMATS",
    "InputFormat",
    "detect_format",
    "end_marker_problem",
    "expand_inputs",
    "to_native",
]

InputFormat: TypeAlias = Literal["auto", "native", "openai", "anthropic", "sharegpt"]
FORMATS: Final[tuple[str, ...]] = ("auto", "native", "openai", "anthropic", "sharegpt")

TEXT_FIELDS: Final = ("text", "transcript", "chosen")
"""Fields of an Anthropic-style record that may hold the ``Human:``/``Assistant:`` text."""

INPUT_SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".json")
"""What a directory or glob expands to."""

END_MARKER: Final = "end_conversation"
"""The field that marks the assistant message which ended the conversation."""

END_TOOL: Final = "end_conversation"
"""The tool whose call, in an OpenAI chat log, marks the message that ended the conversation."""

_OPENAI_ROLES: Final = {"function": "tool", "developer": "system"}
_SHAREGPT_ROLES: Final = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}
_TURN: Final = re.compile(r"(?:\A|\n\n)(Human|Assistant):[ \t]?")


class FormatError(ValueError):
    """A record that claims a format but cannot be converted; ``pointer`` locates it."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.message = message


def end_marker_problem(value: object, role: object) -> str | None:
    """Why ``value`` is not a valid end marker on a message with ``role``; ``None`` if it is.

    The marker must be a JSON boolean, and only an assistant message may be marked.
    """
    if not isinstance(value, bool):
        return f"input should be true or false, not {_shown(value)}"
    if value and role != "assistant":
        return (
            f"only an assistant message can end the conversation, and this one is {_shown(role)};"
            " put the marker on the assistant reply that ended it"
        )
    return None


def _shown(value: object) -> str:
    """A value as JSON text, shortened, for error messages."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def detect_format(data: dict[str, Any]) -> InputFormat:
    """The format of one JSON object record (``native`` when nothing else fits)."""
    if isinstance(data.get("conversations"), list):
        return "sharegpt"
    messages = data.get("messages")
    if isinstance(messages, list):
        return "openai" if _looks_openai(data, messages) else "native"
    if "messages" not in data and any(isinstance(data.get(key), str) for key in TEXT_FIELDS):
        return "anthropic"
    return "native"


def _looks_openai(data: dict[str, Any], messages: list[Any]) -> bool:
    for message in messages:
        if not isinstance(message, dict):
            return False
        if "tool_calls" in message or "tool_call_id" in message:
            return True
        role = message.get("role")
        if isinstance(role, str) and role in _OPENAI_ROLES:
            return True
        if "content" in message and not isinstance(message["content"], str):
            return message["content"] is None or isinstance(message["content"], list)
    # A log without ids: the native format requires one, so this is an OpenAI log.
    return "id" not in data and bool(messages)


def to_native(data: dict[str, Any], fmt: InputFormat, default_id: str) -> dict[str, Any]:
    """Convert a record of format ``fmt`` (``auto`` detects it) to the native shape.

    ``default_id`` is the id of a non-native record that has none. Raises
    :class:`FormatError` when the record cannot be converted; problems that the
    native models catch (a wrong role, a missing field) are left for them.
    """
    if fmt == "auto":
        fmt = detect_format(data)
    if fmt != "anthropic" and END_MARKER in data:
        # Only a text transcript has no message object to carry the marker.
        raise FormatError(
            END_MARKER,
            "a record-level end marker is read only from Anthropic-style text transcripts;"
            ' put "end_conversation": true on the assistant message that ended the conversation',
        )
    if fmt == "native":
        return data
    if fmt == "openai":
        converted = _from_openai(data)
    elif fmt == "sharegpt":
        converted = _from_sharegpt(data)
    else:
        converted = _from_anthropic(data)
    converted.setdefault("id", default_id)
    return converted


def _base(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key == "id" and value is not None}


def _from_openai(data: dict[str, Any]) -> dict[str, Any]:
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise FormatError("messages", "an OpenAI chat log needs a `messages` array")
    out: list[Any] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)  # the native models report it
            continue
        converted = dict(message)
        role = message.get("role")
        if isinstance(role, str):
            converted["role"] = _OPENAI_ROLES.get(role, role)
        converted["content"] = _openai_content(message.get("content"), f"messages/{index}/content")
        call = _end_call(message, index)
        if call is not None:
            _mark_end(converted, role, call, f"messages/{index}")
        metadata = message.get("metadata")
        if "tool_calls" in message and (metadata is None or isinstance(metadata, dict)):
            converted["metadata"] = {**(metadata or {}), "tool_calls": message["tool_calls"]}
        # Metadata of another type is left for the native models to report.
        out.append(converted)
    return {**_base(data), "messages": out}


def _end_call(message: dict[str, Any], index: int) -> str | None:
    """The pointer of the message's call to the ``end_conversation`` tool, if it makes one.

    Read from ``tool_calls`` (``{"function": {"name": ...}}``) and the older single
    ``function_call`` (``{"name": ...}``); malformed entries are not calls.
    """
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for number, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and function.get("name") == END_TOOL:
                return f"messages/{index}/tool_calls/{number}/function/name"
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and legacy.get("name") == END_TOOL:
        return f"messages/{index}/function_call/name"
    return None


def _mark_end(converted: dict[str, Any], role: object, call: str, pointer: str) -> None:
    """Set the end marker on a converted message whose call to the end tool is at ``call``."""
    if role != "assistant":
        raise FormatError(
            call,
            f"only an assistant message can call `{END_TOOL}`, and this one is {_shown(role)}",
        )
    if converted.get(END_MARKER, True) is False:
        raise FormatError(
            f"{pointer}/{END_MARKER}",
            f"false contradicts the message's call to the `{END_TOOL}` tool; remove one of them",
        )
    # A non-boolean value is left for the message model to report.
    converted.setdefault(END_MARKER, True)


def _openai_content(content: object, pointer: str) -> object:
    if content is None:
        return ""
    if isinstance(content, list):
        texts: list[str] = []
        for index, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if isinstance(kind, str) and kind in {"text", "input_text", "output_text"}:
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise FormatError(f"{pointer}/{index}/text", "input should be a string")
                    texts.append(text)
                # Images, audio and other parts carry no text to evaluate.
            else:
                raise FormatError(f"{pointer}/{index}", "a content part should be an object")
        return "\n".join(texts)
    return content  # a string, or something the native models reject


def _from_sharegpt(data: dict[str, Any]) -> dict[str, Any]:
    turns = data.get("conversations")
    if not isinstance(turns, list):
        raise FormatError("conversations", "a ShareGPT record needs a `conversations` array")
    out: list[Any] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise FormatError(f"conversations/{index}", "input should be an object")
        speaker = turn.get("from")
        if not isinstance(speaker, str) or speaker.lower() not in _SHAREGPT_ROLES:
            raise FormatError(
                f"conversations/{index}/from",
                "input should be 'human', 'gpt', 'system' or 'tool'",
            )
        value = turn.get("value")
        if not isinstance(value, str):
            raise FormatError(f"conversations/{index}/value", "input should be a string")
        message: dict[str, Any] = {"role": _SHAREGPT_ROLES[speaker.lower()], "content": value}
        for key in ("id", "parent_id", "timestamp"):
            if key in turn:
                message[key] = turn[key]
        if END_MARKER in turn:
            problem = end_marker_problem(turn[END_MARKER], message["role"])
            if problem is not None:
                raise FormatError(f"conversations/{index}/{END_MARKER}", problem)
            message[END_MARKER] = turn[END_MARKER]
        out.append(message)
    return {**_base(data), "messages": out}


def _from_anthropic(data: dict[str, Any]) -> dict[str, Any]:
    key = next((k for k in TEXT_FIELDS if isinstance(data.get(k), str)), None)
    if key is None:
        raise FormatError(
            "", "an Anthropic-style record needs a `text`, `transcript` or `chosen` string"
        )
    text: str = data[key]
    parts = _TURN.split(text)
    # parts = [preamble, speaker, body, speaker, body, ...]
    if len(parts) < 3:
        raise FormatError(key, "no `Human:` or `Assistant:` turn found")
    messages: list[dict[str, Any]] = []
    preamble = parts[0].strip()
    if preamble:
        messages.append({"role": "system", "content": preamble})
    for speaker, body in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        messages.append({"role": role, "content": body.strip()})
    if END_MARKER in data:
        # The text has no place for a marker, so the record's field marks its last turn.
        ended = data[END_MARKER]
        problem = end_marker_problem(ended, messages[-1]["role"])
        if problem is not None and not isinstance(ended, bool):
            raise FormatError(END_MARKER, problem)
        if problem is not None:
            raise FormatError(
                END_MARKER,
                "marks the last turn as the end, but the last turn is `Human:`;"
                " only an `Assistant:` turn can end the conversation",
            )
        messages[-1][END_MARKER] = ended
    return {**_base(data), "messages": messages}


# --------------------------------------------------------------------- paths


def expand_inputs(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Expand directories and glob patterns into their transcript files, in sorted order.

    A directory gives its ``*.jsonl``, ``*.jsonl.gz`` and ``*.json`` files (not
    recursively); a pattern that names no existing path is expanded with
    :mod:`glob` (``**`` recurses) and keeps only those files. Other paths, ``-``
    included, are kept as given, so reading a missing file reports it. Raises
    ``ValueError`` for a directory or pattern that gives no transcript file.
    """
    out: list[str] = []
    for path in paths:
        if path == "-" or os.path.isfile(path):
            out.append(path)
        elif os.path.isdir(path):
            names = sorted(
                name
                for name in os.listdir(path)
                if name.endswith(INPUT_SUFFIXES) and os.path.isfile(os.path.join(path, name))
            )
            if not names:
                raise ValueError(f"directory `{path}` has no *.jsonl, *.jsonl.gz or *.json file")
            out.extend(os.path.join(path, name) for name in names)
        elif glob.has_magic(path):
            matches = sorted(
                match
                for match in glob.glob(path, recursive=True)
                if os.path.isfile(match) and match.endswith(INPUT_SUFFIXES)
            )
            if not matches:
                raise ValueError(f"no *.jsonl, *.jsonl.gz or *.json file matches `{path}`")
            out.extend(matches)
        else:
            out.append(path)
    return out
