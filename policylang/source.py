"""Source files and spans: decoded policy text, its line index, and offset <-> line/column.

Offsets are 0-based code-point indices into the decoded, newline-normalized text (what
lark's ``start_pos``/``end_pos`` are). Lines and columns are 1-based, for humans.
"""

from __future__ import annotations

import bisect
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policylang.diagnostics import Diagnostic

_BOM = "\ufeff"
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range ``[start, end)`` of code-point offsets into a file's text."""

    start: int
    end: int

    def __post_init__(self) -> None:
        # INVARIANT: 0 <= start <= end. A bad span is a compiler bug, not a user error.
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def cover(self, other: Span) -> Span:
        """Return the smallest span containing both ``self`` and ``other``."""
        return Span(min(self.start, other.start), max(self.end, other.end))

    @staticmethod
    def empty(at: int) -> Span:
        """Return a zero-width span at offset ``at`` (an insertion point)."""
        return Span(at, at)

    @property
    def is_empty(self) -> bool:
        """Whether the span is zero-width."""
        return self.start == self.end


def _normalize_newlines(text: str) -> str:
    # Universal newlines in the io-module sense: only CRLF and lone CR become LF.
    # Other Unicode line separators (U+2028, VT, FF) stay as text; lint reports them.
    return text.replace("\r\n", "\n").replace("\r", "\n")


class SourceFile:
    """One decoded source file: its display path, normalized text and line-start index.

    ``text`` has universal newlines normalized to ``\\n`` and any leading BOM stripped.
    Build instances with :meth:`from_text` or :meth:`from_bytes`.
    """

    __slots__ = ("_line_starts", "path", "refused", "text")

    path: str
    text: str
    refused: bool
    """Whether the file was not read because it is larger than the size limit (PL003).

    Its text is then empty, and :func:`policylang.checker.analyze` does not parse it.
    """
    _line_starts: tuple[int, ...]

    def __init__(self, path: str, text: str, *, refused: bool = False) -> None:
        """Wrap already-normalized ``text``; prefer :meth:`from_text` or :meth:`from_bytes`."""
        self.path = path
        self.text = text
        self.refused = refused
        starts = [0]
        find = text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        self._line_starts = tuple(starts)

    def __repr__(self) -> str:
        return f"SourceFile(path={self.path!r}, lines={self.line_count})"

    @classmethod
    def from_text(cls, path: str, text: str) -> SourceFile:
        """Build from a decoded string: normalize CRLF/CR to LF and drop a leading BOM.

        The BOM is dropped silently here; :meth:`from_bytes` reports it as PL002.
        """
        if text.startswith(_BOM):
            text = text[1:]
        return cls(path, _normalize_newlines(text))

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> tuple[SourceFile, list[Diagnostic]]:
        """Decode UTF-8 bytes, reporting problems as diagnostics instead of raising.

        Invalid UTF-8 gives one PL001 error pointing at the first bad sequence (every
        bad sequence is replaced with U+FFFD so later stages can still run). A leading
        BOM gives a PL002 warning and is stripped. Newlines are normalized to LF.
        """
        from policylang.diagnostics import DiagnosticSink

        sink = DiagnosticSink()
        has_bom = data.startswith(_UTF8_BOM)
        body = data[len(_UTF8_BOM) :] if has_bom else data
        try:
            raw = body.decode("utf-8")
            bad: UnicodeDecodeError | None = None
        except UnicodeDecodeError as exc:
            raw = body.decode("utf-8", errors="replace")
            bad = exc
        text = _normalize_newlines(raw)
        source = cls(path, text)

        if has_bom:
            sink.warning(
                "PL002",
                "file starts with a UTF-8 byte order mark",
                path,
                Span.empty(0),
                label="byte order mark ignored",
                help="save the file as UTF-8 without a BOM",
            )
        if bad is not None:
            # Everything before the first bad byte decodes strictly, so its length in
            # code points is the bad sequence's offset in the replaced text; then map
            # it through newline normalization.
            prefix = body[: bad.start].decode("utf-8")
            offset = len(_normalize_newlines(prefix))
            bad_bytes = body[bad.start : bad.end]
            shown = " ".join(f"0x{b:02X}" for b in bad_bytes)
            noun = "byte" if len(bad_bytes) == 1 else "bytes"
            # surrogateescape maps each undecodable byte to one lone surrogate, and
            # valid UTF-8 never decodes to a surrogate, so this counts bad bytes.
            total = sum(
                1 for ch in body.decode("utf-8", "surrogateescape") if "\udc80" <= ch <= "\udcff"
            )
            notes = ["each invalid sequence was replaced with U+FFFD so checking could continue"]
            if total > len(bad_bytes):
                notes.insert(0, f"the file contains {total} invalid bytes")
            sink.error(
                "PL001",
                "file is not valid UTF-8",
                path,
                Span(offset, offset + 1),
                label=f"invalid {noun} {shown}",
                help="save the file with UTF-8 encoding",
                notes=notes,
            )
        return source, sink.sorted()

    @classmethod
    def read(cls, path: str, *, max_size: int | None = None) -> tuple[SourceFile, list[Diagnostic]]:
        """Read and decode the file at ``path`` as :meth:`from_bytes` does, within a size limit.

        A file larger than ``max_size`` bytes (by default the configured
        ``PolicyLimits.max_policy_size``, 4 MiB unless ``POLICYLANG_MAX_POLICY_SIZE``
        says otherwise) is not read into memory: its size is taken from the file system
        (at most ``max_size + 1`` bytes are read from anything else), and it comes back
        as an empty, :attr:`refused` file with one PL003 error. Raises ``OSError`` when
        the file cannot be read.
        """
        if max_size is None:
            from policylang.limits import PolicyLimits

            max_size = PolicyLimits.from_environment().max_policy_size
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            regular = stat.S_ISREG(info.st_mode)
            size: int | None = info.st_size if regular else None
            data = b"" if size is not None and size > max_size else handle.read(max_size + 1)
        if len(data) <= max_size and (size is None or size <= max_size):
            return cls.from_bytes(path, data)
        return cls(path, "", refused=True), [too_large(path, size, max_size)]

    @property
    def line_count(self) -> int:
        """Number of lines, counting the (possibly empty) text after the last newline.

        So ``""`` has 1 line and ``"a\\n"`` has 2; every offset, including end of file,
        falls on a line.
        """
        return len(self._line_starts)

    def line_col(self, offset: int) -> tuple[int, int]:
        """Return the 1-based ``(line, column)`` of ``offset``; columns count code points.

        ``offset`` may equal ``len(text)`` (end of file). Out-of-range offsets raise
        ``ValueError``.
        """
        if not 0 <= offset <= len(self.text):
            raise ValueError(f"offset {offset} outside {self.path!r} (length {len(self.text)})")
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def offset(self, line: int, column: int) -> int:
        """Return the offset of a 1-based ``(line, column)``; the inverse of :meth:`line_col`.

        The column may point one past the end of the line (at its newline, or at EOF).
        """
        start = self._line_start(line)
        if column < 1 or start + column - 1 > self._line_end(line):
            raise ValueError(f"column {column} outside line {line} of {self.path!r}")
        return start + column - 1

    def line_text(self, line: int) -> str:
        """Return the text of 1-based ``line`` without its newline."""
        return self.text[self._line_start(line) : self._line_end(line)]

    def line_span(self, line: int) -> Span:
        """Return the span of 1-based ``line``, excluding its newline."""
        return Span(self._line_start(line), self._line_end(line))

    def span_text(self, span: Span) -> str:
        """Return the text covered by ``span`` (what a caret underline points at)."""
        return self.text[span.start : span.end]

    def end_span(self) -> Span:
        """Return a zero-width span at end of file (where unexpected-EOF errors point)."""
        return Span.empty(len(self.text))

    def _line_start(self, line: int) -> int:
        if not 1 <= line <= len(self._line_starts):
            raise ValueError(f"line {line} outside {self.path!r} ({self.line_count} lines)")
        return self._line_starts[line - 1]

    def _line_end(self, line: int) -> int:
        # Offset of the line's newline, or end of text for the last line.
        if line < len(self._line_starts):
            return self._line_starts[line] - 1
        return len(self.text)


TOO_LARGE_HELP = (
    "split it into files joined with `extends` and `import`, or raise the limit with the"
    " environment variable POLICYLANG_MAX_POLICY_SIZE (e.g. 8M)"
)
"""The help of a PL003 error."""


def too_large_message(path: str, size: int | None, limit: int) -> str:
    """The PL003 message for a file of ``size`` bytes (``None``: unknown, larger) over ``limit``."""
    what = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    return f"`{path}` is larger than the size limit for a policy file: {what}, over {limit:,}"


def too_large(path: str, size: int | None, limit: int) -> Diagnostic:
    """The PL003 error for the file at ``path`` itself, located at its start."""
    from policylang.diagnostics import DiagnosticSink

    return DiagnosticSink().error(
        "PL003",
        too_large_message(path, size, limit),
        path,
        Span.empty(0),
        label="not read",
        help=TOO_LARGE_HELP,
    )
