"""Did-you-mean suggestions: pick the one known name closest to an unknown one.

Suggestions are offered only when a single candidate clearly wins, because a wrong
"did you mean" is worse than none.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["CUTOFF", "did_you_mean"]

#: Minimum ``difflib.SequenceMatcher.ratio()`` for a candidate to be suggested.
#: 0.75 accepts one typo or transposition in names of about eight characters
#: (``critcal`` -> ``critical`` is 0.93, ``categroy`` -> ``category`` 0.875) and
#: rejects unrelated names of similar shape.
CUTOFF = 0.75


def _ratio(a: str, b: str) -> float:
    # Same measure get_close_matches ranks by.
    return difflib.SequenceMatcher(None, b, a).ratio()


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or ``None`` if none clearly wins.

    A candidate equal to ``name`` except for letter case wins outright when it is
    the only such one. Otherwise ``difflib.get_close_matches`` ranks candidates
    scoring at least :data:`CUTOFF`, and ``None`` is returned when the top two tie.
    ``name`` itself is never suggested.
    """
    pool = sorted({c for c in candidates if c != name})
    if not pool:
        return None

    folded = name.casefold()
    same_case_insensitive = [c for c in pool if c.casefold() == folded]
    if len(same_case_insensitive) == 1:
        return same_case_insensitive[0]

    matches = difflib.get_close_matches(name, pool, n=2, cutoff=CUTOFF)
    if not matches:
        return None
    if len(matches) == 2 and _ratio(name, matches[0]) == _ratio(name, matches[1]):
        return None
    return matches[0]
