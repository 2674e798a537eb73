"""Curated syntax errors and terminal display names for readable parse diagnostics.

``CURATED`` is the table that :mod:`policylang.parser` hands to lark's ``match_examples``:
each entry pairs a few bad snippets with the code, message and help to report when a
real error fails in the same parser state. ``TERMINAL_DISPLAY`` names every grammar
terminal in plain words, so expected-token lists read like "expected one of: `:`, `{`".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CURATED",
    "KEYWORDS",
    "TERMINAL_DISPLAY",
    "CuratedError",
    "describe_character",
    "describe_expected",
    "describe_token",
]

#: Keyword terminals and the text they match. The contextual lexer reserves these
#: words only where the grammar can accept them, so they stay usable as names elsewhere.
KEYWORDS: dict[str, str] = {
    "AND": "and",
    "OR": "or",
    "NOT": "not",
    "ANY": "any",
    "ALL": "all",
    "KEYWORDS": "keywords",
    "PATTERN": "pattern",
    "SCORE": "score",
    "ANNOTATION": "annotation",
    "IN": "in",
    "WITHIN": "within",
    "AFTER": "after",
    "BENIGN": "benign",
    "TURNS": "turns",
}

#: How each terminal reads in "expected ..." lists. Every terminal of the grammar has an
#: entry (a test checks this), plus lark's ``$END``.
TERMINAL_DISPLAY: dict[str, str] = {
    **{terminal: f"`{text}`" for terminal, text in KEYWORDS.items()},
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAREN": "`(`",
    "RPAREN": "`)`",
    "LBRACKET": "`[`",
    "RBRACKET": "`]`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "EQUALS": "`=`",
    "COMPARATOR": "a comparison (`>=`, `<`, ...)",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "REGEX": "a pattern like /.../",
    "COMMENT": "a comment",
    "WS": "whitespace",
    "$END": "end of file",
}

# Terminals that never belong in an "expected" list: the lexer skips them anywhere.
_IGNORED = frozenset({"WS", "COMMENT"})

# Token kinds whose text varies; an unexpected one is shown as "<kind> `<text>`".
_KIND_NAMES = {
    "NAME": "name",
    "NUMBER": "number",
    "STRING": "string",
    "REGEX": "pattern",
}

_MAX_SHOWN = 40


@dataclass(frozen=True, slots=True)
class CuratedError:
    """One curated syntax error: bad snippets and what to report when an error matches.

    An error matches when lark fails in the same parser state (and with the same set of
    acceptable tokens) as one of ``examples``. ``tokens`` restricts the entry to those
    unexpected token types; ``at`` restricts it to errors where the source at the error
    offset starts with that text (for lexical errors such as ``//``). An ``anywhere``
    entry (which needs ``at``) also applies to lexical errors in states none of its
    examples reach, after every state-specific entry has been tried.
    """

    code: str
    message: str
    help: str | None
    examples: tuple[str, ...]
    tokens: frozenset[str] | None = None
    at: str | None = None
    anywhere: bool = False


_AFTER_AND = "write a condition on both sides of `{}`, as in `a {} b`"

#: The curated table, in priority order. Examples use ``}`` or another token after the
#: gap rather than ending the file, because errors at end of file are always reported
#: as PL103 with the list of expected tokens.
CURATED: tuple[CuratedError, ...] = (
    CuratedError(
        "PL101",
        "expected `:` after the property name",
        'write each property as `name: value`, as in `title: "Weapons"`',
        (
            'category x { title "a" }',
            "category x { severity critical }",
            "category x { lasts 10 turns }",
            'category x { maps_to: { mlcommons "a" } }',
            "category x { title }",
        ),
    ),
    CuratedError(
        "PL101",
        "unexpected `=` in a block",
        "properties are written `name: value`; `=` is only for declarations such as "
        '`list NAME = ["a", "b"]`',
        (
            'category x { title = "a" }',
            'category x { maps_to: { mlcommons = "a" } }',
        ),
        tokens=frozenset({"EQUALS"}),
    ),
    CuratedError(
        "PL101",
        "expected a name for this declaration",
        "declarations are written `KIND NAME { ... }` or `KIND NAME = value`, "
        "as in `category self_harm { ... }`",
        (
            'category { title: "a" }',
            'list = ["a"]',
            'category "x" { }',
        ),
    ),
    CuratedError(
        "PL101",
        "expected `{` or `=` after the declaration name",
        "declarations are written `KIND NAME { ... }` or `KIND NAME = value`",
        (
            'list agents ["a"]',
            "category x: { }",
        ),
    ),
    CuratedError(
        "PL101",
        "expected `,` between list items",
        'separate list items with commas, as in `["a", "b"]`',
        (
            'list x = ["a" "b"]',
            "list x = [a b]",
            'list x = [a "b"]',
            "list x = [1 2]",
            "list x = [/a/ /b/]",
            'category x { detect: keywords ["a" "b"] }',
            "rule r { when: category in [a b] }",
        ),
    ),
    CuratedError(
        "PL101",
        "expected `,` between arguments",
        "separate arguments with commas, as in `any(a, b)`",
        (
            "rule r { when: any(a b) }",
            "rule r { when: all(a b) }",
            'rule r { when: any(a "b") }',
        ),
    ),
    CuratedError(
        "PL101",
        "expected a number after the comparison",
        'compare with a number, as in `failed_redirects >= 3` or `score "violence" >= 0.9`',
        (
            "rule r { when: failed_redirects >= }",
            'rule r { when: failed_redirects >= "3" }',
            'category x { detect: score "violence" >= }',
        ),
    ),
    CuratedError(
        "PL101",
        "unexpected `,` between properties",
        "properties need no separator; put each one on its own line",
        (
            'category x { title: "a", severity: low }',
            "category x { severity: low, title: x }",
            "category x { limit: 3, title: x }",
            'category x { tags: ["a"], title: x }',
            "category x { maps_to: { a: b }, title: x }",
            "rule r { lasts: 10 turns, title: x }",
        ),
        tokens=frozenset({"COMMA"}),
    ),
    CuratedError(
        "PL101",
        "expected a value after `:`",
        'write the property\'s value after the colon, as in `title: "Weapons"`',
        (
            "category x { title: }",
            "category x { title: , }",
            "category x { maps_to: { a: } }",
        ),
    ),
    CuratedError(
        "PL101",
        "expected a condition after `and`",
        _AFTER_AND.format("and", "and"),
        ("rule r { when: a and }", "rule r { when: a and , }"),
    ),
    CuratedError(
        "PL101",
        "expected a condition after `or`",
        _AFTER_AND.format("or", "or"),
        ("rule r { when: a or }", "rule r { when: a or , }"),
    ),
    CuratedError(
        "PL101",
        "expected a condition after `not`",
        "write the condition to negate, as in `not end_request`",
        ("rule r { when: not }", "rule r { when: not , }"),
    ),
    CuratedError(
        "PL102",
        "pattern literal is empty",
        "write a regular expression between the slashes, as in `/how to/`",
        (
            "pattern p = //",
            "category x { detect: pattern // }",
            "category x { detect: a or // }",
            "category x { title: // }",
        ),
        at="//",
    ),
    CuratedError(
        "PL102",
        "unexpected `//`",
        "comments start with `#`, not `//`",
        ("// comment", 'category x { title: "a" // comment\n}'),
        at="//",
        anywhere=True,
    ),
    CuratedError(
        "PL102",
        "unexpected character `'`",
        'strings are written in double quotes, as in `"text"`',
        (
            "category x { title: 'a' }",
            "list x = ['a']",
        ),
        at="'",
        anywhere=True,
    ),
    CuratedError(
        "PL102",
        "unexpected character `;`",
        "properties and declarations need no separator; remove the `;`",
        (
            'category x { title: "a"; }',
            "list x = [a];",
        ),
        at=";",
        anywhere=True,
    ),
)


def describe_expected(terminals: Iterable[str]) -> str:
    """Return "expected X" or "expected one of: X, Y" for terminal names, sorted and deduped.

    Whitespace and comments are left out (they are allowed everywhere); an unknown
    terminal is shown by its name.
    """
    shown = sorted({TERMINAL_DISPLAY.get(t, f"`{t}`") for t in terminals if t not in _IGNORED})
    if not shown:
        return "expected nothing more here"
    if len(shown) == 1:
        return f"expected {shown[0]}"
    return "expected one of: " + ", ".join(shown)


def _shorten(text: str) -> str:
    if len(text) <= _MAX_SHOWN:
        return text
    return text[: _MAX_SHOWN - 3] + "..."


def describe_token(token_type: str, text: str) -> str:
    """Describe an unexpected token for a message: "`{`", "keyword `and`", "name `x`"."""
    if token_type == "$END":
        return "end of file"
    if token_type in KEYWORDS:
        return f"keyword `{text}`"
    kind = _KIND_NAMES.get(token_type)
    if kind is not None:
        return f"{kind} `{_shorten(text)}`"
    return f"`{_shorten(text)}`"


def describe_character(char: str) -> str:
    """Show one source character in a message: "`@`", or "U+200B (ZERO WIDTH SPACE)".

    Invisible, whitespace and backtick characters are shown by code point, because
    they cannot be read inside backticks.
    """
    if char.isprintable() and not char.isspace() and char != "`":
        return f"`{char}`"
    name = unicodedata.name(char, "")
    code_point = f"U+{ord(char):04X}"
    return f"{code_point} ({name})" if name else code_point
