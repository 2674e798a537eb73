"""docs/conformance.md: its examples load, its error texts are the real ones, its code runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from policylang.conformance import ConformanceStatus, system_end_index
from policylang.transcripts import Record, RecordError, iter_records

HERE = Path(__file__).parent
REPO = HERE.parents[1]
DOC = REPO / "docs" / "conformance.md"
FIXTURES = HERE / "fixtures"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", _doc(), flags=re.MULTILINE | re.DOTALL)


def _section(title: str) -> str:
    text = _doc()
    start = text.index(f"\n{title}\n")
    end = text.find("\n#", start + len(title) + 2)
    return text[start : end if end != -1 else None]


def _write(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_every_marker_example_loads_with_its_marker(tmp_path: Path) -> None:
    lines = [line for block in _blocks("jsonl") for line in block.splitlines() if line.strip()]
    assert len(lines) == 5
    path = tmp_path / "doc.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = list(iter_records(str(path)))
    assert all(isinstance(r, Record) for r in results), results
    for result in results:
        assert isinstance(result, Record)
        ends = [system_end_index(messages) for _, messages in result.conversation.branches()]
        assert any(end is not None for end in ends), result.line


_CALL = {"id": "c1", "type": "function", "function": {"name": "end_conversation"}}
# One record per row of the "Invalid markers" table, in its order.
_INVALID: list[dict[str, Any]] = [
    {"id": "a", "messages": [{"role": "user", "content": "x"},
                             {"role": "assistant", "content": "y", "end_conversation": "true"}]},
    {"id": "a", "messages": [{"role": "user", "content": "x", "end_conversation": True}]},
    {"id": "a", "end_conversation": True, "messages": [{"role": "user", "content": "x"}]},
    {"messages": [{"role": "user", "content": "x", "tool_calls": [_CALL]}]},
    {"messages": [{"role": "user", "content": "x"},
                  {"role": "assistant", "content": "y", "end_conversation": False,
                   "tool_calls": [_CALL]}]},
    {"id": "s", "conversations": [{"from": "human", "value": "x"},
                                  {"from": "gpt", "value": "y", "end_conversation": None}]},
    {"text": "\n\nAssistant: hi\n\nHuman: bye", "end_conversation": True},
]  # fmt: skip


def _code(cell: str) -> str:
    """The text of a table cell that is one code span (`` `text` `` or ``` `` text `` ```)."""
    cell = cell.strip()
    return cell[3:-3] if cell.startswith("`` ") else cell[1:-1]


def test_invalid_marker_table_shows_the_real_messages(tmp_path: Path) -> None:
    lines = _section("### Invalid markers").splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| ---")]
    documented = [_code(row.removesuffix(" |").rsplit(" | ", 1)[1]) for row in rows[1:]]
    results = list(iter_records(str(_write(tmp_path / "bad.jsonl", *_INVALID))))
    actual = [r.reason if isinstance(r, RecordError) else repr(r) for r in results]
    assert documented == actual


def test_status_table_lists_every_status() -> None:
    section = _section("## How the ends are compared")
    documented = re.findall(r"^\| `([a-z_]+)` \| ", section, flags=re.MULTILINE)
    assert documented == [status.value for status in ConformanceStatus]


def test_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = _blocks("python")
    code = code.replace(
        '"policies/default.policy"', repr(str(REPO / "policies" / "default.policy"))
    )
    code = code.replace('"logs.jsonl"', repr(str(FIXTURES / "default-policy.jsonl")))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    printed = out.getvalue().splitlines()
    # Four of the five default-policy fixtures disagree; then the summary.
    assert [line.split()[0] for line in printed[:4]] == [
        "two-pushes-ended",
        "ended-under-protection",
        "quoted-request-ended",
        "sincere-request-not-ended",
    ]
    assert printed[4].startswith("conformance: 1 agree, 1 missed_end, 3 unjustified_end")
