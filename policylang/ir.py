"""The lowered, resolved model of a policy that the code generator consumes.

Everything here is checked: names are resolved, defaults filled, keyword lists
turned into regular-expression source (from terms normalized with the declaration's
``normalize`` configuration), and every object knows the line and column it came
from. Conditions, counters and enums are the runtime's own pure-data classes;
detectors differ from the runtime's only in holding pattern source text instead of
compiled patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from policylang.normalize import DEFAULT_NORMALIZATION, NormalizationConfig
from policylang.runtime import (
    Comparator,
    Condition,
    Counter,
    Outcome,
    PolicyLink,
    Severity,
)


@dataclass(frozen=True, slots=True)
class KeywordsSpec:
    """Whole-word phrases; ``regex`` is the combined pattern built from ``terms``."""

    label: str
    terms: tuple[str, ...]
    regex: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class PatternSpec:
    """A policy regular expression; ``flags`` are the ``re`` flag names (e.g. ``"S"``)."""

    label: str
    regex: str
    flags: tuple[str, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class ScoreSpec:
    """A classifier-score threshold."""

    label: str
    key: str
    op: Comparator
    threshold: float
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class AnnotationSpec:
    """A transcript annotation."""

    label: str
    name: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class AllOfSpec:
    """Every part must match."""

    items: tuple[DetectorSpec, ...]


@dataclass(frozen=True, slots=True)
class AnyOfSpec:
    """Some part must match."""

    items: tuple[DetectorSpec, ...]


@dataclass(frozen=True, slots=True)
class NotSpec:
    """The part must not match."""

    item: DetectorSpec


DetectorSpec: TypeAlias = (
    KeywordsSpec | PatternSpec | ScoreSpec | AnnotationSpec | AllOfSpec | AnyOfSpec | NotSpec
)


@dataclass(frozen=True, slots=True)
class CategorySpec:
    """A harm category."""

    name: str
    title: str
    severity: Severity
    detect: DetectorSpec
    unless: DetectorSpec | None
    taxonomy: tuple[tuple[str, str], ...]
    line: int
    column: int
    follow_up: DetectorSpec | None = None
    normalize: NormalizationConfig = DEFAULT_NORMALIZATION


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A non-harm detector on user messages."""

    name: str
    detect: DetectorSpec
    unless: DetectorSpec | None
    line: int
    column: int
    normalize: NormalizationConfig = DEFAULT_NORMALIZATION


@dataclass(frozen=True, slots=True)
class RedirectSpec:
    """A detector on assistant messages."""

    name: str
    detect: DetectorSpec
    line: int
    column: int
    normalize: NormalizationConfig = DEFAULT_NORMALIZATION


@dataclass(frozen=True, slots=True)
class ProtectionSpec:
    """A protection (see :class:`policylang.runtime.Protection`)."""

    name: str
    when: Condition
    action: Outcome
    reason: str
    message: str
    lasts: int | None
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A termination rule (see :class:`policylang.runtime.Rule`)."""

    name: str
    when: Condition
    action: Outcome
    reason: str
    message: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A whole checked policy, declarations in source order."""

    name: str
    version: str
    description: str
    owner: str
    source_path: str
    source_sha256: str
    categories: tuple[CategorySpec, ...]
    signals: tuple[SignalSpec, ...]
    redirects: tuple[RedirectSpec, ...]
    counters: tuple[Counter, ...]
    protections: tuple[ProtectionSpec, ...]
    rules: tuple[RuleSpec, ...]
    chain: tuple[PolicyLink, ...] = ()
    """For a composed policy, every file it was built from (see ``runtime.PolicyLink``)."""
    tenant_path: str = ""
    """The tenant file compiled in, as ``source_path`` shows paths (empty for none)."""
