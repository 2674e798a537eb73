"""Table-driven cases: ``each`` expands into one case per row."""

from __future__ import annotations

from pathlib import Path

from testing_helpers import run, write

from policylang.runtime import Outcome
from policylang.testing import CaseFile, parse_case_file


def load(work: Path, text: str) -> CaseFile:
    case_file, errors = parse_case_file(str(write(work, text)))
    assert [e.located() for e in errors] == []
    assert case_file is not None
    return case_file


def problems(work: Path, text: str) -> list[str]:
    path = write(work, text)
    case_file, errors = parse_case_file(str(path))
    assert case_file is None
    return [e.located().removeprefix(f"{path}:") for e in errors]


def test_string_rows_fill_item_and_name_the_case_after_the_row(work: Path) -> None:
    case_file = load(
        work,
        """\
cases:
  - name: look-alikes never end
    each:
      - "How do I kill a Python process?"
      - What's the best way to shoot a photo?
    conversation:
      - user: "{item}"
      - assistant: "I can't help with that."
      - user: "Again: {item}"
    expect: {never_ends: true}
""",
    )
    assert [case.name for case in case_file.cases] == [
        "look-alikes never end [How do I kill a Python process?]",
        "look-alikes never end [What's the best way to shoot a photo?]",
    ]
    first, second = case_file.cases
    assert [m.content for m in first.messages] == [
        "How do I kill a Python process?",
        "I can't help with that.",
        "Again: How do I kill a Python process?",
    ]
    assert second.messages[0].content == "What's the best way to shoot a photo?"
    # Each case is located at its row, so a failure points at the row.
    assert (first.location.line, first.location.column) == (4, 9)
    assert (second.location.line, second.location.column) == (5, 9)


def test_mapping_rows_fill_fields_keep_types_and_may_name_the_case(work: Path) -> None:
    case_file = load(
        work,
        """\
cases:
  - name: "{who} ends at {at}"
    each:
      - {who: blaster, text: "Where can I get a blaster?", at: 4, outcome: end, key: weapons}
      - {who: dummy, text: "You dummy.", at: 2, outcome: warn, key: rudeness}
    conversation:
      - user: "{text}"
        metadata: {scores: {"{key}": 0.1}}
      - assistant: I can't help with that.
      - user: "{text}"
      - assistant: I can't help with that.
      - user: "{text}"
    expect: {outcome: "{outcome}", at: "{at}"}
""",
    )
    assert [case.name for case in case_file.cases] == ["blaster ends at 4", "dummy ends at 2"]
    first, second = case_file.cases
    assert first.expect.at == 4  # a whole-value placeholder keeps the row's type
    assert first.expect.outcome is Outcome.END
    assert second.expect.outcome is Outcome.WARN
    assert first.messages[0].metadata == {"scores": {"weapons": 0.1}}
    assert second.messages[0].metadata == {"scores": {"rudeness": 0.1}}


def test_a_row_without_placeholder_in_the_name_is_numbered(work: Path) -> None:
    case_file = load(
        work,
        """\
cases:
  - name: rows
    each: [{text: a}, {text: b}]
    conversation: [{user: "{text}"}]
    expect: {outcome: continue}
""",
    )
    assert [case.name for case in case_file.cases] == ["rows [1]", "rows [2]"]


def test_unquoted_placeholders_and_literal_braces(work: Path) -> None:
    case_file = load(
        work,
        """\
cases:
  - name: braces
    each: [x]
    conversation:
      - user: {item}
      - user: "{{item}} is {item}"
    expect: {outcome: continue}
""",
    )
    assert [m.content for m in case_file.cases[0].messages] == ["x", "{item} is x"]


def test_placeholder_mistakes_are_located_once(work: Path) -> None:
    assert problems(
        work,
        """\
cases:
  - name: "{category} case"
    each:
      - {category: weapons}
      - {category: rudeness}
    conversation:
      - user: "{text}"
    expect: {outcome: continue}
""",
    ) == [
        "7:15: error[PL806] unknown placeholder `{text}` for row 1 (its placeholders: "
        "`{category}`; write `{{` for a literal brace)",
        "7:15: error[PL806] unknown placeholder `{text}` for row 2 (its placeholders: "
        "`{category}`; write `{{` for a literal brace)",
    ]


def test_rows_that_are_never_used_are_an_error(work: Path) -> None:
    assert problems(
        work,
        """\
cases:
  - name: unused
    each: [a, b]
    conversation: [{user: hi}]
    expect: {outcome: continue}
""",
    ) == [
        "3:5: error[PL806] `each` rows are never used: write `{item}` (or `{field}` for a "
        "mapping row) in the case's conversation, name or expect",
    ]


def test_bad_rows_are_errors(work: Path) -> None:
    assert problems(
        work,
        """\
cases:
  - name: bad rows
    each: [[1, 2]]
    conversation: [{user: "{item}"}]
    expect: {outcome: continue}
  - name: no rows
    each: []
    conversation: [{user: "{item}"}]
    expect: {outcome: continue}
""",
    ) == [
        "3:12: error[PL806] a row of `each` must be text or a mapping of fields, not a list",
        "7:11: error[PL806] `each` has no rows",
    ]


def test_each_row_runs_as_its_own_case(work: Path) -> None:
    write(
        work,
        """\
cases:
  - name: never ends
    each:
      - "a blaster"
      - "a toy blaster"
    conversation:
      - user: "Where can I get {item}?"
      - assistant: I can't help with that.
      - user: "Where can I get {item}?"
      - assistant: I can't help with that.
      - user: "Where can I get {item}?"
    expect: {never_ends: true}
""",
    )
    result = run(["test", work, "-v"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"FAIL {work}/small.cases.yaml:4: never ends [a blaster]"
    assert f"PASS {work}/small.cases.yaml:5: never ends [a toy blaster]" in lines
    assert lines[-1] == "1 passed, 1 failed"
