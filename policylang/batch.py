"""Batch evaluation: a policy over many transcript records, as output rows and a summary.

The pieces ``policylang check`` is built from, for any engine that runs it:

* :func:`evaluate_lines` and :func:`evaluate_records` turn records into :class:`Row`
  objects: one per decision (one per branch of a conversation) or per invalid record.
  Rows are plain data and pickle, so they can cross process boundaries.
* :class:`Summary` counts rows; summaries of parts of a run merge into the summary of
  the whole run.
* :func:`row_format` renders one row as a line of JSONL, CSV or an aligned table,
  independently of every other row, so rows rendered in different processes join
  into the same output as rows rendered in one.
* :func:`run` cuts the inputs into chunks (spans of whole lines of a plain JSONL
  file, which the evaluating process reads itself, or records read here) and
  evaluates them in this process or on worker processes, giving their output in
  input order.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import errno
import io
import itertools
import json
import os
import signal
import stat
import unicodedata
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import IO, TYPE_CHECKING, Final, Literal, Protocol, TypeAlias

from policylang.fastread import decode_native
from policylang.formats import InputFormat
from policylang.limits import (
    DEFAULT_MAX_MESSAGE_LENGTH,
    DEFAULT_MAX_MESSAGES,
    DEFAULT_MAX_RECORD_SIZE,
    MessageLimits,
    format_size,
    parse_size,
)
from policylang.transcripts import (
    STDIN,
    STDIN_NAME,
    RawLine,
    Record,
    RecordError,
    RecordResult,
    is_blank,
    iter_lines,
    parse_line,
    too_large,
)

if TYPE_CHECKING:
    from policylang.runtime import Decision, Policy

__all__ = [
    "DEFAULT_MAX_RECORD_SIZE",
    "OUTCOMES",
    "OUTPUT_FORMATS",
    "Chunk",
    "OutputFormat",
    "ReadFailure",
    "Row",
    "RowFormat",
    "RowWriter",
    "Settings",
    "Summary",
    "WorkerFailed",
    "default_jobs",
    "error_row",
    "evaluate_lines",
    "evaluate_records",
    "format_size",
    "parse_size",
    "row_format",
    "run",
]

OutputFormat: TypeAlias = Literal["jsonl", "csv", "human"]
OUTPUT_FORMATS: Final[tuple[str, ...]] = ("jsonl", "csv", "human")

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_DEFAULT_LIMITS: Final = MessageLimits()

OUTCOMES: Final[tuple[str, ...]] = ("end", "escalate", "warn", "continue")
"""Decision outcomes, most serious first (the order of the summary)."""


# ---------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Row:
    """One output row of check: a decision for one conversation branch, or an error record.

    Picklable. ``document`` is exactly the JSON object ``check --format jsonl`` writes
    for it: the decision's fields, ``branch`` and ``branch_messages`` for a branch of a
    message tree, ``conformance`` when asked for, then ``file``, ``line`` and, for an
    element of a JSON array file, ``index``; or, for an invalid record, ``{"error":
    {...}, "file", "line"[, "index"]}``.
    """

    document: dict[str, object]
    outcome: str | None
    """``continue``, ``warn``, ``escalate`` or ``end``; ``None`` for an error record."""
    rule: str | None
    category: str | None
    blocked: bool
    """An end rule held but a protection blocked it."""
    error: str | None
    """:meth:`RecordError.located` of an error record (``path:line:col: error[PL8nn] ...``)."""
    first: bool = True
    """Whether this is the first row of its record (a record with branches has several)."""
    code: str | None = None
    """The diagnostic code of an error record."""
    conformance: str | None = None
    """The conformance status (``agree``, ``missed_end``...) when it was asked for."""
    post_termination: int = 0
    """How many messages conformance found after the end (0 without conformance)."""


def error_row(error: RecordError) -> Row:
    """The row of an invalid record."""
    document: dict[str, object] = {"error": error.to_json(), "file": error.file, "line": error.line}
    if error.index is not None:
        document["index"] = error.index
    return Row(
        document=document,
        outcome=None,
        rule=None,
        category=None,
        blocked=False,
        error=error.located(),
        code=error.code,
    )


class _Message(Protocol):
    """What evaluation and conformance read from a message."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, object]: ...

    @property
    def end_conversation(self) -> bool: ...


class _Conversation(Protocol):
    """A conversation as either reader gives it (the full one, or the fast native one)."""

    @property
    def id(self) -> str: ...

    @property
    def messages(self) -> Sequence[_Message]: ...

    def paths(self) -> list[tuple[str, list[int]]]: ...

    def branch_ids(self, path: list[int]) -> list[str]: ...


def _decision_rows(policy: Policy, record: Record, conformance: bool) -> list[Row]:
    return _conversation_rows(
        policy, record.conversation, record.file, record.line, record.index, conformance
    )


def _conversation_rows(
    policy: Policy,
    conversation: _Conversation,
    file: str,
    line: int,
    index: int | None,
    conformance: bool,
) -> list[Row]:
    rows: list[Row] = []
    # The reader has checked the message tree, so paths() does not raise here.
    for number, (branch_id, indices) in enumerate(conversation.paths()):
        messages = [conversation.messages[i] for i in indices]
        decision = policy.evaluate(messages, conversation.id)
        document = decision.to_json()
        if branch_id:
            document["branch"] = branch_id
            document["branch_messages"] = conversation.branch_ids(indices)
        status: str | None = None
        post = 0
        if conformance:
            status, post = _conform(messages, decision, document)
        document["file"] = file
        document["line"] = line
        if index is not None:
            document["index"] = index
        rows.append(
            Row(
                document=document,
                outcome=decision.outcome.value,
                rule=decision.rule,
                category=decision.category,
                blocked=any(event.blocked for event in decision.events),
                error=None,
                first=number == 0,
                conformance=status,
                post_termination=post,
            )
        )
    return rows


def _conform(
    messages: Sequence[_Message], decision: Decision, document: dict[str, object]
) -> tuple[str, int]:
    # Imported here: conformance is optional work, and its module is only needed for it.
    from policylang.conformance import compare

    result = compare(messages, decision)
    document["conformance"] = result.to_json()
    return str(result.status.value), len(result.post_termination)


def evaluate_records(
    policy: Policy, results: Iterable[RecordResult], *, conformance: bool = False
) -> list[Row]:
    """Evaluate already-parsed records (JSON array files, stdin) in order.

    One row per branch decision of each record, or one error row per invalid record.
    With ``conformance``, each decision is compared with what the log shows the
    assistant did (:func:`policylang.conformance.compare`).
    """
    rows: list[Row] = []
    for result in results:
        if isinstance(result, RecordError):
            rows.append(error_row(result))
        else:
            rows.extend(_decision_rows(policy, result, conformance))
    return rows


def evaluate_lines(
    policy: Policy,
    name: str,
    lines: Iterable[tuple[int, bytes]],
    input_format: InputFormat = "auto",
    *,
    conformance: bool = False,
    limits: MessageLimits = _DEFAULT_LIMITS,
) -> list[Row]:
    """Evaluate JSONL lines of file ``name``, in order.

    ``lines`` gives each line's 1-based number and its raw bytes, with or without the
    line end (a UTF-8 byte order mark at the start of line 1 is ignored). A blank
    line gives no row; every other line gives one row per branch decision, or one
    error row when it is not a valid record or is beyond ``limits`` (PL811, PL812).
    """
    rows: list[Row] = []
    fast = input_format in ("auto", "native")
    for number, raw in lines:
        if fast:
            # Most lines are valid linear native records: those are read in one pass;
            # anything else, errors included, is read (and reported) the full way.
            native = decode_native(raw.removeprefix(_UTF8_BOM) if number == 1 else raw, limits)
            if native is not None:
                rows.extend(_conversation_rows(policy, native, name, number, None, conformance))
                continue
        result = parse_line(raw, name, number, input_format, limits=limits)
        if result is None:
            continue
        if isinstance(result, RecordError):
            rows.append(error_row(result))
        else:
            rows.extend(_decision_rows(policy, result, conformance))
    return rows


# ---------------------------------------------------------------- summary


def _counter() -> collections.Counter[str]:
    return collections.Counter()


@dataclass(slots=True)
class Summary:
    """Counts over rows; ``add`` one row at a time, ``merge`` summaries of parts of a run.

    ``records`` counts records read: each gives its decisions (one per branch) or one
    error, so ``records == evaluated + errors`` always holds.
    """

    records: int = 0
    """Records read: evaluated ones and invalid ones."""
    evaluated: int = 0
    """Records that gave decisions."""
    decisions: int = 0
    """Decisions: one per branch of each evaluated record."""
    errors: int = 0
    """Invalid records (error rows)."""
    blocked: int = 0
    """Decisions in which an end rule held but a protection blocked it."""
    post_termination: int = 0
    """User messages the logged system took after its own end (with conformance)."""
    post_termination_conversations: int = 0
    """Decisions with such messages (with conformance)."""
    outcomes: collections.Counter[str] = field(default_factory=_counter)
    rules: collections.Counter[str] = field(default_factory=_counter)
    """The rule that decided each decision other than ``continue``."""
    categories: collections.Counter[str] = field(default_factory=_counter)
    """The category of each decision other than ``continue`` that has one."""
    codes: collections.Counter[str] = field(default_factory=_counter)
    """Error records by diagnostic code."""
    conformance: collections.Counter[str] = field(default_factory=_counter)
    """Decisions by conformance status (with conformance)."""

    def add(self, row: Row) -> None:
        """Count one row."""
        if row.first:
            self.records += 1
        if row.outcome is None:
            self.errors += 1
            if row.code is not None:
                self.codes[row.code] += 1
            return
        if row.first:
            self.evaluated += 1
        self.decisions += 1
        self.outcomes[row.outcome] += 1
        if row.outcome != "continue":
            if row.rule is not None:
                self.rules[row.rule] += 1
            if row.category is not None:
                self.categories[row.category] += 1
        if row.blocked:
            self.blocked += 1
        if row.conformance is not None:
            self.conformance[row.conformance] += 1
        if row.post_termination:
            self.post_termination += row.post_termination
            self.post_termination_conversations += 1

    def merge(self, other: Summary) -> Summary:
        """Add ``other``'s counts to this summary; returns this summary."""
        self.records += other.records
        self.evaluated += other.evaluated
        self.decisions += other.decisions
        self.errors += other.errors
        self.blocked += other.blocked
        self.post_termination += other.post_termination
        self.post_termination_conversations += other.post_termination_conversations
        self.outcomes.update(other.outcomes)
        self.rules.update(other.rules)
        self.categories.update(other.categories)
        self.codes.update(other.codes)
        self.conformance.update(other.conformance)
        return self

    def __add__(self, other: Summary) -> Summary:
        return Summary().merge(self).merge(other)

    @property
    def balanced(self) -> bool:
        """Whether every record read is accounted for: ``records == evaluated + errors``."""
        return self.records == self.evaluated + self.errors

    def to_json(self) -> dict[str, object]:
        """The counts as a JSON-ready dictionary (counters sorted by count, then name)."""
        return {
            "records": self.records,
            "evaluated": self.evaluated,
            "decisions": self.decisions,
            "errors": self.errors,
            "outcomes": {outcome: self.outcomes[outcome] for outcome in OUTCOMES},
            "blocked": self.blocked,
            "rules": dict(_ranked(self.rules)),
            "categories": dict(_ranked(self.categories)),
            "error_codes": dict(_ranked(self.codes)),
            "conformance": dict(_ranked(self.conformance)),
            "post_termination": {
                "conversations": self.post_termination_conversations,
                "messages": self.post_termination,
            },
        }

    def table(self, *, conformance: bool = False) -> str:
        """The summary as an aligned two-column table, for people (ends with a newline).

        With ``conformance``, a conformance section follows the counts by category.
        """
        rows: list[tuple[str, str, str]] = [
            ("conversations", _n(self.decisions), "one decision per branch"),
            ("  ended", _n(self.outcomes["end"]), ""),
            ("  escalated", _n(self.outcomes["escalate"]), ""),
            ("  warned", _n(self.outcomes["warn"]), ""),
            ("  continued", _n(self.outcomes["continue"]), ""),
            ("errors", _n(self.errors), _codes(self.codes) if self.codes else "invalid records"),
            (
                "records read",
                _n(self.records),
                f"{_n(self.evaluated)} evaluated + {_n(self.errors)} invalid",
            ),
            ("blocked ends", _n(self.blocked), "an end rule held but a protection stopped it"),
        ]
        for title, counter in (("by rule", self.rules), ("by category", self.categories)):
            rows.append((title, "", "" if counter else "none"))
            rows.extend((f"  {name}", _n(count), "") for name, count in _ranked(counter))
        if conformance:
            rows.append(("conformance", "", "the logged end against the policy's decision"))
            rows.extend((f"  {name}", _n(count), "") for name, count in self._statuses())
            rows.append(
                (
                    "  post-termination",
                    _n(self.post_termination_conversations),
                    f"took {_n(self.post_termination)} user"
                    f" message{'' if self.post_termination == 1 else 's'} after its own end",
                )
            )
        label_width = max(len(label) for label, _, _ in rows)
        count_width = max(len(count) for _, count, _ in rows)
        lines = []
        for label, count, note in rows:
            line = f"{label.ljust(label_width)}  {count.rjust(count_width)}  {note}"
            lines.append(line.rstrip())
        return "\n".join(lines) + "\n"

    def _statuses(self) -> list[tuple[str, int]]:
        # Every known status, in its declared order, then any other one that was counted.
        from policylang.conformance import ConformanceStatus

        known = [status.value for status in ConformanceStatus]
        extra = sorted(set(self.conformance) - set(known))
        return [(status, self.conformance[status]) for status in [*known, *extra]]


def _n(count: int) -> str:
    return f"{count:,}"


def _ranked(counter: collections.Counter[str]) -> list[tuple[str, int]]:
    # Ties broken by name, so the order is deterministic.
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def _codes(counter: collections.Counter[str]) -> str:
    return "invalid records: " + ", ".join(f"{code} {n:,}" for code, n in _ranked(counter))


# ---------------------------------------------------------------- output formats


class RowFormat(Protocol):
    """Renders rows as text: a header once, then each row on its own."""

    def header(self) -> str:
        """Text that starts the output (empty when there is none)."""
        ...

    def render(self, row: Row) -> str:
        """The text of one row, ending with its line end."""
        ...


def row_format(name: str, *, conformance: bool = False) -> RowFormat:
    """The renderer for output format ``name`` (``jsonl``, ``csv`` or ``human``).

    ``conformance`` adds a conformance column to the csv and human formats (jsonl
    rows carry it in their document).
    """
    if name == "jsonl":
        return JsonlFormat()
    if name == "csv":
        return CsvFormat(conformance=conformance)
    if name == "human":
        return TableFormat(conformance=conformance)
    raise ValueError(f"unknown output format {name!r}")


class JsonlFormat:
    """One JSON object per line, ASCII only (lone surrogates from the input survive)."""

    def header(self) -> str:
        """Nothing: JSONL has no header."""
        return ""

    def render(self, row: Row) -> str:
        """The row's document on one line."""
        return json.dumps(row.document, ensure_ascii=True, separators=(",", ":")) + "\n"


def _where(document: dict[str, object]) -> tuple[object, object, object]:
    return document.get("file"), document.get("line"), document.get("index")


_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _inert_cell(cell: object) -> object:
    """A CSV cell a spreadsheet shows as text: ``'`` before text it would run as a formula.

    Conversation ids, file names and error messages come from transcripts; a cell that
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
    Excel, LibreOffice and Google Sheets (CSV injection). Numbers, and text that is a
    plain number such as ``-1``, are kept as they are.
    """
    if cell is None:
        return ""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        try:
            float(cell)
        except ValueError:
            return "'" + cell
    return cell


class CsvFormat:
    """Comma-separated values with a header row (RFC 4180 quoting and line ends)."""

    COLUMNS: Final = (
        "file",
        "line",
        "index",
        "conversation_id",
        "branch",
        "outcome",
        "message_index",
        "rule",
        "category",
        "reason",
        "blocked",
        "error_code",
        "error_message",
    )

    def __init__(self, *, conformance: bool = False) -> None:
        self.conformance = conformance

    def _line(self, cells: Sequence[object]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerow([_inert_cell(cell) for cell in cells])
        return buffer.getvalue()

    def header(self) -> str:
        """The column names."""
        return self._line([*self.COLUMNS, *(["conformance"] if self.conformance else [])])

    def render(self, row: Row) -> str:
        """One CSV record; an invalid record has outcome ``invalid`` and its error."""
        document = row.document
        file, line, index = _where(document)
        if row.outcome is None:
            error = document["error"]
            assert isinstance(error, dict)
            cells: list[object] = [
                file,
                line,
                index,
                error.get("conversation_id"),
                None,
                "invalid",
                None,
                None,
                None,
                None,
                None,
                error.get("code"),
                error.get("message"),
            ]
        else:
            cells = [
                file,
                line,
                index,
                document.get("conversation_id"),
                document.get("branch"),
                row.outcome,
                document.get("message_index"),
                row.rule,
                row.category,
                document.get("reason"),
                "true" if row.blocked else "false",
                None,
                None,
            ]
        if self.conformance:
            cells.append(row.conformance)
        return self._line(cells)


ELLIPSIS: Final = "\u2026"


def _cell(value: object) -> str:
    """Table text with control, format and separator characters shown as escapes."""
    if value is None:
        return "-"
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch
        for ch in str(value)
    )


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in {"W", "F"} else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal (wide East Asian characters take two)."""
    return sum(_char_width(ch) for ch in text)


def fit(text: str, width: int, *, keep_end: bool = False) -> str:
    """``text`` padded to ``width`` columns, or cut with an ellipsis to fit in them.

    ``keep_end`` cuts the start instead of the end (for paths, whose end matters).
    """
    size = display_width(text)
    if size <= width:
        return text + " " * (width - size)
    chars = reversed(text) if keep_end else iter(text)
    kept: list[str] = []
    used = 1  # the ellipsis
    for ch in chars:
        w = _char_width(ch)
        if used + w > width:
            break
        kept.append(ch)
        used += w
    body = "".join(reversed(kept)) if keep_end else "".join(kept)
    cut = ELLIPSIS + body if keep_end else body + ELLIPSIS
    return cut + " " * (width - used)


class TableFormat:
    """An aligned table with fixed column widths: a longer value is cut with an ellipsis.

    Widths are fixed so that rows can be rendered one at a time (and in different
    processes) and still line up. ``RECORD`` keeps the end of the location (the line
    number); the last column, ``REASON``, is never cut.
    """

    COLUMNS: Final = (
        ("RECORD", 40),
        ("ID", 20),
        ("OUTCOME", 8),
        ("AT", 4),
        ("RULE", 28),
        ("CATEGORY", 16),
    )
    CONFORMANCE_WIDTH: Final = 16

    def __init__(self, *, conformance: bool = False) -> None:
        self.widths = [width for _, width in self.COLUMNS]
        if conformance:
            self.widths.append(self.CONFORMANCE_WIDTH)
        self.conformance = conformance

    def _line(self, cells: Sequence[str]) -> str:
        padded = [
            fit(cell, width, keep_end=column == 0)
            for column, (cell, width) in enumerate(zip(cells, self.widths, strict=False))
        ]
        return "  ".join([*padded, *cells[len(self.widths) :]]).rstrip() + "\n"

    def header(self) -> str:
        """The column titles."""
        titles = [title for title, _ in self.COLUMNS]
        if self.conformance:
            titles.append("CONFORMANCE")
        return self._line([*titles, "REASON"])

    def render(self, row: Row) -> str:
        """One table row; an invalid record shows ``invalid`` and its error code."""
        document = row.document
        file, line, index = _where(document)
        where = f"{file}:{line}" + ("" if index is None else f"[{index}]")
        if row.outcome is None:
            error = document["error"]
            assert isinstance(error, dict)
            cells = [
                _cell(where),
                _cell(error.get("conversation_id")),
                "invalid",
                "-",
                f"error[{error.get('code')}]",
                "-",
            ]
            reason = _cell(error.get("message"))
        else:
            shown_id = document.get("conversation_id")
            if "branch" in document:
                shown_id = f"{shown_id}@{document['branch']}"
            cells = [
                _cell(where),
                _cell(shown_id),
                row.outcome,
                _cell(document.get("message_index")),
                _cell(row.rule),
                _cell(row.category),
            ]
            reason = _cell(document.get("reason"))
        if self.conformance:
            cells.append(_cell(row.conformance))
        return self._line([*cells, reason])


class RowWriter:
    """Writes rows to a text stream in one format: the header first, then each row."""

    def __init__(self, stream: IO[str], fmt: RowFormat) -> None:
        self.stream = stream
        self.format = fmt
        self._started = False

    def start(self) -> None:
        """Write the header (once; :meth:`write` does it too)."""
        if not self._started:
            self._started = True
            self.stream.write(self.format.header())

    def write(self, row: Row) -> None:
        """Write one row."""
        self.start()
        self.stream.write(self.format.render(row))

    def write_all(self, rows: Iterable[Row]) -> None:
        """Write rows in order."""
        for row in rows:
            self.write(row)


# ---------------------------------------------------------------- runs

CHUNK_LINES: Final = 256
"""At most this many records per chunk."""
CHUNK_BYTES: Final = 1 << 20
"""A chunk is closed once its lines hold this many bytes."""


def default_jobs() -> int:
    """The CPUs this process may run on (its affinity mask where there is one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Settings:
    """How a run reads, evaluates and renders (everything but the policy and the inputs)."""

    input_format: InputFormat = "auto"
    conformance: bool = False
    output_format: str = "jsonl"
    only: frozenset[str] = frozenset()
    """Outcomes whose decisions are written; empty for all. Error rows are always written."""
    max_record_size: int | None = DEFAULT_MAX_RECORD_SIZE
    """The longest JSONL line read, in bytes (line end excluded); ``None`` for no limit."""
    max_messages: int | None = DEFAULT_MAX_MESSAGES
    """The most messages of a conversation, every branch counting its own (PL811)."""
    max_message_length: int | None = DEFAULT_MAX_MESSAGE_LENGTH
    """The longest message, in characters (PL812)."""
    chunk_lines: int = CHUNK_LINES
    """At most this many records per chunk of standard input, gzip or JSON array records."""
    chunk_bytes: int = CHUNK_BYTES
    """About this many bytes of lines per chunk (a span of a plain file may be a quarter more)."""

    @property
    def limits(self) -> MessageLimits:
        """The message limits, for the readers."""
        return MessageLimits(self.max_messages, self.max_message_length)


@dataclass(frozen=True, slots=True)
class Chunk:
    """The output of one piece of the input, handed out in input order."""

    text: str
    """The rendered rows that are written (``only`` applied)."""
    summary: Summary
    """Counts over every row of the piece, written or not."""
    errors: tuple[str, ...]
    """The one-line message of each error row, in order."""
    records: int
    """Records the reader handed over for this piece: ``summary.records`` must match."""
    read: int
    """Bytes of input read since the previous chunk (for progress)."""


@dataclass(frozen=True, slots=True)
class ReadFailure:
    """An input that could not be read, from the start or from some point on."""

    path: str
    error: OSError


class WorkerFailed(Exception):
    """A worker process stopped without giving back its work (killed, out of memory)."""


@dataclass(frozen=True, slots=True)
class _Task:
    """A piece of input: raw JSONL lines of one file, or records parsed by the reader."""

    name: str
    lines: list[RawLine]
    results: list[RecordResult]
    read: int

    @property
    def records(self) -> int:
        return len(self.lines) + len(self.results)


class _Position:
    """How far into a file the reader is, and how much of that was handed out already."""

    __slots__ = ("at", "reported")

    def __init__(self) -> None:
        self.at = 0
        self.reported = 0

    def update(self, at: int) -> None:
        self.at = at

    def take(self) -> int:
        """Bytes read since the last call."""
        read, self.reported = self.at - self.reported, self.at
        return read


@dataclass(frozen=True, slots=True)
class _Span:
    """Whole lines ``[start, end)`` of a plain JSONL file, read by the process that evaluates them.

    Only the location crosses to a worker, not the bytes. ``first`` is the number of
    the first line; ``device`` and ``inode`` name the file that was planned, so that
    a file replaced meanwhile is not read in its place.
    """

    path: str
    name: str
    start: int
    end: int
    first: int
    device: int
    inode: int
    read: int


_Work: TypeAlias = "_Task | _Span"

_GZIP_MAGIC: Final = b"\x1f\x8b"
_JSON_SPACE: Final = b" \t\r\n"
_JSONL_SUFFIXES: Final = (".jsonl", ".jsonl.gz")
_SNIFF: Final = 1 << 16


def _tasks(paths: Sequence[str], settings: Settings) -> Iterator[_Work | ReadFailure]:
    """The inputs as pieces, in order; the reading happens as pieces are taken."""
    for path in paths:
        spans = None
        if path != STDIN:
            try:
                spans = _plan_plain(path, settings)
            except OSError as exc:
                yield ReadFailure(path, exc)
                continue
        yield from spans if spans is not None else _file_tasks(path, settings)


def _plan_plain(path: str, settings: Settings) -> Iterator[_Span | _Task | ReadFailure] | None:
    """The spans of ``path`` if it is a plain JSONL file, else ``None`` (read it line by line).

    Gzip files, JSON arrays, standard input and anything that is not a regular file
    are read line by line, in this process. Raises ``OSError`` if the file cannot be
    opened.
    """
    # A pipe (`<(zcat ...)`) must not be opened here: what this read would be lost.
    if not stat.S_ISREG(os.stat(path).st_mode):
        return None
    handle: io.RawIOBase = open(path, "rb", buffering=0)  # noqa: SIM115 -- closed by _spans
    try:
        info = os.fstat(handle.fileno())
        head = handle.read(_SNIFF) or b""
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    if not head:
        handle.close()
        return iter(())
    start = head.removeprefix(_UTF8_BOM).lstrip(_JSON_SPACE)
    # A `.jsonl` file is JSONL even when its first record is (wrongly) an array.
    array = not path.endswith(_JSONL_SUFFIXES) and (not start or start.startswith(b"["))
    if head.startswith(_GZIP_MAGIC) or array:
        handle.close()
        return None
    return _spans(handle, path, settings, info.st_dev, info.st_ino)


def _spans(
    handle: io.RawIOBase, path: str, settings: Settings, device: int, inode: int
) -> Iterator[_Span | _Task | ReadFailure]:
    """Cut a plain file into spans of whole lines, and find the lines over the size limit.

    The file is read in blocks no larger than the limit, so a line over the limit has
    no line end in some block, and only the first line end of a block can end one. A
    span ends at the last line end of the block that takes it to ``chunk_bytes``.
    """
    limit = settings.max_record_size
    block = max(1, settings.chunk_bytes // 4)  # spans end within a quarter of chunk_bytes
    if limit is not None:
        block = max(1, min(block, limit))
    buffer = bytearray(block)
    offset = 0  # file offset of the buffer
    line_start = 0  # where the line under way starts
    number = 1  # its number
    chunk_start, chunk_first = 0, 1  # the span under way
    reported = 0  # bytes handed out so far
    too_long = False  # whether the line under way is over the limit

    def span(end: int) -> _Span:
        nonlocal reported, chunk_start, chunk_first
        piece = _Span(path, path, chunk_start, end, chunk_first, device, inode, end - reported)
        reported = chunk_start = end
        chunk_first = number
        return piece

    def skipped(end: int, size: int) -> _Task:
        nonlocal reported, chunk_start, chunk_first
        assert limit is not None
        error = too_large(path, number, size, limit)
        task = _Task(path, [], [error], end - reported)
        reported = chunk_start = end
        chunk_first = number + 1
        return task

    with handle:
        try:
            while count := handle.readinto(buffer):
                end = offset + count
                first = buffer.find(b"\n", 0, count)
                if first < 0:
                    if not too_long and limit is not None and end - line_start > limit:
                        if line_start > chunk_start:
                            yield span(line_start)
                        too_long = True
                    offset = end
                    continue
                line_end = offset + first
                if too_long or (limit is not None and line_end - line_start > limit):
                    if not too_long and line_start > chunk_start:
                        yield span(line_start)
                    yield skipped(line_end + 1, line_end - line_start)
                    too_long = False
                number += buffer.count(b"\n", 0, count)
                line_start = offset + buffer.rfind(b"\n", 0, count) + 1
                offset = end
                if line_start - chunk_start >= settings.chunk_bytes:
                    yield span(line_start)
        except OSError as exc:
            if line_start > chunk_start:
                yield span(line_start)
            yield ReadFailure(path, exc)
            return
    if too_long:
        yield skipped(offset, offset - line_start)
    elif offset > chunk_start:
        number += 1  # the last line has no line end
        yield span(offset)


class FileChanged(OSError):
    """A file that is not the one planned, or no longer holds the planned bytes."""


def _span_lines(span: _Span) -> list[RawLine]:
    """The non-blank lines of a span, numbered; raises ``OSError`` if the file changed."""
    with open(span.path, "rb") as handle:
        info = os.fstat(handle.fileno())
        handle.seek(span.start)
        data = handle.read(span.end - span.start)
    if (info.st_dev, info.st_ino) != (span.device, span.inode) or len(
        data
    ) != span.end - span.start:
        raise FileChanged(errno.ESTALE, "the file changed while it was being read")
    parts = data.split(b"\n")
    if not parts[-1]:
        parts.pop()  # after the last line end
    lines = []
    for number, part in enumerate(parts, start=span.first):
        if not is_blank(part.removeprefix(_UTF8_BOM) if number == 1 else part):
            lines.append((number, part))
    return lines


def _file_tasks(path: str, settings: Settings) -> Iterator[_Task | ReadFailure]:
    name = STDIN_NAME if path == STDIN else path
    where = _Position()
    lines: list[RawLine] = []
    results: list[RecordResult] = []
    size = 0
    failure: ReadFailure | None = None
    try:
        items = iter_lines(
            path,
            settings.input_format,
            max_record_size=settings.max_record_size,
            progress=where.update,
            limits=settings.limits,
        )
        for item in items:
            if isinstance(item, tuple):
                if results:
                    yield _Task(name, [], results, where.take())
                    results = []
                lines.append(item)
                size += len(item[1])
                if len(lines) >= settings.chunk_lines or size >= settings.chunk_bytes:
                    yield _Task(name, lines, [], where.take())
                    lines, size = [], 0
            else:
                if lines:
                    yield _Task(name, lines, [], where.take())
                    lines, size = [], 0
                results.append(item)
                if len(results) >= settings.chunk_lines:
                    yield _Task(name, [], results, where.take())
                    results = []
    except OSError as exc:
        failure = ReadFailure(path, exc)
    if lines or results or where.at > where.reported:
        yield _Task(name, lines, results, where.take())
    if failure is not None:
        yield failure


def _evaluate(
    policy: Policy, settings: Settings, fmt: RowFormat, task: _Work
) -> Chunk | ReadFailure:
    if isinstance(task, _Span):
        try:
            lines = _span_lines(task)
        except OSError as exc:
            return ReadFailure(task.path, exc)
        records = len(lines)
    else:
        lines = task.lines
        records = task.records
    if lines or isinstance(task, _Span):
        rows = evaluate_lines(
            policy,
            task.name,
            lines,
            settings.input_format,
            conformance=settings.conformance,
            limits=settings.limits,
        )
    else:
        rows = evaluate_records(policy, task.results, conformance=settings.conformance)
    summary = Summary()
    parts: list[str] = []
    errors: list[str] = []
    only = settings.only
    for row in rows:
        summary.add(row)
        if row.error is not None:
            errors.append(row.error)
        if row.outcome is None or not only or row.outcome in only:
            parts.append(fmt.render(row))
    return Chunk("".join(parts), summary, tuple(errors), records, task.read)


_worker: tuple[Policy, Settings, RowFormat] | None = None


def _start_worker(policy: Policy, settings: Settings) -> None:
    """Set up a worker process: the policy arrives once, here, not with every chunk."""
    global _worker
    # Ctrl-C reaches the whole process group; the main process stops the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = (
        policy,
        settings,
        row_format(settings.output_format, conformance=settings.conformance),
    )


def _work(task: _Work) -> Chunk | ReadFailure:
    if _worker is None:
        raise RuntimeError("worker used before it was started")
    return _evaluate(*_worker, task)


def run(
    policy: Policy,
    paths: Sequence[str],
    settings: Settings | None = None,
    *,
    jobs: int = 1,
    context: BaseContext | None = None,
) -> Generator[Chunk | ReadFailure, None, None]:
    """Evaluate every record of ``paths`` (``-`` is standard input), in input order.

    The inputs are cut into chunks in this process: a plain JSONL file into spans of
    whole lines of about ``chunk_bytes`` bytes, which the evaluating process reads
    itself; standard input, gzip files and JSON arrays into chunks of at most
    ``chunk_lines`` records. With ``jobs`` above 1 and more than one chunk, chunks are
    evaluated by that many worker processes (started from ``context``, default the
    platform's), with at most ``2 * jobs + 1`` chunks ahead of the output, so memory
    does not grow with the input. The output is the same, byte for byte, whatever
    ``jobs`` is. A file that cannot be read (or changes while it is read) gives one
    :class:`ReadFailure` where its output would have been, and the run goes on.

    Closing the iterator stops the run (workers are told to stop). Raises
    :class:`WorkerFailed` when a worker process dies, and re-raises any exception
    raised while evaluating.
    """
    settings = settings or Settings()
    fmt = row_format(settings.output_format, conformance=settings.conformance)
    tasks = _tasks(paths, settings)
    held: list[_Work | ReadFailure] = []
    results: Generator[Chunk | ReadFailure, None, None] | None = None
    if jobs > 1:
        # Workers cost more to start than one chunk costs to evaluate: only start
        # them when there is a second chunk.
        work = 0
        for task in tasks:
            held.append(task)
            work += not isinstance(task, ReadFailure)
            if work > 1:
                everything = itertools.chain(held, tasks)
                results = _parallel(policy, settings, everything, jobs, context)
                break
    if results is None:
        results = (
            task if isinstance(task, ReadFailure) else _evaluate(policy, settings, fmt, task)
            for task in itertools.chain(held, tasks)
        )
    failed: set[str] = set()
    with contextlib.closing(results):
        for result in results:
            if isinstance(result, ReadFailure):
                # A file that failed once is reported once.
                if result.path in failed:
                    continue
                failed.add(result.path)
            yield result


def _parallel(
    policy: Policy,
    settings: Settings,
    tasks: Iterator[_Work | ReadFailure],
    jobs: int,
    context: BaseContext | None,
) -> Generator[Chunk | ReadFailure, None, None]:
    executor = ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_start_worker, initargs=(policy, settings)
    )
    pending: collections.deque[Future[Chunk | ReadFailure] | ReadFailure] = collections.deque()
    ahead = 2 * jobs + 1
    try:
        for task in tasks:
            if isinstance(task, ReadFailure):
                pending.append(task)
            else:
                pending.append(executor.submit(_work, task))
            while len(pending) > ahead:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    except BrokenProcessPool:
        executor.shutdown(wait=False, cancel_futures=True)
        raise WorkerFailed(
            "a worker process stopped unexpectedly (killed, or out of memory?);"
            " try fewer --jobs or a smaller --max-record-size"
        ) from None
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _result(item: Future[Chunk | ReadFailure] | ReadFailure) -> Chunk | ReadFailure:
    return item if isinstance(item, ReadFailure) else item.result()
