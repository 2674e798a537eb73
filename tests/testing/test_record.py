"""``policylang test --record``: append a case from a transcript, keeping the file's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from testing_helpers import last_line, run, write

from policylang.runtime import Decision, Message, Outcome, PolicyInfo
from policylang.testing import case_text, parse_case_file

EXISTING = """\
# My tests. This comment, the blank lines and the odd spacing must survive.

cases:
    - name: ordinary talk continues   # a trailing comment
      conversation:
          - user: Hello there.
      expect: {outcome: continue}
# a comment at the very end
"""

CONVERSATIONS = [
    {
        "id": "pushy",
        "messages": [
            {"role": "user", "content": "Where can I get a blaster?"},
            {"role": "assistant", "content": "I can't help with that."},
            {"role": "user", "content": 'Just tell me. "Quotes", \\ and a tab\there.'},
            {"role": "assistant", "content": "I can't help with that.", "metadata": {"x": 1}},
            {"role": "user", "content": "I want a blaster now. ¿Qué? 😀"},
        ],
    },
    {
        "id": 42,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "hi", "metadata": {"scores": {"weapons": 0.2}}},
        ],
    },
]


@pytest.fixture
def transcripts(work: Path) -> Path:
    path = work / "t.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CONVERSATIONS), encoding="utf-8")
    return path


def test_record_appends_keeping_the_existing_text(work: Path, transcripts: Path) -> None:
    cases = write(work, EXISTING)
    result = run(
        ["test", "--record", transcripts, "--id", "pushy", "--policy", work / "small.policy"]
    )
    assert result.exit_code == 0, result.stderr
    text = cases.read_text(encoding="utf-8")
    assert text.startswith(EXISTING + "\n")
    added = text[len(EXISTING) + 1 :]
    assert added.startswith('    - name: "recorded pushy"\n')
    assert result.stderr.splitlines()[0] == f"added case `recorded pushy` to {cases}:10:"
    assert result.stderr.endswith(added)
    assert "      expect: {outcome: end, at: 4, rule: end_weapons, category: weapons}\n" in added
    # The recorded case reads back exactly and passes.
    case_file, errors = parse_case_file(str(cases))
    assert errors == []
    assert case_file is not None
    recorded = case_file.cases[1]
    assert [m.content for m in recorded.messages] == [
        m["content"] for m in CONVERSATIONS[0]["messages"]
    ]
    assert recorded.messages[3].metadata == {"x": 1}
    check = run(["test", cases])
    assert check.exit_code == 0
    assert last_line(check.stderr) == "2 passed, 0 failed"


def test_record_starts_a_new_file_beside_the_policy(work: Path, transcripts: Path) -> None:
    result = run(
        [
            "test",
            "--record",
            transcripts,
            "--id",
            "42",
            "--policy",
            work / "small.policy",
            "--name",
            "a system prompt",
        ]
    )
    assert result.exit_code == 0, result.stderr
    text = (work / "small.cases.yaml").read_text(encoding="utf-8")
    assert text == (
        "# Test cases for small.policy; run them with `policylang test`.\n"
        "cases:\n"
        '  - name: "a system prompt"\n'
        f"    # recorded from {transcripts}:2 with small 1.0.0\n"
        "    conversation:\n"
        '      - system: "You are helpful."\n'
        '      - user: "hi"\n'
        "        metadata: {scores: {weapons: 0.2}}\n"
        "    expect: {outcome: continue}\n"
    )
    assert run(["test", work]).stderr == "1 passed, 0 failed\n"


def test_record_to_another_file_names_the_policy(work: Path, transcripts: Path) -> None:
    target = work / "sub" / "mine.cases.yaml"
    target.parent.mkdir()
    result = run(
        [
            "test",
            "--record",
            transcripts,
            "--id",
            "pushy",
            "--policy",
            work / "small.policy",
            "--to",
            target,
        ]
    )
    assert result.exit_code == 0, result.stderr
    assert target.read_text(encoding="utf-8").splitlines()[1] == "policy: ../small.policy"
    # Recording again into it needs no --policy: the file says which policy it tests.
    again = run(["test", "--record", transcripts, "--id", "42", "--to", target])
    assert again.exit_code == 0, again.stderr
    check = run(["test", target])
    assert check.stderr == "2 passed, 0 failed\n"


def test_record_keeps_crlf_line_ends(work: Path, transcripts: Path) -> None:
    cases = work / "small.cases.yaml"
    cases.write_bytes(EXISTING.replace("\n", "\r\n").encode())
    result = run(["test", "--record", transcripts, "--id", "42", "--policy", work / "small.policy"])
    assert result.exit_code == 0, result.stderr
    data = cases.read_bytes()
    assert data.startswith(EXISTING.replace("\n", "\r\n").encode())
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert run(["test", cases]).exit_code == 0


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        (
            "cases:\n  - name: a\n    conversation: [{user: hi}]\n    expect: {outcome: end}\n"
            "policy: small.policy\n",
            "1:1: error[PL806] cannot add a case: `cases:` must be the last key of the file "
            "(move it to the end)",
        ),
        (
            "cases: []\n",
            "1:1: error[PL806] cannot add a case: `cases:` must be a list written one `- name:` "
            "per case (replace `[]` with nothing)",
        ),
    ],
)
def test_record_refuses_files_it_cannot_append_to(
    work: Path, transcripts: Path, existing: str, message: str
) -> None:
    cases = write(work, existing)
    result = run(["test", "--record", transcripts, "--id", "42", "--to", cases])
    assert result.exit_code == 2
    assert result.stderr == f"{cases}:{message}\n"
    assert cases.read_text(encoding="utf-8") == existing


def test_record_into_an_empty_cases_key(work: Path, transcripts: Path) -> None:
    cases = write(work, "# nothing yet\ncases:\n")
    result = run(["test", "--record", transcripts, "--id", "42", "--to", cases])
    assert result.exit_code == 0, result.stderr
    assert cases.read_text(encoding="utf-8").startswith("# nothing yet\ncases:\n\n  - name:")
    assert run(["test", cases]).exit_code == 0


def test_record_problems(work: Path, transcripts: Path) -> None:
    policy = work / "small.policy"
    missing = run(["test", "--record", transcripts, "--id", "nope", "--policy", policy])
    assert missing.exit_code == 2
    assert missing.stderr == f"error: no conversation `nope` in {transcripts}\n"
    assert not (work / "small.cases.yaml").exists()

    run(["test", "--record", transcripts, "--id", "42", "--policy", policy])
    twice = run(["test", "--record", transcripts, "--id", "42", "--policy", policy])
    assert twice.exit_code == 2
    assert "already has a case named `recorded 42`; choose another with --name" in twice.stderr

    no_id = run(["test", "--record", transcripts, "--policy", policy])
    assert no_id.exit_code == 2
    assert "--record needs --id ID" in no_id.stderr

    with_run = run(["test", "--record", transcripts, "--id", "42", "--run", "x"])
    assert with_run.exit_code == 2
    assert "--run cannot be used with --record" in with_run.stderr

    other = write(work, "policy: other.policy\ncases:\n", "other.cases.yaml")
    (work / "other.policy").write_text(policy.read_text(encoding="utf-8"), encoding="utf-8")
    mismatch = run(
        ["test", "--record", transcripts, "--id", "42", "--policy", policy, "--to", other]
    )
    assert mismatch.exit_code == 2
    assert f"`{other}` tests `{work}/other.policy`, not `{policy}`" in mismatch.stderr


def test_case_text_round_trips_any_text() -> None:
    hostile = [
        'quote " and \\ backslash',
        "newline\nand\rreturn\tand tab",
        "# not a comment",
        "- not a list",
        "{item} and {{braces}}",
        "key: value",
        "yes",
        "\u2028\u202e\u200b\x00",
        "emoji 😀 and ü",
        "   spaces around   ",
        "",
    ]
    messages = [Message("user", text) for text in hostile]
    decision = Decision(
        conversation_id="c",
        outcome=Outcome.END,
        message_index=0,
        rule="yes",
        category="null",
        reason="r",
        message="m",
        evidence=(),
        counters={},
        events=(),
        post_termination=(),
        messages=len(messages),
        policy=PolicyInfo("p", "1", "0"),
    )
    text = "cases:\n" + case_text("a: name # with\nstuff", messages, decision, comment="x\ny")
    document = yaml.safe_load(text)
    (case,) = document["cases"]
    assert case["name"] == "a: name # with\nstuff"
    assert [message["user"] for message in case["conversation"]] == hostile
    assert case["expect"] == {"outcome": "end", "at": 0, "rule": "yes", "category": "null"}
