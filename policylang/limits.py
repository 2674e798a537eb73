"""Limits on what policylang reads: their defaults, and how they are set.

Every input has a bound, so that a huge or hostile file gives a clear, located error
instead of exhausting memory or time (docs/cli.md, *Limits*):

* policies: :class:`PolicyLimits`, the size of a policy file (checked before it is
  read) and, checked by :func:`policylang.checker.analyze`, the number of
  declarations, detectors and keyword terms and the length of a pattern. They are
  set from the library (``analyze(..., limits=PolicyLimits(...))``) or, for every
  command, from ``POLICYLANG_MAX_*`` environment variables (:data:`POLICY_LIMIT_ENV`);
* transcripts: :class:`MessageLimits`, the number of messages of a conversation and
  the length of a message, set by ``check --max-messages`` and
  ``--max-message-length``; the record size is ``check --max-record-size``.

This module imports nothing else from policylang, so that every reader can use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

__all__ = [
    "DEFAULT_MAX_DECLARATIONS",
    "DEFAULT_MAX_DETECTORS",
    "DEFAULT_MAX_KEYWORD_TERMS",
    "DEFAULT_MAX_MESSAGES",
    "DEFAULT_MAX_MESSAGE_LENGTH",
    "DEFAULT_MAX_PATTERN_LENGTH",
    "DEFAULT_MAX_POLICY_SIZE",
    "DEFAULT_MAX_RECORD_SIZE",
    "MAX_JSON_DEPTH",
    "NO_MESSAGE_LIMITS",
    "POLICY_LIMIT_ENV",
    "MessageLimits",
    "PolicyLimits",
    "format_size",
    "json_too_deep",
    "parse_size",
]

DEFAULT_MAX_POLICY_SIZE: Final = 4 << 20
"""The largest policy, base, imported or tenant file read, in bytes (4 MiB)."""
DEFAULT_MAX_DECLARATIONS: Final = 10_000
"""The most declarations a policy may have, inherited and imported ones included."""
DEFAULT_MAX_DETECTORS: Final = 10_000
"""The most detectors (``keywords``, ``pattern``, ``score``, ``annotation``) of a policy."""
DEFAULT_MAX_KEYWORD_TERMS: Final = 100_000
"""The most keyword terms (strings of lists) of a policy."""
DEFAULT_MAX_PATTERN_LENGTH: Final = 4_096
"""The longest pattern, in characters between its slashes."""

DEFAULT_MAX_RECORD_SIZE: Final = 64 << 20
"""The longest JSONL transcript record read, in bytes (64 MiB)."""
DEFAULT_MAX_MESSAGES: Final = 100_000
"""The most messages a conversation may have (every branch counting its own)."""
DEFAULT_MAX_MESSAGE_LENGTH: Final = 1_000_000
"""The longest message, in characters (code points) of its content."""
MAX_JSON_DEPTH: Final = 200
"""The deepest nesting of arrays and objects in a transcript record (fixed).

Far beyond what a conversation needs, and far below the depth at which Python's JSON
readers run out of stack, which depends on the call stack and would make the same
record readable in one process and not in another."""


# ---------------------------------------------------------------- sizes

_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS: Final = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A size in bytes from ``123``, ``64K``, ``256M``, ``1G`` or ``2T`` (powers of 1024).

    ``KB``/``KiB`` and the like mean the same as ``K``. Raises ``ValueError`` for
    anything else, and for zero.
    """
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"`{text}` is not a size: write a number of bytes, or e.g. 256M or 1G")
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if size <= 0:
        raise ValueError("the size must be at least 1 byte")
    return size


def format_size(size: int) -> str:
    """``size`` in the largest unit that divides it (``64M``, ``1G``, ``1500``)."""
    for unit in ("T", "G", "M", "K"):
        factor = _SIZE_UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _parse_count(text: str) -> int:
    cleaned = text.strip().replace("_", "").replace(",", "")
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise ValueError(f"`{text}` is not a whole number of at least 1")
    return int(cleaned)


# ---------------------------------------------------------------- policies

POLICY_LIMIT_ENV: Final[Mapping[str, str]] = {
    "max_policy_size": "POLICYLANG_MAX_POLICY_SIZE",
    "max_declarations": "POLICYLANG_MAX_DECLARATIONS",
    "max_detectors": "POLICYLANG_MAX_DETECTORS",
    "max_keyword_terms": "POLICYLANG_MAX_KEYWORD_TERMS",
    "max_pattern_length": "POLICYLANG_MAX_PATTERN_LENGTH",
}
"""The environment variable that sets each field of :class:`PolicyLimits`."""


@dataclass(frozen=True, slots=True)
class PolicyLimits:
    """How large a policy may be. Beyond a limit, the policy is refused with a diagnostic.

    ``max_policy_size`` (bytes) applies to the policy file and to every file its
    composition reads (PL003); the other limits to the composed policy (PL316).
    """

    max_policy_size: int = DEFAULT_MAX_POLICY_SIZE
    max_declarations: int = DEFAULT_MAX_DECLARATIONS
    max_detectors: int = DEFAULT_MAX_DETECTORS
    max_keyword_terms: int = DEFAULT_MAX_KEYWORD_TERMS
    max_pattern_length: int = DEFAULT_MAX_PATTERN_LENGTH

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) < 1:
                raise ValueError(f"{item.name} must be at least 1")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> PolicyLimits:
        """The defaults, changed by the ``POLICYLANG_MAX_*`` variables that are set.

        ``POLICYLANG_MAX_POLICY_SIZE`` is a size (``8M``, see :func:`parse_size`); the
        others are whole numbers (``_`` and ``,`` may group digits). An empty variable
        counts as unset. Raises ``ValueError`` naming the variable for a bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for name, variable in POLICY_LIMIT_ENV.items():
            text = env.get(variable, "")
            if not text.strip():
                continue
            parse = parse_size if name == "max_policy_size" else _parse_count
            try:
                values[name] = parse(text)
            except ValueError as exc:
                raise ValueError(f"{variable}: {exc}") from None
        return cls(**values)

    @staticmethod
    def environment_set(environ: Mapping[str, str] | None = None) -> bool:
        """Whether any ``POLICYLANG_MAX_*`` policy limit variable is set (non-empty)."""
        env = os.environ if environ is None else environ
        return any(env.get(variable, "").strip() for variable in POLICY_LIMIT_ENV.values())


# ---------------------------------------------------------------- transcripts


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """How large a conversation may be; ``None`` for no limit. Picklable, for workers.

    ``max_messages`` bounds the messages evaluated for one record: the messages of a
    linear conversation, and for a message tree the messages of every branch (a
    message shared by two branches counts twice, as each branch is evaluated on its
    own). ``max_message_length`` bounds the characters (code points) of one message's
    content. A record beyond either is an error record (PL811, PL812).
    """

    max_messages: int | None = DEFAULT_MAX_MESSAGES
    max_message_length: int | None = DEFAULT_MAX_MESSAGE_LENGTH

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and value < 1:
                raise ValueError(f"{item.name} must be at least 1")


NO_MESSAGE_LIMITS: Final = MessageLimits(max_messages=None, max_message_length=None)
"""No limit on messages (for tests and for callers that bound their input otherwise)."""


# ---------------------------------------------------------------- JSON nesting

#: What to delete to keep a document's brackets, quotes and backslashes.
_ALL_BUT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'[]{}"\\')
#: ... and the letters an escape can have after its backslash, so escapes stay pairs.
_ALL_BUT_STRUCTURE_AND_ESCAPES: Final = bytes(b for b in range(256) if b not in b'[]{}"\\/bfnrtu')
_ESCAPES: Final = b"\\/bfnrtu"


def json_too_deep(document: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON ``document`` nests arrays and objects more than ``limit`` deep.

    Linear in the document and at C speed but for one loop over its brackets (about
    half the time ``json.loads`` takes on a large record); a quick count for a
    document with no more than ``limit`` opening brackets. Brackets inside strings do
    not count (those of an unterminated string, in a document that is not JSON anyway,
    may).
    """
    # Fewer openers than the limit cannot nest deeper (replace is the fastest count).
    openers = len(document) - len(document.replace(b"{", b"").replace(b"[", b""))
    if openers <= limit:
        return False
    skeleton = document.translate(None, _ALL_BUT_STRUCTURE)
    if b"\\" in skeleton:
        # Keep each escape's letter too, so that escapes stay pairs; drop escaped
        # backslashes, then escaped quotes (pairs read from the left), then the rest
        # of the escapes: every quote left opens or closes a string.
        paired = document.translate(None, _ALL_BUT_STRUCTURE_AND_ESCAPES)
        unescaped = paired.replace(b"\\\\", b"").replace(b'\\"', b"")
        skeleton = unescaped.translate(None, _ESCAPES)
    depth = 0
    for byte in b"".join(skeleton.split(b'"')[::2]):  # the brackets between strings
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
