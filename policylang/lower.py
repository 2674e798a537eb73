"""Lowering a checked policy AST to :mod:`policylang.ir`.

Runs only on trees the checker accepted (no errors): every reference resolves and every
value has the right type, so anything unexpected here is a compiler bug and raises
:class:`LoweringError` (the caller turns it into PL900). Lowering fills defaults,
resolves names, builds one regular expression per keywords detector from escaped
literal parts (user text never reaches a regex unescaped) of terms normalized with the
declaration's ``normalize`` configuration, and computes each counter's ``horizon``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Protocol

from policylang import ir, nodes
from policylang.normalize import (
    DEFAULT_NORMALIZATION,
    STEPS,
    NormalizationConfig,
    normalize_term,
)
from policylang.runtime import (
    AllConditions,
    AnyCondition,
    CategoryIn,
    Condition,
    Counter,
    CounterCompare,
    CounterKind,
    CounterScope,
    NotCondition,
    Outcome,
    PolicyLink,
    Severity,
    SeverityCompare,
    SignalMatched,
)
from policylang.source import SourceFile

__all__ = [
    "LABEL_LIMIT",
    "LoweringError",
    "canonical_term",
    "describe_condition",
    "detector_label",
    "keyword_alternative",
    "keywords_regex",
    "lower",
    "lower_condition",
    "normalization",
    "source_path",
]

#: Evidence labels longer than this many characters are shortened with ``…``.
LABEL_LIMIT = 60

#: Policy regex flag letters and the ``re`` flag names they stand for.
REGEX_FLAGS: Mapping[str, str] = {"i": "I", "m": "M", "s": "S", "x": "X"}

_WORD_WILDCARD = r"\w*"


class LoweringError(Exception):
    """The tree does not have the shape the checker guarantees: a compiler bug."""


# ---------------------------------------------------------------- keywords


def canonical_term(term: str, config: NormalizationConfig = DEFAULT_NORMALIZATION) -> str:
    """Normalize a keyword as message text is normalized, with whitespace collapsed.

    ``"Nerve  Agent"`` and ``"nerve agent"`` have the same canonical form, so they are
    the same keyword. ``config`` is the ``normalize`` configuration of the declaration
    the keyword is matched for: the term must be normalized with the same steps as
    the text, so that ``"b0mb"`` and ``"bomb"`` meet when leetspeak folding is on.
    """
    text = normalize_term(term, config).strip()
    lead = text.startswith("*")
    trail = len(text) > 1 and text.endswith("*")
    core = text[1 if lead else 0 : len(text) - 1 if trail else len(text)]
    return ("*" if lead else "") + " ".join(core.split()) + ("*" if trail else "")


def keyword_alternative(term: str) -> str:
    """Regex source for one canonical term: escaped words joined by ``\\s+``.

    A leading or trailing ``*`` becomes ``\\w*`` (any letters there). Every word goes
    through :func:`re.escape`, so regex metacharacters in a term match literally.
    """
    lead = term.startswith("*")
    trail = len(term) > 1 and term.endswith("*")
    core = term[1 if lead else 0 : len(term) - 1 if trail else len(term)]
    body = r"\s+".join(re.escape(word) for word in core.split())
    return (_WORD_WILDCARD if lead else "") + body + (_WORD_WILDCARD if trail else "")


def keywords_regex(terms: Iterable[str]) -> str:
    """One whole-word pattern matching any of the canonical ``terms``.

    ``(?<!\\w)(?:alt1|alt2|...)(?!\\w)``, alternatives longest first then alphabetical,
    so a longer phrase wins over a term it starts with and the output is deterministic.
    """
    unique = sorted(set(terms), key=lambda term: (-len(term), term))
    if not unique:
        raise LoweringError("a keywords detector needs at least one term")
    alternatives = "|".join(keyword_alternative(term) for term in unique)
    return rf"(?<!\w)(?:{alternatives})(?!\w)"


def normalization(value: nodes.Value | None) -> NormalizationConfig:
    """The configuration a checked ``normalize: { step: on|off ... }`` block gives.

    Steps the block does not name stay on.
    """
    if value is None:
        return DEFAULT_NORMALIZATION
    if not isinstance(value, nodes.Block):
        raise LoweringError("`normalize` is not a block")
    steps = set(STEPS)
    for prop in value.properties:
        step = prop.key.text
        if step not in STEPS or not isinstance(prop.value, nodes.Ref):
            raise LoweringError(f"bad normalization step `{step}`")
        switch = prop.value.name.text
        if switch == "off":
            steps.discard(step)
        elif switch != "on":
            raise LoweringError(f"normalization step `{step}` is neither on nor off")
    return NormalizationConfig.of(steps)


# ---------------------------------------------------------------- labels


def _quote(value: str) -> str:
    """A string as the policy language would write it."""
    out: list[str] = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif not char.isprintable():
            out.append(f"\\u{{{ord(char):X}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _shorten(label: str) -> str:
    if len(label) <= LABEL_LIMIT:
        return label
    return label[: LABEL_LIMIT - 1] + "…"


def detector_label(node: nodes.Value, source: SourceFile) -> str:
    """The evidence label of a leaf detector: ``keywords agents``, ``pattern /x/`` ...

    Labels are at most :data:`LABEL_LIMIT` characters; longer ones end in ``…``.
    """
    match node:
        case nodes.Keywords(source=nodes.Ref(name=name)):
            label = f"keywords {name.text}"
        case nodes.Keywords(source=nodes.String(value=value)):
            label = f"keywords {_quote(value)}"
        case nodes.Keywords(source=nodes.ListValue(items=items)):
            terms = ", ".join(
                _quote(item.value) for item in items if isinstance(item, nodes.String)
            )
            label = f"keywords [{terms}]"
        case nodes.PatternMatch(source=nodes.Ref(name=name)):
            label = f"pattern {name.text}"
        case nodes.PatternMatch(source=nodes.Regex(span=span)):
            label = f"pattern {source.span_text(span)}"
        case nodes.Score(key=key, op=op, threshold=threshold):
            label = f"score {_quote(key.value)} {op} {source.span_text(threshold.span)}"
        case nodes.Annotation(label=text):
            label = f"annotation {_quote(text.value)}"
        case _:
            raise LoweringError(f"no label for {type(node).__name__}")
    return _shorten(label)


# ---------------------------------------------------------------- conditions


def _severity(name: str) -> Severity:
    try:
        return Severity[name.upper()]
    except KeyError:
        raise LoweringError(f"unknown severity {name!r}") from None


def _count(number: nodes.Number | nodes.Ref) -> int:
    if isinstance(number, nodes.Ref):
        raise LoweringError(f"parameter `{number.name.text}` was not replaced by its value")
    if not number.is_integer or number.value != int(number.value):
        raise LoweringError(f"count {number.value!r} is not a whole number")
    return int(number.value)


def _count_or_fraction(number: nodes.Number | nodes.Ref) -> float:
    if isinstance(number, nodes.Ref):
        raise LoweringError(f"parameter `{number.name.text}` was not replaced by its value")
    return number.value


def lower_condition(value: nodes.Value, kinds: Mapping[str, str]) -> Condition:
    """Lower a checked ``when`` value to a runtime condition.

    ``kinds`` maps each declared name to its declaration kind (``signal``, ``category``,
    ``counter`` ...). ``and``/``all`` and ``or``/``any`` are flattened, and a bare name
    becomes :class:`CategoryIn` or :class:`SignalMatched` by what it names.
    """
    match value:
        case nodes.Or(items=items) | nodes.AnyOf(items=items):
            parts = _flatten(
                (lower_condition(item, kinds) for item in items), AnyCondition
            )
            return parts[0] if len(parts) == 1 else AnyCondition(parts)
        case nodes.And(items=items) | nodes.AllOf(items=items):
            parts = _flatten(
                (lower_condition(item, kinds) for item in items), AllConditions
            )
            return parts[0] if len(parts) == 1 else AllConditions(parts)
        case nodes.Not(item=item):
            return NotCondition(lower_condition(item, kinds))
        case nodes.Ref(name=name):
            kind = kinds.get(name.text)
            if kind == "category":
                return CategoryIn((name.text,))
            if kind == "signal":
                return SignalMatched(name.text)
            raise LoweringError(f"`{name.text}` is a {kind}, not a condition")
        case nodes.Membership(options=options):
            names: list[str] = []
            for item in options.items:
                if not isinstance(item, nodes.Ref):
                    raise LoweringError("category list holds a non-name")
                if item.name.text not in names:
                    names.append(item.name.text)
            return CategoryIn(tuple(names))
        case nodes.Comparison(subject=subject, key=key, op=op, operand=operand, window=window):
            if subject.text == "severity":
                if not isinstance(operand, nodes.Ref):
                    raise LoweringError("severity compared to a non-level")
                return SeverityCompare(op, _severity(operand.name.text))
            if kinds.get(subject.text) != "counter" or not isinstance(operand, nodes.Number):
                raise LoweringError(f"comparison of `{subject.text}`")
            return CounterCompare(
                counter=subject.text,
                key=None if key is None else key.text,
                op=op,
                value=_count(operand),
                window=None if window is None else _count(window.turns),
            )
    raise LoweringError(f"{type(value).__name__} is not a condition")


def _flatten(parts: Iterable[Condition], kind: type[AnyCondition | AllConditions]) -> tuple[
    Condition, ...
]:
    out: list[Condition] = []
    for part in parts:
        if isinstance(part, kind):
            out.extend(part.items)
        else:
            out.append(part)
    return tuple(out)


def _precedence(condition: Condition) -> int:
    if isinstance(condition, AnyCondition):
        return 1
    if isinstance(condition, AllConditions):
        return 2
    return 3


def describe_condition(condition: Condition) -> str:
    """Write a runtime condition back in policy syntax, parenthesized only where needed."""

    def wrap(part: Condition, at_least: int) -> str:
        text = describe_condition(part)
        return f"({text})" if _precedence(part) < at_least else text

    match condition:
        case CounterCompare(counter=counter, key=key, op=op, value=value, window=window):
            subject = counter if key is None else f"{counter}[{key}]"
            within = "" if window is None else f" within {window} turns"
            return f"{subject} {op} {value}{within}"
        case SeverityCompare(op=op, level=level):
            return f"severity {op} {level.label}"
        case CategoryIn(names=names):
            if len(names) == 1:
                return names[0]
            return f"category in [{', '.join(names)}]"
        case SignalMatched(name=name):
            return name
        case AllConditions(items=items):
            return " and ".join(wrap(item, 2) for item in items)
        case AnyCondition(items=items):
            return " or ".join(wrap(item, 1) for item in items)
        case NotCondition(item=item):
            return f"not {wrap(item, 3)}"
    raise LoweringError(f"cannot describe {type(condition).__name__}")


def _windows(condition: Condition) -> Iterable[tuple[str, int]]:
    match condition:
        case CounterCompare(counter=counter, window=window) if window is not None:
            yield counter, window
        case AllConditions(items=items) | AnyCondition(items=items):
            for item in items:
                yield from _windows(item)
        case NotCondition(item=item):
            yield from _windows(item)


# ---------------------------------------------------------------- the whole file


def source_path(path: str) -> str:
    """The path recorded in the IR: as given, in posix form; only the file name if absolute.

    Absolute paths would make compiled output depend on where the project lives.
    """
    posix = path.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:/", posix):
        return posix.rstrip("/").rsplit("/", 1)[-1]
    return PurePosixPath(posix).as_posix() if posix else posix


class _Lowerer:
    def __init__(
        self,
        tree: nodes.PolicyFile,
        source: SourceFile,
        composition: Composed | None = None,
    ) -> None:
        self.source = source
        self.composition = composition
        self.declarations = tree.declarations
        self.kinds: dict[str, str] = {}
        self.lists: dict[str, nodes.ListValue] = {}
        self.patterns: dict[str, nodes.Regex] = {}
        for declaration in tree.declarations:
            self.kinds.setdefault(declaration.name.text, declaration.kind.text)
            if declaration.kind.text == "list" and isinstance(declaration.value, nodes.ListValue):
                self.lists[declaration.name.text] = declaration.value
            if declaration.kind.text == "pattern" and isinstance(declaration.value, nodes.Regex):
                self.patterns[declaration.name.text] = declaration.value

    def line_col(self, node: nodes.Value | nodes.Declaration) -> tuple[int, int]:
        if self.composition is not None:
            return self.composition.line_col(node.span.start)
        return self.source.line_col(node.span.start)

    # -- properties

    @staticmethod
    def props(declaration: nodes.Declaration) -> dict[str, nodes.Value]:
        found: dict[str, nodes.Value] = {}
        if declaration.body is not None:
            for prop in declaration.body.properties:
                found.setdefault(prop.key.text, prop.value)
        return found

    @staticmethod
    def string(props: Mapping[str, nodes.Value], key: str, default: str | None = None) -> str:
        value = props.get(key)
        if isinstance(value, nodes.String):
            return value.value
        if value is None and default is not None:
            return default
        raise LoweringError(f"`{key}` is not a string")

    @staticmethod
    def word(props: Mapping[str, nodes.Value], key: str, default: str | None = None) -> str:
        value = props.get(key)
        if isinstance(value, nodes.Ref):
            return value.name.text
        if value is None and default is not None:
            return default
        raise LoweringError(f"`{key}` is not a name")

    # -- detectors

    def terms(
        self, source: nodes.Ref | nodes.String | nodes.ListValue, config: NormalizationConfig
    ) -> tuple[str, ...]:
        if isinstance(source, nodes.Ref):
            source = self.lists[source.name.text]
        items = (source,) if isinstance(source, nodes.String) else source.items
        out: list[str] = []
        for item in items:
            if not isinstance(item, nodes.String):
                raise LoweringError("keyword list holds a non-string")
            term = canonical_term(item.value, config)
            if term not in out:
                out.append(term)
        return tuple(out)

    def detector(self, value: nodes.Value, config: NormalizationConfig) -> ir.DetectorSpec:
        match value:
            case nodes.Or(items=items) | nodes.AnyOf(items=items):
                parts = self.flat(items, ir.AnyOfSpec, config)
                return parts[0] if len(parts) == 1 else ir.AnyOfSpec(parts)
            case nodes.And(items=items) | nodes.AllOf(items=items):
                parts = self.flat(items, ir.AllOfSpec, config)
                return parts[0] if len(parts) == 1 else ir.AllOfSpec(parts)
            case nodes.Not(item=item):
                return ir.NotSpec(self.detector(item, config))
            case nodes.Keywords(source=source):
                line, column = self.line_col(value)
                terms = self.terms(source, config)
                return ir.KeywordsSpec(
                    label=detector_label(value, self.source),
                    terms=terms,
                    regex=keywords_regex(terms),
                    line=line,
                    column=column,
                )
            case nodes.PatternMatch(source=source):
                regex = self.patterns[source.name.text] if isinstance(source, nodes.Ref) else source
                line, column = self.line_col(value)
                flags = tuple(
                    REGEX_FLAGS[letter] for letter in sorted(set(regex.flags))
                )
                return ir.PatternSpec(
                    label=detector_label(value, self.source),
                    regex=regex.pattern,
                    flags=flags,
                    line=line,
                    column=column,
                )
            case nodes.Score(key=key, op=op, threshold=threshold):
                line, column = self.line_col(value)
                return ir.ScoreSpec(
                    label=detector_label(value, self.source),
                    key=key.value,
                    op=op,
                    threshold=float(_count_or_fraction(threshold)),
                    line=line,
                    column=column,
                )
            case nodes.Annotation(label=label):
                line, column = self.line_col(value)
                return ir.AnnotationSpec(
                    label=detector_label(value, self.source),
                    name=label.value,
                    line=line,
                    column=column,
                )
        raise LoweringError(f"{type(value).__name__} is not a detector")

    def flat(
        self,
        items: tuple[nodes.Value, ...],
        kind: type[ir.AnyOfSpec | ir.AllOfSpec],
        config: NormalizationConfig,
    ) -> tuple[ir.DetectorSpec, ...]:
        out: list[ir.DetectorSpec] = []
        for item in items:
            lowered = self.detector(item, config)
            if isinstance(lowered, kind):
                out.extend(lowered.items)
            else:
                out.append(lowered)
        return tuple(out)

    def optional_detector(
        self, value: nodes.Value | None, config: NormalizationConfig
    ) -> ir.DetectorSpec | None:
        return None if value is None else self.detector(value, config)

    # -- declarations

    def taxonomy(self, value: nodes.Value | None) -> tuple[tuple[str, str], ...]:
        if value is None:
            return ()
        if not isinstance(value, nodes.Block):
            raise LoweringError("`maps_to` is not a block")
        pairs: list[tuple[str, str]] = []
        for prop in value.properties:
            codes = prop.value.items if isinstance(prop.value, nodes.ListValue) else (prop.value,)
            for code in codes:
                if not isinstance(code, nodes.String):
                    raise LoweringError("taxonomy code is not a string")
                pair = (prop.key.text, code.value)
                if pair not in pairs:
                    pairs.append(pair)
        return tuple(pairs)

    def lower(self) -> ir.PolicySpec:
        policy: nodes.Declaration | None = None
        categories: list[ir.CategorySpec] = []
        signals: list[ir.SignalSpec] = []
        redirects: list[ir.RedirectSpec] = []
        counters: list[nodes.Declaration] = []
        protections: list[ir.ProtectionSpec] = []
        rules: list[ir.RuleSpec] = []
        for declaration in self.declarations:
            kind = declaration.kind.text
            name = declaration.name.text
            props = self.props(declaration)
            line, column = self.line_col(declaration)
            if kind == "policy":
                policy = declaration
            elif kind == "category":
                config = normalization(props.get("normalize"))
                categories.append(
                    ir.CategorySpec(
                        name=name,
                        title=self.string(props, "title"),
                        severity=_severity(self.word(props, "severity")),
                        detect=self.detector(props["detect"], config),
                        unless=self.optional_detector(props.get("unless"), config),
                        taxonomy=self.taxonomy(props.get("maps_to")),
                        line=line,
                        column=column,
                        follow_up=self.optional_detector(props.get("follow_up"), config),
                        normalize=config,
                    )
                )
            elif kind == "signal":
                config = normalization(props.get("normalize"))
                signals.append(
                    ir.SignalSpec(
                        name=name,
                        detect=self.detector(props["detect"], config),
                        unless=self.optional_detector(props.get("unless"), config),
                        line=line,
                        column=column,
                        normalize=config,
                    )
                )
            elif kind == "redirect":
                config = normalization(props.get("normalize"))
                redirects.append(
                    ir.RedirectSpec(
                        name=name,
                        detect=self.detector(props["detect"], config),
                        line=line,
                        column=column,
                        normalize=config,
                    )
                )
            elif kind == "counter":
                counters.append(declaration)
            elif kind == "protection":
                lasts = props.get("lasts")
                protections.append(
                    ir.ProtectionSpec(
                        name=name,
                        when=lower_condition(props["when"], self.kinds),
                        action=Outcome(self.word(props, "action")),
                        reason=self.string(props, "reason"),
                        message=self.string(props, "message", ""),
                        lasts=_count(lasts.turns) if isinstance(lasts, nodes.Duration) else None,
                        line=line,
                        column=column,
                    )
                )
            elif kind == "rule":
                rules.append(
                    ir.RuleSpec(
                        name=name,
                        when=lower_condition(props["when"], self.kinds),
                        action=Outcome(self.word(props, "action")),
                        reason=self.string(props, "reason"),
                        message=self.string(props, "message", ""),
                        line=line,
                        column=column,
                    )
                )
        if policy is None:
            raise LoweringError("no policy declaration")
        horizons: dict[str, int] = {}
        for condition in [p.when for p in protections] + [r.when for r in rules]:
            for counter, window in _windows(condition):
                horizons[counter] = max(horizons.get(counter, 0), window)
        header = self.props(policy)
        return ir.PolicySpec(
            name=policy.name.text,
            version=self.string(header, "version"),
            description=self.string(header, "description", ""),
            owner=self.string(header, "owner", ""),
            source_path=source_path(self.source.path),
            source_sha256=(
                hashlib.sha256(self.source.text.encode("utf-8")).hexdigest()
                if self.composition is None
                else _chain_sha256(self.composition.chain)
            ),
            chain=() if self.composition is None else self.composition.chain,
            tenant_path=(
                source_path(self.composition.tenant_path)
                if self.composition is not None and self.composition.tenant_path
                else ""
            ),
            categories=tuple(categories),
            signals=tuple(signals),
            redirects=tuple(redirects),
            counters=tuple(self.counter(d, horizons.get(d.name.text, 0)) for d in counters),
            protections=tuple(protections),
            rules=tuple(rules),
        )

    def counter(self, declaration: nodes.Declaration, horizon: int) -> Counter:
        props = self.props(declaration)
        reset = props.get("reset")
        line, column = self.line_col(declaration)
        return Counter(
            name=declaration.name.text,
            counts=CounterKind(self.word(props, "counts")),
            per=CounterScope(self.word(props, "per", "category")),
            reset_after=_count(reset.turns) if isinstance(reset, nodes.ResetAfter) else None,
            horizon=horizon,
            line=line,
            column=column,
        )


class Composed(Protocol):
    """What lowering needs from a composed policy (see :mod:`policylang.compose`)."""

    @property
    def chain(self) -> tuple[PolicyLink, ...]:
        """Every file the policy was built from, base first."""
        ...

    @property
    def tenant_path(self) -> str | None:
        """The tenant file applied, if any."""
        ...

    def line_col(self, offset: int) -> tuple[int, int]:
        """Line and column, in its own file, of an offset into the composed text."""
        ...


def _chain_sha256(chain: tuple[PolicyLink, ...]) -> str:
    """One digest for a composed policy: of every file's role, name, version and hash."""
    digest = hashlib.sha256()
    for link in chain:
        digest.update(f"{link.role}\0{link.name}\0{link.version}\0{link.sha256}\n".encode())
    return digest.hexdigest()


def lower(
    tree: nodes.PolicyFile, source: SourceFile, composition: Composed | None = None
) -> ir.PolicySpec:
    """Lower a checked policy file to its IR.

    Call only on a tree :func:`policylang.checker.analyze` accepted; anything the
    checker should have rejected raises :class:`LoweringError` (a compiler bug).
    For a composed policy, pass its ``composition``: lines and columns then refer to
    each declaration's own file, and the policy records its chain.
    """
    return _Lowerer(tree, source, composition).lower()
