"""Typed syntax tree of a policy file, as written (before any checking).

Nodes are frozen dataclasses. Every node carries a ``span`` that is excluded from
equality, so two trees that differ only in layout compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from policylang.source import Span

_NO_SPAN = Span(0, 0)

Comparator: TypeAlias = Literal[">=", "<=", "==", "!=", ">", "<"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Name:
    """An identifier as written: a declaration name, property key or reference."""

    text: str
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class String:
    """A decoded string literal."""

    value: str
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Number:
    """A non-negative number literal; ``is_integer`` when written without a dot."""

    value: float
    is_integer: bool
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Regex:
    """A ``/pattern/flags`` literal, with the pattern exactly as written."""

    pattern: str
    flags: str
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ref:
    """A bare name used as a value: a reference or an enumerated word."""

    name: Name
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListValue:
    """``[a, b, c]``."""

    items: tuple[Value, ...]
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Property:
    """``key: value`` inside a block."""

    key: Name
    value: Value
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """``{ key: value ... }``, as a declaration body or a nested value."""

    properties: tuple[Property, ...]
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Or:
    """``a or b or c``, flattened."""

    items: tuple[Value, ...]
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class And:
    """``a and b and c``, flattened."""

    items: tuple[Value, ...]
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Not:
    """``not a``."""

    item: Value
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AnyOf:
    """``any(a, b, ...)``: true when at least one argument is."""

    items: tuple[Value, ...]
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AllOf:
    """``all(a, b, ...)``: true when every argument is."""

    items: tuple[Value, ...]
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Keywords:
    """``keywords SOURCE``: whole-word, case-insensitive phrase match."""

    source: Ref | String | ListValue
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PatternMatch:
    """``pattern SOURCE``: a regular expression, named or inline."""

    source: Ref | Regex
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    """``score "key" >= 0.9``: a classifier score carried in message metadata."""

    key: String
    op: Comparator
    threshold: Number | Ref
    """A number, or the name of a ``param`` (replaced by its value before checking)."""
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Annotation:
    """``annotation "label"``: a label the transcript attaches to a message."""

    label: String
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """``subject[key] OP operand within N turns`` (key and window optional)."""

    subject: Name
    key: Name | None
    op: Comparator
    operand: Number | Ref
    window: Duration | None
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    """``subject in [a, b]``."""

    subject: Name
    options: ListValue
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Duration:
    """``N turns``: a count of user turns (``N`` may name a ``param``)."""

    turns: Number | Ref
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetAfter:
    """``after N benign turns`` (``N`` may name a ``param``)."""

    turns: Number | Ref
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


Value: TypeAlias = (
    String
    | Number
    | Regex
    | Ref
    | ListValue
    | Block
    | Or
    | And
    | Not
    | AnyOf
    | AllOf
    | Keywords
    | PatternMatch
    | Score
    | Annotation
    | Comparison
    | Membership
    | Duration
    | ResetAfter
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Declaration:
    """``kind name { ... }`` or ``kind name = value`` at the top level.

    ``modifier`` is the leading word of ``override rule name { ... }`` (composition);
    None for an ordinary declaration.
    """

    kind: Name
    name: Name
    body: Block | None
    value: Value | None
    modifier: Name | None = None
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyFile:
    """A whole parsed policy file."""

    declarations: tuple[Declaration, ...]
    span: Span = field(default=_NO_SPAN, compare=False, repr=False)
