"""Diagnostics as values: severities, labels, suggestions, and the sink that collects them.

Every stage reports user mistakes by emitting a :class:`Diagnostic` into a
:class:`DiagnosticSink`; only compiler bugs raise. Codes come from
:mod:`policylang.codes`, and emitting an unregistered code raises ``KeyError``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from policylang.source import Span

if TYPE_CHECKING:
    from policylang.codes import Code

__all__ = [
    "Applicability",
    "Diagnostic",
    "DiagnosticSink",
    "Label",
    "Severity",
    "Suggestion",
]


def _lookup(code: str) -> Code:
    # Imported lazily: codes.py imports Severity from this module.
    from policylang.codes import lookup

    return lookup(code)


class Severity(enum.Enum):
    """How serious a diagnostic is: errors block compilation, warnings and infos do not."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Ordering helper: higher is more severe (error 2, warning 1, info 0)."""
        return _RANKS[self]


_RANKS = {Severity.ERROR: 2, Severity.WARNING: 1, Severity.INFO: 0}


@dataclass(frozen=True, slots=True)
class Label:
    """A span of source text plus a short message printed beside its underline.

    ``path`` names the file the span is in when that is not the diagnostic's own file
    (a declaration in a base policy, say); ``None`` means the diagnostic's file. A
    diagnostic's primary label always points into the diagnostic's own file.
    """

    span: Span
    message: str = ""
    path: str | None = None

    def path_or(self, default: str) -> str:
        """The file this label points into: its ``path``, or ``default`` when it has none.

        Pass the diagnostic's path as ``default``: ``label.path_or(diagnostic.path)``.
        """
        return default if self.path is None else self.path


class Applicability(enum.Enum):
    """How confident a suggestion is (ruff's terms): safe to apply, or needs review."""

    SAFE = "safe"
    MAYBE_INCORRECT = "maybe-incorrect"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A proposed edit: replace the text at ``span`` with ``replacement``."""

    span: Span
    replacement: str
    message: str
    applicability: Applicability


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about one file: a stable code, a one-line message and where it points.

    ``message`` follows the message style guide (lowercase start, no trailing period,
    user names in backticks); explanations go in ``help`` and ``notes``.
    """

    code: str
    severity: Severity
    message: str
    path: str
    primary: Label
    secondary: tuple[Label, ...] = ()
    help: str | None = None
    notes: tuple[str, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def name(self) -> str:
        """The code's kebab-case name from the registry, e.g. ``unknown-category``."""
        return _lookup(self.code).name

    @property
    def span(self) -> Span:
        """Shorthand for ``primary.span``."""
        return self.primary.span

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file this diagnostic points into: its own path first, then the other
        files its secondary labels name, each once, in label order."""
        found = dict.fromkeys([self.path])
        found.update(dict.fromkeys(label.path_or(self.path) for label in self.secondary))
        return tuple(found)


def _sort_key(diagnostic: Diagnostic) -> tuple[str, int, str]:
    return (diagnostic.path, diagnostic.primary.span.start, diagnostic.code)


class DiagnosticSink:
    """Collects diagnostics for one or more files, in emission order.

    Use :meth:`sorted` for output: it orders by (path, offset, code) and drops duplicates.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        """Create an empty sink."""
        self._items: list[Diagnostic] = []

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self._items)

    def emit(
        self,
        code: str,
        message: str,
        path: str,
        span: Span,
        *,
        label: str = "",
        help: str | None = None,
        notes: Iterable[str] = (),
        secondary: Iterable[Label] = (),
        suggestions: Iterable[Suggestion] = (),
        severity: Severity | None = None,
    ) -> Diagnostic:
        """Record and return a diagnostic; ``severity=None`` uses the code's default.

        Raises ``KeyError`` if ``code`` is not registered in :mod:`policylang.codes`.
        """
        registered = _lookup(code)
        diagnostic = Diagnostic(
            code=code,
            severity=registered.severity if severity is None else severity,
            message=message,
            path=path,
            primary=Label(span, label),
            secondary=tuple(secondary),
            help=help,
            notes=tuple(notes),
            suggestions=tuple(suggestions),
        )
        self._items.append(diagnostic)
        return diagnostic

    def error(
        self,
        code: str,
        message: str,
        path: str,
        span: Span,
        *,
        label: str = "",
        help: str | None = None,
        notes: Iterable[str] = (),
        secondary: Iterable[Label] = (),
        suggestions: Iterable[Suggestion] = (),
    ) -> Diagnostic:
        """Record an error-severity diagnostic (see :meth:`emit`)."""
        return self.emit(
            code,
            message,
            path,
            span,
            label=label,
            help=help,
            notes=notes,
            secondary=secondary,
            suggestions=suggestions,
            severity=Severity.ERROR,
        )

    def warning(
        self,
        code: str,
        message: str,
        path: str,
        span: Span,
        *,
        label: str = "",
        help: str | None = None,
        notes: Iterable[str] = (),
        secondary: Iterable[Label] = (),
        suggestions: Iterable[Suggestion] = (),
    ) -> Diagnostic:
        """Record a warning-severity diagnostic (see :meth:`emit`)."""
        return self.emit(
            code,
            message,
            path,
            span,
            label=label,
            help=help,
            notes=notes,
            secondary=secondary,
            suggestions=suggestions,
            severity=Severity.WARNING,
        )

    def info(
        self,
        code: str,
        message: str,
        path: str,
        span: Span,
        *,
        label: str = "",
        help: str | None = None,
        notes: Iterable[str] = (),
        secondary: Iterable[Label] = (),
        suggestions: Iterable[Suggestion] = (),
    ) -> Diagnostic:
        """Record an info-severity diagnostic (see :meth:`emit`)."""
        return self.emit(
            code,
            message,
            path,
            span,
            label=label,
            help=help,
            notes=notes,
            secondary=secondary,
            suggestions=suggestions,
            severity=Severity.INFO,
        )

    def add(self, diagnostic: Diagnostic) -> None:
        """Record an already-built diagnostic; raises ``KeyError`` for unregistered codes."""
        _lookup(diagnostic.code)
        self._items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Record several already-built diagnostics (see :meth:`add`)."""
        for diagnostic in diagnostics:
            self.add(diagnostic)

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        """Everything recorded so far, in emission order, duplicates included."""
        return tuple(self._items)

    @property
    def has_errors(self) -> bool:
        """Whether any error-severity diagnostic was recorded."""
        return any(d.severity is Severity.ERROR for d in self._items)

    def sorted(self) -> list[Diagnostic]:
        """Return diagnostics sorted by (path, primary offset, code), duplicates removed.

        The sort is stable, so ties keep emission order; a duplicate is a diagnostic
        equal in every field to an earlier one.
        """
        unique = list(dict.fromkeys(self._items))
        return sorted(unique, key=_sort_key)

    def counts(self) -> dict[Severity, int]:
        """Count deduplicated diagnostics per severity; every severity is a key."""
        result = dict.fromkeys(Severity, 0)
        for diagnostic in dict.fromkeys(self._items):
            result[diagnostic.severity] += 1
        return result
