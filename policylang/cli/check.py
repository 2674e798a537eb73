"""``policylang check``: run a policy over transcript files and report every decision.

Streams each file record by record: one JSON line (or table row) per conversation,
a located error line for each invalid record, and a summary on stderr. Every record
is accounted for: records read = decisions + invalid records.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import IO, Final, cast

import click

from policylang.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    ReadFailed,
    color_option,
    describe_os_error,
    fail,
    format_option,
    guarded,
    load_policy_or_exit_code,
    max_errors_option,
    read_records,
)
from policylang.formats import FORMATS, InputFormat, expand_inputs
from policylang.runtime import Decision, Outcome
from policylang.transcripts import STDIN, Record, RecordError

__all__ = ["ONLY_CHOICES", "check_command"]

ONLY_CHOICES: Final[dict[str, Outcome]] = {
    "ended": Outcome.END,
    "escalated": Outcome.ESCALATE,
    "warned": Outcome.WARN,
    "continued": Outcome.CONTINUE,
}
TOP: Final = 5
"""How many rules and categories the summary lists."""


# ---------------------------------------------------------------- reading




# ---------------------------------------------------------------- output


@dataclass(slots=True)
class _Stats:
    outcomes: collections.Counter[Outcome] = field(default_factory=collections.Counter)
    rules: collections.Counter[str] = field(default_factory=collections.Counter)
    categories: collections.Counter[str] = field(default_factory=collections.Counter)
    blocked: int = 0
    invalid: int = 0

    def add(self, decision: Decision) -> None:
        self.outcomes[decision.outcome] += 1
        if decision.outcome is not Outcome.CONTINUE:
            if decision.rule is not None:
                self.rules[decision.rule] += 1
            if decision.category is not None:
                self.categories[decision.category] += 1
        if any(event.blocked for event in decision.events):
            self.blocked += 1

    @property
    def decisions(self) -> int:
        return sum(self.outcomes.values())

    def lines(self) -> list[str]:
        count = self.decisions
        outcomes = ", ".join(f"{self.outcomes[outcome]} {outcome.value}" for outcome in Outcome)
        invalid = f"{self.invalid} invalid record{'' if self.invalid == 1 else 's'}"
        noun = "conversation" if count == 1 else "conversations"
        lines = [f"{count} {noun}: {outcomes}; {invalid}"]
        if self.rules:
            lines.append(f"top rules: {_top(self.rules)}")
        if self.categories:
            lines.append(f"top categories: {_top(self.categories)}")
        if self.blocked:
            noun = "conversation" if self.blocked == 1 else "conversations"
            lines.append(f"a protection blocked an end in {self.blocked} {noun}")
        return lines


def _top(counter: collections.Counter[str]) -> str:
    # Ties broken by name so the summary is deterministic.
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{name} {count}" for name, count in ranked[:TOP])
    more = len(ranked) - TOP
    return f"{shown}, and {more} more" if more > 0 else shown


def _json_line(document: dict[str, object]) -> str:
    # ASCII-only: safe on any terminal encoding, and lone surrogates from "\ud800"
    # escapes in the input survive instead of failing to encode.
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")) + "\n"


def _cell(value: object) -> str:
    """Table text with control, format and separator characters shown as escapes."""
    if value is None:
        return "-"
    text = str(value)
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch
        for ch in text
    )


class _JsonlWriter:
    """One JSON object per line: decisions and error records."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def decision(
        self, record: Record, decision: Decision, branch: dict[str, object] | None = None
    ) -> None:
        document = {**decision.to_json(), **(branch or {})}
        document.update(file=record.file, line=record.line)
        if record.index is not None:
            document["index"] = record.index
        self.stream.write(_json_line(document))

    def error(self, error: RecordError) -> None:
        document: dict[str, object] = {
            "error": error.to_json(),
            "file": error.file,
            "line": error.line,
        }
        if error.index is not None:
            document["index"] = error.index
        self.stream.write(_json_line(document))

    def finish(self) -> None:
        self.stream.flush()


class _TableWriter:
    """An aligned table. Column widths come from the first rows (the output streams,
    so later rows that are wider than those push the rest of their row right)."""

    HEADER: Final = ("RECORD", "ID", "OUTCOME", "AT", "RULE", "CATEGORY", "REASON")
    SAMPLE: Final = 200
    MAX_WIDTH: Final = 48

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.pending: list[list[str]] = [list(self.HEADER)]
        self.widths: list[int] | None = None

    def decision(
        self, record: Record, decision: Decision, branch: dict[str, object] | None = None
    ) -> None:
        where = f"{record.file}:{record.line}"
        if record.index is not None:
            where += f"[{record.index}]"
        shown_id = decision.conversation_id
        if branch is not None:
            shown_id = f"{shown_id}@{branch['branch']}"
        self._add(
            [
                _cell(where),
                _cell(shown_id),
                decision.outcome.value,
                _cell(decision.message_index),
                _cell(decision.rule),
                _cell(decision.category),
                _cell(decision.reason),
            ]
        )

    def error(self, error: RecordError) -> None:
        where = f"{error.file}:{error.line}"
        if error.index is not None:
            where += f"[{error.index}]"
        self._add(
            [
                _cell(where),
                _cell(error.conversation_id),
                "invalid",
                "-",
                f"error[{error.code}]",
                "-",
                _cell(error.reason),
            ]
        )

    def finish(self) -> None:
        self._fix_widths()
        self.stream.flush()

    def _add(self, cells: list[str]) -> None:
        if self.widths is None:
            self.pending.append(cells)
            if len(self.pending) > self.SAMPLE:
                self._fix_widths()
        else:
            self._write(cells)

    def _fix_widths(self) -> None:
        if self.widths is not None:
            return
        # Every column but the last (REASON) is padded.
        self.widths = [
            min(self.MAX_WIDTH, max(len(row[column]) for row in self.pending))
            for column in range(len(self.HEADER) - 1)
        ]
        for row in self.pending:
            self._write(row)
        self.pending = []

    def _write(self, cells: list[str]) -> None:
        assert self.widths is not None
        padded = [cell.ljust(width) for cell, width in zip(cells, self.widths, strict=False)]
        line = "  ".join([*padded, *cells[len(self.widths) :]])
        self.stream.write(line.rstrip() + "\n")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ---------------------------------------------------------------- command


@click.command("check")
@click.argument("policy", type=click.Path(exists=True, dir_okay=False))
@click.argument(
    "transcripts",
    nargs=-1,
    required=True,
    type=click.Path(allow_dash=True),
)
@click.option(
    "--input-format",
    "input_format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Transcript record format; auto detects it per record.",
)
@click.option(
    "--output",
    "output",
    default="-",
    show_default=True,
    metavar="FILE|-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where to write results; - for stdout.",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(tuple(ONLY_CHOICES)),
    help="Write only decisions with this outcome (repeatable); invalid records are always written.",
)
@format_option(("jsonl", "human"), "jsonl", "jsonl: one JSON object per record; human: a table.")
@max_errors_option
@color_option
@guarded
def check_command(
    policy: str,
    transcripts: tuple[str, ...],
    output: str,
    only: tuple[str, ...],
    output_format: str,
    max_errors: int | None,
    input_format: str = "auto",
) -> None:
    """Run POLICY over TRANSCRIPTS (JSONL or JSON arrays, plain or gzip; - for stdin;
    a directory or glob reads its *.jsonl, *.jsonl.gz and *.json files).

    Conversations with message ids and parent ids are split into branches, one
    decision per branch.

    Writes one result per record and a summary on stderr. Exit codes: 0 every
    record evaluated, 1 some record invalid (or the policy has errors), 2 usage
    or I/O problem, 3 internal error.
    """
    loaded = load_policy_or_exit_code(policy, max_errors)
    if isinstance(loaded, int):
        raise click.exceptions.Exit(loaded)
    try:
        transcripts = tuple(expand_inputs(transcripts))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    fmt = cast(InputFormat, input_format)

    if output != "-":
        for path in (policy, *transcripts):
            if path != STDIN and _same_file(path, output):
                raise click.UsageError(f"--output `{output}` is also an input file")
    try:
        stream: IO[str] = (
            sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        )
    except OSError as exc:
        fail(f"cannot write `{output}`: {describe_os_error(exc)}")
        raise click.exceptions.Exit(EXIT_USAGE) from None

    wanted = {ONLY_CHOICES[name] for name in only}
    writer = _TableWriter(stream) if output_format == "human" else _JsonlWriter(stream)
    stats = _Stats()
    shown_errors = 0
    read_failed = False
    try:
        for path in transcripts:
            try:
                for result in read_records(path, fmt):
                    if isinstance(result, RecordError):
                        stats.invalid += 1
                        if max_errors is None or shown_errors < max_errors:
                            click.echo(result.located(), err=True)
                            shown_errors += 1
                        writer.error(result)
                        continue
                    conversation = result.conversation
                    # iter_records has checked the tree, so paths() does not raise here.
                    for branch_id, indices in conversation.paths():
                        messages = [conversation.messages[i] for i in indices]
                        decision = loaded.evaluate(messages, conversation.id)
                        stats.add(decision)
                        branch: dict[str, object] | None = None
                        if branch_id:
                            branch = {
                                "branch": branch_id,
                                "branch_messages": conversation.branch_ids(indices),
                            }
                        if not wanted or decision.outcome in wanted:
                            writer.decision(result, decision, branch)
            except ReadFailed as exc:
                fail(f"cannot read `{exc.path}`: {describe_os_error(exc.error)}")
                read_failed = True
        writer.finish()
    except BrokenPipeError:
        raise
    except OSError as exc:
        fail(f"cannot write `{output}`: {describe_os_error(exc)}")
        raise click.exceptions.Exit(EXIT_USAGE) from None
    finally:
        if output != "-":
            stream.close()

    hidden = stats.invalid - shown_errors
    if hidden:
        click.echo(f"... and {hidden} more invalid records (all are in the output)", err=True)
    for line in stats.lines():
        click.echo(line, err=True)
    if read_failed:
        raise click.exceptions.Exit(EXIT_USAGE)
    raise click.exceptions.Exit(EXIT_FINDINGS if stats.invalid else EXIT_OK)
