"""Literal decoding: string escapes with exact problem spans, numbers, and regex literals."""

from __future__ import annotations

import math

import pytest

from policylang.literals import (
    DecodedString,
    decode_number,
    decode_regex,
    decode_string,
    number_value,
)
from policylang.source import Span

# ---------------------------------------------------------------- strings


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ('""', ""),
        ('"plain text"', "plain text"),
        (r'"a \"quoted\" word"', 'a "quoted" word'),
        (r'"back\\slash"', "back\\slash"),
        (r'"line\nbreak\ttab"', "line\nbreak\ttab"),
        (r'"\u{41}\u{e9}\u{1F600}\u{10FFFF}"', "A\u00e9\U0001f600\U0010ffff"),
        (r'"\u{0000}"', "\x00"),
        ('"caf\u00e9 \U0001f600"', "caf\u00e9 \U0001f600"),
        (r'"\\n is not a newline"', "\\n is not a newline"),
    ],
)
def test_valid_strings_decode(token: str, value: str) -> None:
    assert decode_string(token) == DecodedString(value)


def problem_texts(token: str, offset: int = 0) -> list[str]:
    """The source text each problem's span covers, with the token placed at ``offset``."""
    source = " " * offset + token
    return [source[p.span.start : p.span.end] for p in decode_string(token, offset).problems]


@pytest.mark.parametrize(
    ("token", "bad", "message"),
    [
        (r'"a\qb"', r"\q", "invalid escape sequence `\\q`"),
        (r'"\'"', r"\'", "invalid escape sequence `\\'`"),
        (r'"\u0041"', r"\u", "invalid unicode escape: expected `{` after `\\u`"),
        (r'"\u{}"', r"\u{}", "invalid unicode escape `\\u{}`: no hex digits"),
        (r'"\u{12G4}"', r"\u{12", "invalid unicode escape `\\u{12`: expected hex digits and `}`"),
        (r'"\u{12"', r"\u{12", "invalid unicode escape `\\u{12`: expected hex digits and `}`"),
        (
            r'"\u{1234567}"',
            r"\u{1234567}",
            "invalid unicode escape `\\u{1234567}`: more than 6 hex digits",
        ),
        (
            r'"\u{D800}"',
            r"\u{D800}",
            "invalid unicode escape `\\u{D800}`: surrogate code points are not characters",
        ),
        (
            r'"\u{dfff}"',
            r"\u{dfff}",
            "invalid unicode escape `\\u{dfff}`: surrogate code points are not characters",
        ),
        (
            r'"\u{110000}"',
            r"\u{110000}",
            "invalid unicode escape `\\u{110000}`: beyond the last code point `10FFFF`",
        ),
    ],
)
def test_bad_escape_spans_cover_exactly_the_escape(token: str, bad: str, message: str) -> None:
    decoded = decode_string(token)
    (problem,) = decoded.problems
    assert problem.message == message
    assert token[problem.span.start : problem.span.end] == bad
    # The raw text of the bad escape is kept, and decoding goes on around it.
    assert bad in decoded.value


def test_problem_spans_are_offset_into_the_source() -> None:
    token = r'"ok \x then \u{D800} end"'
    assert problem_texts(token, offset=17) == [r"\x", r"\u{D800}"]
    problems = decode_string(token, 17).problems
    assert problems[0].span == Span(17 + 4, 17 + 6)


def test_decoding_continues_after_a_bad_escape() -> None:
    decoded = decode_string(r'"\q\n\u{41}\z\t"')
    assert decoded.value == "\\q\nA\\z\t"
    assert [p.message for p in decoded.problems] == [
        "invalid escape sequence `\\q`",
        "invalid escape sequence `\\z`",
    ]


def test_offsets_count_code_points_not_bytes_or_utf16_units() -> None:
    token = '"\U0001f600\u00e9\\q"'
    (problem,) = decode_string(token, 10).problems
    # The emoji and é are one code point each: the quote at 10, emoji 11, é 12, `\q` 13-15.
    assert problem.span == Span(13, 15)


def test_problems_carry_label_and_help() -> None:
    (problem,) = decode_string(r'"\q"').problems
    assert problem.label == "unknown escape"
    assert "`\\n`" in problem.help
    assert "`\\u{...}`" in problem.help


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [("0", 0, int), ("3", 3, int), ("007", 7, int), ("0.9", 0.9, float), ("10.25", 10.25, float)],
)
def test_numbers_decode_to_int_or_float(text: str, value: float, kind: type) -> None:
    decoded = decode_number(text)
    assert decoded == value
    assert type(decoded) is kind


def test_number_value_for_nodes() -> None:
    assert number_value("3") == (3.0, True)
    assert number_value("0.5") == (0.5, False)


def test_huge_numbers_do_not_raise() -> None:
    digits = "9" * 5000
    assert isinstance(decode_number(digits), float)
    value, is_integer = number_value(digits)
    assert math.isinf(value)
    assert is_integer


# ---------------------------------------------------------------- regex literals


@pytest.mark.parametrize(
    ("token", "pattern", "flags"),
    [
        ("/abc/", "abc", ""),
        (r"/\bhow (do|can) i\b/i", r"\bhow (do|can) i\b", "i"),
        (r"/a\/b/", "a/b", ""),
        (r"/a\\/", "a\\\\", ""),
        (r"/\d+\.\d*/sm", r"\d+\.\d*", "sm"),
        ("/x/zq", "x", "zq"),
        (r"/\\\//", "\\\\/", ""),
    ],
)
def test_regex_literals_keep_the_pattern_as_written(token: str, pattern: str, flags: str) -> None:
    assert decode_regex(token) == (pattern, flags)
