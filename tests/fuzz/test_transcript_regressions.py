"""Transcripts the fuzzers found that crashed a command, through the command line.

Each crashed ``check``, ``report``, ``diff`` or ``explain`` with an internal error
before its fix; now each is one located error record (or a record read like any
other), and the run goes on to the next record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fuzz_helpers import ROOT

from policylang.cli import main

POLICY = ROOT / "policies" / "default.policy"
HUGE = "9" * 100_000

#: Line, and the error code it gives (None: it is read as a conversation).
HOSTILE: list[tuple[str, str | None]] = [
    # msgspec raised RecursionError, which the fast reader did not catch.
    ("[" * 200_000 + "]" * 200_000, "PL801"),
    ('{"id": "d", "messages": [{"role": "user", "content": "hi", "metadata": '
     + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}]}", "PL801"),
    # json.loads raised ValueError (over 4,300 digits) in the full reader only.
    (f'{{"id": "n", "messages": [{{"role": "user", "content": "hi", "n": {HUGE}}}]}}', None),
    (f'{{"id": {HUGE}, "messages": [{{"role": "user", "content": "hi"}}]}}', "PL802"),
    # Format detection looked up a list in a set (unhashable).
    ('{"id": "r", "messages": [{"role": [], "content": "hi"}]}', "PL802"),
    ('{"messages": [{"role": "user", "content": [{"type": ["text"], "text": "hi"}]}]}', None),
    # The OpenAI converter called dict() on metadata of any type.
    ('{"messages": [{"role": "user", "content": [], "metadata": true}]}', "PL802"),
    ('{"messages": [{"role": "user", "content": [], "metadata": "0"}]}', "PL802"),
    ('{"id": "ok", "messages": [{"role": "user", "content": "hello"}]}', None),
]  # fmt: skip


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(line + "\n" for line, _ in HOSTILE), encoding="utf-8")
    return path


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "internal error" not in result.stderr and "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_check_gives_one_row_per_hostile_record(hostile: Path) -> None:
    code, out, _ = _invoke("check", str(POLICY), str(hostile), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["line"] for row in rows] == list(range(1, len(HOSTILE) + 1))
    assert [row["error"]["code"] if "error" in row else None for row in rows] == [
        expected for _, expected in HOSTILE
    ]
    assert code == 1  # some records are invalid


def test_report_diff_and_explain_read_the_same_records(hostile: Path, tmp_path: Path) -> None:
    invalid = sum(expected is not None for _, expected in HOSTILE)
    code, _, err = _invoke("report", str(POLICY), str(hostile))
    assert err.count("error[PL8") == invalid and code == 1
    code, _, err = _invoke("diff", str(POLICY), str(POLICY), str(hostile))
    assert err.count("[PL8") == invalid
    code, out, _ = _invoke("explain", str(POLICY), str(hostile), "--id", "ok")
    assert code == 0 and "conversation ok" in out


def test_invalid_utf8_in_a_field_the_fast_reader_skips(tmp_path: Path) -> None:
    # Found by atheris: msgspec skips an unknown field without checking its UTF-8, so
    # the fast reader evaluated a line the full reader reports as PL803.
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'{"id": "a", "messages": [{"role": "user", "content": "hi"}], "\x94\x9els": 1}\n'
        b'{"id": "b", "messages": [{"role": "user", "content": "hi", "x\xff": 1}]}\n'
    )
    code, out, _ = _invoke("check", str(POLICY), str(path), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["error"]["code"] for row in rows] == ["PL803", "PL803"]
    assert code == 1
