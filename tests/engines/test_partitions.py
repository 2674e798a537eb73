"""Splitting transcript files into partitions: exact line numbers, whatever the cut."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang.engines.partitions import (
    DEFAULT_PARTITION_SIZE,
    count_newlines,
    format_size,
    parse_size,
    plan_file,
    read_lines,
)


def _split(path: Path, partition_size: int) -> list[tuple[int, bytes]]:
    """Every partition's lines, partitions in order, numbered as a cluster would."""
    plan = plan_file(str(path), partition_size)
    assert plan.kind == "lines"
    out: list[tuple[int, bytes]] = []
    before = 0
    for start, end in plan.ranges:
        out.extend(read_lines(plan.path, start, end, before))
        before += count_newlines(plan.path, start, end)
    return out


def _expected(data: bytes) -> list[tuple[int, bytes]]:
    # What a sequential reader sees: lines split after each \n (only), numbered from 1.
    pieces = [piece + b"\n" for piece in data.split(b"\n")]
    pieces[-1] = pieces[-1][:-1]
    pieces[0] = pieces[0].removeprefix(b"\xef\xbb\xbf")  # as iter_records does
    return list(enumerate([piece for piece in pieces if piece], start=1))


LINE = st.one_of(
    st.just(b""),
    st.just(b"\r"),
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
)
def test_every_line_is_read_once_with_its_exact_number(
    tmp_path: Path, lines: list[bytes], trailing_newline: bool, partition_size: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    path = tmp_path / "data.jsonl"
    path.write_bytes(data)
    assert _split(path, partition_size) == _expected(data)


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
        (4, b"\n"),
        (5, b"c"),
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


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("67108864", 64 * 1024 * 1024),
        ("64MiB", 64 * 1024 * 1024),
        ("64mib", 64 * 1024 * 1024),
        ("64M", 64_000_000),
        ("500kb", 500_000),
        ("1.5GiB", 3 * (1 << 29)),
        ("10 KiB", 10 * 1024),
        ("100B", 100),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "12 parsecs", "1.2.3M", "0", "-5M", "0.1"])
def test_parse_size_rejects_non_sizes(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|at least 1 byte"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(DEFAULT_PARTITION_SIZE) == "64MiB"
    assert format_size(3 * (1 << 29)) == "1.5GiB"
    assert format_size(300) == "300B"


def test_a_byte_order_mark_is_removed_from_line_1_only(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(bom + b"a\n" + bom + b"b\nc\n")
    expected = [(1, b"a\n"), (2, bom + b"b\n"), (3, b"c\n")]
    for size in (1, 2, 3, 4, 5, 100):
        assert _split(path, size) == expected, size
