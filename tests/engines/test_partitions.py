"""Splitting transcript files into partitions: exact line numbers, whatever the cut."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policylang.engines.partitions import count_newlines, plan_file, read_lines
from policylang.transcripts import RawLine, RecordError, iter_lines


def _split(
    path: Path, partition_size: int, max_record_size: int | None = None
) -> list[RawLine | RecordError]:
    """Every partition's items, partitions in order, numbered as a cluster would."""
    plan = plan_file(str(path), partition_size)
    assert plan.kind == "lines"
    out: list[RawLine | RecordError] = []
    before = 0
    for start, end in plan.ranges:
        out.extend(
            read_lines(
                plan.path, start, end, before, name=plan.name, max_record_size=max_record_size
            )
        )
        before += count_newlines(plan.path, start, end)
    return out


def _sequential(path: Path, max_record_size: int | None = None) -> list[object]:
    """What the sequential reader gives for the same file."""
    return list(iter_lines(str(path), max_record_size=max_record_size))


LINE = st.one_of(
    st.just(b""),
    st.just(b"\r"),
    st.just(b" \t "),
    st.just(b"x" * 30),
    st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"x")),
    st.just(b'{"id": "a", "messages": []}'),
    st.just(b"\xef\xbb\xbf{}"),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(LINE, max_size=25),
    trailing_newline=st.booleans(),
    partition_size=st.integers(min_value=1, max_value=40),
    max_record_size=st.one_of(st.none(), st.integers(min_value=1, max_value=20)),
)
def test_partitions_give_what_the_sequential_reader_gives(
    tmp_path: Path,
    lines: list[bytes],
    trailing_newline: bool,
    partition_size: int,
    max_record_size: int | None,
) -> None:
    # Same lines, same numbers, same PL810 errors for long lines, whatever the cut.
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    # A file that starts with gzip's magic bytes is read as gzip, whole (tested below).
    assume(not data.startswith(b"\x1f\x8b"))
    path = tmp_path / "data.jsonl"
    path.write_bytes(data)
    assert _split(path, partition_size, max_record_size) == _sequential(path, max_record_size)


def test_a_line_longer_than_many_partitions_is_read_by_the_partition_it_starts_in(
    tmp_path: Path,
) -> None:
    data = b"a\n" + b"x" * 100 + b"\nb\n\nc"
    path = tmp_path / "long.jsonl"
    path.write_bytes(data)
    plan = plan_file(str(path), 7)
    assert len(plan.ranges) == 16
    assert _split(path, 7) == [
        (1, b"a\n"),
        (2, b"x" * 100 + b"\n"),
        (3, b"b\n"),
        (5, b"c"),  # line 4 is blank
    ]
    # The partitions inside the long line own nothing.
    assert list(read_lines(plan.path, 14, 21, 1)) == []


def test_ranges_cover_the_file_in_order(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"x" * 25)
    plan = plan_file(str(path), 10)
    assert plan.ranges == ((0, 10), (10, 20), (20, 25))
    assert plan.size == 25
    assert plan.name == str(path)


def test_an_empty_file_is_one_empty_partition(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    plan = plan_file(str(path), 10)
    assert plan.kind == "lines"
    assert plan.ranges == ((0, 0),)
    assert list(read_lines(plan.path, 0, 0, 0)) == []


def test_workers_get_an_absolute_path_and_records_keep_the_given_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data.jsonl").write_bytes(b"{}\n")
    monkeypatch.chdir(tmp_path)
    plan = plan_file("data.jsonl", 10)
    assert plan.name == "data.jsonl"
    assert plan.path == str(tmp_path / "data.jsonl")


def test_gzip_is_one_whole_partition_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(gzip.compress(b"{}\n" * 100))
    plan = plan_file(str(path), 10)
    assert plan.kind == "whole"
    assert len(plan.ranges) == 1


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("data.json", b"[\n{}]", "whole"),
        ("data.json", b"\xef\xbb\xbf \n\t [{}]", "whole"),  # a BOM and blank lines first
        ("data.txt", b"\n\n[1]\n", "whole"),
        ("data.jsonl", b"[1]\n", "lines"),  # a .jsonl file is JSONL even when a line is an array
        ("data.json", b'{"id": 1}\n[1]\n', "lines"),
        ("data.json", b"\n \xef\xbb\xbf[1]\n", "lines"),  # a BOM only counts at the start
    ],
)
def test_json_arrays_are_told_from_jsonl_like_the_reader_does(
    tmp_path: Path, name: str, data: bytes, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert plan_file(str(path), 2).kind == kind


def test_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        plan_file(str(tmp_path / "missing.jsonl"))


def test_partition_size_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"{}\n")
    with pytest.raises(ValueError, match="at least 1 byte"):
        plan_file(str(path), 0)


def test_a_byte_order_mark_on_line_1_is_left_for_the_parser(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(bom + b"\n" + bom + b"b\nc\n")
    # A line 1 that is only a byte order mark is blank; a mark on line 2 is content.
    for size in (1, 2, 3, 4, 5, 100):
        assert _split(path, size) == [(2, bom + b"b\n"), (3, b"c\n")], size
