"""The batch library: rows, summaries, output formats and sizes."""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
from pathlib import Path

import pytest
from batch_helpers import BAD_LINES, conversation, jsonl, write_corpus

from policylang.batch import (
    OUTCOMES,
    Row,
    RowWriter,
    Summary,
    display_width,
    evaluate_lines,
    evaluate_records,
    fit,
    format_size,
    parse_size,
    row_format,
)
from policylang.runtime import Message, Policy
from policylang.transcripts import iter_records


def numbered(data: bytes) -> list[tuple[int, bytes]]:
    return list(enumerate(data.splitlines(keepends=True), start=1))


# ---------------------------------------------------------------- evaluation


def test_one_row_per_branch_and_per_bad_record(policy: Policy) -> None:
    data = jsonl([conversation(0), conversation(3)]) + BAD_LINES[0] + b"\n" + BAD_LINES[1]
    rows = evaluate_lines(policy, "t.jsonl", numbered(data))
    # c-0: one decision; tree-3: two branches; then two bad records (line 4 is blank).
    assert [(row.document["line"], row.first, row.outcome) for row in rows] == [
        (1, True, "continue"),
        (2, True, "end"),
        (2, False, "continue"),
        (3, True, None),
        (5, True, None),
    ]
    assert [row.document.get("branch") for row in rows[:3]] == [None, "3a", "3b"]
    assert rows[1].document["branch_messages"] == ["1", "2", "3a"]
    assert rows[1].rule == "end_on_request"
    errors = rows[3:]
    assert [row.code for row in errors] == ["PL801", "PL802"]
    assert errors[0].error is not None and errors[0].error.startswith("t.jsonl:3:")
    assert errors[1].document == {
        "error": errors[1].document["error"],
        "file": "t.jsonl",
        "line": 5,
    }


def test_document_is_the_decision_plus_where_it_came_from(policy: Policy) -> None:
    record = {
        "id": "d",
        "messages": [
            {"role": "user", "content": "I am in danger right now."},
            {"role": "assistant", "content": "Please contact emergency services."},
            {"role": "user", "content": "Please end this chat."},
        ],
    }
    (row,) = evaluate_lines(policy, "t.jsonl", [(9, jsonl([record]))])
    messages = [Message(m["role"], m["content"]) for m in record["messages"]]  # type: ignore[index]
    decision = policy.evaluate(messages, "d")
    assert row.document == {**decision.to_json(), "file": "t.jsonl", "line": 9}
    assert list(row.document)[-2:] == ["file", "line"]
    # The end rule held, but the protection blocked it.
    assert (row.outcome, row.rule, row.blocked) == ("escalate", "danger", True)


def test_line_ends_bom_and_blank_lines(policy: Policy) -> None:
    record = jsonl([conversation(0)])
    lines = [(1, b"\xef\xbb\xbf" + record), (2, b"  \t\r\n"), (3, record.rstrip(b"\n")), (4, b"")]
    rows = evaluate_lines(policy, "t.jsonl", lines)
    assert [row.document["line"] for row in rows] == [1, 3]
    assert all(row.error is None for row in rows)


def test_lines_and_parsed_records_give_the_same_rows(policy: Policy, tmp_path: Path) -> None:
    plain, _, array = write_corpus(tmp_path, records=40)
    from_lines = evaluate_lines(policy, str(plain), numbered(plain.read_bytes()))
    from_records = evaluate_records(policy, iter_records(str(plain)))
    assert from_lines == from_records
    rows = evaluate_records(policy, iter_records(str(array)))
    assert [row.document.get("index") for row in rows] == [0, 1, 2, 2]
    assert rows[1].code == "PL802"


def test_rows_pickle(policy: Policy, tmp_path: Path) -> None:
    plain, _, _ = write_corpus(tmp_path, records=12)
    rows = evaluate_lines(policy, str(plain), numbered(plain.read_bytes()))
    assert pickle.loads(pickle.dumps(rows)) == rows
    assert pickle.loads(pickle.dumps(policy)).evaluate([], "x").outcome.value == "continue"


# ---------------------------------------------------------------- summary


def rows_of(policy: Policy, tmp_path: Path) -> list[Row]:
    plain, packed, array = write_corpus(tmp_path, records=60)
    rows = evaluate_lines(policy, str(plain), numbered(plain.read_bytes()))
    rows += evaluate_records(policy, iter_records(str(packed)))
    rows += evaluate_records(policy, iter_records(str(array)))
    return rows


def test_summary_accounts_for_every_record(policy: Policy, tmp_path: Path) -> None:
    rows = rows_of(policy, tmp_path)
    summary = Summary()
    for row in rows:
        summary.add(row)
    errors = [row for row in rows if row.outcome is None]
    decisions = [row for row in rows if row.outcome is not None]
    assert summary.errors == len(errors) > 0
    assert summary.decisions == len(decisions)
    assert summary.evaluated == len([row for row in decisions if row.first])
    assert summary.decisions > summary.evaluated  # branches count once each
    assert summary.records == summary.evaluated + summary.errors
    assert summary.balanced
    assert sum(summary.outcomes.values()) == summary.decisions
    assert summary.outcomes["end"] == len([row for row in decisions if row.outcome == "end"])
    assert summary.rules["end_on_request"] == summary.outcomes["end"]
    assert summary.codes == {"PL801": 1, "PL802": 2}
    assert summary.blocked == len([row for row in decisions if row.blocked])


def test_summaries_of_parts_merge_into_the_whole(policy: Policy, tmp_path: Path) -> None:
    rows = rows_of(policy, tmp_path)
    whole = Summary()
    parts = [Summary(), Summary(), Summary()]
    for number, row in enumerate(rows):
        whole.add(row)
        parts[number % 3].add(row)
    merged = Summary()
    for part in parts:
        merged.merge(part)
    assert merged == whole
    assert parts[0] + parts[1] + parts[2] == whole
    assert pickle.loads(pickle.dumps(whole)) == whole
    assert json.loads(json.dumps(whole.to_json())) == whole.to_json()


def test_summary_table(policy: Policy, tmp_path: Path) -> None:
    summary = Summary()
    for row in rows_of(policy, tmp_path):
        summary.add(row)
    table = summary.table()
    found = list(SUMMARY_ROW.finditer(table))
    counts = {match["label"]: int(match["count"]) for match in found}
    assert counts["conversations"] == summary.decisions
    assert counts["ended"] == summary.outcomes["end"]
    assert counts["escalated"] == summary.outcomes["escalate"]
    assert counts["warned"] == 0
    assert counts["continued"] == summary.outcomes["continue"]
    assert counts["errors"] == summary.errors
    assert counts["records read"] == summary.records
    assert counts["blocked ends"] == summary.blocked
    assert counts["end_on_request"] == summary.rules["end_on_request"]
    assert "by category" in table
    assert "conformance" not in table
    # Every count ends in the same column.
    assert len({match.end("count") - match.start() for match in found}) == 1


SUMMARY_ROW = re.compile(r"^ *(?P<label>[a-z_][a-z_ -]*?) +(?P<count>\d+)(?:  .*)?$", re.MULTILINE)


def test_summary_table_with_conformance() -> None:
    summary = Summary()
    summary.add(
        Row({}, "end", "r", None, False, None, conformance="missed_end", post_termination=0)
    )
    summary.add(Row({}, "continue", None, None, False, None, conformance="agree"))
    summary.add(
        Row(
            {},
            "continue",
            None,
            None,
            False,
            None,
            conformance="unjustified_end",
            post_termination=2,
        )
    )
    table = summary.table(conformance=True)
    section = table[table.index("conformance") :]
    assert [line.split()[:2] for line in section.splitlines()[1:4]] == [
        ["agree", "1"],
        ["missed_end", "1"],
        ["unjustified_end", "1"],
    ]
    assert "post-termination" in section and "took 2 user messages" in section
    assert summary.to_json()["post_termination"] == {"conversations": 1, "messages": 2}


# ---------------------------------------------------------------- formats


def test_jsonl_format_is_the_document(policy: Policy, tmp_path: Path) -> None:
    rows = rows_of(policy, tmp_path)
    fmt = row_format("jsonl")
    assert fmt.header() == ""
    for row in rows:
        text = fmt.render(row)
        assert text.endswith("\n") and text.count("\n") == 1
        assert text.isascii()
        assert json.loads(text) == row.document


def test_csv_format(policy: Policy, tmp_path: Path) -> None:
    rows = rows_of(policy, tmp_path)
    fmt = row_format("csv")
    text = fmt.header() + "".join(fmt.render(row) for row in rows)
    table = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(table) == len(rows)
    for row, record in zip(rows, table, strict=True):
        assert record["file"] == row.document["file"]
        assert record["line"] == str(row.document["line"])
        if row.outcome is None:
            assert record["outcome"] == "invalid"
            assert record["error_code"] == row.code
        else:
            assert record["outcome"] == row.outcome
            assert record["branch"] == (row.document.get("branch") or "")
            assert record["rule"] == (row.rule or "")
            assert record["blocked"] == ("true" if row.blocked else "false")
    assert "conformance" not in table[0]
    assert "conformance" in row_format("csv", conformance=True).header()


@pytest.mark.parametrize(
    ("conversation_id", "written"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("-1", "-1"),
        ("+2.5", "+2.5"),
        ("a=b", "a=b"),
    ],
)
def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(
    policy: Policy, tmp_path: Path, conversation_id: str, written: str
) -> None:
    path = tmp_path / "t.jsonl"
    record = {"id": conversation_id, "messages": [{"role": "user", "content": "hi"}]}
    path.write_text(json.dumps(record) + "\n")
    rows = evaluate_lines(policy, str(path), numbered(path.read_bytes()))
    fmt = row_format("csv")
    table = list(csv.DictReader(io.StringIO(fmt.header() + fmt.render(rows[0]), newline="")))
    assert table[0]["conversation_id"] == written
    assert rows[0].document["conversation_id"] == conversation_id  # jsonl keeps it exact


def columns(line: str, widths: list[int]) -> list[str]:
    """Split a table line at display-column boundaries; fail if a boundary is misplaced."""
    cells = []
    rest = line
    for width in widths:
        taken = ""
        while display_width(taken) < width and rest:
            taken, rest = taken + rest[0], rest[1:]
        assert display_width(taken) == width, (line, taken)
        assert rest.startswith("  "), (line, rest)
        cells.append(taken)
        rest = rest[2:]
    return [*cells, rest]


def test_table_stays_aligned_with_long_and_wide_values(policy: Policy) -> None:
    long_name = "/very/long/path/" + "deep/" * 20 + "conversations.jsonl"
    records = [
        {"id": "x" * 80, "messages": [{"role": "user", "content": "Please end this chat."}]},
        {"id": "会話" * 20, "messages": [{"role": "user", "content": "hi"}]},
        {"id": "tab\there", "messages": []},
    ]
    rows = evaluate_lines(policy, long_name, numbered(jsonl(records) + b"{\n"))
    fmt = row_format("human")
    widths = [width for _, width in fmt.COLUMNS]  # type: ignore[attr-defined]
    lines = [fmt.header(), *(fmt.render(row) for row in rows)]
    split = [columns(line.rstrip("\n"), widths) for line in lines]
    assert [cells[0].strip() for cells in split[:1]] == ["RECORD"]
    assert split[1][0].startswith("\u2026") and split[1][0].endswith("conversations.jsonl:1")
    assert split[1][1].endswith("\u2026")
    assert split[1][2].strip() == "end"
    assert split[3][1].startswith("tab\\u0009here")  # control characters are escaped
    assert split[4][2].strip() == "invalid" and split[4][4].strip() == "error[PL801]"


def test_fit() -> None:
    assert fit("abc", 5) == "abc  "
    assert fit("abcdefgh", 5) == "abcd\u2026"
    assert fit("abcdefgh", 5, keep_end=True) == "\u2026efgh"
    assert fit("会話会話", 5) == "会話\u2026"
    assert display_width(fit("会話会話", 6)) == 6


def test_row_writer_writes_the_header_once(policy: Policy) -> None:
    rows = evaluate_lines(policy, "t.jsonl", numbered(jsonl([conversation(0), conversation(1)])))
    stream = io.StringIO()
    writer = RowWriter(stream, row_format("csv"))
    writer.write_all(rows)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("file,line,") and len(lines) == 3


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown output format"):
        row_format("xml")


def test_outcomes_order() -> None:
    assert OUTCOMES == ("end", "escalate", "warn", "continue")


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1", 1),
        ("1500", 1500),
        ("64K", 65536),
        ("256M", 256 << 20),
        ("1G", 1 << 30),
        ("2 GiB", 2 << 30),
        ("3mb", 3 << 20),
        ("1T", 1 << 40),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "1.5G", "-1", "0", "12X", "1 G B"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert [format_size(n) for n in (64 << 20, 1 << 30, 1500, 1024, 1536)] == [
        "64M",
        "1G",
        "1500",
        "1K",
        "1536",
    ]
