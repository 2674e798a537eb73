"""The transcript readers' robustness invariants, shared by hypothesis and atheris.

For any bytes of a JSONL transcript, :func:`check_transcript_bytes` returns normally or
raises :class:`fuzz_helpers.Violation`:

* reading the file (``iter_records``) and evaluating its lines (``evaluate_lines``, the
  path ``check`` takes) raise nothing, and neither emits a Python warning;
* every non-blank line of an uncompressed file gives exactly one record, in order: a
  conversation or a located PL8xx error (registered code, the line's number, a column,
  a one-line message), and exactly one first output row with the same error code or
  none; nothing is lost;
* the fast native reader reads a line only when the full reader reads it as a
  conversation, with the same id, branches, roles, contents and metadata;
* evaluating a conversation that loaded raises nothing.

This module imports nothing from hypothesis or atheris.
"""

from __future__ import annotations

import json
import warnings

from fuzz_helpers import ROOT, Violation, time_limit

from policylang.batch import evaluate_lines
from policylang.codes import CODES
from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.fastread import decode_native
from policylang.runtime import Policy
from policylang.transcripts import Record, RecordError, iter_records, parse_line

__all__ = ["check_error", "check_line", "check_transcript_bytes", "default_policy"]

_BOM = b"\xef\xbb\xbf"
_GZIP = b"\x1f\x8b"
_POLICY: list[Policy] = []


def default_policy() -> Policy:
    """policies/default.policy, compiled once."""
    if not _POLICY:
        loaded = load_policy(str(ROOT / "policies" / "default.policy"), DiagnosticSink())
        if loaded is None:
            raise Violation("the default policy does not compile")
        _POLICY.append(loaded)
    return _POLICY[0]


def check_error(error: RecordError, name: str, line: int) -> None:
    """``error`` is a located, registered PL8xx error on ``line`` of ``name``."""
    if error.file != name or error.line != line or error.column < 1:
        raise Violation(f"error placed at {error.file}:{error.line}:{error.column}: {error}")
    if error.code not in CODES or not error.code.startswith("PL8"):
        raise Violation(f"unexpected code {error.code}: {error}")
    if not error.reason or "\n" in error.located():
        raise Violation(f"error message empty or on several lines: {error.located()!r}")
    json.dumps(error.to_json())


def check_line(raw: bytes, name: str, number: int) -> None:
    """One line through the full reader, the fast reader and evaluation."""
    result = parse_line(raw, name, number)
    if result is None:
        if (raw.removeprefix(_BOM) if number == 1 else raw).strip(b" \t\r\n"):
            raise Violation(f"a non-blank line gave no record: {raw[:80]!r}")
        return
    if isinstance(result, RecordError):
        check_error(result, name, number)
    else:
        if result.line != number:
            raise Violation(f"record placed on line {result.line}, not {number}")
        default_policy().evaluate(result.conversation.messages)
    fast = decode_native(raw.removeprefix(_BOM) if number == 1 else raw)
    if fast is None:
        return
    if not isinstance(result, Record):
        raise Violation(f"the fast reader read a line the full reader refused: {result}")
    slow = result.conversation
    if (fast.id, fast.paths()) != (slow.id, slow.paths()) or [
        (m.role, m.content, m.metadata) for m in fast.messages
    ] != [(m.role, m.content, m.metadata) for m in slow.messages]:
        raise Violation(f"the fast and full readers read line {number} differently")


def check_transcript_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (a ``.jsonl`` name) and check every invariant on it."""
    with open(path, "wb") as handle:
        handle.write(data)
    if data.startswith(_GZIP):
        # A compressed file: what it holds is not its bytes' lines. Reading it gives
        # records and errors, the last a PL804 when the stream is corrupt.
        with time_limit():
            records = list(iter_records(path))
        for record in records:
            if isinstance(record, RecordError):
                check_error(record, path, record.line)
        return
    numbered = list(enumerate(data.split(b"\n"), start=1))
    if numbered and not numbered[-1][1]:
        numbered.pop()  # the empty rest after a final line end
    expected = [
        n for n, raw in numbered if (raw.removeprefix(_BOM) if n == 1 else raw).strip(b" \t\r")
    ]
    with time_limit(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(iter_records(path))
        rows = evaluate_lines(default_policy(), path, numbered)
        for number, raw in numbered:
            check_line(raw, path, number)
    if caught:
        raise Violation(f"a Python warning escaped: {caught[0].message}")
    if [r.line for r in records] != expected:
        raise Violation(f"records on lines {[r.line for r in records]}, lines {expected}")
    for record in records:
        if isinstance(record, RecordError):
            check_error(record, path, record.line)
    firsts = [row for row in rows if row.first]
    if [row.document["line"] for row in firsts] != expected:
        raise Violation("evaluate_lines did not give one first row per line")
    codes = [r.code if isinstance(r, RecordError) else None for r in records]
    if [row.code for row in firsts] != codes:
        raise Violation(f"check's rows have codes {[r.code for r in firsts]}, reader's {codes}")
