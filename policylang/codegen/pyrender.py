"""PySource, the ``py_*`` escaping filters, the finalize guard, and line layout.

Policy text reaches generated Python only through these filters (STYLE §3.7, layers 1, 2
and 4). Each one checks the *exact* type of its input (no subclasses, so a ``str``
subclass with a hostile ``__repr__`` cannot slip through) and returns a :class:`PySource`.
The Jinja environment's ``finalize`` hook is :func:`finalize`, which refuses anything
that is not a ``PySource``, so a forgotten filter fails loudly instead of emitting raw text.

String literals are ``repr``-style escapes restricted to ASCII (what :func:`ascii` does):
the generated module is pure ASCII, so no NUL, line break, U+2028, BIDI control,
zero-width or look-alike character can appear in it raw, and line widths are exact,
which lets the layout below agree with ``ruff format`` byte for byte.
"""

from __future__ import annotations

import ast
import builtins
import enum
import keyword
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from policylang import runtime

__all__ = [
    "FLAG_SOURCE",
    "LINE_LENGTH",
    "RESERVED_NAMES",
    "RUNTIME_ALIAS",
    "Call",
    "Doc",
    "PySource",
    "Tup",
    "canonical_flags",
    "finalize",
    "is_overlong",
    "layout",
    "py_bool",
    "py_comment",
    "py_enum",
    "py_flags",
    "py_float",
    "py_int",
    "py_name",
    "py_regex",
    "py_shell_word",
    "py_str",
    "py_token",
    "runtime_class",
]

LINE_LENGTH = 100
"""The project's line length (``[tool.ruff] line-length``); layout targets it."""

RUNTIME_ALIAS = "rt"
"""The name generated modules bind ``policylang.runtime`` to."""


class PySource(str):
    """Text that is already valid Python source, as produced by the ``py_*`` filters.

    Like markupsafe's ``Markup``, the type is the promise: only code in this module
    and the code generator construct it, from fixed text or escaped values.
    """

    __slots__ = ()


def _require(value: object, expected: type, filter_name: str) -> None:
    # Exact type, as jinja's own filters insist: subclasses may override __repr__,
    # __str__ or __format__ and so decide what text is emitted.
    if type(value) is not expected:
        raise TypeError(
            f"{filter_name} expects exactly {expected.__name__}, got {type(value).__name__}"
        )


# --------------------------------------------------------------------- scalars


def py_str(value: object, assign: str | None = None) -> PySource:
    """A string literal: ``repr`` escaping restricted to ASCII, quoted as ruff would.

    Double quotes are used unless the text holds more ``"`` than ``'`` (ruff format's
    rule), so the output is stable under ``ruff format``. With ``assign="NAME"`` the
    literal is the value of ``NAME: Final = ...`` and is wrapped in parentheses on its
    own line exactly when ruff would do so.
    """
    _require(value, str, "py_str")
    assert isinstance(value, str)
    quote = "'" if value.count('"') > value.count("'") else '"'
    parts: list[str] = []
    for char in value:
        if char == quote:
            parts.append("\\" + char)
        elif char in "'\"":
            parts.append(char)
        else:
            # ascii() of one character is repr()'s escape for it, with non-ASCII
            # characters escaped as \xhh, \uhhhh or \Uhhhhhhhh.
            parts.append(ascii(char)[1:-1])
    literal = quote + "".join(parts) + quote
    # INVARIANT: the literal evaluates to exactly the input. Cheap, and it turns any
    # escaping mistake into a loud compiler bug instead of a wrong or unsafe module.
    if not literal.isascii() or ast.literal_eval(literal) != value:
        raise AssertionError("py_str produced a literal that does not round-trip")
    if assign is None:
        return PySource(literal)
    prefix = len(py_name(assign)) + len(": Final = ")
    if prefix + len(literal) > LINE_LENGTH and 4 + len(literal) <= LINE_LENGTH:
        # ruff's best fit for an assignment: parenthesize a value that then fits.
        return PySource(f"(\n    {literal}\n)")
    return PySource(literal)


def py_comment(value: object) -> PySource:
    """A string literal for a comment: :func:`py_str`, with ``#`` and ``:`` as ``\\x23``, ``\\x3a``.

    The literal has no line break, so text cannot leave the comment; and it has no
    ``#`` and no ``:``, so text cannot plant a tool directive there either (``# noqa``,
    ``# type: ignore``, ``# pragma: no cover``, and ``pylint: disable=all``, which
    pylint obeys anywhere in a comment).
    """
    literal = py_str(value).replace("#", "\\x23").replace(":", "\\x3a")
    if ast.literal_eval(literal) != value:
        raise AssertionError("py_comment produced a literal that does not round-trip")
    return PySource(literal)


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./+][A-Za-z0-9_./+-]*")
# Inside $'...' every other printable ASCII character stands for itself, except the
# quote and backslash (its syntax), `!` (history expansion in interactive bash), and
# `#` and `:` (so the comment holds no tool directive).
_ANSI_C_LITERAL = frozenset(chr(code) for code in range(0x20, 0x7F)) - set("'\\!#:")


def py_shell_word(value: object) -> PySource:
    """A path as one POSIX shell word, for the command line in a comment.

    ``regenerate with: policylang compile PATH`` is meant to be pasted into a shell, so
    the path must not run anything there. A plain path (letters, digits, ``_ . / + -``)
    is written in double quotes; any other in ANSI-C quotes, ``$'...'``, where nothing
    expands and every byte that is not plain printable ASCII is written ``\\xHH`` (the
    path's UTF-8; a byte that a file name held undecoded, as ``surrogateescape`` keeps
    it, is written as that byte). The word has no line break, no ``#`` and no ``:``. A
    path that starts with ``-`` is written ``./-...`` so it cannot pass for an option.
    """
    _require(value, str, "py_shell_word")
    assert isinstance(value, str)
    if value.startswith("-"):
        value = "./" + value
    if _PLAIN_WORD.fullmatch(value) is not None:
        return PySource(f'"{value}"')
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        data = value.encode("utf-8", "surrogatepass")
    parts: list[str] = []
    escaped = False
    for byte in data:
        char = chr(byte)
        # A hex digit right after `\xHH` is escaped too: POSIX leaves `\xHHH` unspecified.
        escaped = char not in _ANSI_C_LITERAL or (escaped and char in string.hexdigits)
        parts.append(f"\\x{byte:02x}" if escaped else char)
    return PySource("$'" + "".join(parts) + "'")


def py_int(value: object) -> PySource:
    """An integer literal (``bool`` is refused: it is not exactly ``int``)."""
    _require(value, int, "py_int")
    return PySource(repr(value))


def py_float(value: object) -> PySource:
    """A float literal; infinities and NaN (which have no literal) are refused."""
    _require(value, float, "py_float")
    assert isinstance(value, float)
    if not math.isfinite(value):
        raise ValueError(f"py_float cannot emit non-finite {value!r}")
    # ruff format writes exponents without a plus sign: 1e16, not 1e+16.
    text = repr(value).replace("e+", "e")
    if float(text) != value:
        raise AssertionError("py_float produced a literal that does not round-trip")
    return PySource(text)


def py_bool(value: object) -> PySource:
    """``True`` or ``False``."""
    _require(value, bool, "py_bool")
    return PySource("True" if value else "False")


_NAME_RE = re.compile(r"_?[A-Za-z][A-Za-z0-9_]*")

RESERVED_NAMES: frozenset[str] = frozenset(
    {
        *dir(builtins),
        # Names the module template itself binds or imports.
        RUNTIME_ALIAS,
        "re",
        "Final",
        "annotations",
        "policylang",
        "runtime",
        "typing",
    }
)
"""Identifiers a synthesized name must never shadow."""


def py_name(value: object) -> PySource:
    """A synthesized identifier such as ``_P0007``; never a policy-supplied name.

    The pattern admits no dunder and no non-ASCII letter; keywords, soft keywords,
    builtins and the names the module template binds are refused.
    """
    _require(value, str, "py_name")
    assert isinstance(value, str)
    if _NAME_RE.fullmatch(value) is None:
        raise ValueError(f"py_name: {value!r} is not a plain identifier")
    if keyword.iskeyword(value) or keyword.issoftkeyword(value) or value in RESERVED_NAMES:
        raise ValueError(f"py_name: {value!r} is reserved")
    return PySource(value)


_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def py_token(value: object) -> PySource:
    """A short version-like token (``0.1.0``) for the header comment; nothing else passes."""
    _require(value, str, "py_token")
    assert isinstance(value, str)
    if _TOKEN_RE.fullmatch(value) is None:
        raise ValueError(f"py_token: {value!r} is not a plain version token")
    return PySource(value)


# --------------------------------------------------------------------- regexes

FLAG_SOURCE: dict[str, tuple[re.RegexFlag, str]] = {
    "I": (re.IGNORECASE, "re.I"),
    "M": (re.MULTILINE, "re.M"),
    "S": (re.DOTALL, "re.S"),
    "X": (re.VERBOSE, "re.X"),
}
"""The only regex flags a policy can ask for, in canonical order, with their source."""


def canonical_flags(value: object, filter_name: str = "canonical_flags") -> tuple[str, ...]:
    """Validate a tuple of flag names; return them deduplicated, in canonical order."""
    _require(value, tuple, filter_name)
    assert isinstance(value, tuple)
    for name in value:
        _require(name, str, filter_name)
        if name not in FLAG_SOURCE:
            raise ValueError(f"{filter_name}: unknown regex flag {name!r}")
    return tuple(name for name in FLAG_SOURCE if name in value)


def py_flags(value: object) -> PySource:
    """``re.S | re.M``-style flags from a tuple of flag names; ``0`` for none."""
    names = canonical_flags(value, "py_flags")
    if not names:
        return PySource("0")
    return PySource(" | ".join(FLAG_SOURCE[name][1] for name in names))


def py_regex(value: object, flags: object = ()) -> PySource:
    """A regular expression as a string literal, after checking that it compiles.

    The checker reports bad patterns with a span; one reaching here is a compiler bug.
    """
    _require(value, str, "py_regex")
    assert isinstance(value, str)
    combined = re.RegexFlag(0)
    for name in canonical_flags(flags, "py_regex"):
        combined |= FLAG_SOURCE[name][0]
    try:
        re.compile(value, combined)
    except re.error as exc:
        raise ValueError(f"py_regex: invalid regular expression {value!r}: {exc}") from exc
    return py_str(value)


# --------------------------------------------------------------------- enums

_ENUM_TYPES: tuple[type[enum.Enum], ...] = (
    runtime.Severity,
    runtime.Outcome,
    runtime.CounterKind,
    runtime.CounterScope,
)

_ENUM_SOURCE: dict[tuple[type[enum.Enum], str], PySource] = {
    (enum_type, member.name): PySource(f"{RUNTIME_ALIAS}.{enum_type.__name__}.{member.name}")
    for enum_type in _ENUM_TYPES
    for member in enum_type
}


def py_enum(value: object) -> PySource:
    """A runtime enum member, e.g. ``Severity.CRITICAL`` -> ``rt.Severity.CRITICAL``."""
    if type(value) not in _ENUM_TYPES:
        raise TypeError(f"py_enum expects a runtime enum member, got {type(value).__name__}")
    assert isinstance(value, enum.Enum)
    # Keyed by (type, name), never by value: IntEnum members compare equal to ints.
    return _ENUM_SOURCE[(type(value), value.name)]


def runtime_class(cls: type) -> PySource:
    """``rt.<Class>`` for a class defined (or re-exported) by :mod:`policylang.runtime`."""
    if getattr(runtime, cls.__name__, None) is not cls or (
        cls.__module__ != runtime.__name__ and cls not in runtime.REEXPORTED_CLASSES
    ):
        raise ValueError(f"{cls!r} is not a policylang.runtime class")
    return PySource(f"{RUNTIME_ALIAS}.{cls.__name__}")


# --------------------------------------------------------------------- the guard


def finalize(value: object) -> PySource:
    """Jinja ``finalize`` hook: every ``{{ ... }}`` must already be a ``PySource``."""
    if type(value) is not PySource:
        raise TypeError(
            f"template emitted an unescaped {type(value).__name__}; pass it through a py_* filter"
        )
    return value


# --------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class Call:
    """A call ``func(key=value, ...)``; ``key`` is ``None`` for a positional argument.

    ``explode`` forces one argument per line even when the call would fit on one.
    """

    func: PySource
    args: tuple[tuple[str | None, Doc], ...]
    explode: bool = False


@dataclass(frozen=True, slots=True)
class Tup:
    """A tuple display."""

    items: tuple[Doc, ...]


Doc: TypeAlias = PySource | Call | Tup
"""A value to lay out: an atom (already escaped source), a call, or a tuple."""


def _flat(doc: Doc) -> str:
    if type(doc) is PySource:
        return doc
    if isinstance(doc, PySource | str):
        raise TypeError(f"layout atoms must be exactly PySource, got {type(doc).__name__}")
    if isinstance(doc, Call):
        args = ", ".join(
            _flat(value) if key is None else f"{key}={_flat(value)}" for key, value in doc.args
        )
        return f"{doc.func}({args})"
    if len(doc.items) == 1:
        return f"({_flat(doc.items[0])},)"
    return "(" + ", ".join(_flat(item) for item in doc.items) + ")"


def _forced(doc: Doc) -> bool:
    # A magic trailing comma anywhere inside keeps every enclosing bracket open too.
    if isinstance(doc, PySource):
        return False
    if isinstance(doc, Call):
        return doc.explode or any(_forced(value) for _, value in doc.args)
    return any(_forced(item) for item in doc.items)


def layout(doc: Doc, indent: int, used: int, suffix: int = 0) -> PySource:
    """Lay ``doc`` out the way ``ruff format`` does, as a fixed point of it.

    ``indent`` is the indentation of the line the value starts on, ``used`` the
    columns already taken on that line before the value, ``suffix`` the characters
    that follow it (a trailing comma). A value that fits stays on one line; one
    that does not is split one element per line with a trailing comma, which ruff
    keeps as written (a "magic" trailing comma). Widths are exact because every
    atom is ASCII.
    """
    flat = _flat(doc)
    if (
        isinstance(doc, PySource)
        or (isinstance(doc, Call) and not doc.args)
        or (not _forced(doc) and used + len(flat) + suffix <= LINE_LENGTH)
    ):
        return PySource(flat)
    inner = " " * (indent + 4)
    lines: list[str]
    if isinstance(doc, Call):
        lines = [f"{doc.func}("]
        for key, value in doc.args:
            head = inner if key is None else f"{inner}{key}="
            lines.append(f"{head}{layout(value, indent + 4, len(head), 1)},")
    else:
        if not doc.items:
            return PySource("()")
        lines = ["("]
        for item in doc.items:
            lines.append(f"{inner}{layout(item, indent + 4, len(inner), 1)},")
    lines.append(" " * indent + ")")
    return PySource("\n".join(lines))


def is_overlong(line: str) -> bool:
    """Whether ``ruff check`` reports E501 for this (ASCII) line.

    Mirrors ruff's exemptions: a line that is a single word cannot be shortened, and
    a line ending in a URL that starts within the limit is allowed.
    """
    if len(line) <= LINE_LENGTH:
        return False
    chunks: Sequence[str] = line.split()
    if len(chunks) < 2:
        return False
    last = chunks[-1]
    return not ("://" in last and len(line) - len(last) <= LINE_LENGTH)
