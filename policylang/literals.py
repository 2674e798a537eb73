"""Decoding of literal tokens: strings (with escapes), numbers and ``/pattern/flags``.

These are pure functions of the token text. A bad string escape is returned as an
:class:`EscapeProblem` whose span covers exactly that escape, as code-point offsets into
the source text; the builder turns problems into PL105 diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass

from policylang.source import Span

__all__ = [
    "DecodedString",
    "EscapeProblem",
    "decode_number",
    "decode_regex",
    "decode_string",
    "number_value",
]

_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_MAX_HEX_DIGITS = 6
_VALID_ESCAPES = 'valid escapes are `\\"`, `\\\\`, `\\n`, `\\t` and `\\u{...}`'


@dataclass(frozen=True, slots=True)
class EscapeProblem:
    """One invalid escape sequence: where it is and what to say about it."""

    span: Span
    message: str
    label: str
    help: str


@dataclass(frozen=True, slots=True)
class DecodedString:
    """A decoded string value plus any invalid escapes (kept as written in ``value``)."""

    value: str
    problems: tuple[EscapeProblem, ...] = ()


def decode_string(token: str, offset: int = 0) -> DecodedString:
    """Decode a STRING token (with its quotes) that starts at ``offset`` in the source.

    Supported escapes: ``\\"``, ``\\\\``, ``\\n``, ``\\t`` and ``\\u{X}`` with 1 to 6 hex
    digits naming a Unicode scalar value (not a surrogate). An invalid escape is kept
    as written, reported in ``problems``, and decoding continues after it.
    """
    body_start = 1 if token.startswith('"') else 0
    body_end = len(token) - 1 if len(token) > body_start and token.endswith('"') else len(token)
    out: list[str] = []
    problems: list[EscapeProblem] = []
    i = body_start
    while i < body_end:
        char = token[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        end, decoded = _escape(token, i, body_end)
        if isinstance(decoded, _Bad):
            problems.append(
                EscapeProblem(
                    Span(offset + i, offset + end), decoded.message, decoded.label, decoded.help
                )
            )
            out.append(token[i:end])
        else:
            out.append(decoded)
        i = end
    return DecodedString("".join(out), tuple(problems))


@dataclass(frozen=True, slots=True)
class _Bad:
    """What is wrong with one escape (its span is computed by the caller)."""

    message: str
    label: str
    help: str


_UNICODE_HELP = (
    "write `\\u{` and 1 to 6 hex digits naming a Unicode scalar value, then `}`, as in `\\u{1F600}`"
)


def _escape(token: str, i: int, limit: int) -> tuple[int, str | _Bad]:
    """Decode the escape at ``token[i] == "\\"``; return where it ends and its text."""
    if i + 1 >= limit:
        return i + 1, _Bad(
            "invalid escape: `\\` at the end of the string",
            "incomplete escape",
            f"write `\\\\` for a backslash; {_VALID_ESCAPES}",
        )
    kind = token[i + 1]
    simple = _SIMPLE_ESCAPES.get(kind)
    if simple is not None:
        return i + 2, simple
    if kind == "u":
        return _unicode_escape(token, i, limit)
    return i + 2, _Bad(
        f"invalid escape sequence `{token[i : i + 2]}`",
        "unknown escape",
        f"{_VALID_ESCAPES}; write `\\\\` for a backslash",
    )


def _unicode_escape(token: str, i: int, limit: int) -> tuple[int, str | _Bad]:
    """Decode ``\\u{X...}`` at ``token[i]``, where ``token[i + 1] == "u"``."""
    if i + 2 >= limit or token[i + 2] != "{":
        return i + 2, _Bad(
            "invalid unicode escape: expected `{` after `\\u`", "expected `{`", _UNICODE_HELP
        )
    j = i + 3
    while j < limit and token[j] in _HEX_DIGITS:
        j += 1
    if j >= limit or token[j] != "}":
        return j, _Bad(
            f"invalid unicode escape `{token[i:j]}`: expected hex digits and `}}`",
            "unterminated unicode escape",
            _UNICODE_HELP,
        )
    digits = token[i + 3 : j]
    end = j + 1
    shown = token[i:end]
    if not digits:
        problem = _Bad(
            f"invalid unicode escape `{shown}`: no hex digits", "empty escape", _UNICODE_HELP
        )
        return end, problem
    if len(digits) > _MAX_HEX_DIGITS:
        return end, _Bad(
            f"invalid unicode escape `{shown}`: more than {_MAX_HEX_DIGITS} hex digits",
            "too many digits",
            _UNICODE_HELP,
        )
    value = int(digits, 16)
    if 0xD800 <= value <= 0xDFFF:
        return end, _Bad(
            f"invalid unicode escape `{shown}`: surrogate code points are not characters",
            "surrogate code point",
            "surrogates (`D800` to `DFFF`) cannot appear in text; "
            "write the character's own code point, as in `\\u{1F600}`",
        )
    if value > 0x10FFFF:
        return end, _Bad(
            f"invalid unicode escape `{shown}`: beyond the last code point `10FFFF`",
            "not a Unicode code point",
            _UNICODE_HELP,
        )
    return end, chr(value)


def decode_number(text: str) -> int | float:
    """Decode a NUMBER token: ``int`` when written without a dot, else ``float``.

    Integers too long for ``int()`` (over 4300 digits) come back as ``float`` (``inf``).
    """
    if "." not in text:
        try:
            return int(text)
        except ValueError:
            return float(text)
    return float(text)


def number_value(text: str) -> tuple[float, bool]:
    """Return ``(value, is_integer)`` for a NUMBER token, as :class:`~policylang.nodes.Number`
    stores it; integers too large for a float become ``inf`` (the checker reports range).
    """
    return float(text), "." not in text


def decode_regex(token: str) -> tuple[str, str]:
    """Split a REGEX token ``/pattern/flags`` into ``(pattern, flags)``.

    ``\\/`` in the pattern becomes ``/``; everything else, other escapes included, is kept
    exactly as written. Flags are returned as written; the checker validates them.
    """
    close = token.rfind("/")
    if not token.startswith("/") or close <= 0:
        return token, ""
    body = token[1:close]
    flags = token[close + 1 :]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append("/" if nxt == "/" else char + nxt)
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out), flags
