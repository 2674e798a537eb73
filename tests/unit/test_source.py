"""SourceFile and Span: decoding, newline normalization, offsets <-> line/column."""

from __future__ import annotations

import pytest

from policylang.diagnostics import Severity
from policylang.source import SourceFile, Span

# ---------------------------------------------------------------- Span


def test_span_cover_is_order_independent() -> None:
    a, b = Span(3, 5), Span(10, 12)
    assert a.cover(b) == Span(3, 12)
    assert b.cover(a) == Span(3, 12)
    assert a.cover(Span(4, 4)) == a


def test_span_empty() -> None:
    span = Span.empty(7)
    assert span == Span(7, 7)
    assert span.is_empty
    assert not Span(7, 8).is_empty


@pytest.mark.parametrize(("start", "end"), [(-1, 0), (5, 4)])
def test_invalid_span_is_a_bug(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        Span(start, end)


def test_span_is_hashable_and_frozen() -> None:
    assert len({Span(1, 2), Span(1, 2)}) == 1
    with pytest.raises(AttributeError):
        Span(1, 2).start = 0  # type: ignore[misc]


# ---------------------------------------------------------------- line/column


def test_line_col_simple() -> None:
    src = SourceFile.from_text("a.policy", "ab\ncde\n\nf")
    assert src.line_count == 4
    expected = {
        0: (1, 1),
        1: (1, 2),
        2: (1, 3),  # the newline itself belongs to line 1
        3: (2, 1),
        5: (2, 3),
        6: (2, 4),
        7: (3, 1),
        8: (4, 1),
        9: (4, 2),  # end of file
    }
    for offset, line_col in expected.items():
        assert src.line_col(offset) == line_col, offset


def test_offset_is_inverse_of_line_col() -> None:
    src = SourceFile.from_text("a.policy", "x\n\tyz\n\nlast")
    for offset in range(len(src.text) + 1):
        line, column = src.line_col(offset)
        assert src.offset(line, column) == offset


def test_offset_rejects_positions_off_the_line() -> None:
    src = SourceFile.from_text("a.policy", "ab\ncd")
    assert src.offset(1, 3) == 2  # at the newline
    with pytest.raises(ValueError):
        src.offset(1, 4)
    with pytest.raises(ValueError):
        src.offset(1, 0)
    with pytest.raises(ValueError):
        src.offset(3, 1)


@pytest.mark.parametrize("offset", [-1, 6])
def test_line_col_out_of_range_is_a_bug(offset: int) -> None:
    src = SourceFile.from_text("a.policy", "ab\ncd")
    with pytest.raises(ValueError):
        src.line_col(offset)


def test_columns_count_code_points_not_bytes_or_utf16() -> None:
    # "é" is 2 UTF-8 bytes; the emoji is 4 UTF-8 bytes and 2 UTF-16 units.
    src = SourceFile.from_text("a.policy", "é\U0001f600x")
    assert src.line_col(src.text.index("x")) == (1, 3)


def test_tab_is_one_column() -> None:
    src = SourceFile.from_text("a.policy", "\t\tname")
    assert src.line_col(src.text.index("name")) == (1, 3)


def test_crlf_and_cr_are_normalized() -> None:
    src = SourceFile.from_text("a.policy", "a\r\nb\rc\n\r\nd")
    assert src.text == "a\nb\nc\n\nd"
    assert src.line_count == 5
    assert src.line_col(src.text.index("d")) == (5, 1)
    assert [src.line_text(n) for n in range(1, 6)] == ["a", "b", "c", "", "d"]


def test_other_unicode_line_breaks_are_not_lines() -> None:
    # Only CRLF, CR and LF count; U+2028 and form feed stay text (lint reports them).
    src = SourceFile.from_text("a.policy", "a\u2028b\x0cc")
    assert src.line_count == 1


def test_from_text_strips_bom() -> None:
    src = SourceFile.from_text("a.policy", "\ufeffab")
    assert src.text == "ab"
    assert src.line_col(0) == (1, 1)


def test_empty_file() -> None:
    src = SourceFile.from_text("empty.policy", "")
    assert src.line_count == 1
    assert src.line_text(1) == ""
    assert src.line_col(0) == (1, 1)
    assert src.end_span() == Span(0, 0)


def test_end_span_without_trailing_newline() -> None:
    src = SourceFile.from_text("a.policy", "ab\ncd")
    assert src.end_span() == Span(5, 5)
    assert src.line_col(src.end_span().start) == (2, 3)


def test_end_span_with_trailing_newline_is_on_the_empty_last_line() -> None:
    src = SourceFile.from_text("a.policy", "ab\ncd\n")
    assert src.line_count == 3
    assert src.end_span() == Span(6, 6)
    assert src.line_col(6) == (3, 1)
    assert src.line_text(3) == ""


def test_line_text_and_line_span() -> None:
    src = SourceFile.from_text("a.policy", "first\nsecond\n")
    assert src.line_text(1) == "first"
    assert src.line_text(2) == "second"
    assert src.line_span(2) == Span(6, 12)
    assert src.span_text(src.line_span(2)) == "second"
    with pytest.raises(ValueError):
        src.line_text(0)
    with pytest.raises(ValueError):
        src.line_text(4)


# ---------------------------------------------------------------- from_bytes


def test_from_bytes_clean() -> None:
    src, diagnostics = SourceFile.from_bytes("a.policy", "caf\u00e9\r\nok\n".encode())
    assert diagnostics == []
    assert src.text == "caf\u00e9\nok\n"
    assert src.path == "a.policy"


def test_from_bytes_bom_is_a_warning_and_stripped() -> None:
    src, diagnostics = SourceFile.from_bytes("a.policy", b"\xef\xbb\xbfab\r\ncd")
    assert src.text == "ab\ncd"
    assert [(d.code, d.severity) for d in diagnostics] == [("PL002", Severity.WARNING)]
    (bom,) = diagnostics
    assert bom.path == "a.policy"
    assert bom.primary.span == Span(0, 0)
    assert bom.name == "unexpected-bom"
    # Offsets are into the stripped text.
    assert src.line_col(src.text.index("c")) == (2, 1)


def test_from_bytes_invalid_utf8_points_at_first_bad_byte() -> None:
    data = b"ab\r\ncd\xffef\xfe"
    src, diagnostics = SourceFile.from_bytes("bad.policy", data)
    assert src.text == "ab\ncd\ufffdef\ufffd"
    (bad,) = diagnostics
    assert (bad.code, bad.severity) == ("PL001", Severity.ERROR)
    # CRLF before the bad byte is normalized, so the offset is 5, not 6.
    assert bad.primary.span == Span(5, 6)
    assert src.span_text(bad.primary.span) == "\ufffd"
    assert src.line_col(bad.primary.span.start) == (2, 3)
    assert "0xFF" in bad.primary.message
    assert bad.notes[0] == "the file contains 2 invalid bytes"


def test_from_bytes_invalid_multibyte_sequence_after_non_ascii() -> None:
    # A truncated 3-byte sequence after a 2-byte character: offsets count code points.
    data = "é".encode() + b"\xe2\x82" + b"x"
    src, diagnostics = SourceFile.from_bytes("bad.policy", data)
    (bad,) = diagnostics
    assert bad.primary.span == Span(1, 2)
    assert src.text[bad.primary.span.start] == "\ufffd"
    assert "0xE2 0x82" in bad.primary.message
    assert len(bad.notes) == 1  # no "contains N invalid bytes" when there is only one


def test_from_bytes_bom_and_invalid_utf8_together() -> None:
    src, diagnostics = SourceFile.from_bytes("bad.policy", b"\xef\xbb\xbfa\xffb")
    assert src.text == "a\ufffdb"
    assert [(d.code, d.primary.span) for d in diagnostics] == [
        ("PL002", Span(0, 0)),
        ("PL001", Span(1, 2)),
    ]


def test_repr_is_short() -> None:
    assert repr(SourceFile.from_text("a.policy", "x\ny")) == "SourceFile(path='a.policy', lines=2)"
