"""Semantic analysis of a parsed policy, as an ordered table of named passes.

:func:`analyze` is the library entry point: it parses (:func:`policylang.builder.parse`),
runs every pass in :data:`PASSES`, applies inline ``# policylang: allow(PLnnn)``
suppressions, and lowers the result to :class:`policylang.ir.PolicySpec` when there are
no errors. Bad policy text never raises: it becomes diagnostics, and a pass that finds
an error in a declaration poisons it (or just the bad property) so later passes skip it
instead of piling follow-on errors on top. An unexpected exception is a compiler bug
and becomes one PL900 internal-error diagnostic.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from policylang import builder, codes, compose, ir, nodes
from policylang.diagnostics import (
    Applicability,
    Diagnostic,
    DiagnosticSink,
    Label,
    Severity,
    Suggestion,
)
from policylang.limits import PolicyLimits
from policylang.lower import (
    REGEX_FLAGS,
    canonical_term,
    describe_condition,
    lower,
    lower_condition,
    normalization,
)
from policylang.normalize import DEFAULT_NORMALIZATION, STEPS, NormalizationConfig
from policylang.runtime import (
    AllConditions,
    AnyCondition,
    CategoryIn,
    Comparator,
    Condition,
    CounterCompare,
    CounterKind,
    NotCondition,
    Outcome,
    SeverityCompare,
    SignalMatched,
    compare,
)
from policylang.runtime import (
    Severity as HarmSeverity,
)
from policylang.source import SourceFile, Span
from policylang.suggest import did_you_mean

__all__ = [
    "MAX_DISJUNCTS",
    "PASSES",
    "TerminationPath",
    "analyze",
    "termination_paths",
]

#: Conditions whose disjunctive normal form has more paths than this are not analysed
#: for implication, shadowing or unreachability (the cost grows with the product).
MAX_DISJUNCTS: Final = 64

#: Upper bound for counts, windows and turns; anything larger is surely a typo.
MAX_COUNT: Final = 1_000_000

_HELP_BUG = "this is a bug in policylang; please report it with the file that caused it"

KINDS: Final = (
    "policy",
    "list",
    "pattern",
    "category",
    "signal",
    "redirect",
    "counter",
    "protection",
    "rule",
)
_VALUE_KINDS: Final = frozenset({"list", "pattern"})
_RESERVED_NAMES: Final = frozenset({"severity", "category"})
_SEVERITY_LEVELS: Final = tuple(level.label for level in HarmSeverity)

_A_OR_AN = {
    "policy": "a policy",
    "list": "a list",
    "pattern": "a pattern",
    "category": "a category",
    "signal": "a signal",
    "redirect": "a redirect",
    "counter": "a counter",
    "protection": "a protection",
    "rule": "a rule",
}

# ---------------------------------------------------------------- taxonomies

TAXONOMIES: Final[Mapping[str, tuple[str, ...]]] = {
    "mlcommons": (
        "vcr", "src", "cse", "ssh", "iwp", "ipv", "dfm", "ncr", "hte", "prv",
        "spc_ele", "spc_fin", "spc_hlt", "sxc_prn", "cbrne",
    ),
    "llama_guard": tuple(f"S{n}" for n in range(1, 15)),
    # The OpenAI moderation categories (omni-moderation), every one of them.
    "openai": (
        "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
        "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
        "sexual", "sexual/minors", "violence", "violence/graphic",
    ),
}  # fmt: skip

# ---------------------------------------------------------------- property schema


@dataclass(frozen=True, slots=True)
class _Enum:
    """A bare word from a fixed set; ``known`` words are recognised but not allowed here."""

    what: str
    allowed: tuple[str, ...]
    known: Mapping[str, str] = field(default_factory=dict)


_STRING: Final = "string"
_DETECTOR: Final = "detector"
_CONDITION: Final = "condition"
_TAXONOMY: Final = "taxonomy"
_RESET: Final = "reset"
_LASTS: Final = "lasts"
_NORMALIZE: Final = "normalize"

_PropType = str | _Enum

_SEVERITY_ENUM = _Enum("severity", _SEVERITY_LEVELS)
_COUNTS_ENUM = _Enum("counter kind", tuple(kind.value for kind in CounterKind))
_PER_ENUM = _Enum("counter scope", ("category", "severity", "conversation"))
_PROTECTION_ACTION = _Enum("protection action", tuple(outcome.value for outcome in Outcome))
_SWITCH_ENUM = _Enum(
    "switch",
    ("on", "off"),
    {
        "true": "write `on`",
        "false": "write `off`",
        "yes": "write `on`",
        "no": "write `off`",
        "enabled": "write `on`",
        "disabled": "write `off`",
    },
)
_RULE_ACTION = _Enum(
    "rule action",
    ("warn", "escalate", "end"),
    {"continue": "a rule that lets the conversation continue is not needed; remove it"},
)


@dataclass(frozen=True, slots=True)
class _Prop:
    type: _PropType
    required: bool
    example: str


_SCHEMA: Final[Mapping[str, Mapping[str, _Prop]]] = {
    "policy": {
        "version": _Prop(_STRING, True, 'version: "1.0.0"'),
        "description": _Prop(_STRING, False, 'description: "..."'),
        "owner": _Prop(_STRING, False, 'owner: "Trust & Safety"'),
    },
    "category": {
        "title": _Prop(_STRING, True, 'title: "Mass-casualty weapons"'),
        "severity": _Prop(_SEVERITY_ENUM, True, "severity: high"),
        "maps_to": _Prop(_TAXONOMY, False, 'maps_to: { llama_guard: "S9" }'),
        "detect": _Prop(_DETECTOR, True, "detect: keywords some_list"),
        "unless": _Prop(_DETECTOR, False, 'unless: keywords ["history of"]'),
        "follow_up": _Prop(_DETECTOR, False, 'follow_up: keywords ["just tell me"]'),
        "normalize": _Prop(_NORMALIZE, False, "normalize: { leetspeak: off }"),
    },
    "signal": {
        "detect": _Prop(_DETECTOR, True, 'detect: keywords ["end this chat"]'),
        "unless": _Prop(_DETECTOR, False, 'unless: keywords ["character"]'),
        "normalize": _Prop(_NORMALIZE, False, "normalize: { spacing: off }"),
    },
    "redirect": {
        "detect": _Prop(_DETECTOR, True, 'detect: annotation "redirect"'),
        "normalize": _Prop(_NORMALIZE, False, "normalize: { confusables: off }"),
    },
    "counter": {
        "counts": _Prop(_COUNTS_ENUM, True, "counts: failed_redirects"),
        "per": _Prop(_PER_ENUM, False, "per: category"),
        "reset": _Prop(_RESET, False, "reset: after 3 benign turns"),
    },
    "protection": {
        "when": _Prop(_CONDITION, True, "when: self_harm_risk"),
        "action": _Prop(_PROTECTION_ACTION, True, "action: escalate"),
        "reason": _Prop(_STRING, True, 'reason: "imminent-risk"'),
        "message": _Prop(_STRING, False, 'message: "Help is available."'),
        "lasts": _Prop(_LASTS, False, "lasts: conversation"),
    },
    "rule": {
        "when": _Prop(_CONDITION, True, "when: failed_redirects >= 3"),
        "action": _Prop(_RULE_ACTION, True, "action: warn"),
        "reason": _Prop(_STRING, True, 'reason: "persistent-harm"'),
        "message": _Prop(_STRING, False, 'message: "..."'),
    },
}

_VALUE_FORMS: Final[Mapping[str, str]] = {
    "list": 'list NAME = ["term", ...]',
    "pattern": "pattern NAME = /regex/",
}

# ---------------------------------------------------------------- context


@dataclass(eq=False)
class _Decl:
    """One declaration and what the passes learned about it."""

    node: nodes.Declaration
    index: int
    poisoned: bool = False
    props: dict[str, nodes.Property] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)
    """Properties with a reference that did not resolve; their literal values still get checked."""

    @property
    def kind(self) -> str:
        return self.node.kind.text

    @property
    def name(self) -> str:
        return self.node.name.text

    def ok(self, key: str) -> bool:
        """Whether property ``key`` is present and passed every check so far."""
        return self.well_formed(key) and key not in self.unresolved

    def well_formed(self, key: str) -> bool:
        """Whether property ``key`` is present with a good shape (references aside)."""
        return not self.poisoned and key in self.props and key not in self.bad

    def value(self, key: str) -> nodes.Value | None:
        prop = self.props.get(key)
        return None if prop is None else prop.value

    def word(self, key: str, default: str | None = None) -> str | None:
        """The bare word of an enum property that passed its checks, else ``default``."""
        value = self.value(key)
        if key in self.bad:
            return None
        if isinstance(value, nodes.Ref):
            return value.name.text
        return default if value is None else None


class _Context:
    """State shared by the passes for one file."""

    def __init__(self, source: SourceFile, tree: nodes.PolicyFile, sink: DiagnosticSink) -> None:
        self.source = source
        self.tree = tree
        self.sink = sink
        self.path = source.path
        self.decls: list[_Decl] = [
            _Decl(node, index) for index, node in enumerate(tree.declarations)
        ]
        # First declaration of each name, whatever its kind (even an unknown one), so
        # that a reference to a broken declaration is not also reported as undefined.
        self.by_name: dict[str, _Decl] = {}
        # Names offered as "did you mean": probably meant to be used, so not reported
        # as unused (the typo is reported instead).
        self.guessed: set[str] = set()

    # -- lookups

    def of_kind(self, *kinds: str) -> list[_Decl]:
        """Declarations of these kinds that the declare pass accepted."""
        return [d for d in self.decls if d.kind in kinds and not d.poisoned]

    def names_of(self, *kinds: str) -> list[str]:
        return [d.name for d in self.decls if d.kind in kinds and self.by_name.get(d.name) is d]

    def kinds(self) -> dict[str, str]:
        return {name: decl.kind for name, decl in self.by_name.items()}

    def has_errors(self) -> bool:
        return self.sink.has_errors

    # -- reporting

    def error(self, code: str, message: str, span: Span, **extra: Any) -> None:
        self.sink.error(code, message, self.path, span, **extra)

    def warning(self, code: str, message: str, span: Span, **extra: Any) -> None:
        self.sink.warning(code, message, self.path, span, **extra)


def _suggest(span: Span, replacement: str, message: str | None = None) -> Suggestion:
    return Suggestion(
        span,
        replacement,
        message or f"replace with `{replacement}`",
        Applicability.MAYBE_INCORRECT,
    )


def _describe_value(value: nodes.Value) -> str:
    """What a value is, in domain words, for "expected X, found Y" messages."""
    match value:
        case nodes.String():
            return "a string"
        case nodes.Number():
            return "a number"
        case nodes.Regex():
            return "a regular expression"
        case nodes.Ref(name=name):
            return f"the name `{name.text}`"
        case nodes.ListValue():
            return "a list"
        case nodes.Block():
            return "a block"
        case nodes.Or() | nodes.AnyOf():
            return "an `or`"
        case nodes.And() | nodes.AllOf():
            return "an `and`"
        case nodes.Not():
            return "a `not`"
        case nodes.Keywords():
            return "a `keywords` detector"
        case nodes.PatternMatch():
            return "a `pattern` detector"
        case nodes.Score():
            return "a `score` detector"
        case nodes.Annotation():
            return "an `annotation` detector"
        case nodes.Comparison():
            return "a comparison"
        case nodes.Membership():
            return "a `category in` test"
        case nodes.Duration():
            return "a number of turns"
        case nodes.ResetAfter():
            return "a reset (`after N benign turns`)"
    return "a value"


def _children(value: nodes.Value) -> tuple[nodes.Value, ...]:
    match value:
        case nodes.Or(items=items) | nodes.And(items=items):
            return items
        case nodes.AnyOf(items=items) | nodes.AllOf(items=items):
            return items
        case nodes.Not(item=item):
            return (item,)
    return ()


_COMBINATORS = (nodes.Or, nodes.And, nodes.Not, nodes.AnyOf, nodes.AllOf)


# ================================================================ pass 1: declare


def _declare(ctx: _Context) -> None:
    """Kinds, declaration forms, duplicate names, and exactly one ``policy``."""
    policies: list[_Decl] = []
    for decl in ctx.decls:
        node = decl.node
        first = ctx.by_name.get(decl.name)
        if first is None:
            ctx.by_name[decl.name] = decl
        if decl.kind not in KINDS:
            decl.poisoned = True
            guess = did_you_mean(decl.kind, KINDS)
            ctx.error(
                "PL201",
                f"unknown declaration kind `{decl.kind}`",
                node.kind.span,
                label="not a kind of declaration",
                help=(
                    f"did you mean `{guess}`?"
                    if guess
                    else "declarations are " + ", ".join(f"`{k}`" for k in KINDS)
                ),
                suggestions=[_suggest(node.kind.span, guess)] if guess else [],
            )
            continue
        if decl.kind in _VALUE_KINDS and node.value is None:
            decl.poisoned = True
            ctx.error(
                "PL202",
                f"{decl.kind} `{decl.name}` must be written with `=`",
                node.kind.span.cover(node.name.span),
                label=f"{_A_OR_AN[decl.kind]} is not a block",
                help=f"write `{_VALUE_FORMS[decl.kind]}`",
            )
        elif decl.kind not in _VALUE_KINDS and node.body is None:
            decl.poisoned = True
            ctx.error(
                "PL202",
                f"{decl.kind} `{decl.name}` must be written as a block",
                node.kind.span.cover(node.name.span),
                label=f"{_A_OR_AN[decl.kind]} is a block, not a value",
                help=f"write `{decl.kind} {decl.name} {{ key: value ... }}`",
            )
        if decl.name in _RESERVED_NAMES:
            decl.poisoned = True
            ctx.error(
                "PL214",
                f"`{decl.name}` is reserved and cannot name {_A_OR_AN[decl.kind]}",
                node.name.span,
                label="reserved word",
                help=f"conditions use `{decl.name}` for the category being checked; "
                "choose another name",
            )
        if first is not None:
            decl.poisoned = True
            ctx.error(
                "PL203",
                f"duplicate definition of `{decl.name}`",
                node.name.span,
                label="defined again here",
                secondary=[Label(first.node.name.span, "first defined here")],
                help="rename one of them; names are unique across the whole file",
            )
            continue
        if decl.kind == "policy" and not decl.poisoned:
            policies.append(decl)
    if not policies and not any(d.kind == "policy" for d in ctx.decls):
        ctx.error(
            "PL204",
            "missing `policy` declaration",
            Span.empty(0),
            label="the file starts here",
            help='add a header such as `policy default { version: "1.0.0" }` '
            "at the top of the file",
        )
    for extra in policies[1:]:
        extra.poisoned = True
        ctx.error(
            "PL205",
            f"more than one `policy` declaration: `{extra.name}`",
            extra.node.kind.span.cover(extra.node.name.span),
            label="second policy header",
            secondary=[Label(policies[0].node.name.span, "the policy is declared here")],
            help="a file holds exactly one policy; remove this header or move the "
            "declarations after it to their own file",
        )


# ================================================================ pass 2: properties


def _properties(ctx: _Context) -> None:
    """Unknown, missing and duplicate properties per kind, value types and enum words."""
    # Depends on: declare (kinds and forms are known-good).
    for decl in ctx.decls:
        if decl.poisoned:
            continue
        if decl.kind in _VALUE_KINDS:
            _check_value_declaration(ctx, decl)
            continue
        body = decl.node.body
        if body is None:
            continue
        schema = _SCHEMA[decl.kind]
        guessed: set[str] = set()
        for prop in body.properties:
            key = prop.key.text
            if key not in schema:
                guess = did_you_mean(key, schema)
                if guess is not None and not any(p.key.text == guess for p in body.properties):
                    guessed.add(guess)
                ctx.error(
                    "PL206",
                    f"unknown property `{key}` in {decl.kind} `{decl.name}`",
                    prop.key.span,
                    label=f"not a property of {_A_OR_AN[decl.kind]}",
                    help=(
                        f"did you mean `{guess}`?"
                        if guess
                        else f"{_A_OR_AN[decl.kind]} has "
                        + ", ".join(f"`{k}`" for k in schema)
                    ),
                    suggestions=[_suggest(prop.key.span, guess)] if guess else [],
                )
                continue
            first = decl.props.get(key)
            if first is not None:
                _report_duplicate(
                    ctx, prop, first, f"duplicate property `{key}` in {decl.kind} `{decl.name}`"
                )
                continue
            decl.props[key] = prop
            if not _check_type(ctx, decl, key, schema[key].type, prop.value):
                decl.bad.add(key)
        for key, spec in schema.items():
            if spec.required and key not in decl.props:
                decl.bad.add(key)
                if key in guessed:
                    continue  # the unknown-property error already says "did you mean"
                ctx.error(
                    "PL207",
                    f"{decl.kind} `{decl.name}` is missing `{key}`",
                    decl.node.name.span,
                    label=f"needs `{key}`",
                    help=f"add `{spec.example}` to the block",
                )


def _check_value_declaration(ctx: _Context, decl: _Decl) -> None:
    value = decl.node.value
    if value is None:
        return
    if decl.kind == "list":
        if not isinstance(value, nodes.ListValue):
            decl.poisoned = True
            ctx.error(
                "PL209",
                f"list `{decl.name}` must be a list of strings, found {_describe_value(value)}",
                value.span,
                label="expected `[...]`",
                help=f"write `{_VALUE_FORMS['list']}`",
            )
            return
        if not _check_terms(ctx, value):
            decl.poisoned = True
    elif not isinstance(value, nodes.Regex):
        decl.poisoned = True
        ctx.error(
            "PL209",
            f"pattern `{decl.name}` must be a regular expression, "
            f"found {_describe_value(value)}",
            value.span,
            label="expected `/.../`",
            help="write the regular expression between slashes, as in `/\\bsynthesi[sz]e\\b/`",
        )


def _check_terms(ctx: _Context, value: nodes.ListValue) -> bool:
    ok = True
    for item in value.items:
        if not isinstance(item, nodes.String):
            ok = False
            help_text = "put each keyword in double quotes"
            suggestions: list[Suggestion] = []
            if isinstance(item, nodes.Ref | nodes.Number):
                quoted = '"' + ctx.source.span_text(item.span) + '"'
                help_text = f"write it as a string: `{quoted}`"
                suggestions = [_suggest(item.span, quoted)]
            ctx.error(
                "PL209",
                f"keywords must be strings, found {_describe_value(item)}",
                item.span,
                label="expected a string",
                help=help_text,
                suggestions=suggestions,
            )
    return ok


def _check_type(
    ctx: _Context, decl: _Decl, key: str, expected: _PropType, value: nodes.Value
) -> bool:
    if isinstance(expected, _Enum):
        return _check_enum(ctx, key, expected, value)
    if expected == _STRING:
        if isinstance(value, nodes.String):
            return True
        suggestions: list[Suggestion] = []
        help_text = "write the text in double quotes"
        if isinstance(value, nodes.Ref | nodes.Number):
            quoted = '"' + ctx.source.span_text(value.span) + '"'
            help_text = f"write it as a string: `{quoted}`"
            suggestions = [_suggest(value.span, quoted)]
        ctx.error(
            "PL209",
            f"`{key}` must be a string, found {_describe_value(value)}",
            value.span,
            label="expected a string",
            help=help_text,
            suggestions=suggestions,
        )
        return False
    if expected == _DETECTOR:
        return _check_detector_shape(ctx, value)
    if expected == _CONDITION:
        return _check_condition_shape(ctx, value)
    if expected == _TAXONOMY:
        return _check_taxonomy_shape(ctx, value)
    if expected == _NORMALIZE:
        return _check_normalize_shape(ctx, value)
    if expected == _RESET:
        if isinstance(value, nodes.ResetAfter):
            return True
        ctx.error(
            "PL209",
            f"`reset` must be `after N benign turns`, found {_describe_value(value)}",
            value.span,
            label="expected `after N benign turns`",
            help="write `reset: after 3 benign turns`",
        )
        return False
    if expected == _LASTS:
        if isinstance(value, nodes.Duration):
            return True
        if isinstance(value, nodes.Ref):
            if value.name.text == "conversation":
                return True
            return _check_enum(ctx, key, _Enum("duration", ("conversation",)), value)
        ctx.error(
            "PL209",
            f"`lasts` must be `conversation` or `N turns`, found {_describe_value(value)}",
            value.span,
            label="expected `conversation` or `N turns`",
            help="write `lasts: conversation` or, for example, `lasts: 10 turns`",
        )
        return False
    raise AssertionError(f"unknown property type {expected!r}")


def _check_enum(ctx: _Context, key: str, expected: _Enum, value: nodes.Value) -> bool:
    allowed = ", ".join(f"`{word}`" for word in expected.allowed)
    if isinstance(value, nodes.Ref):
        word = value.name.text
        if word in expected.allowed:
            return True
        if word in expected.known:
            ctx.error(
                "PL210",
                f"`{word}` is not a {expected.what}",
                value.span,
                label=f"not allowed for `{key}`",
                help=f"{expected.known[word]}; a {expected.what} is one of {allowed}",
            )
            return False
        guess = did_you_mean(word, expected.allowed)
        ctx.error(
            "PL210",
            f"unknown {expected.what} `{word}`",
            value.span,
            label=f"not a {expected.what}",
            help=f"did you mean `{guess}`?" if guess else f"use one of {allowed}",
            suggestions=[_suggest(value.span, guess)] if guess else [],
        )
        return False
    if isinstance(value, nodes.String) and value.value in expected.allowed:
        ctx.error(
            "PL209",
            f"`{key}` takes a bare word, not a string",
            value.span,
            label="remove the quotes",
            help=f"write `{key}: {value.value}`",
            suggestions=[
                Suggestion(value.span, value.value, "remove the quotes", Applicability.SAFE)
            ],
        )
        return False
    ctx.error(
        "PL209",
        f"`{key}` must be a {expected.what}, found {_describe_value(value)}",
        value.span,
        label=f"expected a {expected.what}",
        help=f"use one of {allowed}",
    )
    return False


_DETECTOR_LEAVES = (nodes.Keywords, nodes.PatternMatch, nodes.Score, nodes.Annotation)


def _check_detector_shape(ctx: _Context, value: nodes.Value) -> bool:
    if isinstance(value, _COMBINATORS):
        return all([_check_detector_shape(ctx, item) for item in _children(value)])
    if isinstance(value, _DETECTOR_LEAVES):
        if isinstance(value, nodes.Keywords) and isinstance(value.source, nodes.ListValue):
            return _check_terms(ctx, value.source)
        return True
    help_text = (
        "a detector is `keywords ...`, `pattern ...`, `score \"key\" >= 0.9` or "
        '`annotation "label"`, combined with `and`, `or`, `not`'
    )
    suggestions: list[Suggestion] = []
    if isinstance(value, nodes.Ref):
        target = ctx.by_name.get(value.name.text)
        if target is not None and target.kind in ("list", "pattern"):
            keyword = "keywords" if target.kind == "list" else "pattern"
            fixed = f"{keyword} {value.name.text}"
            help_text = f"to match {target.kind} `{value.name.text}`, write `{fixed}`"
            suggestions = [_suggest(value.span, fixed)]
        elif target is not None and target.kind in ("signal", "category"):
            help_text = (
                f"{target.kind} `{value.name.text}` can be used in a rule's `when`, "
                "not in a detector; repeat its detector here instead"
            )
    elif isinstance(value, nodes.String | nodes.ListValue):
        fixed = "keywords " + ctx.source.span_text(value.span)
        help_text = f"to match these words, write `{fixed}`"
        suggestions = [_suggest(value.span, fixed)]
    elif isinstance(value, nodes.Regex):
        fixed = "pattern " + ctx.source.span_text(value.span)
        help_text = f"write `{fixed}`"
        suggestions = [_suggest(value.span, fixed)]
    ctx.error(
        "PL209",
        f"expected a detector, found {_describe_value(value)}",
        value.span,
        label="not a detector",
        help=help_text,
        suggestions=suggestions,
    )
    return False


def _check_condition_shape(ctx: _Context, value: nodes.Value) -> bool:
    if isinstance(value, _COMBINATORS):
        return all([_check_condition_shape(ctx, item) for item in _children(value)])
    if isinstance(value, nodes.Ref | nodes.Comparison | nodes.Membership):
        return True
    if isinstance(value, _DETECTOR_LEAVES):
        help_text = (
            "conditions look at declared signals, categories and counters; declare a "
            "`signal` with this detector and use its name here"
        )
    else:
        help_text = (
            "a condition is a signal or category name, a comparison such as "
            "`failed_redirects >= 3` or `severity >= high`, or `category in [...]`"
        )
    ctx.error(
        "PL209",
        f"expected a condition, found {_describe_value(value)}",
        value.span,
        label="not a condition",
        help=help_text,
    )
    return False


def _report_duplicate(
    ctx: _Context,
    prop: nodes.Property,
    first: nodes.Property,
    message: str,
    help: str = "keep one of them",
) -> None:
    """PL208: a key given twice, pointing at both."""
    ctx.error(
        "PL208",
        message,
        prop.key.span,
        label="given again here",
        secondary=[Label(first.key.span, "first given here")],
        help=help,
    )


def _nested_entries(
    ctx: _Context,
    value: nodes.Value,
    *,
    key: str,
    expected: str,
    example: str,
    entry: str,
    duplicate_help: str = "keep one of them",
) -> tuple[list[nodes.Property], bool] | None:
    """The properties of a nested block such as ``maps_to: { ... }``, each key once.

    Reports a value that is not a block (and returns ``None``) and every repeated key
    (which is left out, and makes the second item ``False``).
    """
    if not isinstance(value, nodes.Block):
        ctx.error(
            "PL209",
            f"`{key}` must be a block, found {_describe_value(value)}",
            value.span,
            label=f"expected `{expected}`",
            help=f"write, for example, `{example}`",
        )
        return None
    ok = True
    seen: dict[str, nodes.Property] = {}
    for prop in value.properties:
        first = seen.get(prop.key.text)
        if first is not None:
            ok = False
            message = f"duplicate {entry} `{prop.key.text}` in `{key}`"
            _report_duplicate(ctx, prop, first, message, duplicate_help)
            continue
        seen[prop.key.text] = prop
    return list(seen.values()), ok


def _check_taxonomy_shape(ctx: _Context, value: nodes.Value) -> bool:
    found = _nested_entries(
        ctx,
        value,
        key="maps_to",
        expected='{ taxonomy: "code" ... }',
        example='maps_to: { mlcommons: "cbrne" llama_guard: "S9" }',
        entry="taxonomy",
        duplicate_help='give several codes as a list: `openai: ["violence", "hate"]`',
    )
    if found is None:
        return False
    entries, ok = found
    for prop in entries:
        items = prop.value.items if isinstance(prop.value, nodes.ListValue) else (prop.value,)
        for item in items:
            if not isinstance(item, nodes.String):
                ok = False
                ctx.error(
                    "PL209",
                    f"taxonomy codes must be strings, found {_describe_value(item)}",
                    item.span,
                    label="expected a string",
                    help="write each code in double quotes, as in `\"S9\"`",
                )
    return ok


def _check_normalize_shape(ctx: _Context, value: nodes.Value) -> bool:
    """``normalize: { step: on|off ... }``: a block of switches, each step at most once."""
    found = _nested_entries(
        ctx,
        value,
        key="normalize",
        expected="{ step: on|off ... }",
        example="normalize: { leetspeak: off spacing: off }",
        entry="step",
    )
    if found is None:
        return False
    entries, ok = found
    for prop in entries:
        if not _check_normalize_step(ctx, prop.key):
            ok = False
        if not _check_enum(ctx, prop.key.text, _SWITCH_ENUM, prop.value):
            ok = False
    return ok


def _check_normalize_step(ctx: _Context, key: nodes.Name) -> bool:
    step = key.text
    if step in STEPS:
        return True
    guess = did_you_mean(step, STEPS)
    ctx.error(
        "PL314",
        f"unknown normalization step `{step}`",
        key.span,
        label="not a normalization step",
        help=(
            f"did you mean `{guess}`?"
            if guess
            else "the steps are " + ", ".join(f"`{name}`" for name in STEPS)
        ),
        suggestions=[_suggest(key.span, guess)] if guess else [],
    )
    return False


# ================================================================ pass 3: resolve


_DETECTOR_KEYS: Final = ("detect", "unless", "follow_up")
"""Properties whose value is a detector."""


def _resolve(ctx: _Context) -> None:
    """References: lists, patterns, signals, categories, counters and counter keys."""
    # Depends on: properties (value shapes are known-good where not marked bad).
    for decl in ctx.decls:
        if decl.poisoned:
            continue
        for key in _DETECTOR_KEYS:
            value = decl.value(key)
            if value is not None and decl.ok(key) and not _resolve_detector(ctx, value):
                decl.unresolved.add(key)
        if decl.ok("when"):
            value = decl.value("when")
            if value is not None and not _resolve_condition(ctx, value):
                decl.unresolved.add("when")


class _Poisoned(Exception):
    """A reference to a declaration that already has an error: skip quietly."""


def _lookup(
    ctx: _Context,
    name: nodes.Name,
    want: tuple[str, ...],
    what: str,
    *,
    extra_help: str | None = None,
) -> _Decl | None:
    """Resolve ``name`` to a declaration of one of the ``want`` kinds, or report why not.

    Raises :class:`_Poisoned` when the name refers to a broken declaration.
    """
    target = ctx.by_name.get(name.text)
    if target is None:
        guess = did_you_mean(name.text, ctx.names_of(*want))
        if guess is not None:
            ctx.guessed.add(guess)
            help_text = f"did you mean `{guess}`?"
        else:
            help_text = extra_help or f"declare it, or use the name of an existing {what}"
        ctx.error(
            "PL211",
            f"unknown {what} `{name.text}`",
            name.span,
            label="not declared in this file",
            help=help_text,
            suggestions=[_suggest(name.span, guess)] if guess else [],
        )
        return None
    if target.kind not in KINDS or (target.poisoned and target.kind not in want):
        raise _Poisoned
    if target.kind not in want:
        ctx.error(
            "PL212",
            f"`{name.text}` is {_A_OR_AN[target.kind]}, not {_a(what)}",
            name.span,
            label=f"expected {_a(what)}",
            secondary=[Label(target.node.name.span, f"declared as {_A_OR_AN[target.kind]} here")],
            help=extra_help,
        )
        return None
    if target.poisoned:
        raise _Poisoned
    return target


def _a(what: str) -> str:
    return ("an " if what[:1] in "aeiou" else "a ") + what


def _resolve_detector(ctx: _Context, value: nodes.Value) -> bool:
    if isinstance(value, _COMBINATORS):
        return all([_resolve_detector(ctx, item) for item in _children(value)])
    try:
        if isinstance(value, nodes.Keywords) and isinstance(value.source, nodes.Ref):
            name = value.source.name
            found = _lookup(
                ctx,
                name,
                ("list",),
                "list",
                extra_help=(
                    f"write `pattern {name.text}` to use a pattern"
                    if _kind_of(ctx, name.text) == "pattern"
                    else None
                ),
            )
            return found is not None
        if isinstance(value, nodes.PatternMatch) and isinstance(value.source, nodes.Ref):
            name = value.source.name
            found = _lookup(
                ctx,
                name,
                ("pattern",),
                "pattern",
                extra_help=(
                    f"write `keywords {name.text}` to use a list"
                    if _kind_of(ctx, name.text) == "list"
                    else None
                ),
            )
            return found is not None
    except _Poisoned:
        return False
    return True


def _kind_of(ctx: _Context, name: str) -> str | None:
    decl = ctx.by_name.get(name)
    return None if decl is None else decl.kind


def _resolve_condition(ctx: _Context, value: nodes.Value) -> bool:
    if isinstance(value, _COMBINATORS):
        return all([_resolve_condition(ctx, item) for item in _children(value)])
    try:
        if isinstance(value, nodes.Ref):
            return _resolve_condition_name(ctx, value.name)
        if isinstance(value, nodes.Membership):
            return _resolve_membership(ctx, value)
        if isinstance(value, nodes.Comparison):
            return _resolve_comparison(ctx, value)
    except _Poisoned:
        return False
    return True


def _resolve_condition_name(ctx: _Context, name: nodes.Name) -> bool:
    text = name.text
    if text in _SEVERITY_LEVELS and text not in ctx.by_name:
        ctx.error(
            "PL215",
            f"`{text}` is a severity level, not a condition",
            name.span,
            label="a severity level alone",
            help=f"write `severity >= {text}`",
            suggestions=[_suggest(name.span, f"severity >= {text}")],
        )
        return False
    if text in _RESERVED_NAMES and text not in ctx.by_name:
        ctx.error(
            "PL215",
            f"`{text}` alone is not a condition",
            name.span,
            label="incomplete test",
            help="write `severity >= high` or `category in [a, b]`",
        )
        return False
    target = ctx.by_name.get(text)
    if target is not None and target.kind == "counter" and not target.poisoned:
        ctx.error(
            "PL212",
            f"counter `{text}` must be compared to a number",
            name.span,
            label="a counter alone",
            secondary=[Label(target.node.name.span, "declared as a counter here")],
            help=f"write, for example, `{text} >= 1`",
            suggestions=[_suggest(name.span, f"{text} >= 1")],
        )
        return False
    return _lookup(ctx, name, ("signal", "category"), "signal or category") is not None


def _resolve_membership(ctx: _Context, value: nodes.Membership) -> bool:
    if value.subject.text != "category":
        ctx.error(
            "PL215",
            f"only `category` can be tested with `in`, found `{value.subject.text}`",
            value.subject.span,
            label="expected `category`",
            help="write `category in [a, b]` to test the category being checked",
            suggestions=[_suggest(value.subject.span, "category")],
        )
        return False
    ok = True
    for item in value.options.items:
        if not isinstance(item, nodes.Ref):
            ok = False
            ctx.error(
                "PL209",
                f"expected a category name, found {_describe_value(item)}",
                item.span,
                label="not a category name",
                help="list category names without quotes: `category in [csam, terrorism]`",
            )
            continue
        try:
            if _lookup(ctx, item.name, ("category",), "category") is None:
                ok = False
        except _Poisoned:
            ok = False
    return ok


def _resolve_comparison(ctx: _Context, value: nodes.Comparison) -> bool:
    subject = value.subject.text
    if subject == "severity" and "severity" not in ctx.by_name:
        return _resolve_severity_comparison(ctx, value)
    if subject == "category" and "category" not in ctx.by_name:
        ctx.error(
            "PL215",
            "`category` can only be tested with `in`",
            value.span,
            label="not a comparison",
            help="write `category in [a, b]`, or just the category's name",
        )
        return False
    target = ctx.by_name.get(subject)
    if target is not None and target.kind in ("signal", "category") and not target.poisoned:
        ctx.error(
            "PL212",
            f"`{subject}` is {_A_OR_AN[target.kind]}, not a counter",
            value.subject.span,
            label="cannot be compared",
            secondary=[Label(target.node.name.span, f"declared as {_A_OR_AN[target.kind]} here")],
            help=f"{_A_OR_AN[target.kind]} either holds or not: write just `{subject}`",
        )
        return False
    counter = _lookup(
        ctx,
        value.subject,
        ("counter",),
        "counter",
        extra_help="declare it with `counter NAME { counts: failed_redirects }`",
    )
    if counter is None:
        return False
    ok = True
    if not isinstance(value.operand, nodes.Number):
        ok = False
        ctx.error(
            "PL209",
            f"counter `{subject}` must be compared to a number, "
            f"found {_describe_value(value.operand)}",
            value.operand.span,
            label="expected a number",
            help=f"write, for example, `{subject} >= 3`",
        )
    if value.key is not None and not _resolve_counter_key(ctx, counter, value.key):
        ok = False
    return ok


def _resolve_severity_comparison(ctx: _Context, value: nodes.Comparison) -> bool:
    ok = True
    if value.key is not None:
        ok = False
        ctx.error(
            "PL215",
            "`severity` takes no key",
            value.key.span,
            label="remove this key",
            help="`severity` is the severity of the category being checked",
        )
    if value.window is not None:
        ok = False
        ctx.error(
            "PL215",
            "`within` applies only to counters, not to `severity`",
            value.window.span,
            label="not allowed here",
            help="remove `within ...`; a window limits which counted events are included",
        )
    operand = value.operand
    levels = ", ".join(f"`{level}`" for level in _SEVERITY_LEVELS)
    if isinstance(operand, nodes.Ref):
        if operand.name.text not in _SEVERITY_LEVELS:
            ok = False
            guess = did_you_mean(operand.name.text, _SEVERITY_LEVELS)
            ctx.error(
                "PL210",
                f"unknown severity `{operand.name.text}`",
                operand.span,
                label="not a severity level",
                help=f"did you mean `{guess}`?" if guess else f"severity levels are {levels}",
                suggestions=[_suggest(operand.span, guess)] if guess else [],
            )
    else:
        ok = False
        ctx.error(
            "PL209",
            f"`severity` must be compared to a severity level, found {_describe_value(operand)}",
            operand.span,
            label="expected a severity level",
            help=f"severity levels are {levels}",
        )
    return ok


def _resolve_counter_key(ctx: _Context, counter: _Decl, key: nodes.Name) -> bool:
    per = counter.word("per", "category")
    if per is None:
        return False  # the counter's own `per` is broken; already reported
    text = key.text
    target = ctx.by_name.get(text)
    if per == "conversation":
        ctx.error(
            "PL213",
            f"counter `{counter.name}` counts per conversation and takes no key",
            key.span,
            label="remove this key",
            secondary=[Label(counter.node.name.span, "declared here")],
            help=f"write just `{counter.name}`, or give the counter `per: category`",
        )
        return False
    if per == "severity":
        if text in _SEVERITY_LEVELS:
            return True
        guess = did_you_mean(text, _SEVERITY_LEVELS)
        is_category = target is not None and target.kind == "category"
        ctx.error(
            "PL213",
            f"`{text}` is not a severity level, but counter `{counter.name}` counts per severity",
            key.span,
            label="expected a severity level",
            secondary=[Label(counter.node.name.span, "declared with `per: severity` here")],
            help=(
                f"did you mean `{guess}`?"
                if guess
                else (
                    "to count per category, give the counter `per: category`"
                    if is_category
                    else "severity levels are " + ", ".join(f"`{s}`" for s in _SEVERITY_LEVELS)
                )
            ),
            suggestions=[_suggest(key.span, guess)] if guess else [],
        )
        return False
    # per category
    if text in _SEVERITY_LEVELS and (target is None or target.kind != "category"):
        ctx.error(
            "PL213",
            f"`{text}` is a severity level, but counter `{counter.name}` counts per category",
            key.span,
            label="expected a category",
            secondary=[Label(counter.node.name.span, "declared here")],
            help="use a category's name, or give the counter `per: severity`",
        )
        return False
    try:
        return _lookup(ctx, key, ("category",), "category") is not None
    except _Poisoned:
        return False


# ================================================================ pass 4: values


def _values(ctx: _Context) -> None:
    """Regexes, keyword terms, thresholds, counts and windows, taxonomy codes, empties."""
    # Depends on: resolve (only properties that resolved are checked).
    for decl in ctx.decls:
        if decl.poisoned:
            continue
        if decl.kind == "pattern" and isinstance(decl.node.value, nodes.Regex):
            if not _check_regex(ctx, decl.node.value):
                decl.poisoned = True
            continue
        if decl.kind == "list" and isinstance(decl.node.value, nodes.ListValue):
            if not _check_keyword_list(ctx, decl.node.value, f"list `{decl.name}`"):
                decl.poisoned = True
            continue
        for key in ("version", "title", "reason"):
            value = decl.value(key)
            if decl.ok(key) and isinstance(value, nodes.String) and not value.value.strip():
                decl.bad.add(key)
                ctx.error(
                    "PL312",
                    f"`{key}` of {decl.kind} `{decl.name}` is empty",
                    value.span,
                    label="empty string",
                    help=f"write, for example, `{_SCHEMA[decl.kind][key].example}`",
                )
        # Literal values are checked even where a reference did not resolve: one
        # misspelt name must not hide a bad pattern or threshold beside it.
        for key in _DETECTOR_KEYS:
            value = decl.value(key)
            if (
                value is not None
                and decl.well_formed(key)
                and not _check_detector_values(ctx, value)
            ):
                decl.bad.add(key)
        when = decl.value("when")
        if (
            when is not None
            and decl.well_formed("when")
            and not _check_condition_values(ctx, when)
        ):
            decl.bad.add("when")
        maps_to = decl.value("maps_to")
        if (
            isinstance(maps_to, nodes.Block)
            and decl.ok("maps_to")
            and not _check_taxonomy(ctx, maps_to)
        ):
            decl.bad.add("maps_to")

        for key in ("reset", "lasts"):
            turns = decl.value(key)
            if (
                isinstance(turns, nodes.ResetAfter | nodes.Duration)
                and decl.ok(key)
                and isinstance(turns.turns, nodes.Number)
                and not _check_count(ctx, turns.turns, f"`{key}`", minimum=1)
            ):
                decl.bad.add(key)


def _check_count(ctx: _Context, number: nodes.Number, what: str, *, minimum: int) -> bool:
    text = ctx.source.span_text(number.span)
    value = number.value
    kind = "a positive whole number" if minimum > 0 else "a whole number"
    if not number.is_integer or not math.isfinite(value) or value != int(value):
        ctx.error(
            "PL305",
            f"{what} must be {kind}, found `{text}`",
            number.span,
            label="not a whole number",
            help="counts, windows and turns are whole numbers, as in `3`",
        )
        return False
    if value < minimum:
        ctx.error(
            "PL305",
            f"{what} must be {kind}, found `{text}`",
            number.span,
            label=f"must be at least {minimum}",
            help="a count of zero turns would never hold; use 1 or more",
        )
        return False
    if value > MAX_COUNT:
        ctx.error(
            "PL305",
            f"{what} is too large: `{text}`",
            number.span,
            label=f"more than {MAX_COUNT:,}".replace(",", "_"),
            help=f"use a number up to {MAX_COUNT}",
        )
        return False
    return True


def _check_detector_values(ctx: _Context, value: nodes.Value) -> bool:
    if isinstance(value, _COMBINATORS):
        return all([_check_detector_values(ctx, item) for item in _children(value)])
    if isinstance(value, nodes.Keywords):
        if isinstance(value.source, nodes.ListValue):
            return _check_keyword_list(ctx, value.source, "keyword list")
        if isinstance(value.source, nodes.String):
            return _check_term(ctx, value.source)
        return True
    if isinstance(value, nodes.PatternMatch) and isinstance(value.source, nodes.Regex):
        return _check_regex(ctx, value.source)
    if isinstance(value, nodes.Score):
        ok = True
        if not value.key.value.strip():
            ok = False
            ctx.error(
                "PL312",
                "score key is empty",
                value.key.span,
                label="empty string",
                help='name the score in the message metadata, as in `score "violence" >= 0.9`',
            )
        if not isinstance(value.threshold, nodes.Number):
            return ok  # a parameter name: composition replaces it or reports it
        threshold = value.threshold.value
        if not 0.0 <= threshold <= 1.0:
            ok = False
            text = ctx.source.span_text(value.threshold.span)
            ctx.error(
                "PL304",
                f"score threshold `{text}` is outside 0 to 1",
                value.threshold.span,
                label="scores are between 0 and 1",
                help="write the threshold as a fraction, as in `0.9`",
            )
        return ok
    if isinstance(value, nodes.Annotation) and not value.label.value.strip():
        ctx.error(
            "PL312",
            "annotation label is empty",
            value.label.span,
            label="empty string",
            help='write the label the transcript uses, as in `annotation "redirect"`',
        )
        return False
    return True


def _check_condition_values(ctx: _Context, value: nodes.Value) -> bool:
    if isinstance(value, _COMBINATORS):
        return all([_check_condition_values(ctx, item) for item in _children(value)])
    if isinstance(value, nodes.Comparison) and value.subject.text != "severity":
        ok = True
        if isinstance(value.operand, nodes.Number):
            ok = _check_count(ctx, value.operand, f"count for `{value.subject.text}`", minimum=0)
        if (
            value.window is not None
            and isinstance(value.window.turns, nodes.Number)
            and not _check_count(ctx, value.window.turns, "`within` window", minimum=1)
        ):
            ok = False
        return ok
    return True


def _check_keyword_list(ctx: _Context, value: nodes.ListValue, what: str) -> bool:
    if not value.items:
        ctx.error(
            "PL308",
            f"{what} is empty",
            value.span,
            label="no keywords",
            help='add at least one keyword, as in `["sarin"]`',
        )
        return False
    return all([_check_term(ctx, item) for item in value.items if isinstance(item, nodes.String)])


def _check_term(ctx: _Context, term: nodes.String) -> bool:
    text = canonical_term(term.value)
    core = text.strip("*")
    if not text or not core.strip():
        ctx.error(
            "PL308",
            "keyword is empty" if not text else "keyword is only a wildcard",
            term.span,
            label="matches nothing useful",
            help="write a word or phrase; `*` only extends one, as in `\"bomb*\"`",
        )
        return False
    inner = text[1:] if text.startswith("*") else text
    inner = inner[:-1] if inner.endswith("*") else inner
    if "*" in inner or inner != inner.strip():
        ctx.error(
            "PL308",
            f"misplaced `*` in keyword `{term.value}`",
            term.span,
            label="`*` is a wildcard only at the start or end of a word",
            help="write `*` directly before the first word or after the last one, "
            'as in `"bomb*"`; keywords cannot match a literal `*`',
        )
        return False
    return True


def _check_taxonomy(ctx: _Context, block: nodes.Block) -> bool:
    ok = True
    for prop in block.properties:
        scheme = prop.key.text
        known = TAXONOMIES.get(scheme)
        if known is None:
            ok = False
            guess = did_you_mean(scheme, TAXONOMIES)
            ctx.error(
                "PL306",
                f"unknown taxonomy `{scheme}` in `maps_to`",
                prop.key.span,
                label="not a known taxonomy",
                help=(
                    f"did you mean `{guess}`?"
                    if guess
                    else "taxonomies are " + ", ".join(f"`{t}`" for t in TAXONOMIES)
                ),
                suggestions=[_suggest(prop.key.span, guess)] if guess else [],
            )
            continue
        items = prop.value.items if isinstance(prop.value, nodes.ListValue) else (prop.value,)
        for item in items:
            if not isinstance(item, nodes.String) or item.value in known:
                continue
            ok = False
            guess = did_you_mean(item.value, known)
            shown = ", ".join(f"`{code}`" for code in known[:6])
            ctx.error(
                "PL307",
                f"unknown {scheme} code `{item.value}`",
                item.span,
                label=f"not a {scheme} code",
                help=f"did you mean `{guess}`?" if guess else f"{scheme} codes include {shown}",
                suggestions=[_suggest(item.span, f'"{guess}"')] if guess else [],
            )
    return ok


# ---------------------------------------------------------------- regular expressions

_sre_parser: Any = None
_sre_constants: Any = None


def _sre() -> tuple[Any, Any] | None:
    """The private ``re`` parser modules, or None when this Python lays them out otherwise.

    ``re._parser``/``re._constants`` exist since Python 3.11 (``sre_parse`` before);
    they are private, so every use is guarded and a surprise only skips the analysis.
    """
    global _sre_parser, _sre_constants
    if _sre_parser is None:
        try:
            _sre_parser = importlib.import_module("re._parser")
            _sre_constants = importlib.import_module("re._constants")
        except ImportError:
            return None
    return _sre_parser, _sre_constants


def _flag_bits(letters: str) -> int:
    bits = 0
    for letter in letters:
        bits |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}.get(
            letter, 0
        )
    return int(bits)


def _regex_offsets(ctx: _Context, regex: nodes.Regex) -> list[int] | None:
    """Source offset of each character of ``regex.pattern`` (plus one for its end).

    The builder turns ``\\/`` into ``/``, so the pattern can be shorter than the text
    between the slashes.
    """
    close = regex.span.end - len(regex.flags) - 1
    raw = ctx.source.text[regex.span.start + 1 : close]
    base = regex.span.start + 1
    offsets: list[int] = []
    j = 0
    while j < len(raw):
        if raw[j] == "\\" and j + 1 < len(raw):
            if raw[j + 1] == "/":
                offsets.append(base + j)
            else:
                offsets.extend((base + j, base + j + 1))
            j += 2
        else:
            offsets.append(base + j)
            j += 1
    offsets.append(base + len(raw))
    return offsets if len(offsets) == len(regex.pattern) + 1 else None


def _pattern_span(ctx: _Context, regex: nodes.Regex, start: int, end: int) -> Span:
    """The source span of ``regex.pattern[start:end]``; the whole literal if unmappable."""
    offsets = _regex_offsets(ctx, regex)
    if offsets is None or not 0 <= start <= end < len(offsets):
        return regex.span
    first = offsets[start]
    last = offsets[end - 1] + 1 if end > start else first
    # An escaped slash takes two source characters for one pattern character.
    if end > start and ctx.source.text[last - 1 : last + 1] == "\\/":
        last += 1
    return Span(first, max(first, last))


_REGEX_HELP = (
    ("unterminated subpattern", "add the missing `)`, or write `\\(` to match a parenthesis"),
    ("unbalanced parenthesis", "remove the extra `)`, or write `\\)` to match a parenthesis"),
    ("nothing to repeat", "write `\\*`, `\\+` or `\\?` to match the character itself"),
    ("multiple repeat", "a quantifier cannot follow another; remove one"),
    ("unterminated character set", "add the missing `]`, or write `\\[` to match a bracket"),
    ("bad escape", "that escape does not exist in Python regular expressions"),
    ("bad character range", "write ranges low to high, as in `[a-z]`"),
)


def _check_regex(ctx: _Context, regex: nodes.Regex) -> bool:
    ok = True
    flags_start = regex.span.end - len(regex.flags)
    for index, letter in enumerate(regex.flags):
        if letter not in REGEX_FLAGS:
            ok = False
            at = Span(flags_start + index, flags_start + index + 1)
            ctx.error(
                "PL303",
                f"unknown pattern flag `{letter}`",
                at,
                label="not a flag",
                help="flags are `s` (dot matches newline), `m` (multi-line anchors), "
                "`x` (verbose) and `i` (ignore case)",
                suggestions=[
                    Suggestion(at, "", f"remove `{letter}`", Applicability.MAYBE_INCORRECT)
                ],
            )
    flags = _flag_bits(regex.flags)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(regex.pattern, flags)
    except re.error as error:
        position = error.pos if isinstance(error.pos, int) else None
        message = str(error.msg)
        if position is None:
            span = regex.span
        else:
            # "bad escape \\p" and "bad character range z-a" name the offending text.
            named = re.match(r"(?:bad escape|bad character range) (\S+)", message)
            width = len(named.group(1)) if named else 1
            span = _pattern_span(
                ctx, regex, position, min(position + width, len(regex.pattern))
            )
        help_text = next(
            (text for needle, text in _REGEX_HELP if needle in message),
            "patterns use Python regular expression syntax",
        )
        ctx.error(
            "PL301",
            f"invalid regular expression: {message}",
            span,
            label=message,
            help=help_text,
        )
        return False
    except (RecursionError, OverflowError, ValueError) as error:
        ctx.error(
            "PL301",
            "invalid regular expression: too complex to compile",
            regex.span,
            label=type(error).__name__,
            help="split the pattern into simpler ones combined with `or`",
        )
        return False
    # The analyses parse the pattern again, and fragments of it; the parser's
    # FutureWarnings (`[[` is a "possible nested set") must not reach the user's stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not _check_backtracking(ctx, regex, flags):
            return False
        if not _check_bounded(ctx, regex, flags):
            return False
        if "i" not in regex.flags:
            _check_case(ctx, regex, flags)
    return ok


# -- catastrophic backtracking

_STAR_BOUND = 16  # a bounded repeat with more iterations than this counts as unbounded


def _op(item: Any) -> str:
    op = item[0]
    return str(getattr(op, "name", op))


def _is_star(low: int, high: int, maxrepeat: int) -> bool:
    return high == maxrepeat or high > _STAR_BOUND


def _body_items(item: Any, *, sealed: bool = False) -> Iterator[list[Any]]:
    """Sub-sequences nested in one parsed item.

    With ``sealed``, also the bodies of atomic groups, possessive repeats and
    lookarounds; without it only what backtracking can re-enter (those never give
    back what they matched, so they cannot make a loop body ambiguous).
    """
    op, av = _op(item), item[1]
    if op == "SUBPATTERN":
        yield list(av[-1])
    elif op == "BRANCH":
        for alternative in av[1]:
            yield list(alternative)
    elif op in ("MAX_REPEAT", "MIN_REPEAT"):
        yield list(av[2])
    elif op == "GROUPREF_EXISTS":
        yield list(av[1])
        if av[2] is not None:
            yield list(av[2])
    elif sealed and op == "ATOMIC_GROUP":
        yield list(av)
    elif sealed and op == "POSSESSIVE_REPEAT":
        yield list(av[2])
    elif sealed and op in ("ASSERT", "ASSERT_NOT"):
        yield list(av[1])


def _walk(items: Iterable[Any], *, sealed: bool = False) -> Iterator[Any]:
    for item in items:
        yield item
        for body in _body_items(item, sealed=sealed):
            yield from _walk(body, sealed=sealed)


_SINGLE_CHAR = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY"})
_PROBES = "aA0_ \n-.é/'\t"


def _char_matches(item: Any, char: str, dotall: bool) -> bool:
    op, av = _op(item), item[1]
    code = ord(char)
    if op == "LITERAL":
        return bool(code == av)
    if op == "NOT_LITERAL":
        return bool(code != av)
    if op == "ANY":
        return dotall or char != "\n"
    if op == "RANGE":
        return bool(av[0] <= code <= av[1])
    if op == "CATEGORY":
        name = str(getattr(av, "name", av))
        if "DIGIT" in name:
            hit = char.isdigit()
        elif "SPACE" in name:
            hit = char.isspace()
        elif "WORD" in name:
            hit = char.isalnum() or char == "_"
        else:
            return True  # unknown category: assume it overlaps
        return hit != ("NOT" in name)
    if op == "IN":
        negate = any(_op(part) == "NEGATE" for part in av)
        hit = any(_char_matches(part, char, dotall) for part in av if _op(part) != "NEGATE")
        return hit != negate
    return True


def _literals(items: Iterable[Any]) -> Iterator[str]:
    for item in items:
        op, av = _op(item), item[1]
        if op == "LITERAL":
            yield chr(av)
        elif op == "RANGE":
            yield chr(av[0])
            yield chr(av[1])
        elif op == "IN":
            yield from _literals(av)


def _overlap(left: Any, right: Any, dotall: bool) -> bool:
    probes = set(_PROBES) | set(_literals([left, right]))
    return any(
        _char_matches(left, char, dotall) and _char_matches(right, char, dotall)
        for char in probes
    )


def _ambiguous_branch(items: Sequence[Any], dotall: bool) -> bool:
    """A branch with two alternatives that can match the same text (``(a|a)``, ``(.|\\s)``).

    Only fixed-length alternatives of single-character atoms are compared; ``sre``
    already factors shared prefixes out, so ``(a|a)`` arrives as ``a(|)``.
    """
    for item in _walk(items):
        if _op(item) != "BRANCH":
            continue
        simple = [
            list(alt) for alt in item[1][1] if all(_op(part) in _SINGLE_CHAR for part in alt)
        ]
        for i, left in enumerate(simple):
            for right in simple[i + 1 :]:
                if len(left) == len(right) and all(
                    _overlap(a, b, dotall) for a, b in zip(left, right, strict=True)
                ):
                    return True
    return False


def _variable_repeat(items: Sequence[Any]) -> bool:
    for item in _walk(items):
        if _op(item) in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high = item[1][0], item[1][1]
            if high > low and high > 1:
                return True
    return False


def _catastrophic(items: Sequence[Any], maxrepeat: int, dotall: bool) -> bool:
    # Outer loops are looked for everywhere: an atomic group stops backtracking into
    # it from outside, not the exponential search inside it.
    for item in _walk(items, sealed=True):
        if _op(item) not in ("MAX_REPEAT", "MIN_REPEAT"):
            continue
        low, high, body = item[1]
        if not _is_star(low, high, maxrepeat):
            continue
        if _variable_repeat(body) or _ambiguous_branch(body, dotall):
            return True
    return False


def _quantified_groups(pattern: str, verbose: bool) -> list[tuple[int, int]]:
    """``(start, end)`` of every parenthesized group followed by a quantifier, by start."""
    found: list[tuple[int, int]] = []
    stack: list[int] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
            continue
        if verbose and char == "#":
            while i < n and pattern[i] != "\n":
                i += 1
            continue
        if char == "(":
            stack.append(i)
        elif char == ")" and stack:
            start = stack.pop()
            j = i + 1
            while verbose and j < n and pattern[j].isspace():
                j += 1
            if j < n and pattern[j] in "*+?":
                found.append((start, j + 1))
            elif j < n and pattern[j] == "{":
                match = re.match(r"\{\d*(?:,\d*)?\}", pattern[j:])
                if match:
                    found.append((start, j + match.end()))
        i += 1
    return sorted(found)


#: The longest text one match of a policy pattern may cover. Every message is searched
#: from each of its positions, so a pattern that can match unboundedly long text can
#: cost time quadratic in the message's length; a bounded one costs linear time.
MAX_MATCH_WIDTH: Final = 1000


def _unbounded_quantifiers(pattern: str, verbose: bool) -> list[tuple[int, int]]:
    """``(start, end)`` of every ``*``, ``+`` and ``{n,}`` in ``pattern`` (not in a class)."""
    found: list[tuple[int, int]] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
            continue
        if verbose and char == "#":
            while i < n and pattern[i] != "\n":
                i += 1
            continue
        if char in "*+" and i > 0 and pattern[i - 1] != "(":
            found.append((i, i + 1))
        elif char == "{":
            match = re.match(r"\{\d*,\}", pattern[i:])
            if match:
                found.append((i, i + match.end()))
        i += 1
    return found


def _check_bounded(ctx: _Context, regex: nodes.Regex, flags: int) -> bool:
    """A pattern must match text of bounded length (PL315): linear time on any message."""
    modules = _sre()
    if modules is None:
        return True
    parser, _ = modules
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            widest = parser.parse(regex.pattern, flags).getwidth()[1]
    except Exception:  # the pattern compiled, so this only skips the analysis
        return True
    if widest <= MAX_MATCH_WIDTH:
        return True
    where = _unbounded_quantifiers(regex.pattern, "x" in regex.flags)
    span = _pattern_span(ctx, regex, *where[0]) if where else regex.span
    unbounded = bool(where)
    ctx.error(
        "PL315",
        "pattern can match text of unbounded length"
        if unbounded
        else f"pattern can match more than {MAX_MATCH_WIDTH} characters",
        span,
        label="repeats without a limit" if unbounded else "too wide",
        help="give every repetition an upper bound, as in `[a-z]{1,40}` for a word or "
        "`.{0,80}` for a gap between words; a message is searched from each position, "
        f"and a match of at most {MAX_MATCH_WIDTH} characters keeps that linear",
    )
    return False


def _check_backtracking(ctx: _Context, regex: nodes.Regex, flags: int) -> bool:
    modules = _sre()
    if modules is None:
        return True
    parser, constants = modules
    try:
        parsed = parser.parse(regex.pattern, flags)
        maxrepeat = int(constants.MAXREPEAT)
        state_flags = int(parsed.state.flags)
        dotall = bool(state_flags & re.DOTALL)
        if not _catastrophic(list(parsed), maxrepeat, dotall):
            return True
        where: tuple[int, int] | None = None
        for start, end in _quantified_groups(regex.pattern, bool(state_flags & re.VERBOSE)):
            try:
                part = parser.parse(regex.pattern[start:end], state_flags)
            except Exception:  # a fragment may refer to groups outside it
                continue
            if _catastrophic(list(part), maxrepeat, dotall):
                where = (start, end)
                break
    except Exception:  # the private parser changed shape: skip the analysis
        return True
    span = regex.span if where is None else _pattern_span(ctx, regex, *where)
    shown = ctx.source.span_text(span)
    ctx.error(
        "PL302",
        "pattern is prone to catastrophic backtracking",
        span,
        label="a repeated group that itself repeats",
        help=f"`{shown}` can match the same text in exponentially many ways; "
        "make the inner repetition possessive (`++`, `*+`) or atomic (`(?>...)`), "
        "bound the outer one (e.g. `{0,5}`), or use a keyword list",
    )
    return False


# -- upper-case letters


def _case_offenders(items: Sequence[Any], ignorecase: bool, out: list[str]) -> None:
    for item in items:
        op, av = _op(item), item[1]
        if op == "SUBPATTERN":
            add = int(av[1]) if len(av) > 1 else 0
            _case_offenders(av[-1], ignorecase or bool(add & re.IGNORECASE), out)
        elif ignorecase:
            continue
        elif op == "LITERAL":
            char = chr(av)
            if char.casefold() != char:
                out.append(char)
        elif op == "IN":
            _case_offenders(av, ignorecase, out)
        elif op == "RANGE":
            if av[1] - av[0] < 512:
                chars = [chr(code) for code in range(av[0], av[1] + 1)]
                if all(char.casefold() != char for char in chars):
                    out.append(f"{chars[0]}-{chars[-1]}")
        else:
            for body in _body_items(item, sealed=True):
                _case_offenders(body, ignorecase, out)


def _case_positions(pattern: str, verbose: bool) -> list[tuple[int, int]]:
    """Where upper-case letters (or ranges of them) stand as literals in the pattern text."""
    found: list[tuple[int, int]] = []
    ignore: list[bool] = [False]
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        char = pattern[i]
        if char == "\\":
            if pattern.startswith("N{", i + 1):
                close = pattern.find("}", i)
                i = n if close == -1 else close + 1
            else:
                i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
                i += 1
                continue
            if i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] not in "]\\":
                if not ignore[-1] and char.casefold() != char:
                    found.append((i, i + 3))
                i += 3
                continue
        elif char == "[":
            in_class = True
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            continue
        elif verbose and char == "#":
            while i < n and pattern[i] != "\n":
                i += 1
            continue
        elif char == "(":
            if pattern.startswith("(?#", i):
                close = pattern.find(")", i)
                i = n if close == -1 else close + 1
                continue
            if pattern.startswith("(?P=", i):
                close = pattern.find(")", i)
                i = n if close == -1 else close + 1
                continue
            if pattern.startswith("(?P<", i):
                close = pattern.find(">", i)
                ignore.append(ignore[-1])
                i = n if close == -1 else close + 1
                continue
            flags = re.match(r"\(\?([a-zA-Z]*)(?:-[a-zA-Z]*)?([:)])", pattern[i:])
            if flags is not None:
                turns_on = "i" in flags.group(1)
                if flags.group(2) == ":":
                    ignore.append(ignore[-1] or turns_on)
                elif turns_on:
                    ignore = [True for _ in ignore]
                i += flags.end()
                continue
            ignore.append(ignore[-1])
        elif char == ")" and len(ignore) > 1:
            ignore.pop()
        if not ignore[-1] and char.casefold() != char:
            found.append((i, i + 1))
        i += 1
    return found


def _check_case(ctx: _Context, regex: nodes.Regex, flags: int) -> None:
    modules = _sre()
    if modules is None:
        return
    parser, _ = modules
    try:
        parsed = parser.parse(regex.pattern, flags)
        state_flags = int(parsed.state.flags)
        if state_flags & re.IGNORECASE:
            return
        offenders: list[str] = []
        _case_offenders(list(parsed), False, offenders)
        if not offenders:
            return
        positions = _case_positions(regex.pattern, bool(state_flags & re.VERBOSE))
    except Exception:  # the private parser changed shape: skip the analysis
        return
    first = offenders[0]
    where = next(
        ((s, e) for s, e in positions if regex.pattern[s:e] == first),
        positions[0] if positions else None,
    )
    span = regex.span if where is None else _pattern_span(ctx, regex, *where)
    lowered = first.casefold()
    notes = []
    if len(offenders) > 1:
        notes.append(f"and {len(offenders) - 1} more in this pattern")
    suggestions = []
    if where is not None and len(first) == 1:
        suggestions = [_suggest(span, lowered, f"write `{lowered}`")]
    ctx.warning(
        "PL405",
        f"pattern contains `{first}`, which never matches lower-cased text",
        span,
        label="never matches",
        help=f"messages are lower-cased before matching; write `{lowered}` instead, "
        "or add the `i` flag",
        notes=notes,
        suggestions=suggestions,
    )


# ================================================================ pass 5: coherence
#
# Conditions are put in disjunctive normal form: a list of paths, each a conjunction
# of atoms (or negated atoms). Each path becomes a set of constraints: which category
# may be the one being checked (the "subject", with "" for "no category"), integer
# bounds per counter variable (counter, key, window), and required signal values.
# Implication between conditions is then checked path by path; it is sound (a "yes"
# is always right) but not complete, so it only ever produces warnings.

_NO_SUBJECT: Final = ""
_NEGATED: Final[Mapping[Comparator, Comparator]] = {
    ">=": "<",
    "<": ">=",
    ">": "<=",
    "<=": ">",
    "==": "!=",
    "!=": "==",
}

_Lit = tuple[Condition, bool]
_Var = tuple[str, str | None, int | None]


@dataclass(frozen=True, slots=True)
class _Range:
    """Whole numbers ``lo <= x <= hi`` (``hi`` None: unbounded) minus ``excluded``."""

    lo: int = 0
    hi: int | None = None
    excluded: frozenset[int] = frozenset()

    @staticmethod
    def of(op: Comparator, value: int) -> _Range:
        if op == ">=":
            return _Range(lo=value)
        if op == ">":
            return _Range(lo=value + 1)
        if op == "<=":
            return _Range(hi=value)
        if op == "<":
            return _Range(hi=value - 1)
        if op == "==":
            return _Range(lo=value, hi=value)
        return _Range(excluded=frozenset({value}))

    def meet(self, other: _Range) -> _Range:
        highs = [h for h in (self.hi, other.hi) if h is not None]
        return _Range(
            max(self.lo, other.lo),
            min(highs) if highs else None,
            self.excluded | other.excluded,
        )

    def contains(self, value: int) -> bool:
        return (
            self.lo <= value
            and (self.hi is None or value <= self.hi)
            and value not in self.excluded
        )

    def is_empty(self) -> bool:
        if self.hi is None:
            return False
        if self.lo > self.hi:
            return True
        if self.hi - self.lo + 1 > len(self.excluded):
            return False
        return all(value in self.excluded for value in range(self.lo, self.hi + 1))

    def within(self, other: _Range) -> bool:
        """Whether every value of this (non-empty) range is in ``other``."""
        low = self.lo
        while low in self.excluded:
            low += 1
        if low < other.lo:
            return False
        if other.hi is not None and (self.hi is None or self.hi > other.hi):
            return False
        return not any(self.contains(value) for value in other.excluded)


@dataclass(frozen=True, slots=True)
class _World:
    """What conditions range over: categories and their severities, counters' kinds."""

    subjects: frozenset[str]
    severities: Mapping[str, HarmSeverity | None]
    counters: Mapping[str, tuple[CounterKind | None, str | None]]

    def severity_set(self, op: Comparator, level: HarmSeverity, positive: bool) -> frozenset[str]:
        # A category whose severity is unknown (already an error) may satisfy either way.
        if positive:
            return frozenset(
                name for name, sev in self.severities.items()
                if sev is None or compare(sev, op, level)
            )
        return self.subjects - frozenset(
            name for name, sev in self.severities.items()
            if sev is not None and compare(sev, op, level)
        )

    def counts_failed_redirects(self, counter: str) -> bool:
        return self.counters.get(counter, (None, None))[0] is CounterKind.FAILED_REDIRECTS


def _window_le(a: int | None, b: int | None) -> bool:
    """``a <= b`` for windows, where None (no window) is the whole conversation."""
    return b is None or (a is not None and a <= b)


class _Path:
    """One conjunction of a condition's disjunctive normal form, as constraints."""

    def __init__(self, literals: tuple[_Lit, ...], world: _World) -> None:
        self.literals = literals
        self.world = world
        self.consistent = True
        self.bounds: dict[_Var, _Range] = {}
        self.signals: dict[str, bool] = {}
        subject = world.subjects
        for atom, positive in literals:
            if isinstance(atom, CounterCompare):
                op = atom.op if positive else _NEGATED[atom.op]
                var = (atom.counter, atom.key, atom.window)
                self.bounds[var] = self.bounds.get(var, _Range()).meet(_Range.of(op, atom.value))
            elif isinstance(atom, SeverityCompare):
                subject = subject & world.severity_set(atom.op, atom.level, positive)
            elif isinstance(atom, CategoryIn):
                names = frozenset(atom.names)
                subject = subject & (names if positive else world.subjects - names)
            elif isinstance(atom, SignalMatched):
                if self.signals.get(atom.name, positive) != positive:
                    self.consistent = False
                self.signals[atom.name] = positive
        self.raw_subject = subject
        # An unkeyed per-category (or per-severity) count is 0 with no category, so
        # requiring it to be at least 1 requires a category.
        self.subject = subject
        for var in self.bounds:
            counter, key, _ = var
            per = world.counters.get(counter, (None, None))[1]
            if key is None and per in ("category", "severity") and self._low(var) >= 1:
                self.subject = self.subject - {_NO_SUBJECT}
        self.satisfiable = (
            self.consistent
            and bool(self.subject)
            and not any(self.effective(var).is_empty() for var in self.bounds)
        )

    def _low(self, var: _Var) -> int:
        counter, key, window = var
        return max(
            [0]
            + [
                r.lo
                for (c, k, w), r in self.bounds.items()
                if c == counter and k == key and _window_le(w, window)
            ]
        )

    def effective(self, var: _Var) -> _Range:
        """Everything this path implies about ``var``, windows and caps included.

        A count within a shorter window is never more than within a longer one, and
        harmful turns or failed redirects within ``N`` turns are at most ``N``.
        """
        counter, key, window = var
        kind, per = self.world.counters.get(counter, (None, None))
        highs: list[int] = []
        if window is not None and kind in (CounterKind.FAILED_REDIRECTS, CounterKind.HARMFUL_TURNS):
            highs.append(window)
        if key is None and per in ("category", "severity") and self.subject <= {_NO_SUBJECT}:
            highs.append(0)
        excluded: frozenset[int] = frozenset()
        for (c, k, w), r in self.bounds.items():
            if c != counter or k != key:
                continue
            if _window_le(window, w) and r.hi is not None:
                highs.append(r.hi)
            if w == window:
                excluded = r.excluded
        return _Range(self._low(var), min(highs) if highs else None, excluded)

    def implies(self, other: _Path) -> bool:
        """Whether every situation satisfying this path satisfies ``other`` (sound)."""
        if not self.subject <= other.raw_subject:
            return False
        if any(self.signals.get(name) != value for name, value in other.signals.items()):
            return False
        return all(self.effective(var).within(r) for var, r in other.bounds.items())

    def requires_failed_redirects(self) -> bool:
        return any(
            self.world.counts_failed_redirects(var[0]) and self.effective(var).lo >= 1
            for var in self.bounds
        )

    def requires_harm(self) -> bool:
        return _NO_SUBJECT not in self.subject or any(
            self.effective(var).lo >= 1 for var in self.bounds
        )

    def requires_signal(self) -> bool:
        return any(self.signals.values())

    def describe(self) -> str:
        parts = []
        for atom, positive in self.literals:
            text = describe_condition(atom)
            if not positive:
                text = f"not {text}" if " " not in text else f"not ({text})"
            parts.append(text)
        return " and ".join(parts)

    def conflict(self) -> str:
        """Why this path can never hold, in words."""
        if not self.consistent:
            both = next(
                name for name in self.signals
                if any(isinstance(a, SignalMatched) and a.name == name and not p
                       for a, p in self.literals)
                and any(isinstance(a, SignalMatched) and a.name == name and p
                        for a, p in self.literals)
            )
            return f"`{both}` must both match and not match"
        if not self.subject:
            return "no category can satisfy every `severity`, `category in` and name test at once"
        for var in self.bounds:
            if self.effective(var).is_empty():
                counter, key, window = var
                shown = counter if key is None else f"{counter}[{key}]"
                if window is not None:
                    shown += f" within {window} turns"
                return f"no count of `{shown}` satisfies every bound on it"
        return "its parts contradict each other"


def _dnf(condition: Condition, positive: bool = True) -> list[tuple[_Lit, ...]] | None:
    """Disjunctive normal form as lists of literals; None past :data:`MAX_DISJUNCTS`."""
    if isinstance(condition, NotCondition):
        return _dnf(condition.item, not positive)
    if isinstance(condition, AllConditions | AnyCondition):
        conjunction = isinstance(condition, AllConditions) == positive
        parts = [_dnf(item, positive) for item in condition.items]
        if any(part is None for part in parts):
            return None
        if conjunction:
            result: list[tuple[_Lit, ...]] = [()]
            for part in parts:
                assert part is not None
                result = [left + right for left in result for right in part]
                if len(result) > MAX_DISJUNCTS:
                    return None
            return result
        flat = [path for part in parts if part is not None for path in part]
        return flat if len(flat) <= MAX_DISJUNCTS else None
    return [((condition, positive),)]


def _paths(condition: Condition, world: _World) -> list[_Path] | None:
    """The satisfiable paths of ``condition`` (empty when it can never hold)."""
    literals = _dnf(condition)
    if literals is None:
        return None
    return [path for path in (_Path(lits, world) for lits in literals) if path.satisfiable]


def _all_paths(condition: Condition, world: _World) -> list[_Path] | None:
    literals = _dnf(condition)
    return None if literals is None else [_Path(lits, world) for lits in literals]


def _implies(left: list[_Path], right: list[_Path]) -> bool:
    """Whether condition ``left`` implies ``right``; both given by satisfiable paths."""
    return bool(left) and all(any(a.implies(b) for b in right) for a in left)


def _must_fail_redirects(condition: Condition, world: _World, positive: bool = True) -> bool:
    """A cheap, sound check that every path requires failed redirects (no DNF needed)."""
    if isinstance(condition, NotCondition):
        return _must_fail_redirects(condition.item, world, not positive)
    if isinstance(condition, AllConditions | AnyCondition):
        results = [_must_fail_redirects(item, world, positive) for item in condition.items]
        conjunction = isinstance(condition, AllConditions) == positive
        return any(results) if conjunction else all(results)
    if isinstance(condition, CounterCompare) and world.counts_failed_redirects(condition.counter):
        op = condition.op if positive else _NEGATED[condition.op]
        return _Range.of(op, condition.value).lo >= 1
    return False


def _counter_names(condition: Condition) -> Iterator[str]:
    if isinstance(condition, CounterCompare):
        yield condition.counter
    elif isinstance(condition, AllConditions | AnyCondition):
        for item in condition.items:
            yield from _counter_names(item)
    elif isinstance(condition, NotCondition):
        yield from _counter_names(condition.item)


def _world_of(ctx: _Context) -> tuple[_World, set[str]]:
    """The analysis world of a checked file, plus counters too broken to reason about."""
    severities: dict[str, HarmSeverity | None] = {}
    counters: dict[str, tuple[CounterKind | None, str | None]] = {}
    broken: set[str] = set()
    for decl in ctx.decls:
        if ctx.by_name.get(decl.name) is not decl:
            continue
        if decl.kind == "category":
            level = decl.word("severity")
            severities[decl.name] = (
                HarmSeverity[level.upper()] if level in _SEVERITY_LEVELS and level else None
            )
        elif decl.kind == "counter":
            counts = decl.word("counts")
            per = decl.word("per", "category")
            if decl.poisoned or counts is None or per is None:
                broken.add(decl.name)
            counters[decl.name] = (
                CounterKind(counts) if counts in {k.value for k in CounterKind} else None,
                per,
            )
    world = _World(frozenset(severities) | {_NO_SUBJECT}, severities, counters)
    return world, broken


@dataclass(eq=False)
class _Analysed:
    decl: _Decl
    condition: Condition
    paths: list[_Path] | None  # None: too complex to analyse


def _coherence(ctx: _Context) -> None:
    """Protections gate every end; ends are a last resort; dead, unreachable, shadowed."""
    # Depends on: resolve and values (only conditions that passed are analysed).
    protections = ctx.of_kind("protection")
    rules = ctx.of_kind("rule")
    for protection in protections:
        action = protection.word("action")
        value = protection.value("action")
        if action in ("end", "warn") and value is not None:
            protection.bad.add("action")
            ctx.error(
                "PL309",
                f"protection `{protection.name}` cannot {action} the conversation",
                value.span,
                label="a protection's action is `escalate` or `continue`",
                help="protections exist to keep the conversation open when the user may be "
                "at risk; use `escalate` (human or crisis resources) or `continue` "
                "(a supportive message)",
                suggestions=[_suggest(value.span, "escalate")],
            )

    end_rules = [rule for rule in rules if rule.word("action") == "end"]
    declared = [d for d in ctx.decls if d.kind == "protection" and ctx.by_name.get(d.name) is d]
    if end_rules and not declared:
        first = end_rules[0]
        end_value = first.value("action")
        assert end_value is not None
        ctx.error(
            "PL310",
            f"rule `{first.name}` can end the conversation, but the policy has no protection",
            end_value.span,
            label="ends the conversation",
            secondary=[
                Label(rule.node.name.span, "also ends the conversation") for rule in end_rules[1:]
            ],
            help="declare a protection for users who may be at imminent risk, such as "
            "`protection imminent_risk { when: self_harm_risk action: escalate "
            'reason: "imminent-risk" }`; protections are checked first and block every end',
            notes=["no termination path may bypass a protection"],
        )

    world, broken = _world_of(ctx)
    kinds = ctx.kinds()
    analysed: list[_Analysed] = []
    for decl in protections + rules:
        value = decl.value("when")
        if value is None or not decl.ok("when"):
            continue
        try:
            condition = lower_condition(value, kinds)
        except Exception:  # a shape the checker let through; analysis is best effort
            continue
        if any(name in broken for name in _counter_names(condition)):
            continue
        analysed.append(_Analysed(decl, condition, _all_paths(condition, world)))
    analysed.sort(key=lambda item: item.decl.index)

    fr_counters = [name for name, (kind, _) in world.counters.items()
                   if kind is CounterKind.FAILED_REDIRECTS]
    for item in analysed:
        if item.decl.kind == "rule" and item.decl.word("action") == "end":
            _check_last_resort(ctx, item, world, fr_counters)

    if ctx.has_errors():
        return  # the warnings below reason about the whole file; avoid cascades
    _check_reachability(ctx, analysed)


def _check_last_resort(
    ctx: _Context, item: _Analysed, world: _World, fr_counters: list[str]
) -> None:
    when = item.decl.value("when")
    assert when is not None
    name = item.decl.name
    example = fr_counters[0] if fr_counters else "failed_redirects"
    fix = (
        f"require failed redirects on every path, as in `{example} >= 3 and (...)`"
        if fr_counters
        else "declare `counter failed_redirects { counts: failed_redirects }` and require "
        "it on every path, as in `failed_redirects >= 3 and (...)`"
    )
    help_text = f"{fix}; an `end` on a signal alone, such as a sincere request to end, needs none"
    if item.paths is None:
        if _must_fail_redirects(item.condition, world):
            return
        ctx.error(
            "PL313",
            f"condition of end rule `{name}` is too complex to prove ending is a last resort",
            when.span,
            label=f"more than {MAX_DISJUNCTS} ways to hold",
            help=f"split the rule into simpler ones, or {fix}",
        )
        return
    for path in item.paths:
        if not path.satisfiable:
            continue
        if path.requires_failed_redirects():
            continue
        if path.requires_signal() and not path.requires_harm():
            continue
        ctx.error(
            "PL311",
            f"ending must be a last resort: rule `{name}` can end without a failed redirect",
            when.span,
            label="can hold before any redirect has failed",
            help=help_text,
            notes=[f"for example when: {path.describe()}"],
        )
        return


def _check_reachability(ctx: _Context, analysed: list[_Analysed]) -> None:
    live: list[tuple[_Analysed, list[_Path]]] = []
    for item in analysed:
        if item.paths is None:
            continue
        satisfiable = [path for path in item.paths if path.satisfiable]
        when = item.decl.value("when")
        assert when is not None
        if not satisfiable:
            kind, name = item.decl.kind, item.decl.name
            ctx.warning(
                "PL407",
                f"{kind} `{name}` can never "
                + ("fire" if kind == "rule" else "hold")
                + ": its condition is contradictory",
                when.span,
                label="never holds",
                help=f"{item.paths[0].conflict() if item.paths else 'it has no parts'}; "
                "fix the bounds or names, or remove it",
            )
            continue
        live.append((item, satisfiable))

    protections = [(item, paths) for item, paths in live if item.decl.kind == "protection"]
    rules = [(item, paths) for item, paths in live if item.decl.kind == "rule"]
    for rule, paths in rules:
        if rule.decl.word("action") != "end":
            continue
        for protection, guard in protections:
            if "action" in protection.decl.bad or not _implies(paths, guard):
                continue
            ctx.warning(
                "PL406",
                f"end rule `{rule.decl.name}` is made dead by protection "
                f"`{protection.decl.name}`",
                rule.decl.node.name.span,
                label="can never end a conversation",
                secondary=[
                    Label(
                        protection.decl.node.name.span,
                        f"holds whenever `{rule.decl.name}` does",
                    )
                ],
                help="protections are checked first and block every end while they last; "
                "narrow the rule's condition so it can hold without the protection, "
                "or remove the rule",
            )
            break

    for index, (later, later_paths) in enumerate(rules):
        later_action = later.decl.word("action")
        for earlier, earlier_paths in rules[:index]:
            earlier_action = earlier.decl.word("action")
            a, b = earlier.decl.name, later.decl.name
            if later_action == earlier_action and _implies(later_paths, earlier_paths):
                ctx.warning(
                    "PL408",
                    f"rule `{b}` is shadowed by rule `{a}`",
                    later.decl.node.name.span,
                    label=f"can only repeat `{a}`",
                    secondary=[Label(earlier.decl.node.name.span, f"fires first: `{a}`")],
                    help=f"whenever `{b}` holds, `{a}` holds too and fires first with the same "
                    f"action; remove `{b}`, or make it the earlier rule if it is more specific",
                )
                break
            if (
                later_action != earlier_action
                and _implies(later_paths, earlier_paths)
                and _implies(earlier_paths, later_paths)
            ):
                ctx.warning(
                    "PL409",
                    f"rule `{b}` is delayed by rule `{a}`",
                    later.decl.node.name.span,
                    label=f"fires only after `{a}` has fired",
                    secondary=[Label(earlier.decl.node.name.span, "same condition, fires first")],
                    help=f"the conditions are equivalent and each rule fires at most once, so "
                    f"`{a}` ({earlier_action}) always fires first and `{b}` ({later_action}) "
                    "only at a later message; if that is intended, say so with a stricter "
                    f"condition on `{b}` (e.g. a higher count)",
                )
                break


# ================================================================ pass 6: lint


@dataclass
class _Uses:
    names: set[str] = field(default_factory=set)
    unkeyed_counter: bool = False
    severity_tests: list[tuple[Comparator, HarmSeverity]] = field(default_factory=list)
    severity_keys: set[str] = field(default_factory=set)
    keyword_lists: list[tuple[nodes.ListValue, frozenset[NormalizationConfig]]] = field(
        default_factory=list
    )
    """Every keyword list, with the normalizations it is matched under."""
    list_normalizations: dict[str, set[NormalizationConfig]] = field(default_factory=dict)


def _collect_uses(ctx: _Context) -> _Uses:
    """Every name any declaration mentions, broken declarations included (no cascades)."""
    uses = _Uses()
    counters = {d.name for d in ctx.decls if d.kind == "counter"}

    def detector(value: nodes.Value, config: NormalizationConfig) -> None:
        for item in _children(value):
            detector(item, config)
        if isinstance(value, nodes.Keywords):
            if isinstance(value.source, nodes.Ref):
                uses.names.add(value.source.name.text)
                uses.list_normalizations.setdefault(value.source.name.text, set()).add(config)
            elif isinstance(value.source, nodes.ListValue):
                uses.keyword_lists.append((value.source, frozenset((config,))))
        elif isinstance(value, nodes.PatternMatch) and isinstance(value.source, nodes.Ref):
            uses.names.add(value.source.name.text)

    def condition(value: nodes.Value) -> None:
        for item in _children(value):
            condition(item)
        if isinstance(value, nodes.Ref):
            uses.names.add(value.name.text)
        elif isinstance(value, nodes.Membership):
            uses.names.update(i.name.text for i in value.options.items if isinstance(i, nodes.Ref))
        elif isinstance(value, nodes.Comparison):
            uses.names.add(value.subject.text)
            if value.key is not None:
                uses.names.add(value.key.text)
                uses.severity_keys.add(value.key.text)
            elif value.subject.text in counters:
                uses.unkeyed_counter = True
            if (
                value.subject.text == "severity"
                and isinstance(value.operand, nodes.Ref)
                and value.operand.name.text in _SEVERITY_LEVELS
            ):
                level = HarmSeverity[value.operand.name.text.upper()]
                uses.severity_tests.append((value.op, level))

    declared_lists: list[tuple[str, nodes.ListValue]] = []
    for decl in ctx.decls:
        node = decl.node
        if node.value is not None and decl.kind == "list" and isinstance(
            node.value, nodes.ListValue
        ):
            declared_lists.append((decl.name, node.value))
        if node.body is None:
            continue
        config = _normalization_of(decl)
        for prop in node.body.properties:
            if prop.key.text in _DETECTOR_KEYS:
                detector(prop.value, config)
            elif prop.key.text == "when":
                condition(prop.value)
    for name, terms in declared_lists:
        configs = uses.list_normalizations.get(name) or {DEFAULT_NORMALIZATION}
        uses.keyword_lists.append((terms, frozenset(configs)))
    return uses


def _normalization_of(decl: _Decl) -> NormalizationConfig:
    """The ``normalize`` configuration of a declaration (the default when it is broken)."""
    value = decl.value("normalize")
    if value is None or not decl.ok("normalize"):
        return DEFAULT_NORMALIZATION
    return normalization(value)


_UNUSED_HELP: Final[Mapping[str, str]] = {
    "list": "use it in a detector, as in `detect: keywords {name}`, or remove it",
    "pattern": "use it in a detector, as in `detect: pattern {name}`, or remove it",
    "signal": "use it in a rule or protection, as in `when: {name}`, or remove it",
    "counter": "compare it in a rule, as in `when: {name} >= 3`, or remove it",
}


def _lint(ctx: _Context) -> None:
    """Unused declarations and categories, counters that never count, duplicate keywords."""
    uses = _collect_uses(ctx)
    has_redirect = any(d.kind == "redirect" for d in ctx.decls)
    for decl in ctx.decls:
        if decl.poisoned or ctx.by_name.get(decl.name) is not decl:
            continue
        name = decl.name
        if decl.kind in _UNUSED_HELP and name not in uses.names | ctx.guessed:
            ctx.warning(
                "PL401",
                f"{decl.kind} `{name}` is never used",
                decl.node.name.span,
                label="declared here",
                help=_UNUSED_HELP[decl.kind].format(name=name),
            )
        if (
            decl.kind == "category"
            and name not in ctx.guessed
            and not _category_used(decl, uses)
        ):
            ctx.warning(
                "PL402",
                f"category `{name}` is never acted on",
                decl.node.name.span,
                label="detected, but no rule or protection looks at it",
                help=f"refer to it in a rule or protection (`when: {name}`, "
                f"`category in [{name}]`), or in a `severity` test or unkeyed counter that "
                "covers it; otherwise remove it",
            )
        if decl.kind == "counter" and not has_redirect:
            counts = decl.word("counts")
            value = decl.value("counts")
            if counts in ("failed_redirects", "redirects") and value is not None:
                ctx.warning(
                    "PL403",
                    f"counter `{name}` can never count: the policy declares no `redirect`",
                    value.span,
                    label=f"counts {counts.replace('_', ' ')}",
                    help="declare how to recognise the assistant's refusals, as in "
                    '`redirect refusal { detect: annotation "redirect" }`',
                )
    for terms, configs in uses.keyword_lists:
        _duplicate_keywords(ctx, terms, configs)


def _category_used(decl: _Decl, uses: _Uses) -> bool:
    if decl.name in uses.names or uses.unkeyed_counter:
        return True
    level = decl.word("severity")
    if level not in _SEVERITY_LEVELS or level is None:
        return True  # unknown severity is already an error; do not guess
    severity = HarmSeverity[level.upper()]
    if level in uses.severity_keys:
        return True
    return any(compare(severity, op, other) for op, other in uses.severity_tests)


def _duplicate_keywords(
    ctx: _Context, terms: nodes.ListValue, configs: frozenset[NormalizationConfig]
) -> None:
    """Keywords that are the same under every normalization the list is matched with."""
    ordered = sorted(configs, key=lambda config: config.off)
    seen: dict[tuple[str, ...], nodes.String] = {}
    for item in terms.items:
        if not isinstance(item, nodes.String):
            continue
        key = tuple(canonical_term(item.value, config) for config in ordered)
        first = seen.get(key)
        if first is None:
            seen[key] = item
            continue
        notes = []
        if first.value != item.value:
            notes.append(
                f"`{first.value}` and `{item.value}` are the same keyword: both match "
                f"`{key[0]}` once text is normalized (see Matching in docs/language.md)"
            )
        ctx.warning(
            "PL404",
            f"duplicate keyword `{item.value}`",
            item.span,
            label="repeated here",
            secondary=[Label(first.span, "first listed here")],
            help="remove the repeated keyword",
            notes=notes,
        )


# ================================================================ pass 7: hygiene

BIDI_CONTROLS: Final = frozenset(
    chr(code) for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
INVISIBLE: Final = frozenset(chr(code) for code in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF))


def _regions(text: str) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` of every string, pattern literal and comment in the text.

    A small lexer mirroring the grammar's STRING, REGEX and COMMENT terminals, so
    that hygiene and suppression comments work on the exact text.
    """
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in '"/':
            kind = "string" if char == '"' else "pattern"
            j = i + 1
            while j < n and text[j] not in (char, "\n"):
                j += 2 if text[j] == "\\" and j + 1 < n and text[j + 1] != "\n" else 1
            if j < n and text[j] == char:
                j += 1
                while kind == "pattern" and j < n and "a" <= text[j] <= "z":
                    j += 1
            end = min(j, n)
            out.append((kind, i, end))
            i = end
        elif char == "#":
            end = text.find("\n", i)
            end = n if end == -1 else end
            out.append(("comment", i, end))
            i = end
        else:
            i += 1
    return out


def _region_at(regions: Sequence[tuple[str, int, int]], offset: int) -> str:
    for kind, start, end in regions:
        if start <= offset < end:
            return kind
    return "text"


def _hygiene(ctx: _Context) -> None:
    """Bidirectional controls and invisible characters anywhere in the text.

    A run of adjacent ones of the same kind is one finding, so a line of them gives
    one warning, not one per character.
    """
    text = ctx.source.text
    if text.isascii():
        return
    regions = _regions(text)
    index, length = 0, len(text)
    while index < length:
        is_bidi = text[index] in BIDI_CONTROLS
        if not is_bidi and text[index] not in INVISIBLE:
            index += 1
            continue
        stop = index + 1
        while stop < length and (
            text[stop] in BIDI_CONTROLS
            if is_bidi
            else text[stop] in INVISIBLE and text[stop] not in BIDI_CONTROLS
        ):
            stop += 1
        _hidden_run(ctx, regions, index, text[index:stop], is_bidi)
        index = stop


def _hidden_run(
    ctx: _Context, regions: list[tuple[str, int, int]], offset: int, run: str, is_bidi: bool
) -> None:
    """Report one run of bidi controls (PL501) or invisible characters (PL502)."""
    where = _region_at(regions, offset)
    place = {"text": "the policy text"}.get(where, f"a {where}")
    shown = [f"U+{ord(char):04X}" for char in run[:4]]  # a run can be thousands long
    if where == "string":
        replacement = "".join(f"\\u{{{ord(char):X}}}" for char in run)
    elif where == "pattern":
        replacement = "".join(f"\\u{ord(char):04x}" for char in run)
    else:
        replacement = ""
    one = len(run) == 1
    them = "it" if one else "them"
    if not replacement:
        fix = f"remove {them}"
        change = f"remove {shown[0]}" if one else "remove them"
    elif one:
        fix = f"remove it, or write the escape `{replacement}` if it is intended"
        change = f"write `{replacement}`"
    elif len(replacement) <= 60:
        fix = f"remove them, or write the escapes `{replacement}` if they are intended"
        change = f"write `{replacement}`"
    else:
        fix = "remove them, or write them as escapes if they are intended"
        change = "write them as escapes"
    span = Span(offset, offset + len(run))
    suggestion = Suggestion(span, replacement, change, Applicability.SAFE)
    if one:
        what = shown[0]
    else:
        listed = ", ".join(shown) + (f" and {len(run) - 4:,} more" if len(run) > 4 else "")
        what = f"{len(run):,} in a row ({listed})"
    if is_bidi:
        ctx.warning(
            "PL501",
            f"bidirectional control character{'' if one else 's'} {what} in {place}",
            span,
            label="invisible; changes how the text around it is displayed"
            if one
            else "invisible; they change how the text around them is displayed",
            help='text can read differently from what it is ("Trojan Source"); ' + fix,
            suggestions=[suggestion],
        )
    else:
        ctx.warning(
            "PL502",
            f"invisible character{'' if one else 's'} {what} in {place}",
            span,
            label="invisible character" if one else "invisible characters",
            help=f"{them} {'makes' if one else 'make'} two different texts look the same; " + fix,
            suggestions=[suggestion],
        )


# ================================================================ the pass table

#: The semantic passes, in the order they run (OPA-style stage table). Each pass reads
#: what earlier ones recorded on the shared context; later passes skip poisoned
#: declarations and bad properties.
PASSES: Final[tuple[tuple[str, Callable[[_Context], None]], ...]] = (
    ("declare", _declare),
    ("properties", _properties),
    ("resolve", _resolve),
    ("values", _values),
    ("coherence", _coherence),
    ("lint", _lint),
    ("hygiene", _hygiene),
)


# ================================================================ suppressions

_ALLOW_RE: Final = re.compile(r"policylang:\s*allow\(([^)]*)\)")
_CODE_TOKEN_RE: Final = re.compile(r"[^,\s]+")
_UNSUPPRESSIBLE: Final = frozenset({"PL410", "PL411"})


def _suppressible(code: str) -> bool:
    return code[:3] in ("PL4", "PL5") and code not in _UNSUPPRESSIBLE


@dataclass(eq=False)
class _Allow:
    code: str
    span: Span
    lines: frozenset[int]
    used: bool = False


def _apply_suppressions(source: SourceFile, sink: DiagnosticSink) -> list[Diagnostic]:
    """Drop lint findings an ``allow(...)`` comment covers; report bad or unused ones.

    A comment covers its own line and, when it stands alone on its line, the next
    one. Errors are never suppressed.
    """
    text = source.text
    allows: list[_Allow] = []
    problems = DiagnosticSink()
    for kind, start, end in _regions(text):
        if kind != "comment":
            continue
        match = _ALLOW_RE.search(text, start, end)
        if match is None:
            continue
        line, _ = source.line_col(start)
        alone = not text[source.line_span(line).start : start].strip()
        lines = frozenset({line, line + 1} if alone else {line})
        for token in _CODE_TOKEN_RE.finditer(match.group(1)):
            code = token.group(0)
            span = Span(match.start(1) + token.start(), match.start(1) + token.end())
            if code not in codes.CODES:
                problems.warning(
                    "PL411",
                    f"unknown diagnostic code `{code}` in `allow(...)`",
                    source.path,
                    span,
                    label="not a diagnostic code",
                    help="write codes as `PL401`; see docs/diagnostics.md",
                )
            elif not _suppressible(code):
                problems.warning(
                    "PL411",
                    f"`{code}` cannot be suppressed",
                    source.path,
                    span,
                    label=f"{codes.lookup(code).severity.value} code",
                    help="only lint warnings (PL4xx, PL5xx) can be allowed; errors must be fixed",
                )
            else:
                allows.append(_Allow(code, span, lines))
    kept: list[Diagnostic] = []
    for diagnostic in sink.diagnostics:
        if _suppressible(diagnostic.code) and diagnostic.severity is not Severity.ERROR:
            line, _ = source.line_col(min(diagnostic.span.start, len(text)))
            covering = [a for a in allows if a.code == diagnostic.code and line in a.lines]
            if covering:
                for allow in covering:
                    allow.used = True
                continue
        kept.append(diagnostic)
    for allow in allows:
        if not allow.used:
            problems.warning(
                "PL410",
                f"unused suppression: no `{allow.code}` finding here",
                source.path,
                allow.span,
                label="suppresses nothing",
                help="remove it; a suppression covers its own line, and the next line when "
                "the comment stands alone",
            )
    return kept + list(problems.diagnostics)


# ================================================================ limits


def _check_limits(ctx: _Context, limits: PolicyLimits) -> None:
    """PL316: a policy within the limits on its size, checked before every other pass.

    Counts the declarations, the detectors (``keywords``, ``pattern``, ``score`` and
    ``annotation``), the keyword terms (the strings of lists, and a single-term
    ``keywords "..."``), and measures every pattern. A count over its limit is reported
    once, at the first item beyond it; a pattern over its limit, at the pattern.
    """
    how = "raise the limit with the environment variable"
    declarations = ctx.tree.declarations
    most = limits.max_declarations
    if len(declarations) > most:
        ctx.error(
            "PL316",
            f"policy has {len(declarations):,} declarations, over the limit of {most:,}",
            declarations[most].name.span,
            label=f"declaration {most + 1:,}",
            help="the count includes inherited and imported declarations; remove those the"
            f" policy does not need, or {how} POLICYLANG_MAX_DECLARATIONS",
        )
    detectors = terms = 0
    detector_beyond: Span | None = None
    term_beyond: Span | None = None
    stack: list[object] = list(reversed(declarations))
    while stack:
        node = stack.pop()
        if isinstance(node, Span):
            continue
        if isinstance(node, tuple):
            stack.extend(reversed(node))
            continue
        if isinstance(node, _DETECTOR_LEAVES):
            detectors += 1
            if detectors == limits.max_detectors + 1:
                detector_beyond = node.span
        strings: tuple[object, ...] = ()
        if isinstance(node, nodes.ListValue):
            strings = node.items
        elif isinstance(node, nodes.Keywords) and isinstance(node.source, nodes.String):
            strings = (node.source,)
        for item in strings:
            if isinstance(item, nodes.String):
                terms += 1
                if terms == limits.max_keyword_terms + 1:
                    term_beyond = item.span
        if isinstance(node, nodes.Regex) and len(node.pattern) > limits.max_pattern_length:
            ctx.error(
                "PL316",
                f"pattern is {len(node.pattern):,} characters long, over the limit of"
                f" {limits.max_pattern_length:,}",
                node.span,
                label="this pattern",
                help="match a long alternation of words with a `list` and `keywords`, or"
                f" {how} POLICYLANG_MAX_PATTERN_LENGTH",
            )
        if dataclasses.is_dataclass(node):
            stack.extend(
                reversed([getattr(node, item.name) for item in dataclasses.fields(node)])
            )
    if detector_beyond is not None:
        ctx.error(
            "PL316",
            f"policy has {detectors:,} detectors, over the limit of {limits.max_detectors:,}",
            detector_beyond,
            label=f"detector {limits.max_detectors + 1:,}",
            help=f"merge keyword detectors into lists, or {how} POLICYLANG_MAX_DETECTORS",
        )
    if term_beyond is not None:
        ctx.error(
            "PL316",
            f"policy has {terms:,} keyword terms, over the limit of"
            f" {limits.max_keyword_terms:,}",
            term_beyond,
            label=f"term {limits.max_keyword_terms + 1:,}",
            help=f"remove terms that other terms already match, or {how}"
            " POLICYLANG_MAX_KEYWORD_TERMS",
        )


# ================================================================ entry points


_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _internal(sink: DiagnosticSink, source: SourceFile, stage: str, bug: Exception) -> None:
    sink.error(
        "PL900",
        f"internal error in the `{stage}` stage: {type(bug).__name__}",
        source.path,
        Span.empty(0),
        help=_HELP_BUG,
        notes=[str(bug).splitlines()[0]] if str(bug) else [],
    )


def analyze(
    source: SourceFile,
    sink: DiagnosticSink,
    *,
    tenant: str | None = None,
    limits: PolicyLimits | None = None,
) -> ir.PolicySpec | None:
    """Parse, compose, check, lint and lower one policy file.

    A policy that extends, imports, overrides or declares parameters is first composed
    (:mod:`policylang.compose`) with every file it names; ``tenant`` is the path of a
    tenant file whose settings apply. Every finding goes to ``sink``, located in the
    file it is about. Returns the lowered policy, or None when there is any error
    (warnings do not stop lowering). Never raises for bad policy text; a compiler bug
    becomes a PL900 internal-error diagnostic.

    ``limits`` bounds the size of the policy and of every file it names (by default
    :meth:`PolicyLimits.from_environment`); a policy beyond one is refused with PL316,
    before the other passes run, or PL003 for a file too large to read. A ``source``
    that :meth:`SourceFile.read` refused is not analysed: its PL003 error came with it.
    """
    surrogate = _LONE_SURROGATE.search(source.text)
    if surrogate is not None:
        # Only text handed over as a str can hold one (decoded files cannot); it has no
        # UTF-8 form, so it could be neither hashed nor written into a compiled module.
        sink.error(
            "PL001",
            f"text holds a lone surrogate U+{ord(surrogate.group()):04X}, which is not a character",
            source.path,
            Span(surrogate.start(), surrogate.end()),
            label="lone surrogate",
            help="pass the policy text as valid Unicode (read files as UTF-8)",
        )
        return None
    if source.refused:
        return None
    policy_limits = limits if limits is not None else PolicyLimits.from_environment()
    local = DiagnosticSink()
    tree: nodes.PolicyFile | None = None
    try:
        tree = builder.parse(source, local)
    except Exception as bug:
        _internal(local, source, "parse", bug)
    composition: compose.Composition | None = None
    if tree is not None and (tenant is not None or compose.needs_composition(tree)):
        try:
            composition = compose.compose(
                source, tree, local, tenant=tenant, limits=policy_limits
            )
        except Exception as bug:
            _internal(local, source, "compose", bug)
        if composition is None:
            tree = None
    kept: list[Diagnostic] = list(local.diagnostics)
    spec: ir.PolicySpec | None = None
    if tree is not None:
        checked = source if composition is None else composition.source
        checked_tree = tree if composition is None else composition.tree
        passes = DiagnosticSink()
        context = _Context(checked, checked_tree, passes)
        try:
            _check_limits(context, policy_limits)
        except Exception as bug:
            _internal(passes, source, "limits", bug)
        # Beyond a limit, the other passes could take too long: the policy is refused.
        for name, run in () if passes.has_errors else PASSES:
            try:
                run(context)
            except Exception as bug:
                _internal(passes, source, name, bug)
                break
        try:
            found = _apply_suppressions(checked, passes)
        except Exception as bug:
            _internal(passes, source, "suppressions", bug)
            found = list(passes.diagnostics)
        if composition is not None:
            # Findings about inherited files belong to those files' own lint runs;
            # errors always count, wherever they point.
            found = [
                composition.remap(d)
                for d in found
                if d.severity is Severity.ERROR or composition.in_root(d)
            ]
        kept.extend(found)
        if not any(d.severity is Severity.ERROR for d in kept):
            try:
                spec = lower(
                    checked_tree,
                    checked,
                    composition if composition is not None and composition.composed else None,
                )
            except Exception as bug:
                internal = DiagnosticSink()
                _internal(internal, source, "lower", bug)
                kept.extend(internal.diagnostics)
    sink.extend(kept)
    if any(d.severity is Severity.ERROR for d in kept):
        return None
    return spec


# ================================================================ termination paths


@dataclass(frozen=True, slots=True)
class TerminationPath:
    """One way a conversation can end: an ``end`` rule and the protections gating it.

    Protections are checked before rules at every user message, and while one holds
    (for as long as it ``lasts``) no ``end`` may fire, so every protection gates every
    end rule. ``last_resort`` says why the end is allowed at all: ``"failed-redirects"``
    when every way the condition can hold requires failed redirects, ``"signal"`` when
    some way holds on a signal alone (a sincere request to end).
    """

    rule: str
    line: int
    column: int
    condition: str
    protections: tuple[str, ...]
    last_resort: str

    def describe(self) -> str:
        """One line for ``lint -v``: the rule, its gate and its justification."""
        gate = ", ".join(f"`{name}`" for name in self.protections) or "nothing (unprotected)"
        why = (
            "requires failed redirects on every path"
            if self.last_resort == "failed-redirects"
            else "can end on a signal alone"
        )
        return (
            f"end rule `{self.rule}` (line {self.line}) when {self.condition}: "
            f"blocked while any of {gate} holds; {why}"
        )


def termination_paths(spec: ir.PolicySpec) -> list[TerminationPath]:
    """For each ``end`` rule of a checked policy, the protections that gate it."""
    world = _World(
        subjects=frozenset(c.name for c in spec.categories) | {_NO_SUBJECT},
        severities={c.name: c.severity for c in spec.categories},
        counters={c.name: (c.counts, c.per.value) for c in spec.counters},
    )
    protections = tuple(p.name for p in spec.protections)
    out: list[TerminationPath] = []
    for rule in spec.rules:
        if rule.action is not Outcome.END:
            continue
        paths = _paths(rule.when, world)
        if paths is None:
            every = _must_fail_redirects(rule.when, world)
        else:
            every = all(path.requires_failed_redirects() for path in paths)
        out.append(
            TerminationPath(
                rule=rule.name,
                line=rule.line,
                column=rule.column,
                condition=describe_condition(rule.when),
                protections=protections,
                last_resort="failed-redirects" if every else "signal",
            )
        )
    return out
