"""Input formats (native, OpenAI, Anthropic, ShareGPT), JSON arrays, directories and branches."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from policylang.cli import main
from policylang.formats import InputFormat, detect_format, expand_inputs
from policylang.transcripts import Conversation, Record, RecordError, RecordResult, iter_records

HERE = Path(__file__).parent
FORMATS = HERE / "fixtures" / "formats"
REPO = HERE.parents[1]
DEFAULT_POLICY = REPO / "policies" / "default.policy"


def _records(results: list[RecordResult]) -> list[Record]:
    assert all(isinstance(r, Record) for r in results), results
    return [r for r in results if isinstance(r, Record)]


def _roles(record: Record) -> list[str]:
    return [m.role for m in record.conversation.messages]


def _write(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"id": "a", "messages": [{"role": "user", "content": "hi"}]}, "native"),
        ({"id": "a", "messages": []}, "native"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "openai"),
        ({"id": "a", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "openai"),
        ({"id": "a", "messages": [{"role": "assistant", "content": None}]}, "openai"),
        ({"id": "a", "messages": [{"role": "assistant", "tool_calls": []}]}, "openai"),
        ({"text": "\n\nHuman: hi"}, "anthropic"),
        ({"transcript": "Human: hi"}, "anthropic"),
        ({"chosen": "Human: hi", "rejected": "Human: no"}, "anthropic"),
        ({"id": 1, "conversations": []}, "sharegpt"),
        ({"id": "a"}, "native"),
    ],
)
def test_detect_format(record: dict[str, object], expected: str) -> None:
    assert detect_format(record) == expected


def test_openai_log() -> None:
    first, second = _records(list(iter_records(str(FORMATS / "openai.jsonl"))))
    conversation = first.conversation
    assert conversation.id == "oa-1"
    assert _roles(first) == ["system", "user", "assistant", "tool", "assistant"]
    # Only the text parts of a list content are kept; a null content is empty.
    assert conversation.messages[1].content == "What is the weather?"
    assert conversation.messages[2].content == ""
    assert conversation.messages[2].metadata["tool_calls"][0]["id"] == "call_1"
    assert conversation.messages[3].content == "Sunny"
    # Without an id, the record is named by its file and line.
    assert second.conversation.id == f"{FORMATS / 'openai.jsonl'}:2"


def test_anthropic_transcript() -> None:
    first, second = _records(list(iter_records(str(FORMATS / "anthropic.jsonl"))))
    assert _roles(first) == ["user", "assistant", "user", "assistant"]
    assert first.conversation.messages[0].content == "Can you help me bake bread?"
    assert first.conversation.messages[3].content == "You're welcome."
    assert first.conversation.id.endswith("anthropic.jsonl:1")
    assert second.conversation.id == "an-2"
    assert [m.content for m in second.conversation.messages] == ["hello", "hi there"]


def test_anthropic_preamble_becomes_a_system_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", {"text": "Be brief.\n\nHuman: hi\n\nAssistant: hello"})
    (record,) = _records(list(iter_records(str(path))))
    assert _roles(record) == ["system", "user", "assistant"]


def test_anthropic_without_turns_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", {"id": "x"}, {"id": "y", "text": "no turns here"})
    results = list(iter_records(str(path), "anthropic"))
    assert all(isinstance(r, RecordError) for r in results)
    error = results[1]
    assert isinstance(error, RecordError)
    assert (error.line, error.code, error.pointer) == (2, "PL802", "text")
    assert error.conversation_id == "y"


def test_sharegpt_array_file() -> None:
    results = list(iter_records(str(FORMATS / "sharegpt.json")))
    first, second = _records(results)
    assert first.conversation.id == "sg-1"
    assert _roles(first) == ["system", "user", "assistant"]
    assert first.conversation.messages[2].content == "Why did the chicken cross the road?"
    assert (first.line, first.index) == (2, 0)
    assert (second.line, second.index) == (3, 1)


def test_sharegpt_bad_speaker_is_located(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "s.jsonl",
        {"id": "s", "conversations": [{"from": "human", "value": "hi"}, {"from": "cat"}]},
    )
    (error,) = list(iter_records(str(path)))
    assert isinstance(error, RecordError)
    assert error.pointer == "conversations/1/from"
    assert error.located().startswith(f"{path}:1:1: error[PL802] conversations/1/from:")


# --------------------------------------------------------------------- override


def test_override_forces_a_format(tmp_path: Path) -> None:
    # Looks native (an id and string contents), but is read as OpenAI when asked;
    # forced native keeps the old strictness (an id is required).
    path = _write(tmp_path / "o.jsonl", {"messages": [{"role": "user", "content": "hi"}]})
    (auto,) = list(iter_records(str(path)))
    assert isinstance(auto, Record)
    (native,) = list(iter_records(str(path), "native"))
    assert isinstance(native, RecordError)
    assert native.reason == "id: field required"
    (sharegpt,) = list(iter_records(str(path), "sharegpt"))
    assert isinstance(sharegpt, RecordError)
    assert sharegpt.pointer == "conversations"


def test_cli_input_format_option(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", {"messages": [{"role": "user", "content": "hi"}]})
    policy = REPO / "tests" / "cli" / "fixtures" / "clean.policy"
    assert run("check", policy, path).exit_code == 0
    forced = run("check", policy, path, "--input-format", "native")
    assert forced.exit_code == 1
    assert "id: field required" in forced.stderr
    assert run("check", policy, path, "--input-format", "xml").exit_code == 2


# --------------------------------------------------------------------- arrays


def test_json_array_errors_carry_the_element_index(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        '[\n  {"id": "ok", "messages": []},\n  42,\n  {"id": "bad", "messages": [{}]}\n]\n',
        encoding="utf-8",
    )
    ok, number, bad = list(iter_records(str(path)))
    assert isinstance(ok, Record)
    assert isinstance(number, RecordError)
    assert (number.line, number.column, number.index) == (3, 3, 1)
    assert number.located() == (
        f"{path}:3:3: error[PL802] element 1: record should be a JSON object, not a number"
    )
    assert isinstance(bad, RecordError)
    assert (bad.index, bad.conversation_id, bad.to_json()["index"]) == (2, "bad", 2)


def test_json_array_gzip_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "a.json.gz"
    path.write_bytes(gzip.compress(b'  [{"id": "a", "messages": []}, {"id": "b", "mess'))
    first, error = list(iter_records(str(path)))
    assert isinstance(first, Record) and first.index == 0
    assert isinstance(error, RecordError)
    assert error.code == "PL801" and error.index == 1
    assert error.reason.startswith("invalid JSON: ")


def test_jsonl_line_that_is_an_array_is_still_one_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("[1, 2]\n", encoding="utf-8")
    (error,) = list(iter_records(str(path)))
    assert isinstance(error, RecordError)
    assert error.reason == "record should be a JSON object, not an array"


# --------------------------------------------------------------------- directories


def test_directory_and_glob_expand_in_sorted_order(tmp_path: Path) -> None:
    shutil.copy(FORMATS / "sharegpt.json", tmp_path / "b.json")
    shutil.copy(FORMATS / "openai.jsonl", tmp_path / "a.jsonl")
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress((FORMATS / "anthropic.jsonl").read_bytes()))
    (tmp_path / "notes.txt").write_text("not a transcript", encoding="utf-8")
    expected = [str(tmp_path / name) for name in ("a.jsonl", "b.json", "c.jsonl.gz")]
    assert expand_inputs([str(tmp_path)]) == expected
    assert expand_inputs([str(tmp_path / "*")]) == expected
    assert expand_inputs(["-"]) == ["-"]
    with pytest.raises(ValueError, match=r"no \*\.jsonl"):
        expand_inputs([str(tmp_path / "*.csv")])

    policy = REPO / "tests" / "cli" / "fixtures" / "clean.policy"
    result = run("check", policy, tmp_path)
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["file"] for r in records] == [expected[0]] * 2 + [expected[1]] * 2 + [expected[2]] * 2
    assert [r.get("index") for r in records[2:4]] == [0, 1]


# --------------------------------------------------------------------- branches


def _tree(*messages: dict[str, object]) -> Conversation:
    return Conversation.model_validate({"id": "t", "messages": list(messages)})


def _m(mid: str | None, parent: str | None = None, role: str = "user") -> dict[str, object]:
    message: dict[str, object] = {"role": role, "content": mid or "-"}
    if mid is not None:
        message["id"] = mid
    if parent is not None:
        message["parent_id"] = parent
    return message


def test_branches() -> None:
    linear = Conversation.model_validate(
        {"id": "l", "messages": [_m(None), _m(None, role="assistant")]}
    )
    assert [(b, len(ms)) for b, ms in linear.branches()] == [("", 2)]
    # Ids without parent ids: each message follows the one before it.
    chain = _tree(_m("1"), _m("2", role="assistant"))
    assert [b for b, _ in chain.branches()] == ["2"]
    tree = _tree(
        _m("1"),
        _m("2", "1", "assistant"),
        _m("3a", "2"),
        _m("3b", "2"),
        _m("4b", "3b", "assistant"),
    )
    branches = tree.branches()
    assert [b for b, _ in branches] == ["3a", "4b"]
    assert [[m.id for m in ms] for _, ms in branches] == [
        ["1", "2", "3a"],
        ["1", "2", "3b", "4b"],
    ]


@pytest.mark.parametrize(
    ("messages", "pointer", "reason"),
    [
        ([_m("1"), _m("2", "9")], "messages/1/parent_id", "unknown parent id '9'"),
        ([_m("1", "2"), _m("2", "1")], "messages/0/parent_id", "message tree has a cycle"),
        ([_m("1"), _m("2", "3"), _m("3", "2"), _m("4", "3")], "", "message tree has a cycle"),
        ([_m("1"), _m("1")], "messages/1/id", "duplicate message id '1'"),
    ],
)
def test_bad_trees_are_located_errors(
    tmp_path: Path, messages: list[dict[str, object]], pointer: str, reason: str
) -> None:
    path = _write(
        tmp_path / "t.jsonl", {"id": "ok", "messages": []}, {"id": "t", "messages": messages}
    )
    ok, error = list(iter_records(str(path)))
    assert isinstance(ok, Record)
    assert isinstance(error, RecordError)
    assert (error.line, error.code, error.conversation_id) == (2, "PL802", "t")
    assert error.pointer is not None
    if pointer:
        assert error.pointer == pointer
    assert reason in error.reason
    assert error.located().startswith(f"{path}:2:1: error[PL802] messages/")


def test_cli_one_decision_per_branch_and_end_locks_only_its_branch() -> None:
    if not DEFAULT_POLICY.exists():
        pytest.skip("policies/default.policy is not available")
    result = run("check", DEFAULT_POLICY, FORMATS / "branches.jsonl")
    assert result.exit_code == 0, result.stderr
    decisions = {r["branch"]: r for r in json_lines(result.stdout)}
    assert list(decisions) == ["4b", "4a"]
    ended, other = decisions["4a"], decisions["4b"]
    assert ended["branch_messages"] == ["1", "2", "3a", "4a"]
    assert ended["outcome"] == "end"
    assert ended["message_index"] == 2
    # The user wrote on after the end in this branch only.
    assert ended["post_termination_messages"] == [3]
    assert other["branch_messages"] == ["1", "2", "3b", "4b"]
    assert other["outcome"] == "continue"
    assert other["post_termination_messages"] == []
    assert ended["conversation_id"] == other["conversation_id"] == "tree-1"
    assert "all 1 record accounted for: 1 evaluated (2 decisions) + 0 invalid" in result.stderr
    # Without branches, the decision has no branch fields.
    linear = run("check", DEFAULT_POLICY, FORMATS / "openai.jsonl")
    assert all("branch" not in r for r in json_lines(linear.stdout))


def test_cli_bad_tree_is_an_error_record(tmp_path: Path) -> None:
    policy = REPO / "tests" / "cli" / "fixtures" / "clean.policy"
    path = _write(tmp_path / "t.jsonl", {"id": "t", "messages": [_m("1", "2"), _m("2", "1")]})
    result = run("check", policy, path)
    assert result.exit_code == 1
    (record,) = json_lines(result.stdout)
    assert record["error"]["pointer"] == "messages/0/parent_id"  # type: ignore[index]
    assert f"{path}:1:1: error[PL802] messages/0/parent_id: message tree has a cycle" in (
        result.stderr
    )


# --------------------------------------------------------------------- end markers


def _ends(record: Record) -> list[bool]:
    return [m.end_conversation for m in record.conversation.messages]


def _one(path: Path, fmt: InputFormat = "auto") -> RecordResult:
    (result,) = list(iter_records(str(path), fmt))
    return result


_END_CALL = {"id": "c1", "type": "function", "function": {"name": "end_conversation"}}


@pytest.mark.parametrize(
    "record",
    [
        # native: the field on the assistant message
        {
            "id": "n",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "bye", "end_conversation": True},
            ],
        },
        # OpenAI: a call to the end_conversation tool (a second, unrelated call first)
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c0", "type": "function", "function": {"name": "weather"}},
                        _END_CALL,
                    ],
                },
            ]
        },
        # OpenAI: the older single function_call
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "end_conversation", "arguments": "{}"},
                },
            ]
        },
        # OpenAI: the native field is kept, and agreeing with a tool call is fine
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "bye",
                    "end_conversation": True,
                    "tool_calls": [_END_CALL],
                },
            ]
        },
        # ShareGPT: the field on the gpt turn
        {
            "id": "s",
            "conversations": [
                {"from": "human", "value": "hi"},
                {"from": "gpt", "value": "bye", "end_conversation": True},
            ],
        },
        # Anthropic-style text: the record's field marks the last (Assistant) turn
        {"text": "\n\nHuman: hi\n\nAssistant: bye", "end_conversation": True},
    ],
    ids=[
        "native",
        "openai-tool-call",
        "openai-function-call",
        "openai-field",
        "sharegpt",
        "anthropic",
    ],
)
def test_end_marker_in_every_format(tmp_path: Path, record: dict[str, object]) -> None:
    result = _one(_write(tmp_path / "m.jsonl", record))
    assert isinstance(result, Record), result
    assert _ends(result) == [False, True]


@pytest.mark.parametrize(
    "record",
    [
        {
            "id": "n",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ],
        },
        {
            "id": "n",
            "messages": [
                {"role": "user", "content": "hi", "end_conversation": False},
                {"role": "assistant", "content": "x", "end_conversation": False},
            ],
        },
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c0", "type": "function", "function": {"name": "end_chat"}},
                        {"id": "c1", "type": "function", "function": "end_conversation"},
                        "end_conversation",
                    ],
                },
            ]
        },
        {"text": "\n\nHuman: hi\n\nAssistant: hello", "end_conversation": False},
        # Text inside a turn is never a marker: anyone can type it.
        {"text": "\n\nHuman: hi\n\nAssistant: [ended the conversation]"},
    ],
    ids=["native", "native-false", "openai-other-tools", "anthropic-false", "anthropic-text"],
)
def test_no_end_marker(tmp_path: Path, record: dict[str, object]) -> None:
    result = _one(_write(tmp_path / "m.jsonl", record))
    assert isinstance(result, Record), result
    assert _ends(result) == [False, False]


@pytest.mark.parametrize(
    ("record", "pointer", "reason"),
    [
        (
            {
                "id": "n",
                "messages": [{"role": "assistant", "content": "x", "end_conversation": "yes"}],
            },
            "messages/0/end_conversation",
            'input should be true or false, not "yes"',
        ),
        (
            {"id": "n", "messages": [{"role": "assistant", "content": "x", "end_conversation": 1}]},
            "messages/0/end_conversation",
            "input should be true or false, not 1",
        ),
        (
            {
                "id": "n",
                "messages": [{"role": "assistant", "content": "x", "end_conversation": None}],
            },
            "messages/0/end_conversation",
            "input should be true or false, not null",
        ),
        (
            {"id": "n", "messages": [{"role": "user", "content": "x", "end_conversation": True}]},
            "messages/0/end_conversation",
            'only an assistant message can end the conversation, and this one is "user"',
        ),
        (
            {"id": "n", "messages": [{"role": "tool", "content": "x", "end_conversation": True}]},
            "messages/0/end_conversation",
            'only an assistant message can end the conversation, and this one is "tool"',
        ),
        (
            {"id": "n", "end_conversation": True, "messages": []},
            "end_conversation",
            "a record-level end marker is read only from Anthropic-style text",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "end_conversation": True},
            "end_conversation",
            "a record-level end marker is read only from Anthropic-style text",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "tool_calls": [_END_CALL]}]},
            "messages/0/tool_calls/0/function/name",
            'only an assistant message can call `end_conversation`, and this one is "user"',
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": "x",
                        "end_conversation": False,
                        "tool_calls": [_END_CALL],
                    }
                ]
            },
            "messages/0/end_conversation",
            "false contradicts the message's call to the `end_conversation` tool",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": "x",
                        "end_conversation": "true",
                        "tool_calls": [_END_CALL],
                    }
                ]
            },
            "messages/0/end_conversation",
            'input should be true or false, not "true"',
        ),
        (
            {
                "id": "s",
                "conversations": [{"from": "human", "value": "x", "end_conversation": True}],
            },
            "conversations/0/end_conversation",
            'only an assistant message can end the conversation, and this one is "user"',
        ),
        (
            {"id": "s", "conversations": [{"from": "gpt", "value": "x", "end_conversation": "no"}]},
            "conversations/0/end_conversation",
            'input should be true or false, not "no"',
        ),
        (
            {"text": "\n\nAssistant: hi\n\nHuman: bye", "end_conversation": True},
            "end_conversation",
            "the last turn is `Human:`",
        ),
        (
            {"text": "\n\nHuman: hi\n\nAssistant: bye", "end_conversation": "true"},
            "end_conversation",
            'input should be true or false, not "true"',
        ),
    ],
)
def test_bad_end_markers_are_located(
    tmp_path: Path, record: dict[str, object], pointer: str, reason: str
) -> None:
    path = _write(tmp_path / "m.jsonl", {"id": "ok", "messages": []}, record)
    ok, error = list(iter_records(str(path)))
    assert isinstance(ok, Record)
    assert isinstance(error, RecordError)
    assert (error.line, error.code, error.pointer) == (2, "PL802", pointer)
    assert reason in error.reason
    assert error.located().startswith(f"{path}:2:1: error[PL802] {pointer}: ")


def test_end_marker_on_one_branch_only(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl",
        {
            "id": "t",
            "messages": [
                {"id": "1", "role": "user", "content": "hi"},
                {
                    "id": "2a",
                    "parent_id": "1",
                    "role": "assistant",
                    "content": "bye",
                    "end_conversation": True,
                },
                {"id": "2b", "parent_id": "1", "role": "assistant", "content": "hello"},
            ],
        },
    )
    result = _one(path)
    assert isinstance(result, Record)
    branches = {
        branch: [m.end_conversation for m in ms] for branch, ms in result.conversation.branches()
    }
    assert branches == {"2a": [False, True], "2b": [False, False]}
