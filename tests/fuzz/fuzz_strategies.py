"""Hypothesis strategies for fuzzing the front end, and the shared settings profile.

Three kinds of input: arbitrary text and bytes, streams of the grammar's terminals
(grammars/policylang.lark) with random layout, and mutations of real policy files.

``POLICYLANG_FUZZ_EXAMPLES`` sets how many examples each property tries (default
:data:`DEFAULT_EXAMPLES`, sized so that ``tests/fuzz`` stays within seconds in CI); set
it to thousands to fuzz for longer locally. With ``CI=true`` the examples are drawn from
a fixed seed, so a CI run is repeatable; elsewhere every run draws new ones.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "AWKWARD",
    "EXAMPLES",
    "FUZZ",
    "awkward_text",
    "mutated",
    "token_stream",
    "tokens",
]

#: Examples per property when ``POLICYLANG_FUZZ_EXAMPLES`` is not set.
DEFAULT_EXAMPLES = 60
EXAMPLES = int(os.environ.get("POLICYLANG_FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))


def fuzz_settings(scale: float = 1.0) -> settings:
    """The profile every fuzz property runs under; ``scale`` adjusts its example count."""
    return settings(
        max_examples=max(1, round(EXAMPLES * scale)),
        deadline=None,  # the per-example guard is fuzz_helpers.time_limit
        derandomize=os.environ.get("CI") == "true",
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
        print_blob=True,
    )


FUZZ = fuzz_settings()

# ---------------------------------------------------------------- awkward text

#: Characters that have broken or could break a lexer, a column count or a terminal:
#: NUL and other controls, line and paragraph separators, bidi controls and isolates,
#: zero-width characters, a BOM, combining marks, wide and astral characters, CR.
AWKWARD = (
    "\x00", "\x01", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\r", "\r\n", "\t",
    "\u2028", "\u2029", "\u200b", "\u200d", "\u2060", "\ufeff", "\ufffd", "\ufffe",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
    "\u0301", "\u0336", "\u00a0", "\u3000", "\u4e2d", "\U0001f600", "\U0010ffff",
    "é", "ß", "İ", "ﬀ", "K",
)  # fmt: skip
_GRAMMAR_CHARACTERS = (*'{}[]():,=<>!"/\\#-_. \n', "a", "Z", "0", "9")

awkward_text = st.lists(
    st.one_of(
        st.sampled_from(AWKWARD),
        st.sampled_from(_GRAMMAR_CHARACTERS),
        st.text(max_size=3),
    ),
    max_size=60,
).map("".join)


# ---------------------------------------------------------------- terminals

_KEYWORDS = (
    "and", "or", "not", "any", "all", "keywords", "pattern", "score", "annotation", "in",
    "within", "after", "benign", "turn", "turns",
)  # fmt: skip
#: Words the checker and composition give meaning to: kinds, modifiers, properties.
_WORDS = (
    "policy", "category", "signal", "rule", "protection", "counter", "list", "pattern",
    "message", "param", "import", "tenant", "override", "extends", "disable", "from", "names",
    "set", "value", "tunable", "locked", "description", "version", "raise-only", "lower-only",
    "true", "false", "add", "remove", "add_detect", "add_unless", "add_follow_up", "detect",
    "unless", "when", "then", "end", "warn", "redirect", "escalate", "severity", "critical",
    "high", "low", "lasts", "reset", "counts", "follow_up", "failed_redirects", "title",
    "maps_to", "normalize", "harm", "default", "redirects_before_end", "end_message",
)  # fmt: skip
_PUNCTUATION = ("{", "}", "[", "]", "(", ")", ":", ",", "=", ">=", "<=", "==", "!=", ">", "<")
_STRINGS = (
    '""', '"x"', '"default.policy"', '"./default.policy"', '"../policies/default.policy"',
    '"missing.policy"', '"self.policy"', r'"default.policy\u{0}"', '"/"', '"."', '"a.policy"',
    '"b.policy"', '"2.0.0"',
    r'"\n\t\"\\"', r'"\u{41}\u{1F600}"', r'"\u{0}"', r'"\u{D800}"', r'"\u{110000}"',
    r'"\u{}"', r'"\u{1234567}"', r'"\u41"', r'"\q"', '"\\', '"unterminated',
    '"\u202e\u2028"', '"' + "w" * 300 + '"',
)  # fmt: skip
_NUMBERS = (
    "0", "1", "2", "3", "00", "0.5", "1.0", "999", "4294967297", "1" + "0" * 400, "1.5e3",
)  # fmt: skip
_REGEXES = (
    "/a/", "/a/i", "/x/q", r"/\//", r"/[a-z]{1,9}/ims", "/(a+)+/", "/(a|a)*/", "/a*/",
    "/[/", "/(?P<x>a)(?P=x)/", r"/\p/", "/[z-a]/", "/[[a]/", "/.{0,9999}/", "/(?i)A/",
    "/" + "(" * 120 + "a" + ")" * 120 + "/",
)  # fmt: skip
_LAYOUT = (" ", " ", " ", "\n", "\n\n", "\t", "  ", "# c\n", " # policylang: allow(PL401)\n", "")

#: One terminal of the grammar (or a word the checker knows), as source text.
token = st.one_of(
    st.sampled_from(_KEYWORDS),
    st.sampled_from(_WORDS),
    st.sampled_from(_PUNCTUATION),
    st.sampled_from(_STRINGS),
    st.sampled_from(_NUMBERS),
    st.sampled_from(_REGEXES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True),
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True),
)


@st.composite
def tokens(draw: st.DrawFn, min_size: int = 0, max_size: int = 40) -> list[str]:
    """A list of terminals."""
    return draw(st.lists(token, min_size=min_size, max_size=max_size))


def _join(draw: st.DrawFn, parts: list[str]) -> str:
    out: list[str] = []
    for index, part in enumerate(parts):
        if index:
            out.append(draw(st.sampled_from(_LAYOUT)))
        out.append(part)
    return "".join(out)


@st.composite
def token_stream(draw: st.DrawFn) -> str:
    """Terminals joined by random whitespace and comments (the layout may glue two).

    Half the time the stream is shaped as declarations, ``[MODIFIER] KIND NAME {
    KEY: ... }`` or ``KIND NAME = ...``, whose values are random terminals, so that
    inputs get past the parser into composition and the checker.
    """
    if draw(st.booleans()):
        return _join(draw, draw(tokens()))
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 3)) == 0:
            parts.append(draw(st.sampled_from(("override", "import", "param", "locked"))))
        parts.append(draw(st.sampled_from(_WORDS)))
        parts.append(draw(st.sampled_from((*_WORDS, "p", "r", "x"))))
        if draw(st.integers(0, 3)) == 0:
            parts += ["=", *draw(tokens(min_size=1, max_size=8))]
            continue
        parts.append("{")
        for _ in range(draw(st.integers(0, 5))):
            parts += [draw(st.sampled_from(_WORDS)), ":", *draw(tokens(min_size=1, max_size=6))]
        parts.append("}")
    return _join(draw, parts)


# ---------------------------------------------------------------- mutations


@st.composite
def mutated(draw: st.DrawFn, original: bytes, max_steps: int = 4) -> bytes:
    """``original`` after 1 to ``max_steps`` random edits.

    Edits: delete, duplicate or move a span; insert a terminal (with spaces around it
    or glued to its neighbours); replace one byte (often by a character the grammar
    uses); insert random bytes (which may make
    the file invalid UTF-8).
    """
    data = bytearray(original)
    for _ in range(draw(st.integers(1, max_steps))):
        size = len(data)
        at = draw(st.integers(0, size))
        width = draw(st.sampled_from((1, 2, 3, 8, 30, 200, 2000)))
        end = min(size, at + width)
        edit = draw(st.sampled_from(("delete", "duplicate", "move", "insert", "flip", "bytes")))
        if edit == "delete":
            del data[at:end]
        elif edit == "duplicate":
            data[at:at] = data[at:end]
        elif edit == "move":
            piece = bytes(data[at:end])
            del data[at:end]
            to = draw(st.integers(0, len(data)))
            data[to:to] = piece
        elif edit == "insert":
            glue = draw(st.sampled_from(("", " ", "\n")))
            data[at:at] = (glue + draw(token) + glue).encode("utf-8")
        elif edit == "flip" and size:
            byte = st.integers(0, 255) | st.sampled_from(_GRAMMAR_CHARACTERS).map(ord)
            data[min(at, size - 1)] = draw(byte)
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)
