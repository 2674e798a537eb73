"""Transcript files: pydantic models for conversations and a streaming JSONL loader.

A transcript file holds one conversation per line, in the corpus format
(``{"id": ..., "messages": [{"role": ..., "content": ...}], ...}``), either plain or
gzip-compressed (detected by its magic bytes, not its name). :func:`iter_records`
reads it one line at a time, so memory does not grow with the file, and turns every
bad line into a located :class:`RecordError` instead of raising.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import sys
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from policylang.formats import FormatError, InputFormat, end_marker_problem, to_native
from policylang.limits import (
    DEFAULT_MAX_RECORD_SIZE,
    MAX_JSON_DEPTH,
    MessageLimits,
    json_too_deep,
)

__all__ = [
    "STDIN",
    "STDIN_NAME",
    "BranchError",
    "Conversation",
    "Message",
    "MessageLimits",
    "RawLine",
    "Record",
    "RecordError",
    "RecordResult",
    "is_blank",
    "iter_lines",
    "iter_records",
    "parse_line",
    "too_large",
]

STDIN: Final = "-"
"""The path that means standard input."""

STDIN_NAME: Final = "<stdin>"
"""How standard input is named in records and messages."""

_GZIP_MAGIC: Final = b"\x1f\x8b"
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_JSONL_SUFFIXES: Final = (".jsonl", ".jsonl.gz")

# Codes registered in policylang.codes (PL8xx: test and transcript outcomes).
INVALID_JSON: Final = "PL801"
INVALID_RECORD: Final = "PL802"
INVALID_UTF8: Final = "PL803"
CORRUPT_COMPRESSION: Final = "PL804"
RECORD_TOO_LARGE: Final = "PL810"
TOO_MANY_MESSAGES: Final = "PL811"
MESSAGE_TOO_LONG: Final = "PL812"

_DEFAULT_LIMITS: Final = MessageLimits()
TOO_DEEP: Final = f"invalid JSON: arrays and objects nested more than {MAX_JSON_DEPTH} deep"

_JSON_SPACE: Final = b" \t\r\n"
_SKIP_PIECE: Final = 1 << 18


# --------------------------------------------------------------------- models


class Message(BaseModel):
    """One message of a conversation; satisfies :class:`policylang.runtime.MessageLike`.

    ``timestamp`` is parsed as an ISO 8601 date-time when it is one and kept as the
    original string otherwise. ``end_conversation`` is the end marker: ``true`` on the
    assistant message that ended the conversation (strictly a boolean, and only on an
    assistant message). Unknown fields are ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["user", "assistant", "system", "tool"]
    content: str
    timestamp: datetime | str | None = Field(default=None, union_mode="left_to_right")
    metadata: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    parent_id: str | None = None
    end_conversation: bool = False
    """Whether the assistant ended the conversation with this message (docs/conformance.md)."""

    @field_validator("id", "parent_id", mode="before")
    @classmethod
    def _int_ids_to_str(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp_is_text(cls, value: object) -> object:
        # Without this, a number would be read as a Unix time; only text is accepted.
        if value is None or isinstance(value, str | datetime):
            return value
        raise ValueError("input should be a date-time string or null")

    @field_validator("end_conversation", mode="before")
    @classmethod
    def _end_marker(cls, value: object, info: ValidationInfo) -> object:
        # Strict: in a public format, 1, "true" or null must not pass for a decision to end.
        # A role that failed validation is reported on its own.
        problem = end_marker_problem(value, info.data.get("role", "assistant"))
        if problem is not None:
            raise ValueError(problem)
        return value


class Conversation(BaseModel):
    """One conversation: its id and messages. Other fields (``source``, ``labels``) are ignored.

    An integer ``id`` is accepted and converted to a string.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    messages: list[Message]

    @field_validator("id", mode="before")
    @classmethod
    def _int_id_to_str(cls, value: object) -> object:
        # bool is an int subclass, but `true` is surely a mistake, not an id.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    def branches(self) -> list[tuple[str, list[Message]]]:
        """Every root-to-leaf path of the message tree, as ``(branch_id, messages)``.

        Without message ids the conversation is one linear branch with id ``""``.
        When any message has an ``id``, the messages form a tree: a message's parent
        is the message its ``parent_id`` names, or, without ``parent_id``, the
        message before it in the list (the first message is a root). Each leaf
        gives one branch, in the order the leaves appear; ``branch_id`` is the
        leaf's id (``#N`` for a leaf without one, N its index). Raises
        :class:`BranchError` for a duplicate id, an unknown parent or a cycle.
        """
        return [(branch_id, [self.messages[i] for i in path]) for branch_id, path in self.paths()]

    def paths(self) -> list[tuple[str, list[int]]]:
        """Like :meth:`branches`, with message indices instead of messages.

        Takes time linear in the messages of all branches together
        (:meth:`evaluated_messages`).
        """
        messages = self.messages
        if not _has_tree(messages):
            return [("", list(range(len(messages))))]
        parents = _parents(messages)
        leaves, _ = _tree_shape(parents)
        out: list[tuple[str, list[int]]] = []
        for leaf in leaves:
            path: list[int] = []
            node: int | None = leaf
            while node is not None:
                path.append(node)
                node = parents[node]
            path.reverse()
            out.append((messages[leaf].id or f"#{leaf}", path))
        return out

    def evaluated_messages(self) -> int:
        """How many messages evaluating every branch takes: the branches' lengths added up.

        The number of messages for a conversation without a message tree. Takes time
        linear in the number of messages, and raises :class:`BranchError` as
        :meth:`branches` does.
        """
        messages = self.messages
        if not _has_tree(messages):
            return len(messages)
        leaves, depth = _tree_shape(_parents(messages))
        return sum(depth[leaf] for leaf in leaves)

    def branch_ids(self, path: list[int]) -> list[str]:
        """The ids of the messages on a path (``#N`` for one without an id)."""
        return [self.messages[i].id or f"#{i}" for i in path]


def _has_tree(messages: list[Message]) -> bool:
    return any(m.id is not None or m.parent_id is not None for m in messages)


def _parents(messages: list[Message]) -> list[int | None]:
    """Each message's parent index (``None`` for a root); raises :class:`BranchError`."""
    by_id: dict[str, int] = {}
    for index, message in enumerate(messages):
        if message.id is None:
            continue
        if message.id in by_id:
            raise BranchError(
                index,
                "id",
                f"duplicate message id {message.id!r} (also message {by_id[message.id]})",
            )
        by_id[message.id] = index
    parents: list[int | None] = []
    for index, message in enumerate(messages):
        if message.parent_id is None:
            parents.append(index - 1 if index else None)
        elif message.parent_id not in by_id:
            raise BranchError(index, "parent_id", f"unknown parent id {message.parent_id!r}")
        else:
            parents.append(by_id[message.parent_id])
    return parents


def _tree_shape(parents: list[int | None]) -> tuple[list[int], list[int]]:
    """The leaves, in order, and each message's depth (1 for a root); linear time.

    Raises :class:`BranchError` for a cycle: at the first message met twice walking up
    from a leaf, or, for a cycle no leaf reaches, at its first message.
    """
    has_child = {parent for parent in parents if parent is not None}
    leaves = [index for index in range(len(parents)) if index not in has_child]
    depth = [0] * len(parents)  # 0: not reached yet
    for leaf in leaves:
        walk: list[int] = []
        on_walk: set[int] = set()
        node: int | None = leaf
        # Stop at a root's parent or at a message an earlier walk already placed.
        while node is not None and not depth[node]:
            if node in on_walk:
                raise BranchError(node, "parent_id", "message tree has a cycle")
            on_walk.add(node)
            walk.append(node)
            node = parents[node]
        level = 0 if node is None else depth[node]
        for index in reversed(walk):
            level += 1
            depth[index] = level
    for index, level in enumerate(depth):
        if not level:
            raise BranchError(index, "parent_id", "message tree has a cycle")
    return leaves, depth


class BranchError(ValueError):
    """A message tree that cannot be split into branches: which message, field and why."""

    def __init__(self, index: int, field_name: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.pointer = f"messages/{index}/{field_name}"
        self.message = message


# --------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Record:
    """A conversation that loaded, with the file and 1-based line it came from."""

    conversation: Conversation
    file: str
    line: int
    index: int | None = None
    """The 0-based element index when the record came from a JSON array file."""


@dataclass(frozen=True, slots=True)
class RecordError:
    """A line that could not be loaded: where it is, which code, and why.

    ``column`` is 1-based, in code points of the line (1 when the problem is with a
    value rather than a position). ``pointer`` is the JSON-pointer-like location of
    the first invalid value (``messages/3/role``) for PL802, else ``None``;
    ``details`` lists every problem found in the record, the first being ``reason``.
    """

    file: str
    line: int
    column: int
    code: str
    reason: str
    pointer: str | None = None
    conversation_id: str | None = None
    details: tuple[str, ...] = field(default_factory=tuple)
    index: int | None = None
    """The 0-based element index when the record came from a JSON array file."""

    @property
    def name(self) -> str:
        """The code's kebab-case name from the registry, e.g. ``transcript-invalid-json``."""
        from policylang.codes import lookup

        return lookup(self.code).name

    def located(self) -> str:
        """One line for humans and problem matchers: ``path:line:col: error[PL8nn] reason``."""
        where = "" if self.index is None else f"element {self.index}: "
        return f"{self.file}:{self.line}:{self.column}: error[{self.code}] {where}{self.reason}"

    def to_json(self) -> dict[str, object]:
        """The ``error`` object of an error record (see docs/cli.md)."""
        document: dict[str, object] = {
            "code": self.code,
            "name": self.name,
            "message": self.reason,
            "line": self.line,
            "column": self.column,
            "pointer": self.pointer,
            "conversation_id": self.conversation_id,
            "details": list(self.details) or [self.reason],
        }
        if self.index is not None:
            document["index"] = self.index
        return document


RecordResult: TypeAlias = Record | RecordError
"""What :func:`iter_records` yields for each non-blank line."""


# --------------------------------------------------------------------- reading


class _Prefixed(io.RawIOBase):
    """A raw stream that replays bytes already read (the magic sniff) before the rest.

    ``consumed`` counts the bytes taken from the underlying file so far.
    """

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest
        self.consumed = len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        self.consumed += len(data)
        return len(data)


def _open_binary(path: str) -> tuple[io.BufferedIOBase, IO[bytes] | None]:
    """Open ``path`` (or stdin for ``-``) as bytes, decompressing gzip by its magic bytes.

    Returns the stream to read and the underlying file to close (``None`` for stdin).
    Raises ``OSError`` when the file cannot be opened.
    """
    stream, owned, _ = _open_counted(path)
    return stream, owned


def _open_counted(path: str) -> tuple[io.BufferedIOBase, IO[bytes] | None, _Prefixed]:
    """:func:`_open_binary`, and the raw stream whose ``consumed`` counts the bytes read."""
    if path == STDIN:
        raw: IO[bytes] = sys.stdin.buffer
        owned: IO[bytes] | None = None
    else:
        raw = open(path, "rb")  # noqa: SIM115 -- closed by the caller
        owned = raw
    try:
        head = raw.read(2)
        counted = _Prefixed(head, raw)
        stream: io.BufferedIOBase = io.BufferedReader(counted, buffer_size=1 << 16)
        if head == _GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    return stream, owned, counted


def iter_records(
    path: str,
    input_format: InputFormat = "auto",
    *,
    name: str | None = None,
    max_record_size: int | None = DEFAULT_MAX_RECORD_SIZE,
    limits: MessageLimits = _DEFAULT_LIMITS,
) -> Iterator[RecordResult]:
    """Stream the conversations of a transcript file, one result per record.

    ``path`` may be a plain or gzip-compressed file, or ``-`` for standard input.
    It holds one JSON record per line (JSONL) or, when its first non-space byte is
    ``[`` and its name does not end in ``.jsonl`` or ``.jsonl.gz``, one JSON array
    of records (each located by its element index as well as its line). Each
    record is read in ``input_format`` (``auto`` detects it per record; see
    :mod:`policylang.formats`) and converted to the native shape.

    Bad content never raises: a line that is not UTF-8 (PL803), not JSON (PL801) or
    not a conversation (PL802, also for a message tree with a cycle, a duplicate
    id or an unknown parent) yields a :class:`RecordError`, and a corrupt or
    truncated gzip stream yields one PL804 error and ends the file. A leading UTF-8
    BOM is ignored, ``\\r\\n`` line ends are accepted and blank lines (nothing but
    spaces, tabs and line ends) are skipped. A JSONL line longer than
    ``max_record_size`` bytes (64 MiB unless given; line end excluded) is skipped
    without being held in memory and yields a PL810 error; so does a JSON array file
    larger than that (it is read whole), which yields nothing else. ``None`` means no
    limit. A conversation with more messages or a
    longer message than ``limits`` allow (by default 100,000 messages, every branch
    counting its own, and 1,000,000 characters) yields a PL811 or PL812 error.

    Records are located in the file ``name`` (by default ``path``, or ``<stdin>``),
    which also decides whether the file may be a JSON array: a cluster worker reads an
    absolute path but reports the path as the user gave it.

    The file is opened when this is called, so a missing or unreadable file raises
    ``OSError`` here; a read failure later also raises ``OSError``.
    """
    stream, owned = _open_binary(path)
    shown = _display_name(path, name)
    lines = _lines(stream, owned, shown, input_format, max_record_size, None, limits)
    return _parsed(lines, shown, input_format, limits)


def iter_lines(
    path: str,
    input_format: InputFormat = "auto",
    *,
    name: str | None = None,
    max_record_size: int | None = DEFAULT_MAX_RECORD_SIZE,
    progress: Callable[[int], None] | None = None,
    limits: MessageLimits = _DEFAULT_LIMITS,
) -> Iterator[RawLine | RecordResult]:
    """Like :func:`iter_records`, but JSONL lines come unparsed, for :func:`parse_line`.

    Each non-blank line of a JSONL file is yielded as a :data:`RawLine` (its number
    and bytes, line end included). Everything else that makes a record is yielded
    as a :class:`RecordResult`: the elements of a JSON array file (parsed here, as
    the whole array has to be read), a PL810 error for a line longer than
    ``max_record_size`` and a PL804 error for a corrupt gzip stream. So every item
    is exactly one record; ``limits`` applies to the elements of a JSON array (pass
    the same limits to :func:`parse_line` for the lines). ``progress``, when given,
    is called after each item with the number of bytes read from the file (or
    standard input) so far: compressed bytes for a gzip file, and counting what is
    buffered ahead.

    Opening fails as for :func:`iter_records`.
    """
    stream, owned, counted = _open_counted(path)
    shown = _display_name(path, name)
    report = None if progress is None else (lambda: progress(counted.consumed))
    return _lines(stream, owned, shown, input_format, max_record_size, report, limits)


RawLine: TypeAlias = tuple[int, bytes]
"""A JSONL line not parsed yet: its 1-based number and its bytes."""


def is_blank(raw: bytes) -> bool:
    """Whether a line holds no record: nothing but spaces, tabs and line ends."""
    return not raw.strip(_JSON_SPACE)


def _display_name(path: str, name: str | None) -> str:
    if name is not None:
        return name
    return STDIN_NAME if path == STDIN else path


def _parsed(
    lines: Generator[RawLine | RecordResult, None, None],
    name: str,
    fmt: InputFormat,
    limits: MessageLimits,
) -> Iterator[RecordResult]:
    with contextlib.closing(lines):
        for item in lines:
            if isinstance(item, tuple):
                result = parse_line(item[1], name, item[0], fmt, limits=limits)
                if result is not None:
                    yield result
            else:
                yield item


def _skip_line(stream: io.BufferedIOBase) -> int:
    """Read up to the end of the current line, in bounded pieces; its bytes before the end."""
    size = 0
    while True:
        piece = stream.readline(_SKIP_PIECE)
        if piece.endswith(b"\n"):
            return size + len(piece) - 1
        if not piece:
            return size
        size += len(piece)


def _lines(
    stream: io.BufferedIOBase,
    owned: IO[bytes] | None,
    name: str,
    fmt: InputFormat,
    limit: int | None,
    progress: Callable[[], None] | None,
    limits: MessageLimits = _DEFAULT_LIMITS,
) -> Generator[RawLine | RecordResult, None, None]:
    number = 0
    # A `.jsonl` file is JSONL even when its first record is (wrongly) an array.
    sniffing = not name.endswith(_JSONL_SUFFIXES)
    try:
        while True:
            try:
                # With a limit, at most limit + 1 bytes: enough to tell that a line is too long.
                raw = stream.readline() if limit is None else stream.readline(limit + 1)
                too_long = limit is not None and len(raw) > limit and not raw.endswith(b"\n")
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                # BadGzipFile is an OSError, but it is bad content, not an I/O failure.
                yield RecordError(name, number + 1, 1, CORRUPT_COMPRESSION, _corrupt_reason(exc))
                return
            if not raw:
                return
            number += 1
            text = raw.removeprefix(_UTF8_BOM) if number == 1 else raw
            if sniffing and not is_blank(text):
                sniffing = False
                if text.lstrip(_JSON_SPACE).startswith(b"["):
                    # An array is read whole: the record size limit is for the file.
                    yield from _iterate_array(stream, text, name, number, fmt, limits, limit)
                    if progress is not None:
                        progress()
                    return
            if too_long:
                assert limit is not None
                try:
                    size = len(raw) + _skip_line(stream)
                except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                    yield RecordError(name, number, 1, CORRUPT_COMPRESSION, _corrupt_reason(exc))
                    return
                yield RecordError(name, number, 1, RECORD_TOO_LARGE, _too_large(size, limit))
            elif is_blank(text):
                continue
            else:
                yield number, raw
            if progress is not None:
                progress()
    finally:
        stream.close()
        if owned is not None:
            owned.close()


def too_large(name: str, number: int, size: int, limit: int) -> RecordError:
    """The PL810 error for line ``number`` of ``name``: ``size`` bytes, over ``limit``.

    For readers of parts of a file, so they report long records as :func:`iter_lines` does.
    """
    return RecordError(name, number, 1, RECORD_TOO_LARGE, _too_large(size, limit))


def _too_large(size: int, limit: int) -> str:
    return (
        f"record is larger than the limit: {size:,} bytes, over {limit:,};"
        " raise --max-record-size to read it"
    )


def _iterate_array(
    stream: io.BufferedIOBase,
    first: bytes,
    name: str,
    first_line: int,
    fmt: InputFormat,
    limits: MessageLimits,
    limit: int | None,
) -> Iterator[RecordResult]:
    """The records of a JSON array file whose first non-blank line (``first``) opens it.

    The array is read whole, so with a ``limit`` a file larger than that many bytes
    (from its first line on) is one PL810 error, read no further than the limit.
    """
    try:
        if limit is None:
            data = first + stream.read()
        else:
            data = first + stream.read(max(0, limit + 1 - len(first)))
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        yield RecordError(name, first_line, 1, CORRUPT_COMPRESSION, _corrupt_reason(exc))
        return
    if limit is not None and len(data) > limit:
        reason = (
            f"JSON array file is larger than the limit: over {limit:,} bytes, read whole;"
            " raise --max-record-size, or write one record per line (JSONL)"
        )
        yield RecordError(name, first_line, 1, RECORD_TOO_LARGE, reason)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data[: exc.start].decode("utf-8", "replace"), exc.start)
        yield RecordError(
            name, first_line + line - 1, column, INVALID_UTF8, "file is not valid UTF-8"
        )
        return
    decoder = json.JSONDecoder(parse_int=_lenient_int)

    def where(pos: int) -> tuple[int, int]:
        line, column = _position(text, pos)
        return first_line + line - 1, column

    pos = text.index("[") + 1
    index = 0
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "]":
            if text[pos + 1 :].strip():
                line, column = where(_skip_space(text, pos + 1))
                yield RecordError(
                    name,
                    line,
                    column,
                    INVALID_JSON,
                    "invalid JSON: unexpected text after the array",
                )
            return
        if index:
            if pos >= len(text) or text[pos] != ",":
                line, column = where(pos)
                reason = (
                    "the file ends before the array is complete (truncated?)"
                    if pos >= len(text)
                    else "expecting ',' or ']' between array elements"
                )
                yield RecordError(name, line, column, INVALID_JSON, f"invalid JSON: {reason}")
                return
            pos = _skip_space(text, pos + 1)
        line, column = where(pos)
        try:
            element, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            bad_line, bad_column = where(exc.pos)
            reason = (
                "the file ends before the array is complete (truncated?)"
                if exc.pos >= len(text.rstrip())
                else _JSON_MESSAGES.get(exc.msg, exc.msg)
            )
            reason = reason[:1].lower() + reason[1:]
            yield RecordError(
                name, bad_line, bad_column, INVALID_JSON, f"invalid JSON: {reason}", index=index
            )
            return
        except RecursionError:
            yield RecordError(name, line, column, INVALID_JSON, TOO_DEEP, index=index)
            return
        if json_too_deep(text[pos:end].encode("utf-8", "surrogatepass")):
            yield RecordError(name, line, column, INVALID_JSON, TOO_DEEP, index=index)
        else:
            yield _build(element, name, line, fmt, limits, index=index, column=column)
        pos = end
        index += 1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _position(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of offset ``pos`` in ``text``."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _corrupt_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "compressed file ends early: the gzip stream is truncated"
    detail = str(exc).strip() or type(exc).__name__
    return f"compressed file is corrupt: {detail}"


def parse_line(
    raw: bytes,
    name: str,
    number: int,
    fmt: InputFormat = "auto",
    *,
    limits: MessageLimits = _DEFAULT_LIMITS,
) -> RecordResult | None:
    """Turn one JSONL line's bytes into a record, an error, or ``None`` for a blank line.

    ``number`` is the 1-based line number in ``name``; a UTF-8 byte order mark at the
    start of line 1 is ignored. The line end may be included or not. A conversation
    beyond ``limits`` is a PL811 or PL812 error.
    """
    if number == 1:
        raw = raw.removeprefix(_UTF8_BOM)
    if is_blank(raw):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8")) + 1
        bad = raw[exc.start : exc.end]
        shown = " ".join(f"0x{b:02X}" for b in bad)
        noun = "byte" if len(bad) == 1 else "bytes"
        return RecordError(
            name, number, column, INVALID_UTF8, f"line is not valid UTF-8: invalid {noun} {shown}"
        )
    # Strip the line end first, so a JSON error at the end of the line is placed on it.
    text = text.rstrip("\r\n")
    if json_too_deep(raw):
        return RecordError(name, number, 1, INVALID_JSON, TOO_DEEP)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecordError(
            name, number, exc.pos + 1, INVALID_JSON, f"invalid JSON: {_json_reason(exc, text)}"
        )
    except RecursionError:
        return RecordError(name, number, 1, INVALID_JSON, TOO_DEEP)
    except ValueError:  # after JSONDecodeError, its subclass: an integer too long to convert
        data = json.loads(text, parse_int=_lenient_int)
    return _build(data, name, number, fmt, limits)


def _lenient_int(digits: str) -> int | float:
    """A JSON integer; one too long for ``int`` (over 4,300 digits) is an infinite float.

    The fast reader skips such a number in a field it ignores and refuses it in one it
    reads; reading it as infinity does the same here, where ``int`` would raise.
    """
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        return float("-inf") if digits.startswith("-") else float("inf")
    return int(digits)


def _build(
    data: object,
    name: str,
    number: int,
    fmt: InputFormat,
    limits: MessageLimits,
    *,
    index: int | None = None,
    column: int = 1,
) -> RecordResult:
    """Convert and validate one parsed record."""
    if not isinstance(data, dict):
        return RecordError(
            name,
            number,
            column,
            INVALID_RECORD,
            f"record should be a JSON object, not {_json_type(data)}",
            index=index,
        )
    raw_id = data.get("id")
    conversation_id = (
        str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
    )
    default_id = f"{name}:{number}" if index is None else f"{name}[{index}]"
    try:
        native = to_native(data, fmt, default_id)
    except FormatError as exc:
        return RecordError(
            name,
            number,
            column,
            INVALID_RECORD,
            _join(exc.pointer, exc.message),
            pointer=exc.pointer,
            conversation_id=conversation_id,
            index=index,
        )
    try:
        conversation = Conversation.model_validate(native)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors(include_url=False)]
        pointer, first = problems[0]
        reason = _join(pointer, first)
        more = len(problems) - 1
        if more:
            reason += f" (and {more} more problem{'s' if more > 1 else ''})"
        return RecordError(
            name,
            number,
            column,
            INVALID_RECORD,
            reason,
            pointer=pointer,
            conversation_id=conversation_id,
            details=tuple(_join(location, message) for location, message in problems),
            index=index,
        )
    try:
        evaluated = conversation.evaluated_messages()
    except BranchError as exc:
        return RecordError(
            name,
            number,
            column,
            INVALID_RECORD,
            _join(exc.pointer, exc.message),
            pointer=exc.pointer,
            conversation_id=conversation.id,
            index=index,
        )
    beyond = _beyond_limits(conversation, evaluated, limits)
    if beyond is not None:
        code, pointer, reason = beyond
        return RecordError(
            name,
            number,
            column,
            code,
            reason,
            pointer=pointer,
            conversation_id=conversation.id,
            index=index,
        )
    return Record(conversation, name, number, index)


def _beyond_limits(
    conversation: Conversation, evaluated: int, limits: MessageLimits
) -> tuple[str, str, str] | None:
    """``(code, pointer, reason)`` when the conversation is beyond a limit, else ``None``.

    ``evaluated`` is :meth:`Conversation.evaluated_messages`.
    """
    most = limits.max_messages
    if most is not None and evaluated > most:
        count = len(conversation.messages)
        if count > most:
            return (
                TOO_MANY_MESSAGES,
                f"messages/{most}",
                f"conversation has {count:,} messages, over the limit of {most:,};"
                " raise --max-messages to read it",
            )
        branches = len(_tree_shape(_parents(conversation.messages))[0])
        return (
            TOO_MANY_MESSAGES,
            "messages",
            f"the {branches:,} branches of the conversation hold {evaluated:,} messages"
            f" in all (each branch is evaluated on its own), over the limit of {most:,};"
            " raise --max-messages to read it",
        )
    longest = limits.max_message_length
    if longest is not None:
        for number, message in enumerate(conversation.messages):
            if len(message.content) > longest:
                pointer = f"messages/{number}/content"
                return (
                    MESSAGE_TOO_LONG,
                    pointer,
                    f"{pointer}: message is {len(message.content):,} characters long,"
                    f" over the limit of {longest:,}; raise --max-message-length to read it",
                )
    return None


def _json_reason(exc: json.JSONDecodeError, text: str) -> str:
    if exc.pos >= len(text.rstrip()):
        return "the line ends before the record is complete (truncated?)"
    message = _JSON_MESSAGES.get(exc.msg, exc.msg)
    # json's messages start with a capital ("Expecting ',' delimiter"); ours do not.
    return message[:1].lower() + message[1:]


_JSON_MESSAGES: Final[dict[str, str]] = {
    "Unterminated string starting at": "unterminated string",
    "Expecting value": "expecting a value",
    "Extra data": "unexpected text after the record",
    "Invalid control character at": "unescaped control character in a string",
}


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


# Friendlier wording for the pydantic error types a JSON file can trigger.
_MESSAGES: Final[dict[str, str]] = {
    "missing": "field required",
    "string_type": "input should be a string",
    "list_type": "input should be an array",
    "dict_type": "input should be an object",
    "model_type": "input should be an object",
    "model_attributes_type": "input should be an object",
}


def _problem(error: ErrorDetails) -> tuple[str, str]:
    """``(pointer, message)`` for one pydantic error; the pointer is ``messages/3/role``."""
    pointer = "/".join(str(part) for part in error["loc"])
    message = _MESSAGES.get(error["type"])
    if message is None:
        message = error["msg"]
        if error["type"] == "value_error":
            # "Value error, <our text>": keep only the text our validator wrote.
            message = message.removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
    return pointer, message


def _join(pointer: str, message: str) -> str:
    return f"{pointer}: {message}" if pointer else message
