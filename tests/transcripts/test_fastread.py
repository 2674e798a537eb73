"""The fast native reader accepts only what the full reader reads, and reads it the same."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from policylang.fastread import decode_native
from policylang.transcripts import Record, parse_line


def _same(raw: bytes) -> None:
    """If the fast reader takes the line, the full reader gives the same conversation."""
    fast = decode_native(raw)
    if fast is None:
        return
    slow = parse_line(raw, "f.jsonl", 2)
    assert isinstance(slow, Record), (raw, slow)
    conversation = slow.conversation
    assert fast.id == conversation.id
    assert fast.paths() == conversation.paths()
    for path_fast, path_slow in zip(fast.paths(), conversation.paths(), strict=True):
        assert fast.branch_ids(path_fast[1]) == conversation.branch_ids(path_slow[1])
    assert len(fast.messages) == len(conversation.messages)
    for mine, theirs in zip(fast.messages, conversation.messages, strict=True):
        assert mine.role == theirs.role
        assert mine.content == theirs.content
        assert mine.metadata == theirs.metadata
        assert mine.end_conversation == theirs.end_conversation


VALID = [
    {"id": "a", "messages": []},
    {"id": 7, "messages": [{"role": "user", "content": "hi"}]},
    {
        "id": "b",
        "source": "x",
        "labels": {"y": 1},
        "messages": [
            {"role": "system", "content": "be nice", "name": "sys"},
            {"role": "user", "content": "héllo \u202e", "timestamp": "2026-01-01T00:00:00Z"},
            {"role": "assistant", "content": "ok", "end_conversation": True},
            {"role": "tool", "content": "", "metadata": {"scores": {"v": 0.5}}},
            {"role": "user", "content": "x", "timestamp": "not a date", "end_conversation": False},
        ],
    },
]


@pytest.mark.parametrize("record", VALID)
def test_valid_native_records_take_the_fast_path(record: dict[str, Any]) -> None:
    raw = json.dumps(record).encode()
    assert decode_native(raw) is not None
    assert decode_native(raw + b"\r\n") is not None
    _same(raw)


OTHER = [
    # other formats
    b'{"messages": [{"role": "user", "content": "no id: an OpenAI log"}]}',
    b'{"id": "o", "messages": [{"role": "user", "content": null}]}',
    b'{"id": "o", "messages": [{"role": "assistant", "content": "x", "tool_calls": []}]}',
    b'{"id": "o", "messages": [{"role": "tool", "content": "x", "tool_call_id": "c"}]}',
    b'{"id": "o", "messages": [{"role": "developer", "content": "x"}]}',
    b'{"id": "s", "conversations": [{"from": "human", "value": "hi"}]}',
    b'{"id": "s", "messages": [], "conversations": []}',
    b'{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello"}',
    # branches
    b'{"id": "t", "messages": [{"id": 1, "role": "user", "content": "a"}]}',
    b'{"id": "t", "messages": [{"parent_id": "1", "role": "user", "content": "a"}]}',
    # markers
    b'{"id": "m", "end_conversation": true, "messages": []}',
    b'{"id": "m", "messages": [{"role": "user", "content": "a", "end_conversation": true}]}',
    b'{"id": "m", "messages": [{"role": "assistant", "content": "a", "end_conversation": 1}]}',
    # invalid
    b'{"id": true, "messages": []}',
    b'{"id": 1.5, "messages": []}',
    b'{"id": "x", "messages": [{"role": "user", "content": "a\tb"}]}',
    b'{"id": "x", "messages": [{"role": "user", "content": 3}]}',
    b'{"id": "x", "messages": [{"role": "user"}]}',
    b'{"id": "x", "messages": [{"role": "user", "content": "a", "metadata": null}]}',
    b'{"id": "x", "messages": [{"role": "user", "content": "a", "timestamp": 5}]}',
    b'{"id": "x", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"id": "x", "messages": [{"role": "user", "content": "a", "metadata": {"s": NaN}}]}',
    b'{"id": "x", "messages": {}}',
    b'{"id": "x", "messages": []} trailing',
    b'\xff{"id": "x", "messages": []}',
    b'{"id": "\xff", "messages": []}',
    b'{"id": "x", "messages": [{"role": "user", "content": "\xc3"}]}',
    b"[]",
    b"",
    b"   ",
]


@pytest.mark.parametrize("raw", OTHER)
def test_everything_else_is_left_to_the_full_reader(raw: bytes) -> None:
    assert decode_native(raw) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "bot"])},
    optional={
        "content": st.text(max_size=5) | _JSON,
        "metadata": st.dictionaries(st.text(max_size=3), _JSON, max_size=2) | _JSON,
        "timestamp": st.text(max_size=5) | _JSON,
        "end_conversation": st.booleans() | _JSON,
        "id": st.text(max_size=2) | st.integers(),
        "tool_calls": _JSON,
        "name": _JSON,
    },
)
_NEARLY_VALID_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool"]), "content": st.text()},
    optional={
        "metadata": st.dictionaries(st.text(max_size=3), _JSON, max_size=2),
        "timestamp": st.none() | st.text(max_size=25),
        "end_conversation": st.booleans(),
        "name": _JSON,
    },
)
_NEARLY_VALID_RECORD = st.fixed_dictionaries(
    {
        "id": st.text(max_size=3) | st.integers(),
        "messages": st.lists(_NEARLY_VALID_MESSAGE, max_size=5),
    },
    optional={"labels": _JSON, "source": _JSON},
)
_ANY_RECORD = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=3) | st.integers() | _JSON,
        "messages": st.lists(_MESSAGE, max_size=4) | _JSON,
        "conversations": _JSON,
        "end_conversation": _JSON,
        "labels": _JSON,
    },
)
_RECORD = _NEARLY_VALID_RECORD | _ANY_RECORD


@settings(max_examples=400, deadline=None)
@given(record=_RECORD)
def test_fast_and_full_readers_agree_on_random_records(record: dict[str, Any]) -> None:
    _same(json.dumps(record).encode())


def test_random_records_reach_the_fast_path() -> None:
    # The agreement test above means something only if its records often take it.
    found = find(
        _RECORD,
        lambda r: decode_native(json.dumps(r).encode()) is not None
        and isinstance(r.get("messages"), list)
        and len(r["messages"]) >= 2,
        settings=settings(max_examples=2000, database=None),
    )
    assert decode_native(json.dumps(found).encode()) is not None


def test_batch_rows_are_the_same_through_either_reader() -> None:
    from pathlib import Path

    from policylang.batch import evaluate_lines, evaluate_records
    from policylang.compiler import load_policy
    from policylang.diagnostics import DiagnosticSink
    from policylang.transcripts import iter_records

    root = Path(__file__).resolve().parents[2]
    policy = load_policy(str(root / "policies" / "default.policy"), DiagnosticSink())
    assert policy is not None
    for path in (root / "samples" / "conversations.jsonl", root / "samples" / "broken.jsonl"):
        raw = path.read_bytes().splitlines(keepends=True)
        lines = [(number, line) for number, line in enumerate(raw, start=1)]
        assert any(decode_native(line) is not None for _, line in lines)
        for conformance in (False, True):
            fast = evaluate_lines(policy, str(path), lines, conformance=conformance)
            slow = evaluate_records(policy, iter_records(str(path)), conformance=conformance)
            assert [row.document for row in fast] == [row.document for row in slow]
            assert fast == slow
