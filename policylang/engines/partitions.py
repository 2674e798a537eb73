"""Splitting transcript files into partitions that can be evaluated independently.

A plain JSONL file is cut into byte ranges of about ``partition_size`` bytes. A
partition owns every line that *starts* inside its range, so ranges need not fall on
line boundaries: a reader skips the partial line at its start (the previous partition
owns it) and reads past its end to finish its last line. Line numbers are exact: the
number of newlines before a range is the sum of the newlines in the ranges before it
(:func:`count_newlines`), and :func:`read_lines` turns that into the number of its
first line.

A gzip-compressed file or a JSON array file cannot be entered in the middle, so it is
one partition, read whole by :func:`policylang.transcripts.iter_lines`.

Nothing here depends on a cluster framework: the functions run wherever the files
can be read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Final, Literal

from policylang.transcripts import RawLine, RecordError, is_blank, too_large

__all__ = [
    "DEFAULT_PARTITION_SIZE",
    "FilePlan",
    "count_newlines",
    "plan_file",
    "read_lines",
]

DEFAULT_PARTITION_SIZE: Final = 64 * 1024 * 1024
"""Bytes of a plain JSONL file per partition, unless told otherwise."""

_GZIP_MAGIC: Final = b"\x1f\x8b"
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_JSONL_SUFFIXES: Final = (".jsonl", ".jsonl.gz")
_WHITESPACE: Final = b" \t\r\n"
"""What JSON (and so the reader) counts as space."""
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class FilePlan:
    """How one input file is split.

    ``kind`` is ``lines`` for a plain JSONL file, split into ``ranges`` (half-open
    byte ranges covering the file, in order), or ``whole`` for a gzip or JSON array
    file, read as one partition. ``path`` is absolute (what workers open); ``name``
    is the path as given, which records carry.
    """

    name: str
    path: str
    kind: Literal["lines", "whole"]
    size: int
    ranges: tuple[tuple[int, int], ...]


def plan_file(name: str, partition_size: int = DEFAULT_PARTITION_SIZE) -> FilePlan:
    """Decide how to split the file ``name`` (a path; not ``-``).

    Reads its first bytes to tell gzip and JSON arrays from JSONL, as
    :func:`policylang.transcripts.iter_records` does. Raises ``OSError`` when the file
    cannot be opened or read, and ``ValueError`` for a ``partition_size`` below 1.
    """
    if partition_size < 1:
        raise ValueError("the partition size must be at least 1 byte")
    path = os.path.abspath(name)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(2)
        if head == _GZIP_MAGIC:
            return FilePlan(name, path, "whole", size, ((0, size),))
        handle.seek(0)
        if not name.endswith(_JSONL_SUFFIXES) and _first_significant_byte(handle) == b"[":
            return FilePlan(name, path, "whole", size, ((0, size),))
    starts = range(0, size, partition_size)
    ranges = tuple((start, min(start + partition_size, size)) for start in starts)
    return FilePlan(name, path, "lines", size, ranges or ((0, 0),))


def _first_significant_byte(handle: IO[bytes]) -> bytes:
    """The first byte that is not ASCII whitespace, after a leading UTF-8 BOM."""
    data = handle.read(_CHUNK)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    while data:
        stripped = data.lstrip(_WHITESPACE)
        if stripped:
            return stripped[:1]
        data = handle.read(_CHUNK)
    return b""


def count_newlines(path: str, start: int, end: int) -> int:
    """How many ``\\n`` bytes the file has in ``[start, end)``. Raises ``OSError``."""
    count = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = end - start
        while remaining > 0:
            data = handle.read(min(_CHUNK, remaining))
            if not data:
                break
            count += data.count(b"\n")
            remaining -= len(data)
    return count


def read_lines(
    path: str,
    start: int,
    end: int,
    newlines_before: int,
    *,
    name: str | None = None,
    max_record_size: int | None = None,
) -> Iterator[RawLine | RecordError]:
    """The records of the lines that start in ``[start, end)``, as :func:`iter_lines` gives them.

    ``newlines_before`` is the number of ``\\n`` bytes in ``[0, start)``, which makes
    line numbers exact. Each non-blank line comes as ``(1-based number, raw bytes)``
    with its line end (line 1 with its byte order mark, if any, which
    :func:`~policylang.transcripts.parse_line` ignores); the last one may run past
    ``end``. With ``max_record_size``, a longer line is skipped without being held in
    memory and gives a PL810 error located in ``name`` (default ``path``).

    The file is opened when this is called (``OSError`` if it cannot be); a read
    failure later raises ``OSError`` too.
    """
    handle = open(path, "rb")  # noqa: SIM115 -- closed by the generator
    return _lines(handle, name or path, start, end, newlines_before, max_record_size)


def _lines(
    handle: IO[bytes],
    name: str,
    start: int,
    end: int,
    newlines_before: int,
    limit: int | None,
) -> Iterator[RawLine | RecordError]:
    with handle:
        number = newlines_before  # the number of the line last read
        offset = start
        if start > 0:
            # The byte before the range tells whether a line starts at `start`; if not,
            # the line under way belongs to the previous partition.
            handle.seek(start - 1)
            skipped, complete = _skip_line(handle)
            if not complete:
                return
            offset = start - 1 + skipped
            if skipped > 1:
                number += 1  # the newline that ends the skipped line lies inside the range
        while offset < end:
            raw = handle.readline() if limit is None else handle.readline(limit + 1)
            if not raw:
                return
            number += 1
            offset += len(raw)
            if limit is not None and len(raw) > limit and not raw.endswith(b"\n"):
                rest, complete = _skip_line(handle)
                offset += rest
                yield too_large(name, number, len(raw) + rest - complete, limit)
                continue
            text = raw.removeprefix(_UTF8_BOM) if number == 1 else raw
            if not is_blank(text):
                yield number, raw


def _skip_line(handle: IO[bytes]) -> tuple[int, bool]:
    """Read to the end of the current line in bounded pieces: bytes read, and whether a
    line end was among them (not at the end of the file)."""
    size = 0
    while True:
        piece = handle.readline(_CHUNK)
        size += len(piece)
        if piece.endswith(b"\n"):
            return size, True
        if not piece:
            return size, False
