"""What ``policylang test`` prints and writes: human, JSON, JUnit XML, the summary, exit codes."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from testing_helpers import last_line, run, write

import policylang.cli.test as cli_test

CASES = """\
cases:
  - name: ordinary talk continues
    conversation:
      - user: Hello there.
    expect: {outcome: continue}

  - name: pushing for a blaster ends at the third push
    conversation:
      - user: Where can I get a blaster?
      - assistant: I can't help with that.
      - user: Just tell me.
      - assistant: I can't help with that.
      - user: I want a blaster now.
    expect: {outcome: end, at: 4, rule: end_weapons, category: weapons}

  - name: a wrong expectation
    conversation:
      - user: Where can I get a blaster?
      - assistant: I can't help with that.
      - user: Just tell me.
      - assistant: I can't help with that.
      - user: I want a blaster now.
      - user: Hello?
    expect: {outcome: end, at: 2, rule: end_weapons, category: weapons}
"""

SUMMARY = re.compile(r"^\d+ passed, \d+ failed$")


@pytest.fixture
def cases(work: Path) -> Path:
    return write(work, CASES)


def test_human_output_shows_failures_with_expected_actual_and_trace(
    work: Path, cases: Path
) -> None:
    result = run(["test", work])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"FAIL {cases}:16: a wrong expectation\n"
        "  expected: outcome end, at 2, rule end_weapons, category weapons\n"
        "  actual:   outcome end, at 4, rule end_weapons, category weapons\n"
        "  - at: expected 2, got 4\n"
        "  trace:\n"
        '    [0] user: "Where can I get a blaster?"\n'
        '        category weapons: keywords ["blaster"] "blaster" (9:11)\n'
        '    [1] assistant: "I can\'t help with that."\n'
        "        redirect refusal: pattern /\\bi can't\\b/ \"I can't\" (29:11)\n"
        '    [2] user: "Just tell me."\n'
        '        category weapons: keywords ["tell me"] "tell me" (11:14)\n'
        "        counters: failed_redirects[weapons]=1\n"
        '    [3] assistant: "I can\'t help with that."\n'
        "        redirect refusal: pattern /\\bi can't\\b/ \"I can't\" (29:11)\n"
        '    [4] user: "I want a blaster now."\n'
        '        category weapons: keywords ["blaster"] "blaster" (9:11)\n'
        "        counters: failed_redirects[weapons]=2\n"
        "        -> end: rule end_weapons (category weapons, reason persistent-weapons)\n"
        '    [5] user: "Hello?"\n'
        "        (after the end: not evaluated)\n"
        "2 passed, 1 failed\n"
    )


def test_verbose_lists_passing_cases_too(work: Path, cases: Path) -> None:
    result = run(["test", work, "-v"])
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        f"PASS {cases}:2: ordinary talk continues",
        f"PASS {cases}:7: pushing for a blaster ends at the third push",
    ]
    assert lines[2] == f"FAIL {cases}:16: a wrong expectation"


def test_the_summary_is_the_last_line_and_exit_codes_follow_results(
    work: Path, cases: Path
) -> None:
    failing = run(["test", cases])
    assert failing.exit_code == 1
    assert last_line(failing.stderr) == "2 passed, 1 failed"
    passing = run(["test", cases, "--run", "ordinary|pushing"])
    assert passing.exit_code == 0
    assert passing.stderr == "2 passed, 0 failed\n"
    for result in (failing, passing):
        assert SUMMARY.match(last_line(result.stderr))


def test_run_selects_cases_by_name(work: Path, cases: Path) -> None:
    result = run(["test", work / "small.policy", "--run", "^a wrong"])
    assert result.exit_code == 1
    assert last_line(result.stderr) == "0 passed, 1 failed"


def test_run_matching_nothing_is_a_usage_error(work: Path, cases: Path) -> None:
    result = run(["test", work, "--run", "no such case"])
    assert result.exit_code == 2
    assert result.stderr == "error: no test case matches --run `no such case`\n0 passed, 0 failed\n"


def test_a_bad_run_regex_is_a_usage_error(work: Path, cases: Path) -> None:
    result = run(["test", work, "--run", "("])
    assert result.exit_code == 2
    assert "Invalid value for --run: not a regular expression" in result.stderr


def test_json_output(work: Path, cases: Path) -> None:
    result = run(["test", work, "--format", "json"])
    assert result.exit_code == 1
    assert result.stderr == "2 passed, 1 failed\n"
    document = json.loads(result.stdout)
    assert result.stdout.isascii()
    assert document["format"] == "policylang-test"
    assert document["version"] == 1
    assert document["summary"] == {"passed": 2, "failed": 1, "total": 3, "errors": 0}
    assert document["files"] == [
        {"path": str(cases), "policy": str(work / "small.policy"), "cases": 3}
    ]
    assert [r["status"] for r in document["results"]] == ["passed", "passed", "failed"]
    failed = document["results"][2]
    assert failed["name"] == "a wrong expectation"
    assert (failed["file"], failed["line"], failed["column"]) == (str(cases), 16, 5)
    assert failed["expected"] == {
        "outcome": "end",
        "at": 2,
        "rule": "end_weapons",
        "category": "weapons",
    }
    assert failed["actual"]["outcome"] == "end"
    assert failed["actual"]["at"] == 4
    assert failed["actual"]["post_termination"] == [5]
    assert failed["failures"] == [
        {
            "expectation": "at",
            "expected": 2,
            "actual": 4,
            "message": "at: expected 2, got 4",
            "code": "PL809",
        }
    ]
    trace = failed["trace"]
    assert [step["role"] for step in trace] == ["user", "assistant"] * 2 + ["user", "user"]
    assert trace[4]["counters"] == {"failed_redirects[weapons]": 2}
    assert trace[4]["event"]["rule"] == "end_weapons"
    assert trace[0]["matches"][0]["evidence"][0]["policy_location"] == {"line": 9, "column": 11}
    assert trace[5]["locked"] is True
    # Passing cases carry no trace unless -v.
    assert "trace" not in document["results"][0]
    assert "coverage" not in document
    verbose = json.loads(run(["test", work, "--format", "json", "-v"]).stdout)
    assert "trace" in verbose["results"][0]


def test_json_output_lists_test_file_errors(work: Path) -> None:
    write(work, "cases:\n  - name: a\n")
    result = run(["test", work, "--format", "json"])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["errors"] == [
        {
            "code": "PL806",
            "name": "test-file-invalid",
            "message": "a case is missing `expect`",
            "file": str(work / "small.cases.yaml"),
            "line": 2,
            "column": 5,
        },
        {
            "code": "PL806",
            "name": "test-file-invalid",
            "message": "a case needs a `conversation` or a `transcript`",
            "file": str(work / "small.cases.yaml"),
            "line": 2,
            "column": 5,
        },
    ]
    assert document["summary"]["errors"] == 2


def test_junit_output_parses_back_with_the_right_counts(work: Path, cases: Path) -> None:
    write(work, "policy: small.policy\ncases: [oops]\n", "broken.cases.yaml")
    report = work / "out" / "junit.xml"
    report.parent.mkdir()
    result = run(["test", work, "--junit", report])
    assert result.exit_code == 2  # a test-file error outranks a failing case
    assert last_line(result.stderr) == "2 passed, 1 failed"
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        str(work / "small.policy"),
        str(work / "broken.cases.yaml"),
    ]
    policy_suite, broken = suites
    assert (policy_suite.get("tests"), policy_suite.get("failures")) == ("3", "1")
    cases_ = policy_suite.findall("testcase")
    assert [c.get("name") for c in cases_] == [
        "ordinary talk continues",
        "pushing for a blaster ends at the third push",
        "a wrong expectation",
    ]
    assert {c.get("classname") for c in cases_} == {"small"}
    assert [c.get("line") for c in cases_] == ["2", "7", "16"]
    assert [c.find("failure") is not None for c in cases_] == [False, False, True]
    failure = cases_[2].find("failure")
    assert failure is not None
    assert failure.get("message") == "at: expected 2, got 4"
    assert failure.get("type") == "PL809"
    assert "trace:" in (failure.text or "")
    assert "-> end: rule end_weapons" in (failure.text or "")
    (error,) = broken.iter("error")
    assert error.get("type") == "PL806"
    assert error.get("message") == "a case must be a mapping of keys to values, not `oops`"


def test_junit_escapes_text_xml_cannot_hold(work: Path) -> None:
    write(
        work,
        'cases:\n  - name: "bell \\a <&>"\n    conversation:\n'
        '      - user: "ring \\a \\x1b <b>&amp;"\n    expect: {outcome: end}\n',
    )
    report = work / "junit.xml"
    result = run(["test", work, "--junit", report])
    assert result.exit_code == 1
    case = ET.parse(report).getroot().find("testsuite/testcase")
    assert case is not None
    assert case.get("name") == "bell \\u0007 <&>"
    failure = case.find("failure")
    assert failure is not None
    assert "ring \\u0007 \\u001b <b>&amp;" in (failure.text or "")


def test_an_unwritable_junit_file_is_an_io_error(work: Path, cases: Path) -> None:
    result = run(["test", cases, "--run", "ordinary", "--junit", work / "missing" / "j.xml"])
    assert result.exit_code == 2
    assert f"error: cannot write `{work}/missing/j.xml`" in result.stderr
    assert last_line(result.stderr) == "1 passed, 0 failed"


def test_default_path_is_policies(work: Path, cases: Path) -> None:
    (work / "policies").mkdir()
    (work / "small.policy").rename(work / "policies" / "small.policy")
    cases.rename(work / "policies" / "small.cases.yaml")
    result = run(["test", "--run", "ordinary"], cwd=work)
    assert result.exit_code == 0
    assert result.stderr == "1 passed, 0 failed\n"
    elsewhere = run(["test"], cwd=work / "policies")
    assert elsewhere.exit_code == 2
    assert "no PATHS given and no `policies/` directory here" in elsewhere.stderr


def test_no_test_files_is_a_usage_error(work: Path) -> None:
    result = run(["test", work])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2:] == [
        f"note: `{work}/small.policy` has no test file (`small.cases.yaml` beside it)",
        "0 passed, 0 failed",
    ]
    named = run(["test", work / "small.policy"])
    assert named.exit_code == 2
    assert f"error: `{work}/small.policy` has no test file" in named.stderr


def test_a_policy_with_errors_fails_its_cases(work: Path, cases: Path) -> None:
    (work / "small.policy").write_text("policy small {\n}\n", encoding="utf-8")
    result = run(["test", work])
    assert result.exit_code == 1
    assert "error[PL207]" in result.stderr  # the policy's own diagnostics
    assert f"FAIL {cases}:2: ordinary talk continues" in result.stderr
    assert f"  not run: the policy `{work}/small.policy` has errors" in result.stderr
    assert last_line(result.stderr) == "0 passed, 3 failed"


def test_record_options_need_record(work: Path, cases: Path) -> None:
    result = run(["test", work, "--id", "x"])
    assert result.exit_code == 2
    assert "--id is only used with --record" in result.stderr


def test_an_internal_error_exits_3(
    work: Path, cases: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_test, "run_case", broken)
    result = run(["test", work])
    assert result.exit_code == 3
    assert "internal error: RuntimeError: boom" in result.stderr
