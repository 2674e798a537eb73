"""Transcript models and the streaming JSONL loader."""

from __future__ import annotations

import gzip
import io
import json
import sys
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from policylang import runtime
from policylang.transcripts import (
    Conversation,
    Message,
    Record,
    RecordError,
    RecordResult,
    iter_records,
)

FIXTURES = Path(__file__).parent / "fixtures"
MIXED = FIXTURES / "mixed.jsonl"
REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpora" / "hh-benign-dev.jsonl.gz"


def _line(record: dict[str, object]) -> str:
    return json.dumps(record) + "\n"


def _conversation(cid: str = "c", content: str = "hello") -> dict[str, object]:
    return {"id": cid, "messages": [{"role": "user", "content": content}]}


def _only(results: list[RecordResult]) -> RecordResult:
    assert len(results) == 1, results
    return results[0]


def _load(tmp_path: Path, text: str | bytes, name: str = "t.jsonl") -> list[RecordResult]:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return list(iter_records(str(path)))


# ---------------------------------------------------------------- models


def test_message_ignores_extra_fields_and_is_frozen() -> None:
    message = Message.model_validate(
        {"role": "user", "content": "hi", "name": "x", "metadata": {"scores": {"a": 0.5}}}
    )
    assert message.role == "user"
    assert message.metadata == {"scores": {"a": 0.5}}
    assert not hasattr(message, "name")
    with pytest.raises(ValidationError):
        message.content = "changed"


def test_message_metadata_defaults_to_empty() -> None:
    assert Message(role="assistant", content="ok").metadata == {}


def test_timestamp_iso_is_parsed_other_text_is_kept() -> None:
    parsed = Message.model_validate(
        {"role": "user", "content": "", "timestamp": "2024-01-02T03:04:05Z"}
    )
    assert parsed.timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    kept = Message.model_validate({"role": "user", "content": "", "timestamp": "yesterday"})
    assert kept.timestamp == "yesterday"
    with pytest.raises(ValidationError):
        Message.model_validate({"role": "user", "content": "", "timestamp": 1700000000})


def test_conversation_coerces_int_id_and_ignores_extras() -> None:
    conversation = Conversation.model_validate(
        {"id": 7, "source": "s", "labels": {"x": 1}, "messages": []}
    )
    assert conversation.id == "7"
    assert not hasattr(conversation, "labels")


@pytest.mark.parametrize("bad_id", [True, 1.5, None, ["a"]])
def test_conversation_rejects_non_text_ids(bad_id: object) -> None:
    with pytest.raises(ValidationError):
        Conversation.model_validate({"id": bad_id, "messages": []})


def test_messages_satisfy_the_runtime_protocol() -> None:
    policy = runtime.Policy(
        name="empty",
        version="0",
        description="",
        owner="",
        source_path="empty.policy",
        source_sha256="0" * 64,
        categories=(),
        signals=(),
        redirects=(),
        counters=(),
        protections=(),
        rules=(),
    )
    conversation = Conversation.model_validate(
        {"id": "c", "messages": [{"role": "user", "content": "hi"}]}
    )
    decision = policy.evaluate(conversation.messages, conversation.id)
    assert decision.outcome is runtime.Outcome.CONTINUE
    assert decision.messages == 1


# ---------------------------------------------------------------- the fixture file


def test_mixed_fixture_results_in_order_with_lines() -> None:
    results = list(iter_records(str(MIXED)))
    summary = [
        (type(r).__name__, r.line, r.conversation.id if isinstance(r, Record) else r.code)
        for r in results
    ]
    assert summary == [
        ("Record", 1, "t-1"),
        ("Record", 3, "42"),
        ("RecordError", 4, "PL801"),
        ("RecordError", 5, "PL802"),
        ("Record", 7, "t-5"),
    ]
    assert all(r.file == str(MIXED) for r in results)


def test_mixed_fixture_extras_ignored_metadata_kept() -> None:
    first = next(iter_records(str(MIXED)))
    assert isinstance(first, Record)
    user, assistant = first.conversation.messages
    assert (user.role, user.content) == ("user", "hello")
    assert assistant.metadata == {"annotations": ["greeting"]}


def test_mixed_fixture_errors_are_located() -> None:
    errors = [r for r in iter_records(str(MIXED)) if isinstance(r, RecordError)]
    json_error, record_error = errors
    line4 = MIXED.read_text(encoding="utf-8").splitlines()[3]
    assert json_error.column == line4.index('"unterminated') + 1
    assert json_error.reason == "invalid JSON: unterminated string"
    assert json_error.located() == (
        f"{MIXED}:4:{json_error.column}: error[PL801] invalid JSON: unterminated string"
    )
    assert record_error.pointer == "messages/1/role"
    assert record_error.reason == (
        "messages/1/role: input should be 'user', 'assistant', 'system' or 'tool'"
    )
    assert record_error.conversation_id == "t-4"
    assert record_error.name == "transcript-invalid-record"


# ---------------------------------------------------------------- formats


def test_plain_and_gzip_give_the_same_records(tmp_path: Path) -> None:
    data = MIXED.read_bytes()
    plain = list(iter_records(str(MIXED)))
    packed = tmp_path / "mixed.jsonl.gz"
    packed.write_bytes(gzip.compress(data))
    unpacked = list(iter_records(str(packed)))
    assert [r.file for r in unpacked] == [str(packed)] * len(plain)
    strip = [(type(r), r.line, getattr(r, "conversation", None)) for r in plain]
    assert [(type(r), r.line, getattr(r, "conversation", None)) for r in unpacked] == strip


def test_gzip_is_detected_by_magic_bytes_not_name(tmp_path: Path) -> None:
    text = _line(_conversation("z"))
    sneaky = _load(tmp_path, gzip.compress(text.encode()), name="looks-plain.jsonl")
    assert isinstance(_only(sneaky), Record)
    honest = _load(tmp_path, text, name="looks-compressed.jsonl.gz")
    assert isinstance(_only(honest), Record)


def test_multi_member_gzip(tmp_path: Path) -> None:
    data = gzip.compress(_line(_conversation("a")).encode()) + gzip.compress(
        _line(_conversation("b")).encode()
    )
    results = _load(tmp_path, data, name="two.gz")
    assert [r.conversation.id for r in results if isinstance(r, Record)] == ["a", "b"]


def test_truncated_gzip_reports_pl804_after_good_records(tmp_path: Path) -> None:
    body = "".join(_line(_conversation(f"c{i}", "x" * 200)) for i in range(50))
    packed = gzip.compress(body.encode())
    results = _load(tmp_path, packed[: len(packed) - 40], name="cut.gz")
    assert all(isinstance(r, Record) for r in results[:-1])
    last = results[-1]
    assert isinstance(last, RecordError)
    assert last.code == "PL804"
    assert last.line == len(results)
    assert "truncated" in last.reason


def test_corrupt_gzip_reports_pl804(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(_line(_conversation()).encode()))
    packed[12:20] = b"\xff" * 8
    last = _load(tmp_path, bytes(packed), name="bad.gz")[-1]
    assert isinstance(last, RecordError)
    assert last.code == "PL804"


def test_empty_file(tmp_path: Path) -> None:
    assert _load(tmp_path, b"") == []


def test_crlf_bom_and_blank_lines(tmp_path: Path) -> None:
    text = "\ufeff" + _line(_conversation("a")).replace("\n", "\r\n") + "\r\n\n"
    text += _line(_conversation("b"))
    results = _load(tmp_path, text)
    assert [(r.line, r.conversation.id) for r in results if isinstance(r, Record)] == [
        (1, "a"),
        (4, "b"),
    ]


def test_unicode_line_separators_inside_strings_do_not_split_lines(tmp_path: Path) -> None:
    content = "one\u2028two\u2029three\x85four\rfive"
    text = json.dumps(_conversation("u", content), ensure_ascii=False) + "\n"
    record = _only(_load(tmp_path, text))
    assert isinstance(record, Record)
    assert record.conversation.messages[0].content == content


# ---------------------------------------------------------------- errors


def test_invalid_utf8_is_reported_per_line_with_column(tmp_path: Path) -> None:
    good = _line(_conversation("ok")).encode()
    bad = b'{"id": "\xc3\xa9t\xe9", "messages": []}\n'
    results = _load(tmp_path, good + bad + good)
    assert [type(r) for r in results] == [Record, RecordError, Record]
    error = results[1]
    assert isinstance(error, RecordError)
    assert (error.line, error.code) == (2, "PL803")
    # The bad byte follows `{"id": "ét`: 10 code points, so column 11.
    assert error.column == 11
    assert "0xE9" in error.reason


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        ("{", 2, "invalid JSON: the line ends before the record is complete (truncated?)"),
        ("{} {}", 4, "invalid JSON: unexpected text after the record"),
        ("nope", 1, "invalid JSON: expecting a value"),
        ('{"id": "a",, }', 12, "invalid JSON: expecting property name enclosed in double quotes"),
    ],
)
def test_json_errors_have_line_and_column(
    tmp_path: Path, line: str, column: int, reason: str
) -> None:
    error = _load(tmp_path, _line(_conversation()) + line + "\n")[1]
    assert isinstance(error, RecordError)
    assert (error.line, error.column, error.code, error.reason) == (2, column, "PL801", reason)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1, 2], "record should be a JSON object, not an array"),
        ("text", "record should be a JSON object, not a string"),
        ({"messages": []}, "id: field required"),
        ({"id": "a"}, "messages: field required"),
        ({"id": "a", "messages": {}}, "messages: input should be an array"),
        ({"id": "a", "messages": [1]}, "messages/0: input should be an object"),
        ({"id": "a", "messages": [{"role": "user"}]}, "messages/0/content: field required"),
        (
            {"id": "a", "messages": [{"role": "user", "content": 3}]},
            "messages/0/content: input should be a string",
        ),
        (
            {"id": "a", "messages": [{"role": "user", "content": "", "timestamp": 3}]},
            "messages/0/timestamp: input should be a date-time string or null",
        ),
        (
            {"id": "a", "messages": [{"role": "user", "content": "", "metadata": []}]},
            "messages/0/metadata: input should be an object",
        ),
    ],
)
def test_record_errors_have_pointer_reasons(tmp_path: Path, record: object, reason: str) -> None:
    error = _only(_load(tmp_path, json.dumps(record) + "\n"))
    assert isinstance(error, RecordError)
    assert (error.code, error.column, error.reason) == ("PL802", 1, reason)


def test_several_problems_are_counted_and_listed(tmp_path: Path) -> None:
    record = {"id": 5, "messages": [{"role": "x", "content": 1}, {}]}
    error = _only(_load(tmp_path, json.dumps(record) + "\n"))
    assert isinstance(error, RecordError)
    assert error.conversation_id == "5"
    assert error.reason.startswith("messages/0/role: input should be")
    assert error.reason.endswith("(and 3 more problems)")
    assert len(error.details) == 4
    document = error.to_json()
    assert document["code"] == "PL802"
    assert document["name"] == "transcript-invalid-record"
    assert document["pointer"] == "messages/0/role"
    assert document["details"] == list(error.details)
    json.dumps(document)


def test_deeply_nested_json_is_an_error_not_a_crash(tmp_path: Path) -> None:
    error = _only(_load(tmp_path, "[" * 100_000 + "]" * 100_000 + "\n"))
    assert isinstance(error, RecordError)
    assert error.code in {"PL801", "PL802"}


def test_missing_file_raises_oserror_at_call(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        iter_records(str(tmp_path / "absent.jsonl"))


def test_directory_raises_oserror_at_call(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        iter_records(str(tmp_path))


# ---------------------------------------------------------------- stdin


@pytest.mark.parametrize("compress", [False, True])
def test_stdin(monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    data = MIXED.read_bytes()
    if compress:
        data = gzip.compress(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    results = list(iter_records("-"))
    assert len(results) == 5
    assert {r.file for r in results} == {"<stdin>"}
    assert not sys.stdin.closed


# ---------------------------------------------------------------- streaming


def test_memory_does_not_grow_with_input(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    line = _line(_conversation("x", "lorem ipsum " * 40))
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for _ in range(20_000):
            handle.write(line)
    assert len(line) * 20_000 > 8_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_records(str(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 2_000_000, peak


def test_real_corpus_smoke() -> None:
    if not CORPUS.exists():
        pytest.skip(f"{CORPUS} is not available")
    results = list(iter_records(str(CORPUS)))
    assert len(results) == 1171
    assert all(isinstance(r, Record) for r in results)
    assert all(r.conversation.messages[0].role == "user" for r in results if isinstance(r, Record))
