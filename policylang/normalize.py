"""Text normalization for matching, with a map back to the original text.

Detectors match on normalized text (Unicode NFKC, case folded), so that
full-width ``SARIN`` and ``Sarin`` match the keyword ``sarin``. Evidence must still point
at what the user wrote, so every normalized character remembers the offset of
the original character it came from.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A normalized string plus the offsets needed to map matches back.

    ``origins`` is ``None`` when normalization did not change any offsets (the
    common, ASCII case). Otherwise ``origins[i]`` is the offset in ``original``
    of the character that produced ``text[i]``, with one extra entry equal to
    ``len(original)`` so that end offsets map too.
    """

    original: str
    text: str
    origins: tuple[int, ...] | None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open ``[start, end)`` range in ``text`` to ``original``."""
        if self.origins is None:
            return start, end
        origins = self.origins
        if end <= start:
            at = origins[start]
            return at, at
        # The end maps to the first original offset past the last matched character.
        last = origins[end - 1]
        stop = origins[end]
        if stop <= last:
            # Several normalized characters came from one original character.
            stop = last + 1
        return origins[start], stop


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


def normalize_term(term: str) -> str:
    """Normalize a policy keyword exactly as message text is normalized."""
    return normalize(term).text


def normalize(text: str) -> NormalizedText:
    """Return ``text`` in NFKC form, case folded, quotes folded, with an offset map."""
    if text.isascii():
        return NormalizedText(text, text.lower(), None)
    out: list[str] = []
    origins: list[int] = []
    changed = False
    i = 0
    n = len(text)
    while i < n:
        # A cluster is a base character plus the combining marks after it, so
        # that NFKC can compose them (e + U+0301 -> é) as it would on the whole string.
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        cluster = text[i:j]
        folded = unicodedata.normalize("NFKC", cluster).casefold().translate(_QUOTES)
        if folded != cluster:
            changed = True
        out.append(folded)
        origins.extend([i] * len(folded))
        i = j
    if not changed:
        return NormalizedText(text, text, None)
    origins.append(n)
    return NormalizedText(text, "".join(out), tuple(origins))
