"""Splitting transcript files into partitions that can be evaluated independently.

A plain JSONL file is cut into byte ranges of about ``partition_size`` bytes. A
partition owns every line that *starts* inside its range, so ranges need not fall on
line boundaries: a reader skips the partial line at its start (the previous partition
owns it) and reads past its end to finish its last line. Line numbers are exact: the
number of newlines before a range is the sum of the newlines in the ranges before it
(:func:`count_newlines`), and :func:`read_lines` turns that into the number of its
first line.

A gzip-compressed file or a JSON array file cannot be entered in the middle, so it is
one partition, read whole by :func:`policylang.transcripts.iter_records`.

Nothing here depends on a cluster framework: the functions run wherever the files
can be read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Final, Literal

__all__ = [
    "DEFAULT_PARTITION_SIZE",
    "FilePlan",
    "count_newlines",
    "format_size",
    "parse_size",
    "plan_file",
    "read_lines",
]

DEFAULT_PARTITION_SIZE: Final = 64 * 1024 * 1024
"""Bytes of a plain JSONL file per partition, unless told otherwise."""

_GZIP_MAGIC: Final = b"\x1f\x8b"
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_JSONL_SUFFIXES: Final = (".jsonl", ".jsonl.gz")
_WHITESPACE: Final = b" \t\n\r\x0b\x0c"
_CHUNK: Final = 1 << 20

_UNITS: Final[dict[str, int]] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
}


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
    path: str, start: int, end: int, newlines_before: int
) -> Iterator[tuple[int, bytes]]:
    """The lines that start in ``[start, end)``, as ``(1-based line number, raw bytes)``.

    ``newlines_before`` is the number of ``\\n`` bytes in ``[0, start)``. Lines keep
    their line end; the last one may run past ``end``. A UTF-8 byte order mark at the
    start of the file is removed from line 1. The file is opened when this is called
    (``OSError`` if it cannot be); a read failure later raises ``OSError`` too.
    """
    handle = open(path, "rb", buffering=1 << 16)  # noqa: SIM115 -- closed by the generator
    return _lines(handle, start, end, newlines_before)


def _lines(
    handle: IO[bytes], start: int, end: int, newlines_before: int
) -> Iterator[tuple[int, bytes]]:
    with handle:
        number = newlines_before + 1
        offset = start
        if start > 0:
            # The byte before the range tells whether a line starts at `start`; if not,
            # the line under way belongs to the previous partition.
            handle.seek(start - 1)
            partial = handle.readline()
            if not partial.endswith(b"\n"):
                return
            offset = start - 1 + len(partial)
            if len(partial) > 1:
                number += 1  # the newline that ends the skipped line lies inside the range
        else:
            handle.seek(0)
        while offset < end:
            line = handle.readline()
            if not line:
                return
            at_start = offset == 0
            offset += len(line)
            if at_start and line.startswith(_UTF8_BOM):
                line = line[len(_UTF8_BOM) :]
            yield number, line
            number += 1


def parse_size(text: str) -> int:
    """A byte count from ``67108864``, ``64MiB``, ``64M`` (10**6), ``1.5GiB``...

    Units are case-insensitive: ``k``/``kb``, ``m``/``mb``, ``g``/``gb`` are powers of
    1000 and ``kib``, ``mib``, ``gib`` powers of 1024. Raises ``ValueError`` with a
    message for anything else, or for a size below one byte.
    """
    cleaned = text.strip().lower().replace("_", "")
    digits = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = cleaned[len(cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")) :]
    if unit not in _UNITS or not digits:
        raise ValueError(f"`{text}` is not a size; use bytes or a unit, e.g. 64MiB or 500MB")
    try:
        value = float(digits)
    except ValueError:
        raise ValueError(
            f"`{text}` is not a size; use bytes or a unit, e.g. 64MiB or 500MB"
        ) from None
    size = int(value * _UNITS[unit])
    if size < 1:
        raise ValueError(f"`{text}` is too small; a partition needs at least 1 byte")
    return size


def format_size(size: int) -> str:
    """``64MiB``, ``1.5GiB``, ``300B``: a byte count for messages."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            return f"{value:.1f}{unit}".replace(".0" + unit, unit)
    return f"{size}B"
