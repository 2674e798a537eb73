"""``policylang explain``: why a policy decided what it did for one conversation.

Finds the conversation by id in transcript files, replays it through the policy and
prints, message by message, what matched, how the counters moved and every protection
and rule checked with the value of each atom of its condition, then what would have
changed the outcome (see :mod:`policylang.explain`).
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Final

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
    read_records,
    settings,
    tenant_option,
    use_color,
)
from policylang.transcripts import Record, RecordError

__all__ = ["MAX_SKIPPED_SHOWN", "explain_command", "find_conversation"]

MAX_SKIPPED_SHOWN: Final = 10
"""Invalid records reported one by one; the rest are counted."""

MAX_SUGGESTIONS: Final = 3
"""Ids offered when the one asked for is not found."""


@dataclass(slots=True)
class Search:
    """The outcome of looking for one id in transcript files."""

    found: Record | None = None
    elsewhere: list[str] = field(default_factory=list)
    """``file:line`` of every other record with the id."""
    ids: list[str] = field(default_factory=list)
    """Every id read, in order (for suggestions)."""
    invalid: list[RecordError] = field(default_factory=list)
    """Invalid records carrying the id (they are skipped)."""
    skipped: int = 0
    files: int = 0




def _skip(error: RecordError, shown: int) -> None:
    if shown < MAX_SKIPPED_SHOWN:
        click.echo(
            f"{error.file}:{error.line}:{error.column}: warning[{error.code}] "
            f"{error.reason} (record skipped)",
            err=True,
        )


def find_conversation(conversation_id: str, paths: Sequence[str]) -> Search:
    """Read every file and keep the first record with ``conversation_id``.

    Invalid records are reported on stderr as located warnings and skipped. Raises
    :class:`ReadFailed` when a file cannot be read.
    """
    search = Search()
    for path in paths:
        search.files += 1
        for result in read_records(path):
            if isinstance(result, RecordError):
                _skip(result, search.skipped)
                search.skipped += 1
                if result.conversation_id == conversation_id:
                    search.invalid.append(result)
                continue
            found_id = result.conversation.id
            search.ids.append(found_id)
            if found_id != conversation_id:
                continue
            if search.found is None:
                search.found = result
            else:
                search.elsewhere.append(f"{result.file}:{result.line}")
    hidden = search.skipped - MAX_SKIPPED_SHOWN
    if hidden > 0:
        click.echo(f"... and {hidden} more invalid records skipped", err=True)
    return search


def _suggestions(wanted: str, ids: Sequence[str]) -> list[str]:
    from policylang.suggest import did_you_mean

    unique = list(dict.fromkeys(ids))
    best = did_you_mean(wanted, unique)
    if best is not None:
        return [best]
    folded = wanted.casefold()
    if not folded:
        return []
    containing = [i for i in unique if folded in i.casefold()]
    return containing if len(containing) <= MAX_SUGGESTIONS else []


def _not_found(wanted: str, search: Search) -> None:
    count = len(search.ids)
    conversations = "conversation" if count == 1 else "conversations"
    files = "file" if search.files == 1 else "files"
    message = (
        f"no conversation has id `{wanted}` "
        f"(searched {count} {conversations} in {search.files} {files})"
    )
    suggestions = _suggestions(wanted, search.ids)
    if suggestions:
        message += "; did you mean " + " or ".join(f"`{s}`" for s in suggestions) + "?"
    fail(message)
    for error in search.invalid:
        click.echo(
            f"note: the record at {error.file}:{error.line} has this id but is invalid: "
            f"{error.reason}",
            err=True,
        )


def _is_utf8(stream: IO[str]) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _safe(text: str, stream: IO[str]) -> str:
    """Text the stream can encode: anything else as backslash escapes."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        return text.encode("ascii", "backslashreplace").decode("ascii")


@click.command("explain")
@click.argument("policy", type=click.Path(exists=True, dir_okay=False))
@click.argument(
    "transcripts",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option(
    "--id",
    "conversation_id",
    required=True,
    metavar="ID",
    help="The id of the conversation to explain.",
)
@format_option(
    ("human", "json"),
    "human",
    "human: a per-message listing; json: one document (docs/schemas/explain.schema.json).",
)
@tenant_option
@color_option
@guarded
def explain_command(
    policy: str,
    transcripts: tuple[str, ...],
    conversation_id: str,
    output_format: str,
    tenant: str | None = None,
) -> None:
    """Explain how POLICY decides the conversation with --id ID in TRANSCRIPTS.

    Shows each message, what matched, the counters, every protection and rule checked
    with the value of each part of its condition, the decision, and what would have
    changed it. Exit codes: 0 explained, 1 no conversation has that id (or the policy
    has errors), 2 usage or I/O problem, 3 internal error.
    """
    from policylang.explain import explain, render_human

    loaded = load_policy_or_exit_code(policy, None, tenant=tenant)
    if isinstance(loaded, int):
        raise click.exceptions.Exit(loaded)
    try:
        search = find_conversation(conversation_id, transcripts)
    except ReadFailed as exc:
        fail(f"cannot read `{exc.path}`: {describe_os_error(exc.error)}")
        raise click.exceptions.Exit(EXIT_USAGE) from None
    record = search.found
    if record is None:
        _not_found(conversation_id, search)
        raise click.exceptions.Exit(EXIT_FINDINGS)
    if search.elsewhere:
        places = ", ".join(search.elsewhere)
        click.echo(
            f"warning: id `{conversation_id}` is also at {places}; "
            f"explaining the first, at {record.file}:{record.line}",
            err=True,
        )
    explanation = explain(loaded, record.conversation, file=record.file, line=record.line)
    stdout = sys.stdout
    if output_format == "json":
        document = json.dumps(explanation.to_json(), ensure_ascii=True, indent=2)
        click.echo(document)
    else:
        color = use_color(settings().color, stdout)
        text = render_human(explanation, color=color, unicode=_is_utf8(stdout))
        click.echo(_safe(text, stdout), nl=False, color=color)
    raise click.exceptions.Exit(EXIT_OK)
