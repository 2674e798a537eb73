"""Reading test files: every mistake is located at its exact line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from testing_helpers import REPO, run, write

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Outcome, Policy
from policylang.testing import check_names, parse_case_file


def located(folder: Path, text: str, name: str = "small.cases.yaml") -> list[str]:
    """Every problem with the file, as ``line:col: code message`` (without the path)."""
    path = write(folder, text, name)
    case_file, errors = parse_case_file(str(path))
    if case_file is not None:
        policy = load_policy(case_file.policy_path, DiagnosticSink())
        assert isinstance(policy, Policy)
        errors = check_names(case_file, policy)
    prefix = f"{path}:"
    return [error.located().removeprefix(prefix) for error in errors]


GOOD_CASE = """\
cases:
  - name: a
    conversation:
      - user: hi
    expect: {outcome: continue}
"""


def test_a_good_file_loads(work: Path) -> None:
    path = write(work, GOOD_CASE)
    case_file, errors = parse_case_file(str(path))
    assert errors == []
    assert case_file is not None
    assert case_file.policy_path == str(work / "small.policy")
    (case,) = case_file.cases
    assert case.name == "a"
    assert (case.location.line, case.location.column) == (2, 5)
    assert [(m.role, m.content) for m in case.messages] == [("user", "hi")]
    assert case.expect.outcome is Outcome.CONTINUE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n"
            "    expcet: {outcome: continue}\n",
            [
                "2:5: error[PL806] a case is missing `expect`",
                "5:5: error[PL806] unknown key `expcet` in a case (did you mean `expect`?)",
            ],
            id="unknown-key",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n"
            "    expect: {outcome: end, at: four}\n",
            [
                "5:32: error[PL806] `at` must be a message index (a whole number, 0 or more), "
                "not `four`"
            ],
            id="wrong-type-at",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n"
            "    expect: {outcome: ended}\n",
            [
                "5:23: error[PL806] unknown outcome `ended` (did you mean `end`?); "
                "expected one of continue, warn, escalate, end"
            ],
            id="unknown-outcome",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n"
            "    expect: {never_ends: maybe}\n",
            ["5:26: error[PL806] `never_ends` must be `true` or `false`, not `maybe`"],
            id="wrong-type-bool",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n"
            "      - assistant: ok\n    expect: {outcome: end, at: 1}\n",
            [
                "6:32: error[PL806] `at` is 1, which is an assistant message; "
                "decisions are made at user messages"
            ],
            id="at-assistant-message",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n    expect: {warns_at: 3}\n",
            [
                "5:24: error[PL806] `warns_at` is 3, but the conversation has only 1 messages "
                "(indices 0 to 0)"
            ],
            id="index-past-the-end",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n"
            "    expect: {post_termination: [0, x]}\n",
            [
                "5:36: error[PL806] an index in `post_termination` must be a message index "
                "(a whole number, 0 or more), not `x`"
            ],
            id="post-termination-item",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n    expect: {}\n",
            ["5:13: error[PL806] `expect` names no expectation (for example `outcome: continue`)"],
            id="empty-expect",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n        assistant: ok\n"
            "    expect: {outcome: continue}\n",
            [
                "4:9: error[PL806] a message has more than one role: write one of `user:`, "
                "`assistant:`, `system:` or `tool:` followed by its text"
            ],
            id="two-roles",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - usr: hi\n"
            "    expect: {outcome: continue}\n",
            [
                "4:9: error[PL806] unknown key `usr` in a message (did you mean `user`?)",
                "4:9: error[PL806] a message has no role: write one of `user:`, `assistant:`, "
                "`system:` or `tool:` followed by its text",
            ],
            id="no-role",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user:\n"
            "    expect: {outcome: continue}\n",
            ["4:14: error[PL806] the user message is empty"],
            id="empty-message",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: hi\n"
            "        metadata: {scores: {violence: high}}\n    expect: {outcome: continue}\n",
            ["5:28: error[PL806] `scores` must map classifier names to numbers: {violence: 0.9}"],
            id="score-not-a-number",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: {item}\n"
            "    expect: {outcome: continue}\n",
            [
                "4:15: error[PL806] the user message must be text; to use a placeholder, put it "
                'in quotes: "{item}" (placeholders need `each`)'
            ],
            id="bare-placeholder-without-each",
        ),
        pytest.param(
            "cases:\n  - name: a\n    expect: {outcome: continue}\n",
            ["2:5: error[PL806] a case needs a `conversation` or a `transcript`"],
            id="no-conversation",
        ),
        pytest.param(
            GOOD_CASE + GOOD_CASE.removeprefix("cases:\n"),
            ["6:5: error[PL806] duplicate case name `a` (first on line 2)"],
            id="duplicate-case-name",
        ),
        pytest.param(
            "cases:\n  - name: a\n    name: b\n    conversation:\n      - user: hi\n"
            "    expect: {outcome: continue}\n",
            ["3:5: error[PL806] duplicate key `name` in a case (first on line 2)"],
            id="duplicate-key",
        ),
        pytest.param(
            "policy: missing.policy\ncases: []\n",
            ["1:9: error[PL806] policy file `{work}/missing.policy` does not exist"],
            id="missing-policy",
        ),
        pytest.param(
            "cases:\n  - nme: a\n",
            [
                "2:5: error[PL806] unknown key `nme` in a case (did you mean `name`?)",
                "2:5: error[PL806] a case is missing `name`",
                "2:5: error[PL806] a case is missing `expect`",
                "2:5: error[PL806] a case needs a `conversation` or a `transcript`",
            ],
            id="misspelt-name",
        ),
        pytest.param(
            "- just a list\n",
            ["1:1: error[PL806] the test file must be a mapping of keys to values, not a list"],
            id="not-a-mapping",
        ),
        pytest.param(
            "# nothing here\n",
            ["1:1: error[PL806] the test file is empty; it needs a `cases:` list"],
            id="empty-file",
        ),
    ],
)
def test_structure_errors_are_located(work: Path, text: str, expected: list[str]) -> None:
    assert located(work, text) == [line.replace("{work}", str(work)) for line in expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "cases:\n  - name: a\n   conversation:\n",
            "3:4: error[PL805] invalid YAML: this line is indented differently from the lines "
            "above it (while parsing a block collection on line 2)",
            id="bad-indent",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n\t- user: hi\n",
            "4:1: error[PL805] invalid YAML: a tab character: indent with spaces",
            id="tab",
        ),
        pytest.param(
            "cases:\n  - name: 'a\n",
            "3:1: error[PL805] invalid YAML: the file ends inside a quoted text: close the quote "
            "(while scanning a quoted scalar on line 2)",
            id="unclosed-quote",
        ),
        pytest.param(
            "cases:\n  - name: a\n    conversation:\n      - user: note: this\n",
            "4:19: error[PL805] invalid YAML: a `: ` inside unquoted text: put the text in quotes",
            id="colon-in-text",
        ),
    ],
)
def test_yaml_errors_are_located(work: Path, text: str, expected: str) -> None:
    assert located(work, text) == [expected]


def test_invalid_utf8_is_located(work: Path) -> None:
    path = work / "small.cases.yaml"
    path.write_bytes(b"cases:\n  - name: caf\xe9\n")
    case_file, errors = parse_case_file(str(path))
    assert case_file is None
    assert [e.located() for e in errors] == [
        f"{path}:2:14: error[PL805] the file is not valid UTF-8 (save it as UTF-8)"
    ]


@pytest.mark.parametrize(
    ("expect", "column", "message"),
    [
        (
            "rule: end_weapon",
            20,
            "`small` has no rule or protection `end_weapon` (did you mean `end_weapons`?)",
        ),
        ("category: weapon", 24, "`small` has no category `weapon` (did you mean `weapons`?)"),
        ("protection: rsk", 26, "`small` has no protection `rsk` (did you mean `risk`?)"),
        ("reason: rudde", 22, "`small` has no reason `rudde` (did you mean `rude`?)"),
        (
            "blocked: warn_rudeness",
            23,
            "`warn_rudeness` is not an end rule; only end rules are blocked by protections",
        ),
        ("blocked: nothing_like_it", 23, "`small` has no end rule `nothing_like_it`"),
    ],
)
def test_unknown_names_are_located(work: Path, expect: str, column: int, message: str) -> None:
    text = f"cases:\n  - name: a\n    conversation:\n      - user: hi\n    expect: {{{expect}}}\n"
    assert located(work, text) == [f"5:{column}: error[PL807] {message}"]


def test_a_protection_is_a_valid_rule_name(work: Path) -> None:
    text = "cases:\n  - name: a\n    conversation:\n      - user: hi\n    expect: {rule: risk}\n"
    assert located(work, text) == []


def test_the_policy_defaults_to_the_stem_and_must_exist(work: Path) -> None:
    assert located(work, GOOD_CASE, "other.cases.yaml") == [
        f"1:1: error[PL806] no policy for this test file: `{work}/other.policy` does not "
        "exist (name the policy with `policy:`)"
    ]
    assert located(work, GOOD_CASE, "tests.yaml") == [
        "1:1: error[PL806] the test file does not say which policy it tests: add "
        "`policy: NAME.policy`, or name the file `NAME.cases.yaml` after its policy"
    ]
    assert located(work, "policy: small.policy\n" + GOOD_CASE, "tests.yaml") == []


# ---------------------------------------------------------------- transcripts


TRANSCRIPT_CASE = """\
cases:
  - name: from a transcript
    transcript: {{file: {file}, id: {id}}}
    expect: {{outcome: end, at: 4}}
"""


def test_a_transcript_case_loads_the_conversation(work: Path) -> None:
    samples = REPO / "samples" / "conversations.jsonl"
    text = TRANSCRIPT_CASE.format(file=samples, id="sample-04-persistent-abuse")
    case_file, errors = parse_case_file(str(write(work, text)))
    assert errors == []
    assert case_file is not None
    (case,) = case_file.cases
    assert len(case.messages) == 7
    assert case.source == f"{samples}:4"


def test_a_missing_transcript_id_is_located(work: Path) -> None:
    samples = REPO / "samples" / "conversations.jsonl"
    text = TRANSCRIPT_CASE.format(file=samples, id="sample-04-persistent-abus")
    column = len("    transcript: {file: , id: ") + len(str(samples)) + 1
    assert located(work, text) == [
        f"3:{column}: error[PL808] no conversation `sample-04-persistent-abus` in `{samples}` "
        "(did you mean `sample-04-persistent-abuse`?)"
    ]


def test_a_missing_transcript_file_is_located(work: Path) -> None:
    text = TRANSCRIPT_CASE.format(file="nowhere.jsonl", id="x")
    assert located(work, text) == [
        f"3:24: error[PL808] cannot read `{work}/nowhere.jsonl`: No such file or directory"
    ]


def test_an_invalid_transcript_record_is_reported(work: Path) -> None:
    (work / "t.jsonl").write_text('{"id": "bad", "messages": [{"role": "robot"}]}\n')
    text = TRANSCRIPT_CASE.format(file="t.jsonl", id="bad")
    (problem,) = located(work, text)
    assert problem.startswith(
        f"3:37: error[PL808] conversation `bad` in `{work}/t.jsonl` is invalid: {work}/t.jsonl:1: "
    )


def test_an_at_past_a_transcript_conversation_is_an_error(work: Path) -> None:
    samples = REPO / "samples" / "conversations.jsonl"
    text = TRANSCRIPT_CASE.format(file=samples, id="sample-01-cooking").replace("at: 4", "at: 9")
    assert located(work, text) == [
        "4:32: error[PL806] `at` is 9, but the conversation has only 4 messages (indices 0 to 3)"
    ]


# ---------------------------------------------------------------- on the command line


def test_the_cli_prints_located_errors_and_exits_2(work: Path) -> None:
    write(work, "cases:\n  - name: a\n    conversation:\n      - user: hi\n    expcet: {}\n")
    result = run(["test", work / "small.cases.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{work}/small.cases.yaml:2:5: error[PL806] a case is missing `expect`",
        f"{work}/small.cases.yaml:5:5: error[PL806] unknown key `expcet` in a case "
        "(did you mean `expect`?)",
        "0 passed, 0 failed",
    ]


def test_a_bad_file_does_not_stop_the_others(work: Path) -> None:
    write(work, GOOD_CASE)
    write(work, "policy: small.policy\ncases: [1]\n", "broken.cases.yaml")
    result = run(["test", work])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{work}/broken.cases.yaml:2:9: error[PL806] a case must be a mapping of keys to "
        "values, not `1`",
        "1 passed, 0 failed",
    ]
