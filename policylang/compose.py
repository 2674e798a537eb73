"""Composition: one policy from a chain of files, its parameters and a tenant's settings.

A policy may ``extends`` a base policy, ``import`` named declarations from another
file, ``override`` inherited declarations field by field, ``disable`` inherited rules,
declare ``param`` values, and ``locked`` declarations that extensions may not weaken.
:func:`compose` resolves all of that into one ordinary policy tree that the checker
analyses as if it had been written in a single file.

Spans. Every file of the chain is a *segment* of one virtual text (the files joined
by newlines), and every node's span is shifted into that text, so the checker, its
suppression comments and its regex offsets work unchanged. :meth:`Composition.remap`
turns a diagnostic on the virtual text back into one on the real file (and a label in
another file into a label with its own path).

Nothing here raises for bad policy text: every problem is a diagnostic.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from policylang import builder, nodes
from policylang.diagnostics import Diagnostic, DiagnosticSink, Label, Severity, Suggestion
from policylang.limits import PolicyLimits
from policylang.runtime import PolicyLink
from policylang.source import TOO_LARGE_HELP, SourceFile, Span
from policylang.suggest import did_you_mean

__all__ = [
    "COMPOSITION_KINDS",
    "Composition",
    "compose",
    "needs_composition",
]

#: Declaration kinds that composition consumes; the checker never sees them.
COMPOSITION_KINDS: Final = frozenset({"param", "import"})

_OVERRIDE: Final = "override"
_ADDERS: Final[Mapping[str, str]] = {
    "add_detect": "detect",
    "add_unless": "unless",
    "add_follow_up": "follow_up",
}
_PARAM_KEYS: Final = ("value", "tunable", "locked", "description")
_IMPORT_KEYS: Final = ("from", "names")
_TENANT_KEYS: Final = ("version", "description", "policy", "set")
_LOCK_WORDS: Final = ("true", "raise-only", "lower-only")
_MAX_DEPTH: Final = 32

LockKind = Literal["frozen", "raise-only", "lower-only"]

_N = TypeVar("_N")


# ---------------------------------------------------------------- spans


def _shift(node: _N, offset: int) -> _N:
    """A copy of ``node`` (any syntax-tree value) with every span moved by ``offset``."""
    if offset == 0:
        return node
    if isinstance(node, tuple):
        return tuple(_shift(item, offset) for item in node)  # type: ignore[return-value]
    if isinstance(node, Span):
        return Span(node.start + offset, node.end + offset)  # type: ignore[return-value]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: _shift(getattr(node, f.name), offset) for f in dataclasses.fields(node)}
        return dataclasses.replace(node, **changes)
    return node


def _walk(node: object) -> Iterator[object]:
    """Every syntax-tree node under ``node`` (itself included), depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, tuple):
            stack.extend(reversed(current))
            continue
        if not dataclasses.is_dataclass(current) or isinstance(current, type | Span):
            continue
        yield current
        stack.extend(getattr(current, f.name) for f in reversed(dataclasses.fields(current)))


def _references(node: object) -> set[str]:
    """Every name ``node`` mentions as a reference (an over-approximation is fine)."""
    found: set[str] = set()
    for item in _walk(node):
        if isinstance(item, nodes.Ref):
            found.add(item.name.text)
        elif isinstance(item, nodes.Comparison | nodes.Membership):
            found.add(item.subject.text)
    return found


@dataclass(frozen=True, slots=True)
class _Segment:
    start: int
    source: SourceFile


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class _Lock:
    """A safety floor: what may not be weakened, where it was declared, and by which policy."""

    kind: LockKind
    owner: str  # the declaration that carries `locked:`
    span: Span  # the `locked:` property
    policy: str  # the policy that declared it
    path: str


@dataclass(slots=True)
class _Entry:
    """One declaration of the composed policy, as it stands after a file's changes."""

    node: nodes.Declaration
    policy: str  # the policy (or imported file) that declared it
    path: str
    lock: _Lock | None = None


@dataclass(slots=True)
class _Resolved:
    """A file after its own chain is applied: its declarations and its policy chain."""

    name: str
    version: str
    path: str
    header: nodes.Declaration | None
    entries: dict[str, _Entry]
    extra: list[nodes.Declaration]  # same-file duplicates, left for the checker to report
    chain: list[PolicyLink]
    ok: bool = True


@dataclass(frozen=True)
class Composition:
    """A composed policy: one virtual source, one plain tree, and how to map back."""

    source: SourceFile
    tree: nodes.PolicyFile
    chain: tuple[PolicyLink, ...]
    segments: tuple[_Segment, ...]
    root: SourceFile
    tenant_path: str | None
    """The tenant file applied, as given."""
    composed: bool
    """Whether other files took part (an extends, an import or a tenant): the policy then
    records its chain, and its SHA-256 covers every file."""

    def locate(self, offset: int) -> tuple[SourceFile, int]:
        """The real file holding virtual ``offset``, and the offset within it."""
        starts = [segment.start for segment in self.segments]
        index = max(bisect.bisect_right(starts, offset) - 1, 0)
        segment = self.segments[index]
        local = min(max(offset - segment.start, 0), len(segment.source.text))
        return segment.source, local

    def _span(self, span: Span) -> tuple[SourceFile, Span]:
        source, start = self.locate(span.start)
        end = min(start + (span.end - span.start), len(source.text))
        return source, Span(start, max(start, end))

    def line_col(self, offset: int) -> tuple[int, int]:
        """Line and column of virtual ``offset`` in its real file."""
        source, local = self.locate(offset)
        return source.line_col(local)

    def remap(self, diagnostic: Diagnostic) -> Diagnostic:
        """``diagnostic`` on the virtual text, moved to the real file it points into."""
        if diagnostic.path != self.source.path:
            return diagnostic
        home, primary = self._span(diagnostic.primary.span)
        secondary: list[Label] = []
        for label in diagnostic.secondary:
            where, span = self._span(label.span)
            path = None if where is home else where.path
            secondary.append(Label(span, label.message, path=path))
        suggestions = [
            Suggestion(self._span(s.span)[1], s.replacement, s.message, s.applicability)
            for s in diagnostic.suggestions
            if self.locate(s.span.start)[0] is home
        ]
        return dataclasses.replace(
            diagnostic,
            path=home.path,
            primary=Label(primary, diagnostic.primary.message),
            secondary=tuple(secondary),
            suggestions=tuple(suggestions),
        )

    def in_root(self, diagnostic: Diagnostic) -> bool:
        """Whether a virtual-text diagnostic points into the policy file itself."""
        return self.locate(diagnostic.primary.span.start)[0] is self.root


def _names_a_parameter(node: object) -> bool:
    """Whether ``node`` is a place where a name can only be a parameter."""
    if isinstance(node, nodes.Score):
        return isinstance(node.threshold, nodes.Ref)
    if isinstance(node, nodes.Duration | nodes.ResetAfter):
        return isinstance(node.turns, nodes.Ref)
    if isinstance(node, nodes.Comparison):
        return isinstance(node.operand, nodes.Ref) and node.subject.text != "severity"
    return False


def needs_composition(tree: nodes.PolicyFile) -> bool:
    """Whether ``tree`` uses any composition feature (else it is checked as it is).

    A name where only a number or a parameter can stand counts too, so that it is
    replaced, or reported as an unknown parameter.
    """
    if any(_names_a_parameter(node) for node in _walk(tree)):
        return True
    for declaration in tree.declarations:
        if declaration.modifier is not None or declaration.kind.text in COMPOSITION_KINDS:
            return True
        if (
            declaration.kind.text == "policy"
            and declaration.body is not None
            and any(p.key.text in ("extends", "disable") for p in declaration.body.properties)
        ):
            return True
        if declaration.body is not None and any(
            p.key.text == "locked" for p in declaration.body.properties
        ):
            return True
    return False


# ---------------------------------------------------------------- the composer


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _string(value: nodes.Value | None) -> str | None:
    return value.value if isinstance(value, nodes.String) else None


def _props(declaration: nodes.Declaration) -> dict[str, nodes.Property]:
    found: dict[str, nodes.Property] = {}
    if declaration.body is not None:
        for prop in declaration.body.properties:
            found.setdefault(prop.key.text, prop)
    return found


def _without(declaration: nodes.Declaration, keys: Iterable[str]) -> nodes.Declaration:
    if declaration.body is None:
        return declaration
    drop = set(keys)
    kept = tuple(p for p in declaration.body.properties if p.key.text not in drop)
    return dataclasses.replace(
        declaration, body=dataclasses.replace(declaration.body, properties=kept)
    )


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _where(entry: _Entry) -> str:
    return f"`{entry.policy}` ({entry.path})"


class _Composer:
    """One composition: loads files, resolves each once, reports into one sink."""

    def __init__(
        self,
        root: SourceFile,
        sink: DiagnosticSink,
        virtual_path: str,
        max_file_size: int | None = None,
    ) -> None:
        self.root = root
        self.max_file_size = max_file_size  # None: the configured limit
        self.sink = sink  # diagnostics already in real-file coordinates (parse errors)
        self.virtual = DiagnosticSink()  # diagnostics on the virtual text
        self.virtual_path = virtual_path
        self.segments: list[_Segment] = []
        self.end = 0
        self.resolved: dict[str, _Resolved | None] = {}
        self.active: list[tuple[str, str, Span | None]] = []  # (key, path, span of the reference)
        self.composed = False
        self.base_header: nodes.Declaration | None = None
        self.broken_params: set[str] = set()  # reported as PL609; their uses are not

    # -- files

    def _add_segment(self, source: SourceFile) -> int:
        start = self.end
        self.segments.append(_Segment(start, source))
        self.end = start + len(source.text) + 1
        return start

    def _read(self, path: str, span: Span | None, what: str) -> SourceFile | None:
        if "\0" in path:
            self._nul_in_path(path, span, what)
            return None
        if span is not None and _special_file(path):
            # Named in policy text: a pipe or device could block the read forever.
            self.error(
                "PL601",
                f"cannot read {what} `{path}`: not a regular file",
                span,
                label="named here",
                help="`extends` and `import` name policy files, not pipes or devices",
            )
            return None
        try:
            source, problems = SourceFile.read(path, max_size=self.max_file_size)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.error(
                "PL601",
                f"cannot read {what} `{path}`: {reason.lower()}",
                span or Span.empty(0),
                label="named here",
                help="paths are relative to the file that names them",
            )
            return None
        if source.refused:
            # Reported where the file is named (its own start says nothing).
            for problem in problems:
                self.error(
                    problem.code,
                    problem.message,
                    span or Span.empty(0),
                    label=f"{what} named here" if span is not None else f"the {what}",
                    help=TOO_LARGE_HELP,
                )
            return None
        self.sink.extend(problems)
        if any(p.severity is Severity.ERROR for p in problems):
            return None
        return source

    def _parse(self, source: SourceFile) -> nodes.PolicyFile | None:
        tree = builder.parse(source, self.sink)
        if tree is None:
            return None
        start = self._add_segment(source)
        return _shift(tree, start)

    # -- reporting (virtual coordinates)

    def error(self, code: str, message: str, span: Span, **extra: object) -> None:
        self.virtual.error(code, message, self.virtual_path, span, **extra)  # type: ignore[arg-type]

    def warning(self, code: str, message: str, span: Span, **extra: object) -> None:
        self.virtual.warning(code, message, self.virtual_path, span, **extra)  # type: ignore[arg-type]

    # -- resolution

    def resolve_root(self, tree: nodes.PolicyFile) -> _Resolved | None:
        key = os.path.realpath(self.root.path)
        start = self._add_segment(self.root)
        return self._resolve(key, self.root.path, _shift(tree, start), None)

    def _nul_in_path(self, path: str, span: Span | None, what: str) -> None:
        """Report a path with a NUL character, which no file system accepts (PL601)."""
        shown = path.replace("\0", "\\u{0}")
        self.error(
            "PL601",
            f"cannot read {what} `{shown}`: a path cannot contain the character U+0000",
            span or Span.empty(0),
            label="named here",
            help="remove the `\\u{0}` escape from the path",
        )

    def _resolve_path(self, path: str, span: Span, what: str) -> _Resolved | None:
        if "\0" in path:  # os.path.realpath would raise
            self._nul_in_path(path, span, what)
            return None
        key = os.path.realpath(path)
        for index, (active, _, _) in enumerate(self.active):
            if active == key:
                cycle = [*self.active[index:], (key, path, span)]
                names = " -> ".join(f"`{p}`" for _, p, _ in cycle)
                secondary = [
                    Label(s, "which names this file") for _, _, s in cycle[1:-1] if s is not None
                ]
                self.error(
                    "PL602",
                    f"policies form a cycle: {names}",
                    span,
                    label="this closes the cycle",
                    secondary=secondary,
                    help="a policy cannot extend or import itself, directly or through others",
                )
                return None
        if key in self.resolved:
            return self.resolved[key]
        if len(self.active) >= _MAX_DEPTH:
            self.error(
                "PL602",
                f"policies are nested more than {_MAX_DEPTH} deep",
                span,
                label="one level too many",
                help="flatten the chain of `extends` and `import`",
            )
            return None
        source = self._read(path, span, what)
        if source is None:
            self.resolved[key] = None
            return None
        tree = self._parse(source)
        if tree is None:
            self.resolved[key] = None
            return None
        return self._resolve(key, path, tree, span)

    def _resolve(
        self, key: str, path: str, tree: nodes.PolicyFile, span: Span | None
    ) -> _Resolved | None:
        self.active.append((key, path, span))
        try:
            result = self._resolve_file(path, tree)
        finally:
            self.active.pop()
        self.resolved[key] = result
        return result

    def _relative(self, referrer: str, target: str) -> str:
        if os.path.isabs(target):
            return target
        return os.path.normpath(os.path.join(os.path.dirname(referrer), target))

    def _resolve_file(self, path: str, tree: nodes.PolicyFile) -> _Resolved:
        headers = [d for d in tree.declarations if d.kind.text == "policy" and d.modifier is None]
        header = headers[0] if headers else None
        name = (
            header.name.text if header is not None else os.path.splitext(os.path.basename(path))[0]
        )
        header_props = _props(header) if header is not None else {}
        version = _string(header_props["version"].value) if "version" in header_props else None
        source_text = self.segments[-1].source.text if self.segments else ""
        for segment in self.segments:
            if segment.source.path == path:
                source_text = segment.source.text
        own_link = PolicyLink(
            role="policy", name=name, version=version or "", sha256=_sha256(source_text)
        )

        result = _Resolved(
            name=name,
            version=version or "",
            path=path,
            header=header,
            entries={},
            extra=[],
            chain=[],
        )
        # 1. the base
        base: _Resolved | None = None
        extends = header_props.get("extends")
        if extends is not None:
            self.composed = True
            target = _string(extends.value)
            if target is None:
                self.error(
                    "PL612",
                    "`extends` takes the path of the base policy, as a string",
                    extends.value.span,
                    label="not a string",
                    help='write `extends: "default.policy"` (relative to this file)',
                )
                result.ok = False
            else:
                base = self._resolve_path(
                    self._relative(path, target), extends.value.span, "base policy"
                )
                if base is None:
                    result.ok = False
                elif base.header is None:
                    self.error(
                        "PL612",
                        f"`{target}` has no `policy` declaration to extend",
                        extends.value.span,
                        label="not a policy",
                        help="a base is a whole policy; to reuse some of its declarations, "
                        "`import` them instead",
                    )
                    result.ok = False
        if base is not None:
            result.entries = {n: dataclasses.replace(e) for n, e in base.entries.items()}
            result.chain = [
                dataclasses.replace(link, role="base" if link.role == "policy" else link.role)
                for link in base.chain
            ]
            result.ok = result.ok and base.ok
        result.chain.append(own_link)

        # 2. imports
        for declaration in tree.declarations:
            if declaration.kind.text == "import" and declaration.modifier is None:
                self.composed = True
                self._import(path, declaration, result)
        inherited_names = set(result.entries)
        covered = self._covered(result.entries)

        # 3. this file's own declarations
        overrides: list[nodes.Declaration] = []
        seen: dict[str, nodes.Declaration] = {}
        for declaration in tree.declarations:
            kind = declaration.kind.text
            if declaration.modifier is not None:
                overrides.append(declaration)
                continue
            if kind == "import":
                continue
            if kind == "policy":
                if declaration is header:
                    continue
                result.extra.append(declaration)  # the checker reports the second header
                continue
            declared = declaration.name.text
            inherited = result.entries.get(declared)
            if declared in seen:
                result.extra.append(declaration)
                continue
            seen[declared] = declaration
            if inherited is not None:
                self.error(
                    "PL606",
                    f"`{declared}` is already declared by {_where(inherited)}",
                    declaration.name.span,
                    label="declared again here",
                    secondary=[Label(inherited.node.name.span, "declared here")],
                    help=f"to change it, write `override {inherited.node.kind.text} {declared} "
                    "{ ... }` with only the fields that change",
                )
                result.ok = False
                continue
            result.entries[declared] = _Entry(declaration, name, path)
            self._take_lock(result.entries[declared], name, path)

        # 4. overrides and disables
        self.base_header = base.header if base is not None else None
        changed: dict[tuple[str, str], Span] = {}
        for declaration in overrides:
            self.composed = True
            self._override(declaration, result, covered, changed, base is not None, inherited_names)
        disable = header_props.get("disable")
        if disable is not None:
            self.composed = True
            self._disable(disable, result, covered, changed, base is not None, inherited_names)
        return result

    # -- locks

    def _take_lock(self, entry: _Entry, policy: str, path: str) -> None:
        prop = _props(entry.node).get("locked")
        if prop is None:
            return
        word = prop.value.name.text if isinstance(prop.value, nodes.Ref) else None
        if word not in _LOCK_WORDS:
            self.error(
                "PL612",
                "`locked` is `true`, `raise-only` or `lower-only`",
                prop.value.span,
                label="not a lock",
                help="`locked: true` forbids any change in extensions; a `param` may instead "
                "be `raise-only` or `lower-only`",
            )
            return
        if word != "true" and entry.node.kind.text != "param":
            self.error(
                "PL612",
                f"only a `param` can be `locked: {word}`",
                prop.value.span,
                label="a direction needs a number",
                help="write `locked: true`",
            )
            return
        kind: LockKind = "frozen" if word == "true" else word  # type: ignore[assignment]
        entry.lock = _Lock(kind, entry.node.name.text, prop.span, policy, path)

    def _covered(self, entries: Mapping[str, _Entry]) -> dict[str, _Lock]:
        """Every declaration a lock protects: the locked ones and all they depend on.

        A declaration with a lock of its own is governed by that lock (so a
        ``raise-only`` param used by a locked protection may still be raised).
        """
        covered: dict[str, _Lock] = {}
        for entry in entries.values():
            if entry.lock is None:
                continue
            stack = [entry.node.name.text]
            seen: set[str] = set()
            while stack:
                current = stack.pop()
                target = entries.get(current)
                if current in seen or target is None:
                    continue
                seen.add(current)
                if target.lock is not None:
                    covered[current] = target.lock
                else:
                    covered.setdefault(current, entry.lock)
                stack.extend(_references(target.node.body or target.node.value))
        return covered

    def _lock_error(self, span: Span, what: str, lock: _Lock, target: str) -> None:
        owner = (
            f"`{lock.owner}`" if lock.owner == target else f"`{lock.owner}`, which uses `{target}`,"
        )
        self.error(
            "PL607",
            f"{what} weakens a safety floor: {owner} is locked by base policy "
            f"`{lock.policy}` ({lock.path})",
            span,
            label="not allowed in an extension",
            secondary=[Label(lock.span, "locked here")],
            help="a lock keeps a protection, rule or value from being removed or narrowed; "
            "change the base policy itself if this is really intended",
        )

    # -- imports

    def _import(self, path: str, declaration: nodes.Declaration, result: _Resolved) -> None:
        props = _props(declaration)
        if declaration.body is None:
            self.error(
                "PL612",
                "an import is written as a block",
                declaration.kind.span.cover(declaration.name.span),
                label="not a block",
                help='write `import NAME { from: "file.policy" names: [a, b] }`',
            )
            result.ok = False
            return
        for prop in declaration.body.properties:
            if prop.key.text not in _IMPORT_KEYS:
                guess = did_you_mean(prop.key.text, _IMPORT_KEYS)
                self.error(
                    "PL612",
                    f"unknown import field `{prop.key.text}`",
                    prop.key.span,
                    label="not an import field",
                    help=f"did you mean `{guess}`?"
                    if guess
                    else "an import has `from` and `names`",
                )
                result.ok = False
        source = props.get("from")
        names = props.get("names")
        target = _string(source.value) if source is not None else None
        if target is None or names is None or not isinstance(names.value, nodes.ListValue):
            self.error(
                "PL612",
                f'import `{declaration.name.text}` needs `from: "FILE"` and `names: [...]`',
                declaration.name.span,
                label="incomplete import",
                help='write `import NAME { from: "shared.policy" names: [minors, csam] }`',
            )
            result.ok = False
            return
        assert source is not None
        imported = self._resolve_path(
            self._relative(path, target), source.value.span, "imported file"
        )
        if imported is None:
            result.ok = False
            return
        wanted: list[nodes.Ref] = []
        for item in names.value.items:
            if not isinstance(item, nodes.Ref):
                self.error(
                    "PL612",
                    "import names are bare names",
                    item.span,
                    label="not a name",
                    help="write `names: [minors, csam]`",
                )
                result.ok = False
                continue
            wanted.append(item)
        closure: list[str] = []
        for ref in wanted:
            wanted_name = ref.name.text
            if wanted_name not in imported.entries:
                guess = did_you_mean(wanted_name, imported.entries)
                self.error(
                    "PL613",
                    f"`{target}` declares no `{wanted_name}`",
                    ref.span,
                    label="not in that file",
                    help=f"did you mean `{guess}`?" if guess else None,
                )
                result.ok = False
                continue
            stack = [wanted_name]
            while stack:
                current = stack.pop()
                if current in closure or current not in imported.entries:
                    continue
                closure.append(current)
                node = imported.entries[current].node
                stack.extend(sorted(_references(node.body or node.value)))
        for taken in closure:
            entry = imported.entries[taken]
            existing = result.entries.get(taken)
            if existing is not None:
                if existing.node is entry.node:
                    continue
                self.error(
                    "PL614",
                    f"imported `{taken}` clashes with `{taken}` from {_where(existing)}",
                    next((r.span for r in wanted if r.name.text == taken), declaration.name.span),
                    label="imported here"
                    if any(r.name.text == taken for r in wanted)
                    else "needed by what this imports",
                    secondary=[Label(existing.node.name.span, "already declared here")],
                    help="rename one of them in its file, or import from one place only",
                )
                result.ok = False
                continue
            result.entries[taken] = dataclasses.replace(entry)
        # The imported file first, then every file it is built from (its base, its own
        # imports): they all shape what was imported. A file reached twice is listed once.
        own = [link for link in imported.chain if link.role == "policy"]
        for link in [*own, *(link for link in imported.chain if link.role != "policy")]:
            imported_link = dataclasses.replace(link, role="import")
            if imported_link not in result.chain:
                result.chain.append(imported_link)

    # -- overrides

    def _override(
        self,
        declaration: nodes.Declaration,
        result: _Resolved,
        covered: Mapping[str, _Lock],
        changed: dict[tuple[str, str], Span],
        has_base: bool,
        inherited: set[str],
    ) -> None:
        assert declaration.modifier is not None
        word = declaration.modifier.text
        target = declaration.name.text
        kind = declaration.kind.text
        if word != _OVERRIDE:
            guess = did_you_mean(word, (_OVERRIDE,))
            self.error(
                "PL612",
                f"unknown modifier `{word}`",
                declaration.modifier.span,
                label="not a modifier",
                help=f"did you mean `{_OVERRIDE}`?"
                if guess
                else "declarations are `KIND NAME { ... }`; `override KIND NAME { ... }` "
                "changes an inherited one",
            )
            result.ok = False
            return
        entry = result.entries.get(target)
        if entry is not None and target not in inherited:
            self.error(
                "PL603",
                f"override of `{target}`, which this file declares itself",
                declaration.name.span,
                label="nothing inherited to override",
                secondary=[Label(entry.node.name.span, "declared here")],
                help="change the declaration itself instead",
            )
            result.ok = False
            return
        if entry is None:
            guess = did_you_mean(
                target, [n for n, e in result.entries.items() if e.node.kind.text == kind]
            )
            self.error(
                "PL603",
                f"override of `{target}`, which "
                + ("the base policy does not declare" if has_base else "is not declared anywhere"),
                declaration.name.span,
                label="nothing to override",
                secondary=self._base_label(target),
                help=(
                    f"did you mean `{guess}`?"
                    if guess
                    else "to add a new declaration, drop `override`"
                    if has_base
                    else 'add `extends: "BASE.policy"` to the policy header, or drop `override`'
                ),
            )
            result.ok = False
            return
        base_kind = entry.node.kind.text
        if base_kind != kind:
            self.error(
                "PL604",
                f"`{target}` is {_a(base_kind)}, not {_a(kind)}",
                declaration.kind.span,
                label=f"should be `{base_kind}`",
                secondary=[Label(entry.node.name.span, f"declared as {_a(base_kind)} here")],
                help=f"write `override {base_kind} {target} ...`",
            )
            result.ok = False
            return
        lock = covered.get(target)
        if declaration.value is not None:
            # `override list x = [...]` / `override pattern p = /.../`: a whole new value.
            if entry.node.value is None:
                self.error(
                    "PL612",
                    f"{kind} `{target}` is a block: override its fields with `{{ ... }}`",
                    declaration.name.span,
                    label="not a value declaration",
                    help=f"write `override {kind} {target} {{ field: value }}`",
                )
                result.ok = False
                return
            if not self._conflict(changed, (target, "="), declaration.name.span):
                result.ok = False
                return
            if lock is not None:
                self._lock_error(
                    declaration.name.span, f"replacing {kind} `{target}`", lock, target
                )
                result.ok = False
                return
            entry.node = dataclasses.replace(entry.node, value=declaration.value)
            return
        assert declaration.body is not None
        if entry.node.value is not None:
            self._override_list(declaration, entry, lock, changed, result)
            return
        props = list(entry.node.body.properties if entry.node.body is not None else ())
        for prop in declaration.body.properties:
            key = prop.key.text
            if not self._conflict(changed, (target, key), prop.key.span):
                result.ok = False
                continue
            if lock is not None and not self._lock_allows(entry, lock, prop, target):
                result.ok = False
                continue
            if key == "locked":
                props = [p for p in props if p.key.text != "locked"]
                props.append(prop)
                continue
            field_name = _ADDERS.get(key)
            if field_name is not None:
                current = next((p for p in props if p.key.text == field_name), None)
                if current is None:
                    props.append(
                        nodes.Property(
                            key=nodes.Name(text=field_name, span=prop.key.span),
                            value=prop.value,
                            span=prop.span,
                        )
                    )
                else:
                    items = (
                        current.value.items
                        if isinstance(current.value, nodes.Or)
                        else (current.value,)
                    )
                    added = prop.value.items if isinstance(prop.value, nodes.Or) else (prop.value,)
                    merged = nodes.Or(items=(*items, *added), span=current.value.span)
                    props[props.index(current)] = dataclasses.replace(current, value=merged)
                continue
            index = next((i for i, p in enumerate(props) if p.key.text == key), None)
            if index is None:
                props.append(prop)
            else:
                props[index] = prop
        body = entry.node.body
        assert body is not None
        entry.node = dataclasses.replace(
            entry.node, body=dataclasses.replace(body, properties=tuple(props))
        )
        if any(p.key.text == "locked" for p in declaration.body.properties):
            self._take_lock(entry, result.name, result.path)

    def _base_label(self, target: str) -> list[Label]:
        """A label on the base policy's header, for something the base does not declare."""
        header = self.base_header
        if header is None:
            return []
        return [Label(header.name.span, f"base policy, which declares no `{target}`")]

    def _lock_allows(self, entry: _Entry, lock: _Lock, prop: nodes.Property, target: str) -> bool:
        """Whether changing ``prop`` of ``entry`` respects ``lock``; reports when not."""
        key = prop.key.text
        if key == "locked" and isinstance(prop.value, nodes.Ref) and prop.value.name.text == "true":
            return True  # locking harder is always allowed
        if (
            entry.node.kind.text == "param"
            and key == "value"
            and lock.kind != "frozen"
            and lock.owner == target
        ):
            old = _props(entry.node).get("value")
            new = prop.value
            if (
                old is not None
                and isinstance(old.value, nodes.Number)
                and isinstance(new, nodes.Number)
            ):
                if lock.kind == "raise-only" and new.value < old.value.value:
                    self._lock_error(
                        prop.value.span,
                        f"lowering `{target}` below {_num(old.value.value)}",
                        lock,
                        target,
                    )
                    return False
                if lock.kind == "lower-only" and new.value > old.value.value:
                    self._lock_error(
                        prop.value.span,
                        f"raising `{target}` above {_num(old.value.value)}",
                        lock,
                        target,
                    )
                    return False
                return True
        if (
            entry.node.kind.text == "param"
            and key == "value"
            and lock.owner != target
            and _within_tunable(entry.node, prop.value)
        ):
            # A tunable parameter of a locked declaration: the base opened it to tenants,
            # so an extension may choose within the same range.
            return True
        self._lock_error(prop.key.span, f"changing `{key}` of `{target}`", lock, target)
        return False

    def _override_list(
        self,
        declaration: nodes.Declaration,
        entry: _Entry,
        lock: _Lock | None,
        changed: dict[tuple[str, str], Span],
        result: _Resolved,
    ) -> None:
        target = declaration.name.text
        assert declaration.body is not None
        if entry.node.kind.text != "list" or not isinstance(entry.node.value, nodes.ListValue):
            self.error(
                "PL612",
                f"{entry.node.kind.text} `{target}` is replaced whole: "
                f"`override {entry.node.kind.text} {target} = ...`",
                declaration.name.span,
                label="only a list takes `add` and `remove`",
                help=f"write `override {entry.node.kind.text} {target} = NEW_VALUE`",
            )
            result.ok = False
            return
        items = list(entry.node.value.items)
        for prop in declaration.body.properties:
            key = prop.key.text
            if key not in ("add", "remove"):
                guess = did_you_mean(key, ("add", "remove"))
                self.error(
                    "PL612",
                    f"unknown list override `{key}`",
                    prop.key.span,
                    label="not `add` or `remove`",
                    help=f"did you mean `{guess}`?"
                    if guess
                    else f"write `override list {target} {{ add: [...] remove: [...] }}`, "
                    f"or replace it whole with `override list {target} = [...]`",
                )
                result.ok = False
                continue
            if not self._conflict(changed, (target, key), prop.key.span):
                result.ok = False
                continue
            if not isinstance(prop.value, nodes.ListValue):
                self.error(
                    "PL612",
                    f"`{key}` takes a list of terms",
                    prop.value.span,
                    label="not a list",
                    help=f'write `{key}: ["term", ...]`',
                )
                result.ok = False
                continue
            if lock is not None:
                self._lock_error(prop.key.span, f"changing list `{target}`", lock, target)
                result.ok = False
                continue
            if key == "add":
                items.extend(prop.value.items)
                continue
            for item in prop.value.items:
                found = next(
                    (
                        i
                        for i in items
                        if isinstance(i, nodes.String)
                        and isinstance(item, nodes.String)
                        and i.value == item.value
                    ),
                    None,
                )
                if found is None:
                    self.error(
                        "PL603",
                        f"list `{target}` has no term {_quote(item)} to remove",
                        item.span,
                        label="not in the list",
                        secondary=[Label(entry.node.name.span, "the list")],
                        help="remove only terms the list has (terms match exactly)",
                    )
                    result.ok = False
                    continue
                items.remove(found)
        value = entry.node.value
        entry.node = dataclasses.replace(
            entry.node, value=dataclasses.replace(value, items=tuple(items))
        )

    def _conflict(
        self, changed: dict[tuple[str, str], Span], key: tuple[str, str], span: Span
    ) -> bool:
        target, field_name = key
        first = next(
            (s for (t, f), s in changed.items() if t == target and _overlap(f, field_name)), None
        )
        if first is None:
            changed[key] = span
            return True
        what = f"`{target}`" if field_name == "=" else f"`{field_name}` of `{target}`"
        self.error(
            "PL605",
            f"conflicting overrides of {what}",
            span,
            label="changed again here",
            secondary=[Label(first, "first changed here")],
            help="change each field once per file; merge the two overrides",
        )
        return False

    def _disable(
        self,
        disable: nodes.Property,
        result: _Resolved,
        covered: Mapping[str, _Lock],
        changed: dict[tuple[str, str], Span],
        has_base: bool,
        inherited: set[str],
    ) -> None:
        if not isinstance(disable.value, nodes.ListValue):
            self.error(
                "PL612",
                "`disable` takes a list of rule names",
                disable.value.span,
                label="not a list",
                help="write `disable: [last_warning]`",
            )
            result.ok = False
            return
        for item in disable.value.items:
            if not isinstance(item, nodes.Ref):
                self.error(
                    "PL612",
                    "`disable` takes rule names",
                    item.span,
                    label="not a name",
                    help="write `disable: [last_warning]`",
                )
                result.ok = False
                continue
            target = item.name.text
            entry = result.entries.get(target)
            if entry is not None and target not in inherited:
                self.error(
                    "PL603",
                    f"cannot disable `{target}`: this file declares it",
                    item.span,
                    label="not inherited",
                    secondary=[Label(entry.node.name.span, "declared here")],
                    help="delete the rule instead",
                )
                result.ok = False
                continue
            if entry is None or entry.node.kind.text != "rule":
                rules = [n for n, e in result.entries.items() if e.node.kind.text == "rule"]
                guess = did_you_mean(target, rules)
                what = (
                    f"`{target}` is {_a(entry.node.kind.text)}, and only rules can be disabled"
                    if entry is not None
                    else f"cannot disable `{target}`: "
                    + (
                        "the base policy has no such rule"
                        if has_base
                        else "this policy extends nothing"
                    )
                )
                self.error(
                    "PL603" if entry is None else "PL604",
                    what,
                    item.span,
                    label="not an inherited rule",
                    secondary=self._base_label(target)
                    if entry is None
                    else [
                        Label(entry.node.name.span, f"declared as {_a(entry.node.kind.text)} here")
                    ],
                    help=f"did you mean `{guess}`?" if guess else None,
                )
                result.ok = False
                continue
            # A disable conflicts with any override of the same rule in this file.
            clash = next((s for (t, _), s in changed.items() if t == target), None)
            if clash is not None:
                self.error(
                    "PL605",
                    f"`{target}` is both overridden and disabled",
                    item.span,
                    label="disabled here",
                    secondary=[Label(clash, "overridden here")],
                    help="drop the override, or do not disable the rule",
                )
                result.ok = False
                continue
            changed[(target, "disable")] = item.span
            lock = covered.get(target)
            if lock is not None:
                self._lock_error(item.span, f"disabling rule `{target}`", lock, target)
                result.ok = False
                continue
            del result.entries[target]

    # -- parameters

    def params(self, resolved: _Resolved) -> dict[str, _Param]:
        """Every ``param`` of the composed policy, checked."""
        found: dict[str, _Param] = {}
        for name, entry in resolved.entries.items():
            if entry.node.kind.text != "param":
                continue
            param = self._param(entry)
            if param is None:
                resolved.ok = False
                self.broken_params.add(name)
            else:
                found[name] = param
        return found

    def _param(self, entry: _Entry) -> _Param | None:
        node = entry.node
        if node.body is None:
            self.error(
                "PL609",
                f"param `{node.name.text}` must be written as a block",
                node.kind.span.cover(node.name.span),
                label="not a block",
                help=f"write `param {node.name.text} {{ value: 3 }}`",
            )
            return None
        ok = True
        for prop in node.body.properties:
            if prop.key.text not in _PARAM_KEYS:
                guess = did_you_mean(prop.key.text, _PARAM_KEYS)
                self.error(
                    "PL609",
                    f"unknown param field `{prop.key.text}`",
                    prop.key.span,
                    label="not a param field",
                    help=f"did you mean `{guess}`?"
                    if guess
                    else "a param has " + ", ".join(f"`{k}`" for k in _PARAM_KEYS),
                )
                ok = False
        props = _props(node)
        value = props.get("value")
        if value is None or not isinstance(value.value, nodes.Number | nodes.String):
            self.error(
                "PL609",
                f"param `{node.name.text}` needs a `value`: a number or a string",
                value.value.span if value is not None else node.name.span,
                label="no value" if value is None else "not a number or a string",
                help='write `value: 3`, `value: 0.8` or `value: "..."`',
            )
            return None
        low: float | None = None
        high: float | None = None
        tunable = False
        tunable_prop = props.get("tunable")
        if tunable_prop is not None:
            shape = tunable_prop.value
            if isinstance(shape, nodes.Ref) and shape.name.text in ("true", "false"):
                tunable = shape.name.text == "true"
                if tunable and isinstance(value.value, nodes.Number):
                    self.error(
                        "PL609",
                        "a number param is tunable within a range",
                        shape.span,
                        label="needs bounds",
                        help="write `tunable: [LOW, HIGH]`, the values a tenant may choose",
                    )
                    ok = False
            elif (
                isinstance(shape, nodes.ListValue)
                and len(shape.items) == 2
                and all(isinstance(i, nodes.Number) for i in shape.items)
                and isinstance(value.value, nodes.Number)
            ):
                bounds = [i.value for i in shape.items if isinstance(i, nodes.Number)]
                low, high = bounds[0], bounds[1]
                tunable = True
                if low > high:
                    self.error(
                        "PL609",
                        f"the range of `{node.name.text}` is empty: {_num(low)} > {_num(high)}",
                        shape.span,
                        label="low bound above high bound",
                        help="write the range as `[LOW, HIGH]`",
                    )
                    ok = False
                elif not low <= value.value.value <= high:
                    self.error(
                        "PL609",
                        f"`{node.name.text}` is {_num(value.value.value)}, outside its "
                        f"tunable range [{_num(low)}, {_num(high)}]",
                        value.value.span,
                        label="out of range",
                        secondary=[Label(shape.span, "range declared here")],
                        help="keep the value inside the range tenants may choose from",
                    )
                    ok = False
            else:
                self.error(
                    "PL609",
                    "`tunable` is `[LOW, HIGH]` for a number, `true` for a string",
                    shape.span,
                    label="not a tunable range",
                    help="write `tunable: [1, 5]`",
                )
                ok = False
        if (
            entry.lock is not None
            and entry.lock.kind != "frozen"
            and not isinstance(value.value, nodes.Number)
        ):
            self.error(
                "PL609",
                f"`locked: {entry.lock.kind}` needs a number value",
                entry.lock.span,
                label="a string has no direction",
                help="write `locked: true`",
            )
            ok = False
        if not ok:
            return None
        declared = (low, high)
        if entry.lock is not None and isinstance(value.value, nodes.Number):
            # A directional lock bounds tenants as it bounds extensions.
            if entry.lock.kind == "raise-only" and low is not None:
                low = max(low, value.value.value)
            if entry.lock.kind == "lower-only" and high is not None:
                high = min(high, value.value.value)
            if entry.lock.kind == "frozen":
                tunable = False
        clamped = (low, high) != declared
        return _Param(entry, value.value, tunable, low, high, clamped)

    def tenant(self, path: str, resolved: _Resolved, params: dict[str, _Param]) -> None:
        """Apply the tenant file at ``path`` to ``params``; its link joins the chain."""
        self.composed = True
        source = self._read(path, None, "tenant file")
        if source is None:
            resolved.ok = False
            return
        tree = self._parse(source)
        if tree is None:
            resolved.ok = False
            return
        start = self.segments[-1].start
        tenants = [d for d in tree.declarations if d.kind.text == "tenant" and d.modifier is None]
        others = [d for d in tree.declarations if d not in tenants]
        if len(tenants) != 1 or others or tenants[0].body is None:
            where = others[0].kind.span if others else Span.empty(start)
            self.error(
                "PL612",
                "a tenant file holds exactly one `tenant NAME { ... }` block",
                where,
                label="not a tenant block" if others else "no tenant here",
                help="write `tenant acme { set: { redirects_before_end: 3 } }`",
            )
            resolved.ok = False
            return
        tenant = tenants[0]
        assert tenant.body is not None
        props = _props(tenant)
        for prop in tenant.body.properties:
            if prop.key.text not in _TENANT_KEYS:
                guess = did_you_mean(prop.key.text, _TENANT_KEYS)
                self.error(
                    "PL612",
                    f"unknown tenant field `{prop.key.text}`",
                    prop.key.span,
                    label="not a tenant field",
                    help=f"did you mean `{guess}`?"
                    if guess
                    else "a tenant has " + ", ".join(f"`{k}`" for k in _TENANT_KEYS),
                )
                resolved.ok = False
        policy = props.get("policy")
        if policy is not None:
            named = policy.value.name.text if isinstance(policy.value, nodes.Ref) else None
            if named != resolved.name:
                self.error(
                    "PL612",
                    f"tenant `{tenant.name.text}` is for policy `{named}`, not `{resolved.name}`"
                    if named
                    else "`policy` names the policy this tenant is for",
                    policy.value.span,
                    label="another policy" if named else "not a name",
                    help=f"apply it to `{named}`, or write `policy: {resolved.name}`"
                    if named
                    else f"write `policy: {resolved.name}`",
                )
                resolved.ok = False
        settings = props.get("set")
        if settings is not None and not isinstance(settings.value, nodes.Block):
            self.error(
                "PL612",
                "`set` takes a block of parameter values",
                settings.value.span,
                label="not a block",
                help="write `set: { redirects_before_end: 3 }`",
            )
            resolved.ok = False
            settings = None
        seen: dict[str, Span] = {}
        for item in settings.value.properties if settings is not None else ():  # type: ignore[union-attr]
            name = item.key.text
            param = params.get(name)
            if name in seen:
                self.error(
                    "PL605",
                    f"`{name}` is set twice",
                    item.key.span,
                    label="set again here",
                    secondary=[Label(seen[name], "first set here")],
                    help="set each parameter once",
                )
                resolved.ok = False
                continue
            seen[name] = item.key.span
            if param is None and name in self.broken_params:
                resolved.ok = False  # the parameter itself is reported
                continue
            if param is None:
                guess = did_you_mean(name, params)
                self.error(
                    "PL608",
                    f"policy `{resolved.name}` has no parameter `{name}`",
                    item.key.span,
                    label="unknown parameter",
                    help=f"did you mean `{guess}`?"
                    if guess
                    else (
                        "tunable parameters: "
                        + (", ".join(f"`{n}`" for n, p in params.items() if p.tunable) or "none")
                    ),
                )
                resolved.ok = False
                continue
            if not param.tunable:
                self.error(
                    "PL610",
                    f"`{name}` is not tunable",
                    item.key.span,
                    label="a tenant cannot set it",
                    secondary=[
                        Label(
                            param.entry.node.name.span, f"declared by `{param.entry.policy}` here"
                        )
                    ],
                    help="only parameters the policy declares `tunable` can be set per tenant",
                )
                resolved.ok = False
                continue
            new = item.value
            if isinstance(param.value, nodes.Number):
                if not isinstance(new, nodes.Number):
                    self.error(
                        "PL611",
                        f"`{name}` is a number",
                        new.span,
                        label="not a number",
                        help=f"choose a number in [{_num(param.low or 0)}, "
                        f"{_num(param.high or 0)}]",
                    )
                    resolved.ok = False
                    continue
                assert param.low is not None and param.high is not None
                if not param.low <= new.value <= param.high:
                    self.error(
                        "PL611",
                        f"`{name}` must be within [{_num(param.low)}, {_num(param.high)}], "
                        f"not {_num(new.value)}",
                        new.span,
                        label="out of range",
                        secondary=[Label(param.entry.node.name.span, "the range is declared here")],
                        help="a tenant chooses within the range the policy declares"
                        + (
                            f"; its {param.entry.lock.kind} lock keeps it on one side of the "
                            f"policy's value, {_num(param.value.value)}"
                            if param.clamped
                            and param.entry.lock is not None
                            and isinstance(param.value, nodes.Number)
                            else ""
                        ),
                    )
                    resolved.ok = False
                    continue
            elif not isinstance(new, nodes.String):
                self.error(
                    "PL611",
                    f"`{name}` is a string",
                    new.span,
                    label="not a string",
                    help='write a string, as in `"..."`',
                )
                resolved.ok = False
                continue
            param.value = new
        version = _string(props["version"].value) if "version" in props else None
        resolved.chain.append(
            PolicyLink(
                role="tenant",
                name=tenant.name.text,
                version=version or "",
                sha256=_sha256(source.text),
            )
        )

    # -- substitution and assembly

    def assemble(
        self, resolved: _Resolved, params: dict[str, _Param], root_start: int
    ) -> nodes.PolicyFile:
        """The composed tree: the root header, then every declaration, params substituted."""
        used: set[str] = set()
        out: list[nodes.Declaration] = []
        if resolved.header is not None:
            out.append(_without(resolved.header, ("extends", "disable")))
        for entry in resolved.entries.values():
            if entry.node.kind.text in COMPOSITION_KINDS:
                continue
            node = _without(entry.node, ("locked",))
            out.append(self._substitute(node, params, used))
        out.extend(self._substitute(d, params, used) for d in resolved.extra)
        for name, param in params.items():
            if name not in used and param.entry.path == resolved.path:
                self.warning(
                    "PL615",
                    f"param `{name}` is never used",
                    param.entry.node.name.span,
                    label="declared but never used",
                    help="use it in a condition, threshold, window or message, or remove it",
                )
        return nodes.PolicyFile(declarations=tuple(out), span=Span(0, self.end))

    def _substitute(self, node: _N, params: Mapping[str, _Param], used: set[str]) -> _N:
        """``node`` with every parameter reference replaced by the parameter's value."""
        if isinstance(node, tuple):
            return tuple(self._substitute(item, params, used) for item in node)  # type: ignore[return-value]
        if isinstance(node, nodes.Score) and isinstance(node.threshold, nodes.Ref):
            return dataclasses.replace(node, threshold=self._number(node.threshold, params, used))
        if isinstance(node, nodes.Duration | nodes.ResetAfter) and isinstance(
            node.turns, nodes.Ref
        ):
            return dataclasses.replace(node, turns=self._number(node.turns, params, used))
        if isinstance(node, nodes.Comparison) and isinstance(node.operand, nodes.Ref):
            name = node.operand.name.text
            window = self._substitute(node.window, params, used)
            if name in params or node.subject.text != "severity":
                # A count is compared with a number or a parameter, never another name.
                return dataclasses.replace(
                    node, operand=self._number(node.operand, params, used), window=window
                )
            return dataclasses.replace(node, window=window)
        if isinstance(node, nodes.Property) and isinstance(node.value, nodes.Ref):
            name = node.value.name.text
            if name in params:
                used.add(name)
                value = params[name].value
                return dataclasses.replace(
                    node, value=dataclasses.replace(value, span=node.value.span)
                )
            return node
        if dataclasses.is_dataclass(node) and not isinstance(node, type | Span | nodes.Name):
            changes = {
                f.name: self._substitute(getattr(node, f.name), params, used)
                for f in dataclasses.fields(node)
                if f.name != "span"
            }
            return dataclasses.replace(node, **changes)
        return node

    def _number(
        self, ref: nodes.Ref, params: Mapping[str, _Param], used: set[str]
    ) -> nodes.Number | nodes.Ref:
        name = ref.name.text
        param = params.get(name)
        if param is None and name in self.broken_params:
            used.add(name)
            return ref  # the parameter itself is reported
        if param is None:
            guess = did_you_mean(name, params)
            self.error(
                "PL608",
                f"unknown parameter `{name}`",
                ref.span,
                label="expected a number or a parameter",
                help=f"did you mean `{guess}`?"
                if guess
                else ("write a number, or declare `param " + name + " { value: N }`"),
            )
            return ref
        used.add(name)
        if not isinstance(param.value, nodes.Number):
            self.error(
                "PL609",
                f"parameter `{name}` is a string; a number is needed here",
                ref.span,
                label="not a number",
                secondary=[Label(param.entry.node.name.span, "declared here")],
                help="use a number parameter here",
            )
            return ref
        return dataclasses.replace(param.value, span=ref.span)


@dataclass(slots=True)
class _Param:
    entry: _Entry
    value: nodes.Number | nodes.String
    tunable: bool
    low: float | None
    high: float | None
    clamped: bool = False
    """Whether a directional lock narrowed the declared range to one side of the value."""


def compose(
    source: SourceFile,
    tree: nodes.PolicyFile,
    sink: DiagnosticSink,
    *,
    tenant: str | None = None,
    limits: PolicyLimits | None = None,
) -> Composition | None:
    """Resolve ``tree`` (parsed from ``source``) and its chain into one plain policy.

    Problems go to ``sink`` in real-file coordinates. Returns None when composition
    failed (the checker should not run on a partial policy). Every file read (a base,
    an import, the tenant) must be within ``limits.max_policy_size`` (by default the
    configured limit, see :class:`policylang.limits.PolicyLimits`), or it is a PL003
    error where it is named.
    """
    max_file_size = None if limits is None else limits.max_policy_size
    composer = _Composer(source, sink, source.path, max_file_size)
    resolved = composer.resolve_root(tree)
    composition: Composition | None = None
    merged: nodes.PolicyFile | None = None
    if resolved is not None:
        params = composer.params(resolved)
        if tenant is not None:
            composer.tenant(tenant, resolved, params)
        merged = composer.assemble(resolved, params, 0)
    text = "\n".join(segment.source.text for segment in composer.segments)
    virtual = SourceFile(source.path, text)
    composition = Composition(
        source=virtual,
        tree=merged or nodes.PolicyFile(declarations=(), span=Span(0, len(text))),
        chain=tuple(resolved.chain) if resolved is not None else (),
        segments=tuple(composer.segments),
        root=source,
        composed=composer.composed,
        tenant_path=tenant,
    )
    for diagnostic in composer.virtual:
        sink.add(composition.remap(diagnostic))
    failed = resolved is None or not resolved.ok or composer.virtual.has_errors
    return None if failed else composition


def _overlap(first: str, second: str) -> bool:
    """Whether two changes to one declaration touch the same field (so one would undo the other).

    A whole new value (``=``) overlaps every change; ``add_detect`` overlaps ``detect``.
    """
    if "disable" in (first, second):
        return False
    if "=" in (first, second):
        return True
    return _ADDERS.get(first, first) == _ADDERS.get(second, second)


def _within_tunable(param: nodes.Declaration, value: nodes.Value) -> bool:
    """Whether ``value`` is one a tenant could give ``param`` (within its tunable range)."""
    tunable = _props(param).get("tunable")
    if tunable is None:
        return False
    shape = tunable.value
    if isinstance(shape, nodes.Ref):
        return shape.name.text == "true" and isinstance(value, nodes.String)
    if isinstance(shape, nodes.ListValue) and isinstance(value, nodes.Number):
        bounds = [item.value for item in shape.items if isinstance(item, nodes.Number)]
        return len(bounds) == 2 and bounds[0] <= value.value <= bounds[1]
    return False


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _quote(item: nodes.Value) -> str:
    return f'"{item.value}"' if isinstance(item, nodes.String) else "that"


def _special_file(path: str) -> bool:
    """Whether ``path`` is a pipe, socket or device (a missing file or a folder is not)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False  # reported when it is read
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
