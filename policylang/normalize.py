"""Text normalization for matching, with a map back to the original text.

Detectors match on normalized text, so that the ways people disguise a word do not
hide it: full-width ``\uff33\uff21\uff32\uff29\uff2e``, ``Sarin``, ``s\u0430rin``
with a Cyrillic ``\u0430``, ``s\u200barin`` with a zero-width space, ``s4r1n`` and
``s a r i n`` all read ``sarin``. Evidence must still point at what the user wrote,
so every normalized character remembers the original characters it came from.

Normalization is a pipeline of named steps, run in this order (each can be turned
off, see :class:`NormalizationConfig`):

``invisible``
    Remove zero-width characters, bidirectional controls, the soft hyphen,
    variation selectors and tag characters.
``nfkc``
    Unicode NFKC (full-width and mathematical letters, ligatures, composed
    accents), and typographic quotes folded to ASCII ones.
``confusables``
    Fold look-alike characters to the Latin letter or digit they imitate
    (Cyrillic ``\u0430`` to ``a``), from the Unicode confusables data of the
    ``confusable-homoglyphs`` package; only inside words that are not written
    in another script (see :func:`_fold_confusables`).
``casefold``
    Unicode case folding (``Straße`` to ``strasse``).
``spacing``
    Join three or more single letters separated by single spaces, dots, dashes
    or underscores (``n u k e``, ``b.o.m.b``) into one word.
``leetspeak``
    Fold digits and symbols written for letters (``k1ll``, ``b0mb``, ``@nthr@x``)
    inside words that contain a letter; numbers, quantities and codes
    (``2023``, ``10 people``, ``3rd``, ``10mg``, ``c4``, ``ak47``) are left alone.

The ASCII case is kept fast: lower-casing plus one scan for spaced letters or digits
next to letters, and no offset map when nothing moves.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Final, Literal, TypeAlias

__all__ = [
    "DEFAULT_NORMALIZATION",
    "STEPS",
    "NormalizationConfig",
    "NormalizedText",
    "Step",
    "normalize",
    "normalize_term",
]

Step: TypeAlias = Literal["invisible", "nfkc", "confusables", "casefold", "spacing", "leetspeak"]

STEPS: Final[tuple[Step, ...]] = (
    "invisible",
    "nfkc",
    "confusables",
    "casefold",
    "spacing",
    "leetspeak",
)
"""Every normalization step, in the order the pipeline runs them."""


@dataclass(frozen=True, slots=True)
class NormalizationConfig:
    """Which normalization steps run; every step is on by default.

    Hashable, so the runtime can normalize a message once per distinct
    configuration. A policy writes it as ``normalize: { leetspeak: off }``.
    """

    invisible: bool = True
    nfkc: bool = True
    confusables: bool = True
    casefold: bool = True
    spacing: bool = True
    leetspeak: bool = True

    @classmethod
    def of(cls, steps: Iterable[str]) -> NormalizationConfig:
        """A configuration with exactly ``steps`` on (names from :data:`STEPS`)."""
        wanted = frozenset(steps)
        unknown = wanted.difference(STEPS)
        if unknown:
            raise ValueError(f"unknown normalization step(s): {', '.join(sorted(unknown))}")
        return cls(**{step: step in wanted for step in STEPS})

    @property
    def steps(self) -> frozenset[Step]:
        """The steps that are on."""
        return frozenset(step for step in STEPS if getattr(self, step))

    @property
    def off(self) -> tuple[Step, ...]:
        """The steps that are off, in pipeline order."""
        return tuple(step for step in STEPS if not getattr(self, step))


DEFAULT_NORMALIZATION: Final = NormalizationConfig()
"""Every step on."""

# The dataclass fields and STEPS must name the same steps, in the same order.
assert tuple(f.name for f in fields(NormalizationConfig)) == STEPS


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A normalized string plus the offsets needed to map matches back.

    ``origins`` and ``ends`` are ``None`` when normalization moved no offsets (the
    common, ASCII case). Otherwise ``text[i]`` came from the original characters
    ``original[origins[i]:ends[i]]`` (one character, or a base letter with the
    combining marks NFKC composed into it). ``origins`` has one extra entry equal
    to ``len(original)`` so that an empty range at the end maps too. Characters
    that were removed (invisible characters, the spaces between spaced-out letters)
    belong to no normalized character.
    """

    original: str
    text: str
    origins: tuple[int, ...] | None
    ends: tuple[int, ...] | None = None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open ``[start, end)`` range in ``text`` to ``original``.

        The result starts at the first original character of ``text[start]`` and
        ends right after the last original character of ``text[end - 1]``: removed
        characters inside the range are included, those around it are not.
        """
        origins = self.origins
        if origins is None:
            return start, end
        if end <= start:
            at = origins[start]
            return at, at
        ends = self.ends
        stop = ends[end - 1] if ends is not None else origins[end - 1] + 1
        return origins[start], stop


def normalize_term(term: str, config: NormalizationConfig = DEFAULT_NORMALIZATION) -> str:
    """Normalize a policy keyword exactly as message text is normalized with ``config``."""
    return normalize(term, config).text


# ---------------------------------------------------------------- the pipeline

# Offsets while the pipeline runs: `starts[i]`/`ends[i]` are the original range of
# the current text's character i; None while they are the identity (i, i + 1).
_Offsets: TypeAlias = tuple[list[int], list[int]] | None


def normalize(text: str, config: NormalizationConfig = DEFAULT_NORMALIZATION) -> NormalizedText:
    """Return ``text`` normalized by the steps ``config`` turns on, with an offset map."""
    casefold = config.casefold
    offsets: _Offsets = None
    spacing, leetspeak = config.spacing, config.leetspeak
    if text.isascii():
        # No invisible, NFKC-sensitive or confusable character can be here, and
        # lower-casing is one for one.
        current = text.lower() if casefold else text
        shape = current.encode("ascii").translate(_SHAPE)
        spacing = spacing and _SPACED_SHAPE.search(shape) is not None
        # Joined letters can put a digit next to a letter ("b 0 m b"): look again then.
        leetspeak = leetspeak and (spacing or _may_have_leetspeak(shape))
        if not spacing and not leetspeak:
            return NormalizedText(text, current, None)
    else:
        current = text
        if config.invisible:
            current, offsets = _remove_invisible(current, offsets)
        if config.nfkc:
            current, offsets = _nfkc(current, offsets)
        if config.confusables:
            current = _fold_confusables(current)
        if casefold:
            current, offsets = _casefold(current, offsets)
        spacing = spacing and _SPACED_HINT.search(current) is not None
    if spacing:
        current, offsets = _join_spaced(current, offsets)
    if leetspeak:
        current = _fold_leetspeak(current)
    if config.nfkc and not text.isascii() and not unicodedata.is_normalized("NFKC", current):
        # A later step changed a letter that carries combining marks (sharp s + acute
        # case-folds to s, s + acute): compose again, so that normalizing is idempotent.
        current, offsets = _nfkc(current, offsets)
        if casefold:
            current, offsets = _casefold(current, offsets)
    if offsets is None:
        return NormalizedText(text, current, None)
    starts, ends = offsets
    return NormalizedText(text, current, (*starts, len(text)), tuple(ends))


# The fast path's test, in C-speed byte operations: map every byte of an ASCII text
# to its shape (a letter to "a"; a digit, "@" or "$" to "d"; "!" or "|" to "p"; a
# spacing separator to " "; anything else to "#"). Leetspeak needs a letter next to
# a digit or symbol; spaced letters need a unit between two separators followed by
# another unit and a separator or the end. Only texts that pass are scanned further.
_SHAPE: Final = bytes(
    ord("a")
    if chr(b).isascii() and chr(b).isalpha()
    else ord("d")
    if chr(b).isascii() and (chr(b).isdigit() or chr(b) in "@$")
    else ord("p")
    if chr(b) in "!|"
    else ord(" ")
    if chr(b) in " .-_"
    else ord("#")
    for b in range(256)
)
_LEET_SHAPE: Final = re.compile(rb"ad|da|ap+[ad]|dp+a")
_SPACED_SHAPE: Final = re.compile(rb" [ad] [ad](?:[ #p]|\Z)")
# The same test on any text: a unit between two separators, then another unit.
_SPACED_HINT: Final = re.compile(r"[ ._\-][A-Za-z0-9@$][ ._\-][A-Za-z0-9@$](?![^\W_]|[@$])")


def _may_have_leetspeak(shape: bytes) -> bool:
    """Whether an ASCII text's shape has a letter next to a leetspeak character."""
    return (b"d" in shape or b"p" in shape) and _LEET_SHAPE.search(shape) is not None


def _identity(length: int) -> tuple[list[int], list[int]]:
    return list(range(length)), list(range(1, length + 1))


def _drop(
    text: str, offsets: _Offsets, ranges: Iterable[tuple[int, int]]
) -> tuple[str, tuple[list[int], list[int]]]:
    """``text`` without the sorted, disjoint ``[start, end)`` ranges, offsets updated."""
    starts, ends = offsets if offsets is not None else _identity(len(text))
    pieces: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0
    for start, end in ranges:
        pieces.append(text[last:start])
        new_starts.extend(starts[last:start])
        new_ends.extend(ends[last:start])
        last = end
    pieces.append(text[last:])
    new_starts.extend(starts[last:])
    new_ends.extend(ends[last:])
    return "".join(pieces), (new_starts, new_ends)


# ---------------------------------------------------------------- invisible

_INVISIBLE: Final = (
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # Arabic letter mark (a bidi control)
    "\u180e"  # Mongolian vowel separator
    "\u200b-\u200f"  # zero-width space, non-joiner, joiner; LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\ufe00-\ufe0f"  # variation selectors
    "\ufeff"  # zero-width no-break space (BOM)
    "\U000e0000-\U000e007f"  # tags
    "\U000e0100-\U000e01ef"  # variation selectors supplement
)
_INVISIBLE_RE: Final = re.compile(f"[{_INVISIBLE}]+")


def _remove_invisible(text: str, offsets: _Offsets) -> tuple[str, _Offsets]:
    if _INVISIBLE_RE.search(text) is None:
        return text, offsets
    return _drop(text, offsets, (match.span() for match in _INVISIBLE_RE.finditer(text)))


# ---------------------------------------------------------------- nfkc

# Typographic quotes and apostrophes fold to ASCII, one character for one, so that
# "don\u2019t" matches a policy's "don't". NFKC leaves them alone.
_QUOTES: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u02bc": "'",
        "\uff07": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
    }
)
_QUOTES_RE: Final = re.compile("[" + "".join(chr(c) for c in _QUOTES) + "]")


_NON_ASCII_RUN: Final = re.compile(r"[^\x00-\x7f]+")


def _nfkc(text: str, offsets: _Offsets) -> tuple[str, _Offsets]:
    if unicodedata.is_normalized("NFKC", text) and _QUOTES_RE.search(text) is None:
        return text, offsets
    starts, ends = offsets if offsets is not None else _identity(len(text))
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0  # text[:last] is done
    for run in _NON_ASCII_RUN.finditer(text):
        i, stop = run.span()
        if i > last and unicodedata.combining(text[i]):
            i -= 1  # an ASCII letter and the marks after it: e + U+0301 -> é
        # ASCII text is NFKC already.
        out.append(text[last:i])
        new_starts.extend(starts[last:i])
        new_ends.extend(ends[last:i])
        while i < stop:
            # A cluster is a base character plus the combining marks after it, so
            # that NFKC can compose them as it would on the whole string.
            j = i + 1
            while j < stop and unicodedata.combining(text[j]):
                j += 1
            cluster = text[i:j]
            folded = unicodedata.normalize("NFKC", cluster).translate(_QUOTES)
            if folded == cluster:
                out.append(cluster)
                new_starts.extend(starts[i:j])
                new_ends.extend(ends[i:j])
            else:
                out.append(folded)
                new_starts.extend([starts[i]] * len(folded))
                new_ends.extend([ends[j - 1]] * len(folded))
            i = j
        last = stop
    out.append(text[last:])
    new_starts.extend(starts[last:])
    new_ends.extend(ends[last:])
    return "".join(out), (new_starts, new_ends)


# ---------------------------------------------------------------- casefold


def _casefold(text: str, offsets: _Offsets) -> tuple[str, _Offsets]:
    folded = text.casefold()
    if len(folded) == len(text):
        # Case folding never shortens a character, so equal lengths mean one for one.
        return folded, offsets
    starts, ends = offsets if offsets is not None else _identity(len(text))
    new_starts: list[int] = []
    new_ends: list[int] = []
    for i, char in enumerate(text):
        width = len(char.casefold())
        new_starts.extend([starts[i]] * width)
        new_ends.extend([ends[i]] * width)
    return folded, (new_starts, new_ends)


# ---------------------------------------------------------------- confusables


@dataclass(frozen=True, slots=True)
class _FoldTable:
    """Look-alike characters and the ASCII letter or digit each one imitates."""

    fold: Mapping[str, str]
    bmp: re.Pattern[str]
    """Any look-alike of the Basic Multilingual Plane (a bitmap: fast)."""
    symbols: str
    """Look-alikes that are not word characters for ``re`` (``\u00d7``), as class items."""
    foreign: re.Pattern[str]
    """A letter of another script: not Latin, not a look-alike (of the BMP)."""
    latin: re.Pattern[str]
    """An ASCII letter, or one that case-folds to ASCII letters (sharp s, the fi ligature)."""
    script: Callable[[str], str]

    def any_in(self, text: str, start: int = 0, end: int = sys.maxsize) -> bool:
        """Whether ``text[start:end]`` holds any character of the fold map."""
        if self.bmp.search(text, start, end) is not None:
            return True
        # A class with characters beyond the BMP is a slow list in `re`; they are
        # rare, so look them up one by one.
        return any(match.group() in self.fold for match in _ASTRAL.finditer(text, start, end))


_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")


def _char_class(chars: Iterable[str]) -> str:
    """Regex character-class items for ``chars``, consecutive code points as ranges."""
    spans: list[list[int]] = []
    for code in sorted(ord(char) for char in chars):
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in spans
    )


_NEUTRAL_SCRIPTS: Final = frozenset({"COMMON", "INHERITED", "UNKNOWN"})


@functools.cache
def _fold_table() -> _FoldTable:
    """Build the fold map once, from the confusables data of ``confusable-homoglyphs``.

    That package ships the Unicode ``confusables.txt`` pairs in both directions (each
    character with its look-alikes) and the script of every code point. A
    character's look-alikes that are single ASCII letters or digits are what it
    imitates (ASCII characters are prototypes, never mapped to non-ASCII ones), so
    the map keeps exactly those. Three adjustments follow the data, not a table:
    UTS #39 maps capital I to ``l``, so a capital whose small letter imitates ``i``
    folds to ``I``; a small letter with no entry of its own (Cyrillic ``\u043a``,
    which imitates a small capital) folds like its capital (``\u041a`` to ``K``); and
    a capital with no entry of its own folds like its small letter, so that every
    case of a letter folds alike whether case folding runs before or after.
    """
    data = importlib.import_module("confusable_homoglyphs.confusables").confusables_data
    categories = importlib.import_module("confusable_homoglyphs.categories")
    direct: dict[str, str] = {}
    for char, entries in data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = sorted(
            {
                str(entry["c"])
                for entry in entries
                if len(entry["c"]) == 1 and entry["c"].isascii() and entry["c"].isalnum()
            }
        )
        if targets:
            direct[char] = targets[0]
    fold: dict[str, str] = {}
    for char, target in direct.items():
        lower = char.casefold()
        if target == "l" and len(lower) == 1 and direct.get(lower) == "i":
            target = "I"
        fold[char] = target
    # A small letter with no entry of its own folds like its capital.
    for char, target in direct.items():
        lower = char.casefold()
        if len(lower) == 1 and not lower.isascii() and lower not in fold:
            fold[lower] = target.lower()
    # Every case of a letter folds if one does, so that folding before case folding
    # gives what folding after it would: normalization stays idempotent.
    latin: list[str] = []  # letters that case-fold to ASCII letters, like sharp s
    for code in range(0x80, 0x20000):
        char = chr(code)
        lower = char.casefold()
        if any(c.isascii() and c.isalpha() for c in lower):
            latin.append(char)
        if char not in fold and len(lower) == 1 and lower in fold:
            fold[char] = fold[lower].upper() if char.isupper() else fold[lower]
    bmp = _char_class(char for char in fold if ord(char) < 0x10000)
    symbols = _char_class(char for char in fold if re.match(r"\w", char) is None)
    alias: Callable[[str], str] = functools.cache(categories.alias)
    extras = _char_class(latin)
    foreign = re.compile(f"(?![A-Za-z{extras}{bmp}])[^\\W\\d_]")
    latin_letter = re.compile(f"[A-Za-z{extras}]")
    return _FoldTable(fold, re.compile(f"[{bmp}]"), symbols, foreign, latin_letter, alias)


# Combining marks that can be left after NFKC (strike-through, "zalgo" stacks).
_MARKS: Final = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"


@functools.cache
def _word_re() -> re.Pattern[str]:
    """A word for the confusables decision: letters, digits, marks, ``@``, ``$`` and
    look-alikes; single characters spelt out with single separators ("n u k \u0435") form
    one word, so that they are decided together."""
    char = f"(?:[^\\W_]|[@${_MARKS}{_fold_table().symbols}])"
    single = f"(?<![^\\W_]){char}(?![^\\W_])"
    # "!" and "|" between letters belong to the word, as for leetspeak ("k!ll").
    return re.compile(f"{single}(?:[ ._\\-]{single}){{2,}}|{char}+(?:[!|]+{char}+)*")


def _fold_confusables(text: str) -> str:
    """Fold look-alike characters, one for one, in words that mean to be Latin.

    A word (a run of letters, digits, marks, ``@``, ``$`` and look-alikes; a
    spaced-out word counts as one) is folded when

    1. it contains a Latin letter, one that is or case-folds to ASCII (``k\u0456ll``
       with a Cyrillic ``\u0456``), or
    2. its letters are all look-alikes, from two or more scripts (Cyrillic mixed
       with Greek), or
    3. its letters are all look-alikes, and the message has more words of kinds 1
       and 2 than words with letters of another script.

    So a Russian sentence stays Russian: its words have Cyrillic letters that
    imitate nothing (``\u0438``, ``\u043b``, ``\u0434``), and even its words made
    only of look-alikes (``\u0441\u043e\u0440``) are left alone because Russian
    words outnumber Latin ones.
    Symbols that look like letters (``\u00d7``) fold only in a word that has letters
    and folds: ``3\u00d74`` stays.
    """
    table = _fold_table()
    if not table.any_in(text):
        return text
    fold = table.fold
    ascii_letter = table.latin.search
    foreign_letter = table.foreign.search
    folded: list[tuple[int, int]] = []
    undecided: list[tuple[int, int]] = []
    latin = foreign = 0
    for match in _word_re().finditer(text):
        start, end = match.span()
        if ascii_letter(text, start, end) is not None:
            latin += 1
            if table.any_in(text, start, end):
                folded.append((start, end))
        elif foreign_letter(text, start, end) is not None:
            foreign += 1
        elif table.any_in(text, start, end):
            scripts = {table.script(char) for char in match.group() if char.isalpha()}
            scripts -= _NEUTRAL_SCRIPTS
            if len(scripts) >= 2:
                latin += 1
                folded.append((start, end))
            elif scripts:
                undecided.append((start, end))
    if latin > foreign:
        folded.extend(undecided)
    if not folded:
        return text
    chars = list(text)
    for start, end in folded:
        for i in range(start, end):
            chars[i] = fold.get(chars[i], chars[i])
    return "".join(chars)


_ASCII_LETTER: Final = re.compile("[A-Za-z]")


# ---------------------------------------------------------------- spacing

# Single letters that are words of their own or of text-speak ("i", "a", "u r"): a
# spaced run made only of these is ordinary text ("u r a", "r u a bot") and stays.
_ONE_LETTER_WORDS: Final = frozenset("aiur")
_UNIT: Final = r"[A-Za-z0-9@$]"
# Not next to a letter, digit, "@" or "$" (the same boundary as the fast path's test).
_SPACED_RE: Final = re.compile(
    rf"(?<![^\W_])(?<![@$]){_UNIT}(?:[ ._\-]{_UNIT}){{2,}}(?![^\W_]|[@$])"
)


def _join_spaced(text: str, offsets: _Offsets) -> tuple[str, _Offsets]:
    """Join runs of three or more single letters (or leetspeak digits) spelt out.

    ``n u k e``, ``b.o.m.b``, ``k-i-l-l`` and ``b 0 m b`` become one word. A run
    uses one separator throughout ("a b.o.m.b" is "a bomb") and needs two letters,
    one of them not a common one-letter word, so "u r a", "a b c" and "1 2 3" stay as
    written. The separators vanish; each letter keeps its own original offset.
    """
    drop: list[tuple[int, int]] = []
    for match in _SPACED_RE.finditer(text):
        for start, end in _same_separator_runs(text, *match.span()):
            units = text[start:end:2]
            letters = [char.lower() for char in units if char.isalpha()]
            if len(letters) < 2 or all(char in _ONE_LETTER_WORDS for char in letters):
                continue
            drop.extend((i, i + 1) for i in range(start + 1, end, 2))
    if not drop:
        return text, offsets
    return _drop(text, offsets, drop)


def _same_separator_runs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split a spaced run where its separator changes: "a b.o.m.b" is "a" and "b.o.m.b".

    A unit between two different separators belongs to the run that is not spaced by
    spaces ("a.b.o.u.t g u n" is "about gun"), else to the first. Only runs of three
    units or more are returned.
    """
    separators: list[str] = []
    spans: list[list[int]] = []  # [index of the first unit, index of the last unit]
    for sep in range(start + 1, end, 2):
        if separators and text[sep] == separators[-1]:
            spans[-1][1] = sep + 1
        else:
            separators.append(text[sep])
            spans.append([sep - 1, sep + 1])
    for index in range(1, len(spans)):
        if separators[index - 1] == " " and separators[index] != " ":
            spans[index - 1][1] -= 2
        else:
            spans[index][0] += 2
    return [(first, last + 1) for first, last in spans if last - first >= 4]


# ---------------------------------------------------------------- leetspeak

_LEET: Final = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "l",
}
_LEET_TABLE: Final = str.maketrans({key: value for key, value in _LEET.items() if key != "1"})
_VOWELS: Final = frozenset("aeiouy")
_LEET_CHARS: Final = re.compile(r"[0-9@$!|]")
# A word for leetspeak: letters, digits, combining marks and the leetspeak symbols;
# "!" and "|" only between the others ("k!ll", but not "hello!").
_LEET_WORD: Final = re.compile(rf"(?:[^\W_]|[@$!|{_MARKS}])+")
# Numbers, quantities and codes keep their digits: an ordinal ("1st", "22nd", "3rd",
# "11th", but not "3nd"), a number with a unit ("10mg", "9mm", "5pm"; "1990s", "10k",
# "$5m" with a one-letter unit), or a code ("ak47", "x86", "b12", "c4"). Leetspeak
# words are rarely of these shapes, except a letter with a 0 or 3 ("t0", "m3"), which
# folds. Two letters and a digit fold ("th3", "wh0"; "mp3" reads "mpe", harmlessly).
_ORDINAL: Final = r"(?:[0-9]*[02-9])?(?:1st|2nd|3rd)|[0-9]*(?:1[0-9]|[04-9])th"
_UNIT_WORDS: Final = (
    "am|pm|mg|mcg|kg|mm|cm|km|ml|lb|lbs|oz|ft|in|gb|mb|tb|kb|hz|khz|mhz|ghz|"
    "kw|hr|hrs|min|mins|sec|yo|yr|yrs|bn"
)
_UNIT_LETTERS: Final = "[sbcdfghklmpvwxy]"
_CODE_RE: Final = re.compile(
    rf"{_ORDINAL}|[0-9]+(?:{_UNIT_WORDS})|[0-9]{{2,}}{_UNIT_LETTERS}"
    rf"|\$[0-9]+(?:{_UNIT_WORDS}|{_UNIT_LETTERS})"
    r"|[a-z]{1,2}[0-9]{2,}|[a-z][124-9]",
    re.IGNORECASE,
)


def _fold_leetspeak(text: str) -> str:
    """Fold leetspeak digits and symbols, one for one, inside words with an ASCII letter."""
    pieces: list[str] = []
    done = 0  # text[:done] is in pieces
    seen = 0  # no word starts before this
    for hit in _LEET_CHARS.finditer(text):
        if hit.start() < seen:
            continue  # inside a word already looked at
        match = _LEET_WORD.match(text, _word_start(text, hit.start()))
        if match is None:  # pragma: no cover - the hit itself is a word character
            continue
        start, end = match.span()
        seen = end
        while start < end and text[start] in "!|":
            start += 1
        while end > start and text[end - 1] in "!|":
            end -= 1
        word = text[start:end]
        if (
            _LEET_CHARS.search(word) is None
            or _ASCII_LETTER.search(word) is None
            or _CODE_RE.fullmatch(word) is not None
        ):
            continue
        pieces.append(text[done:start])
        pieces.append(_fold_word(word))
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _fold_word(word: str) -> str:
    """Fold one leetspeak word; ``1`` reads ``i`` or ``l`` by its neighbours."""
    chars = list(word.translate(_LEET_TABLE))
    for index, char in enumerate(chars):
        if char == "1":
            chars[index] = _one(chars, index)
    return "".join(chars).replace("1", "i")


def _one(chars: list[str], index: int) -> str:
    """Whether a ``1`` inside a word stands for ``i`` or ``l``, from the letters around it.

    English puts ``l`` after a vowel ("a1way", "schoo1", "bui1d"), doubled ("ki11"),
    and between a consonant and a vowel ("peop1e", "s1ow"); ``i`` between consonants
    ("w1th", "f1re") and at the start of a word ("1nside"). Before an ``l``, "ill" and
    "ull" win after ``i`` or ``u`` ("ki1l", "pu1l"); otherwise ``i`` ("f1ll", "a1l" as
    in "detailed").
    """
    before = chars[index - 1].lower() if index > 0 else ""
    after = chars[index + 1].lower() if index + 1 < len(chars) else ""
    if before == "l" or after == "1":
        return "l"
    if after == "l":
        return "l" if before in ("i", "u") else "i"
    if not before or not before.isalpha():
        return "i"
    if before in _VOWELS:
        return "l"
    return "l" if after in _VOWELS else "i"


def _word_start(text: str, index: int) -> int:
    while index > 0 and _LEET_WORD.match(text, index - 1, index) is not None:
        index -= 1
    return index
