"""One-pass prefiltering of many regular expressions with an RE2 set.

A policy's detectors compile to dozens of Python regular expressions, and most
messages match none of them. Scanning each separately costs a pass over the text per
pattern; :class:`PatternSet` instead compiles all of them into one RE2 set
(``re2.Set``, a single automaton) and answers, in one pass, which patterns *may*
match. Only those are then run with Python's ``re`` for their exact spans, so results
are identical to scanning every pattern, only faster.

Exactness rests on one property: each pattern's RE2 form matches a **superset** of
what the Python pattern matches. :func:`to_re2_superset` translates the parsed Python
pattern and widens whatever RE2 cannot express or expresses differently: lookarounds,
anchors and word boundaries are dropped (a missing constraint only widens), a
backreference becomes "any text", ``\\w`` and ``\\s`` become their Unicode classes,
a negated class or category that RE2 might read more narrowly becomes "any
character", and the whole set matches case-insensitively (which only widens). A
pattern that cannot be translated, or a set RE2 cannot build, makes that pattern (or
every pattern) a candidate on every text: slower, never wrong.

The translation reads the pattern with the standard library's own regular
expression parser (``re._parser``), as ``hypothesis`` and ``interegular`` do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["PatternSet", "to_re2_superset"]

_MAX_REPEAT: Final = 1000
"""RE2's largest repetition count; larger bounds are widened."""

_ANY: Final = r"(?s:.)"
# Unicode texts: classes at least as wide as Python's (tests check every code point).
_UNI_WORD: Final = r"\p{L}\p{N}_"
_UNI_SPACE: Final = r"\s\x{b}\p{Z}\x{1c}-\x{1f}\x{85}"
_UNI_DIGIT: Final = r"\p{Nd}"
# ASCII texts: exactly Python's classes restricted to ASCII.
_ASCII_WORD: Final = r"0-9A-Za-z_"
_ASCII_SPACE: Final = r"\t\n\x{b}\f\r \x{1c}-\x{1f}"
_ASCII_DIGIT: Final = r"0-9"

try:  # pragma: no branch - both exist on every supported Python
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - a Python without them: no prefilter
    _c = None
    _sre_parse = None

try:
    import re2 as _re2  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - google-re2 is a dependency
    _re2 = None


class _Untranslatable(Exception):
    """A construct with no RE2 superset form; the pattern is always a candidate."""


def to_re2_superset(pattern: str, flags: int = 0, *, ascii_text: bool = False) -> str | None:
    """An RE2 pattern matching (at least) every text ``pattern`` matches, or ``None``.

    With ``ascii_text`` the result is only valid for texts that are pure ASCII; it
    keeps word boundaries, ``\\w``-lookarounds at the ends of the pattern and negated
    classes exact, so it rules out far more. Without it, anything whose meaning
    could differ between the engines on non-ASCII text is widened. ``None`` means
    the pattern could not be translated; callers treat it as matching everything.
    """
    if _sre_parse is None or _c is None:
        return None
    try:
        parsed = _sre_parse.parse(pattern, flags)
        translator = _Translator(ascii_text)
        body = translator.sequence(list(parsed), top=True)
    except (_Untranslatable, re.error, RecursionError, TypeError, ValueError):
        return None
    if ascii_text:
        ignore_case = bool(parsed.state.flags & re.IGNORECASE)
        return ("(?i)" if ignore_case else "") + body
    # Every negated construct is widened below, so case-insensitivity only widens.
    return "(?i)" + body


def _char(code: int) -> str:
    return f"\\x{{{code:x}}}"


class _Translator:
    """Python ``re`` parse tree -> RE2 syntax, widening what is not exact."""

    def __init__(self, ascii_text: bool) -> None:
        assert _c is not None
        self.ascii = ascii_text
        self.c = _c

    def sequence(self, items: list[Any], *, top: bool = False) -> str:
        out: list[str] = []
        last = len(items) - 1
        for position, (op, av) in enumerate(items):
            if op in (self.c.ASSERT, self.c.ASSERT_NOT):
                out.append(self.assertion(op, av, first=top and position == 0,
                                          last=top and position == last))
            else:
                out.append(self.item(op, av))
        return "".join(out)

    def item(self, op: Any, av: Any) -> str:
        c = self.c
        if op is c.LITERAL:
            return _char(av)
        if op is c.NOT_LITERAL:
            return f"[^{_char(av)}]" if self.ascii else _ANY
        if op is c.ANY:
            return _ANY
        if op is c.IN:
            return self.char_class(av)
        if op is c.BRANCH:
            return "(?:" + "|".join(self.sequence(list(branch)) for branch in av[1]) + ")"
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            body = self.sequence(list(sub))
            if self.ascii and add_flags & re.IGNORECASE:
                return "(?i:" + body + ")"
            if self.ascii and del_flags & re.IGNORECASE:
                return "(?-i:" + body + ")"
            return "(?:" + body + ")"
        if op is c.ATOMIC_GROUP:
            return "(?:" + self.sequence(list(av)) + ")"
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, sub = av
            body = "(?:" + self.sequence(list(sub)) + ")"
            if low > _MAX_REPEAT:
                return body + "*"
            if high is c.MAXREPEAT or high > _MAX_REPEAT:
                return body + f"{{{low},}}"
            return body + f"{{{low},{high}}}"
        if op is c.AT:
            if self.ascii and av in (c.AT_BOUNDARY, c.AT_UNI_BOUNDARY):
                return r"\b"
            if self.ascii and av in (c.AT_NON_BOUNDARY, c.AT_UNI_NON_BOUNDARY):
                return r"\B"
            return ""  # anchors only constrain: dropped
        if op in (c.ASSERT, c.ASSERT_NOT):
            return ""  # a lookaround inside the pattern only constrains: dropped
        if op is c.GROUPREF:
            return _ANY + "*"
        if op is c.GROUPREF_EXISTS:
            _group, yes, no = av
            return "(?:" + self.sequence(list(yes)) + "|" + (
                self.sequence(list(no)) if no is not None else ""
            ) + ")"
        if op is c.CATEGORY:
            return self.char_class([(op, av)])
        raise _Untranslatable(str(op))

    def assertion(self, op: Any, av: Any, *, first: bool, last: bool) -> str:
        """A lookaround; exact (consuming the neighbour) only at the pattern's ends."""
        direction, sub = av
        items = list(sub)
        behind = direction < 0
        if not self.ascii or len(items) != 1 or (behind and not first) or (not behind and not last):
            return ""
        members = self.members(items)
        if members is None:
            return ""
        positive, negated = members
        if op is self.c.ASSERT:
            return positive
        edge = "^" if behind else "$"
        return f"(?:{edge}|{negated})"

    def members(self, items: list[Any]) -> tuple[str, str] | None:
        """For a one-character item in ASCII mode: its class and its complement."""
        c = self.c
        op, av = items[0]
        if op is c.LITERAL:
            return _char(av), f"[^{_char(av)}]"
        if op is c.IN or op is c.CATEGORY:
            cls = self.char_class(av if op is c.IN else [(op, av)])
            if cls.startswith("[^"):
                return cls, "[" + cls[2:]
            if cls.startswith("["):
                return cls, "[^" + cls[1:]
        return None

    def category(self, code: Any) -> tuple[str, bool] | None:
        """A category's class members and whether it is negated; ``None``: unknown."""
        c = self.c
        word, space, digit = (
            (_ASCII_WORD, _ASCII_SPACE, _ASCII_DIGIT)
            if self.ascii
            else (_UNI_WORD, _UNI_SPACE, _UNI_DIGIT)
        )
        table = {
            c.CATEGORY_WORD: (word, False),
            c.CATEGORY_UNI_WORD: (word, False),
            c.CATEGORY_NOT_WORD: (word, True),
            c.CATEGORY_UNI_NOT_WORD: (word, True),
            c.CATEGORY_SPACE: (space, False),
            c.CATEGORY_UNI_SPACE: (space, False),
            c.CATEGORY_NOT_SPACE: (space, True),
            c.CATEGORY_UNI_NOT_SPACE: (space, True),
            c.CATEGORY_DIGIT: (digit, False),
            c.CATEGORY_UNI_DIGIT: (digit, False),
            c.CATEGORY_NOT_DIGIT: (digit, True),
            c.CATEGORY_UNI_NOT_DIGIT: (digit, True),
        }
        return table.get(code)

    def char_class(self, items: list[Any]) -> str:
        """A character class; exact in ASCII mode, a superset otherwise."""
        c = self.c
        negate = bool(items) and items[0][0] is c.NEGATE
        if negate:
            items = items[1:]
        positive: list[str] = []
        complements: list[str] = []
        for op, av in items:
            if op is c.LITERAL:
                positive.append(_char(av))
            elif op is c.RANGE:
                positive.append(f"{_char(av[0])}-{_char(av[1])}")
            elif op is c.CATEGORY:
                found = self.category(av)
                if found is None:
                    return _ANY
                members, negated = found
                if negated:
                    if not self.ascii:
                        return _ANY  # Unicode complements may be narrower in RE2
                    complements.append(members)
                else:
                    positive.append(members)
            else:
                raise _Untranslatable(str(op))
        if negate:
            if complements or not self.ascii:
                return _ANY
            return "[^" + "".join(positive) + "]"
        parts = ["[" + "".join(positive) + "]"] if positive else []
        parts.extend("[^" + members + "]" for members in complements)
        if not parts:
            return "[^\\x{0}-\\x{10ffff}]"  # an empty class matches nothing
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


class _CompiledSet:
    """One RE2 set for one text kind (ASCII or any), with its always-candidates."""

    __slots__ = ("always", "ids", "matcher")

    def __init__(self, patterns: Sequence[re.Pattern[str]], *, ascii_text: bool) -> None:
        everything = frozenset(range(len(patterns)))
        self.matcher: Any = None
        self.ids: list[int] = []
        always: list[int] = []
        translated: list[tuple[int, str]] = []
        for index, compiled in enumerate(patterns):
            superset = to_re2_superset(compiled.pattern, compiled.flags, ascii_text=ascii_text)
            if superset is None:
                always.append(index)
            else:
                translated.append((index, superset))
        self.always = frozenset(always)
        if _re2 is None or not translated:
            self.always = everything
            return
        try:
            options = _re2.Options()
            options.max_mem = _RE2_MEMORY
            matcher = _re2.Set.SearchSet(options)
            for index, superset in translated:
                matcher.Add(superset)
                self.ids.append(index)
            matcher.Compile()
        except Exception:  # RE2 refused the set: every pattern is a candidate
            self.always = everything
            self.ids = []
            return
        self.matcher = matcher


_RE2_MEMORY: Final = 64 << 20
"""Memory RE2 may use for one set's automata."""


class PatternSet:
    """Which of several compiled patterns may match a text, found in one pass.

    ``candidates(text)`` returns the indices (into ``patterns``) of every pattern
    that may match; every pattern that does match is among them. Pure-ASCII texts
    (most texts after normalization) are matched against a set that keeps word
    boundaries exact; other texts against a wider one.
    """

    __slots__ = ("_ascii", "_everything", "_unicode", "size")

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.size = len(patterns)
        self._everything = frozenset(range(self.size))
        self._ascii = _CompiledSet(patterns, ascii_text=True)
        self._unicode = _CompiledSet(patterns, ascii_text=False)

    @property
    def filters(self) -> bool:
        """Whether the set can rule anything out (some pattern was translated)."""
        return self._ascii.matcher is not None or self._unicode.matcher is not None

    def candidates(self, text: str) -> frozenset[int]:
        """Indices of the patterns that may match ``text`` (a superset of those that do)."""
        compiled = self._ascii if text.isascii() else self._unicode
        if compiled.matcher is None:
            return self._everything
        try:
            found = compiled.matcher.Match(text)
        except Exception:  # e.g. a lone surrogate, which has no UTF-8 form
            return self._everything
        if not found:
            return compiled.always
        ids = compiled.ids
        hits = frozenset([ids[i] for i in found])
        return hits | compiled.always if compiled.always else hits
