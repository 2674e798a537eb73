"""Hostile transcripts: every line is one decision row or one located error row.

The promise for transcripts, whatever their bytes: reading never raises, every
non-blank line gives exactly one record (a conversation or a located error, so nothing
is lost), the fast native reader reads exactly what the full reader reads, and
evaluating a record that loaded never raises either. Inputs: arbitrary bytes, JSON
values of awkward shapes (deep nesting, huge and odd numbers, awkward strings, NUL and
U+2028 in keys), native, OpenAI, Anthropic and ShareGPT records with random fields
replaced, and whole files of such lines, as JSONL and as a JSON array.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fuzz_helpers import time_limit
from fuzz_strategies import AWKWARD, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from transcript_invariants import check_line, check_transcript_bytes, default_policy

from policylang.batch import evaluate_lines, evaluate_records
from policylang.fastread import decode_native
from policylang.limits import json_too_deep
from policylang.transcripts import Record, RecordError, iter_records, parse_line

# ---------------------------------------------------------------- strategies

_text = st.one_of(
    st.text(max_size=12),
    st.lists(st.sampled_from(AWKWARD), max_size=6).map("".join),
    st.sampled_from(["user", "assistant", "system", "tool", "human", "gpt", "developer", ""]),
)
#: Numbers as JSON source: what ``json.dumps`` cannot write (huge integers, exponents
#: beyond a float, NaN and Infinity, which Python's reader accepts) as well as plain ones.
_NUMBERS = (
    "0", "-0", "1", "-1", "0.5", "1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity",
    "9" * 4300, "9" * 4301, "-" + "9" * 5000, "1" * 20, "123456789012345678901234567890",
)  # fmt: skip

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_value_base = st.recursive(
    _scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_text, children, max_size=4),
    ),
    max_leaves=12,
)
#: Content parts as OpenAI and Anthropic logs carry them, with awkward field values.
_content_part = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["text", "input_text", "image_url"]), _value_base)},
    optional={"text": _value_base},
)
_value = st.one_of(_value_base, st.lists(_content_part, max_size=3))


def _message(role: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


@st.composite
def _record(draw: st.DrawFn) -> Any:
    """A record in one of the formats, some of its fields replaced by arbitrary values."""
    roles = st.sampled_from(["user", "assistant", "system", "tool"])
    messages = draw(
        st.lists(
            st.builds(
                _message,
                roles,
                st.one_of(_text, _value),
                metadata=st.one_of(st.just({}), st.dictionaries(_text, _value, max_size=3)),
            ),
            max_size=5,
        )
    )
    if draw(st.booleans()):  # a message tree
        for index, message in enumerate(messages):
            message["id"] = draw(st.one_of(st.integers(0, 6), _text))
            if index:
                message["parent_id"] = draw(st.one_of(st.integers(-1, 6), _text, st.none()))
    shape = draw(st.sampled_from(["native", "openai", "anthropic", "sharegpt"]))
    record: dict[str, Any]
    if shape == "native":
        record = {"id": draw(st.one_of(_text, st.integers())), "messages": messages}
    elif shape == "openai":
        record = {"messages": messages}
    elif shape == "anthropic":
        record = {"system": draw(_text), "messages": messages}
    else:
        record = {
            "id": draw(_text),
            "conversations": [{"from": m["role"], "value": m["content"]} for m in messages],
        }
    for _ in range(draw(st.integers(0, 2))):  # replace or add a field anywhere
        target = draw(st.sampled_from([record, *messages] if messages else [record]))
        key = draw(st.one_of(st.sampled_from(sorted(target)), _text)) if target else "x"
        target[key] = draw(_value)
    return record


def _with_raw_numbers(document: str, numbers: list[str]) -> str:
    """``document`` with its integers 424242 replaced by raw number texts, in turn."""
    for number in numbers:
        document = document.replace("424242", number, 1)
    return document


@st.composite
def json_line(draw: st.DrawFn) -> bytes:
    """One line's bytes: a record, a JSON value, deep nesting or arbitrary bytes."""
    kind = draw(st.sampled_from(["record", "record", "value", "deep", "bytes", "cut", "byte"]))
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    if kind == "deep":
        depth = draw(st.sampled_from([10, 1_000, 10_000, 200_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = draw(st.sampled_from(["1", '"x"', "[]"]))
        return (opener * depth + inner + closer * depth).encode()
    document = draw(_record()) if kind != "value" else draw(_value)
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        # Put odd number texts where the document has a number (or append one).
        text = _with_raw_numbers(
            text.replace("0", "424242", 1), draw(st.lists(st.sampled_from(_NUMBERS), max_size=2))
        )
    data = text.encode("utf-8", "surrogatepass")
    if kind == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    if kind == "byte":  # a stray byte anywhere: inside a key, a value, between tokens
        at = draw(st.integers(0, len(data)))
        data = data[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + data[at:]
    return data


# ---------------------------------------------------------------- properties


@fuzz_settings(scale=4)
@given(raw=json_line())
def test_a_line_is_a_record_or_a_located_error(raw: bytes) -> None:
    with time_limit():
        check_line(raw, "t.jsonl", 3)
        check_line(raw, "t.jsonl", 1)


@fuzz_settings()
@given(
    lines=st.lists(json_line(), min_size=1, max_size=8),
    line_end=st.sampled_from([b"\n", b"\r\n"]),
    final=st.booleans(),
)
def test_every_line_of_a_jsonl_file_gives_one_row(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], line_end: bytes, final: bool
) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "t.jsonl"
    check_transcript_bytes(str(path), line_end.join(lines) + (line_end if final else b""))


@fuzz_settings()
@given(records=st.lists(st.one_of(_record(), _value), max_size=6))
def test_every_element_of_a_json_array_file_gives_one_row(
    tmp_path_factory: pytest.TempPathFactory, records: list[Any]
) -> None:
    path = tmp_path_factory.mktemp("array") / "t.json"
    path.write_text(json.dumps(records, indent=1), encoding="utf-8", errors="surrogatepass")
    with time_limit():
        results = list(iter_records(str(path)))
        rows = evaluate_records(default_policy(), results)
    if not records:
        assert results == []
        return
    assert [r.index for r in results] == list(range(len(records)))
    assert len([row for row in rows if row.first]) == len(records)


@pytest.mark.parametrize("depth", [201, 500, 1_000, 100_000, 1_000_000])
@pytest.mark.parametrize("shape", [("[", "]"), ('{"a":', "}")])
def test_deep_nesting_is_an_error_record_on_both_readers(
    depth: int, shape: tuple[str, str]
) -> None:
    raw = (shape[0] * depth + "1" + shape[1] * depth).encode()
    assert decode_native(raw) is None
    result = parse_line(raw, "t.jsonl", 1)
    assert isinstance(result, RecordError)
    assert result.reason == "invalid JSON: arrays and objects nested more than 200 deep"
    rows = evaluate_lines(default_policy(), "t.jsonl", [(1, raw)])
    assert [row.code for row in rows] == [result.code]


def test_a_huge_integer_reads_the_same_on_both_readers() -> None:
    huge = "9" * 100_000
    ignored = f'{{"id": "a", "messages": [{{"role": "user", "content": "hi", "n": {huge}}}]}}'
    as_id = f'{{"id": {huge}, "messages": []}}'
    in_metadata = f'{{"id": "b", "messages": [{{"role": "user", "content": "hi", "metadata": {{"s": -{huge}}}}}]}}'  # noqa: E501
    fast_ignored = decode_native(ignored.encode())
    assert fast_ignored is not None  # an ignored field is skipped...
    full_ignored = parse_line(ignored.encode(), "t.jsonl", 1)
    assert isinstance(full_ignored, Record)  # ...by the full reader too
    wrong_id = parse_line(as_id.encode(), "t.jsonl", 2)
    assert isinstance(wrong_id, RecordError) and wrong_id.code == "PL802"
    metadata = parse_line(in_metadata.encode(), "t.jsonl", 3)
    assert isinstance(metadata, Record)
    assert metadata.conversation.messages[0].metadata == {"s": float("-inf")}


def test_a_huge_integer_in_a_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        f'[{{"id": "a", "n": {"1" * 10_000}, "messages": []}}, {{"id": "b", "messages": []}}]'
    )
    results = list(iter_records(str(path)))
    assert [type(r) for r in results] == [Record, Record]


@pytest.mark.parametrize("recursion_limit", [300, 1_000, 20_000])
def test_how_deep_a_record_may_nest_does_not_depend_on_the_stack(
    recursion_limit: int,
) -> None:
    # Python's JSON readers fail when they run out of stack, so the same record read in
    # a deeper call stack, a worker or another engine could read or not: the limit of
    # 200 levels is checked first, identically everywhere.
    inner = '{"id": "x", "messages": [{"role": "user", "content": "hi", "metadata": %s}]}'
    # Three levels (record, messages, message) plus the metadata's.
    fits = (inner % ('{"a":' * 197 + "1" + "}" * 197)).encode()
    deep = (inner % ('{"a":' * 198 + "1" + "}" * 198)).encode()
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(recursion_limit)
    try:
        assert isinstance(parse_line(fits, "t.jsonl", 1), Record)
        assert decode_native(fits) is not None
        refused = parse_line(deep, "t.jsonl", 1)
        assert decode_native(deep) is None
    finally:
        sys.setrecursionlimit(before)
    assert isinstance(refused, RecordError) and refused.code == "PL801"


@pytest.mark.parametrize(
    ("document", "too_deep"),
    [
        (b"[]", False),
        (b"[" * 200 + b"]" * 200, False),
        (b"[" * 201 + b"]" * 201, True),
        (b"{" * 201, True),  # not JSON: an estimate, and an error anyway
        (b'["' + b"[" * 500 + b'"]', False),  # brackets in a string
        (b'["\\", ' + b"[" * 150 + b'""[[[["' + b"]" * 150 + b"]", False),
        (b"[{}]" * 1_000, False),  # many brackets, shallow
    ],
)
def test_json_depth(document: bytes, too_deep: bool) -> None:
    assert json_too_deep(document) is too_deep


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_tricky_text = st.text(alphabet='[]{}"\\/abnrtu\n\u00e9', max_size=8)
_tricky_value = st.recursive(
    st.one_of(st.none(), st.integers(), _tricky_text),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_tricky_text, children, max_size=3)
    ),
    max_leaves=20,
)


@fuzz_settings(scale=4)
@given(value=_tricky_value, limit=st.integers(0, 6), indent=st.sampled_from([None, 1]))
def test_json_depth_is_the_depth_of_the_value(value: Any, limit: int, indent: int | None) -> None:
    document = json.dumps(value, indent=indent, ensure_ascii=False).encode()
    assert json_too_deep(document, limit) is (_depth(value) > limit)
