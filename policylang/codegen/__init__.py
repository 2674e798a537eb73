"""Code generation: render a checked :class:`~policylang.ir.PolicySpec` as a Python module.

The module's shape lives in ``templates/module.py.j2``; every value enters it through a
``py_*`` filter (:mod:`policylang.codegen.pyrender`). Detector and condition trees are
turned into layout documents here and laid out like ``ruff format`` would, so the output
is a fixed point of the project's formatter. Rendering does not verify; callers run
:func:`policylang.codegen.verify.verify_module` on the result (``compile_source`` does).
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass

import jinja2

from policylang import ir, runtime
from policylang.codegen.pyrender import (
    Call,
    Doc,
    PySource,
    Tup,
    canonical_flags,
    finalize,
    is_overlong,
    layout,
    py_bool,
    py_comment,
    py_enum,
    py_flags,
    py_float,
    py_int,
    py_name,
    py_regex,
    py_shell_word,
    py_str,
    py_token,
    runtime_class,
)
from policylang.normalize import STEPS, NormalizationConfig

__all__ = ["compiler_version", "render_module"]

_FALLBACK_VERSION = "0.1.0"

# Top-level declaration fields sit at this indentation in the template.
_FIELD_INDENT = 8

_NONE = PySource("None")

_COMPARATORS: frozenset[str] = frozenset({">=", "<=", "==", "!=", ">", "<"})


def compiler_version() -> str:
    """The policylang version recorded in generated modules as ``COMPILER_VERSION``."""
    import policylang

    version = getattr(policylang, "__version__", None)
    if type(version) is str:
        return version
    try:
        return importlib.metadata.version("policylang")
    except importlib.metadata.PackageNotFoundError:
        return _FALLBACK_VERSION


# --------------------------------------------------------------------- patterns


@dataclass(frozen=True, slots=True)
class PatternDef:
    """One module-level precompiled pattern: its synthesized name, source and flags."""

    name: str
    regex: str
    flags: tuple[str, ...]


class PatternTable:
    """The policy's distinct (regex, flags) pairs, named ``_P0001``... in first-use order."""

    def __init__(self, spec: ir.PolicySpec) -> None:
        """Collect patterns from categories, signals and redirects, in declaration order."""
        self._names: dict[tuple[str, tuple[str, ...]], str] = {}
        self._defs: list[PatternDef] = []
        for category in spec.categories:
            self._collect(category.detect)
            self._collect(category.unless)
            self._collect(category.follow_up)
        for signal in spec.signals:
            self._collect(signal.detect)
            self._collect(signal.unless)
        for redirect in spec.redirects:
            self._collect(redirect.detect)

    def __iter__(self) -> Iterator[PatternDef]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)

    def _collect(self, detector: ir.DetectorSpec | None) -> None:
        if detector is None:
            return
        if type(detector) is ir.KeywordsSpec:
            self._add(detector.regex, ())
        elif type(detector) is ir.PatternSpec:
            self._add(detector.regex, canonical_flags(detector.flags))
        elif type(detector) is ir.AllOfSpec or type(detector) is ir.AnyOfSpec:
            for item in detector.items:
                self._collect(item)
        elif type(detector) is ir.NotSpec:
            self._collect(detector.item)

    def _add(self, regex: str, flags: tuple[str, ...]) -> None:
        key = (regex, flags)
        if key not in self._names:
            name = f"_P{len(self._defs) + 1:04d}"
            self._names[key] = name
            self._defs.append(PatternDef(name, regex, flags))

    def name_for(self, regex: str, flags: tuple[str, ...]) -> PySource:
        """The constant holding this pattern."""
        return py_name(self._names[(regex, canonical_flags(flags))])


# --------------------------------------------------------------------- documents


def _op(value: object) -> PySource:
    # Comparators are a closed set; py_str alone would accept any text.
    if type(value) is not str or value not in _COMPARATORS:
        raise ValueError(f"not a comparator: {value!r}")
    return py_str(value)


def _number(value: object) -> PySource:
    return py_int(value) if type(value) is int else py_float(value)


def _optional_int(value: object) -> PySource:
    return _NONE if value is None else py_int(value)


def _call(cls: type, *args: tuple[str, Doc]) -> Call:
    return Call(runtime_class(cls), tuple(args))


def _detector_doc(detector: object, patterns: PatternTable) -> Doc:
    if type(detector) is ir.KeywordsSpec:
        return _call(
            runtime.Keywords,
            ("label", py_str(detector.label)),
            ("pattern", patterns.name_for(detector.regex, ())),
            ("line", py_int(detector.line)),
            ("column", py_int(detector.column)),
        )
    if type(detector) is ir.PatternSpec:
        return _call(
            runtime.Pattern,
            ("label", py_str(detector.label)),
            ("pattern", patterns.name_for(detector.regex, detector.flags)),
            ("line", py_int(detector.line)),
            ("column", py_int(detector.column)),
        )
    if type(detector) is ir.ScoreSpec:
        return _call(
            runtime.Score,
            ("label", py_str(detector.label)),
            ("key", py_str(detector.key)),
            ("op", _op(detector.op)),
            ("threshold", _number(detector.threshold)),
            ("line", py_int(detector.line)),
            ("column", py_int(detector.column)),
        )
    if type(detector) is ir.AnnotationSpec:
        return _call(
            runtime.Annotation,
            ("label", py_str(detector.label)),
            ("name", py_str(detector.name)),
            ("line", py_int(detector.line)),
            ("column", py_int(detector.column)),
        )
    if type(detector) is ir.AllOfSpec:
        items = tuple(_detector_doc(item, patterns) for item in detector.items)
        return _call(runtime.AllOf, ("items", Tup(items)))
    if type(detector) is ir.AnyOfSpec:
        items = tuple(_detector_doc(item, patterns) for item in detector.items)
        return _call(runtime.AnyOf, ("items", Tup(items)))
    if type(detector) is ir.NotSpec:
        return _call(runtime.Not, ("item", _detector_doc(detector.item, patterns)))
    raise TypeError(f"not a detector spec: {type(detector).__name__}")


def _condition_doc(condition: object) -> Doc:
    if type(condition) is runtime.CounterCompare:
        return _call(
            runtime.CounterCompare,
            ("counter", py_str(condition.counter)),
            ("key", _NONE if condition.key is None else py_str(condition.key)),
            ("op", _op(condition.op)),
            ("value", py_int(condition.value)),
            ("window", _optional_int(condition.window)),
        )
    if type(condition) is runtime.SeverityCompare:
        return _call(
            runtime.SeverityCompare,
            ("op", _op(condition.op)),
            ("level", py_enum(condition.level)),
        )
    if type(condition) is runtime.CategoryIn:
        names = Tup(tuple(py_str(name) for name in condition.names))
        return _call(runtime.CategoryIn, ("names", names))
    if type(condition) is runtime.SignalMatched:
        return _call(runtime.SignalMatched, ("name", py_str(condition.name)))
    if type(condition) is runtime.AllConditions:
        items = Tup(tuple(_condition_doc(item) for item in condition.items))
        return _call(runtime.AllConditions, ("items", items))
    if type(condition) is runtime.AnyCondition:
        items = Tup(tuple(_condition_doc(item) for item in condition.items))
        return _call(runtime.AnyCondition, ("items", items))
    if type(condition) is runtime.NotCondition:
        return _call(runtime.NotCondition, ("item", _condition_doc(condition.item)))
    raise TypeError(f"not a condition: {type(condition).__name__}")


def _field(doc: Doc, key: str) -> PySource:
    # The value of ``        key=<value>,`` in a top-level declaration.
    return layout(doc, _FIELD_INDENT, _FIELD_INDENT + len(key) + 1, 1)


# --------------------------------------------------------------------- filters


def py_detector(value: object, patterns: PatternTable, key: str) -> PySource:
    """A detector tree (or ``None``) as the value of the declaration field ``key``."""
    if value is None:
        return _NONE
    return _field(_detector_doc(value, patterns), key)


def py_condition(value: object, key: str) -> PySource:
    """A condition tree as the value of the declaration field ``key``."""
    return _field(_condition_doc(value), key)


def py_taxonomy(value: object, key: str) -> PySource:
    """Taxonomy ``(("scheme", "label"), ...)`` pairs as the value of the field ``key``."""
    if type(value) is not tuple:
        raise TypeError(f"py_taxonomy expects a tuple, got {type(value).__name__}")
    pairs: list[Doc] = []
    for pair in value:
        if type(pair) is not tuple or len(pair) != 2:
            raise TypeError("py_taxonomy expects (scheme, label) pairs")
        pairs.append(Tup((py_str(pair[0]), py_str(pair[1]))))
    return _field(Tup(tuple(pairs)), key)


def py_normalization(value: object, key: str) -> PySource:
    """A ``NormalizationConfig`` as the value of the field ``key``: the steps turned off.

    ``rt.NormalizationConfig(leetspeak=False, spacing=False)``; the keyword names are
    the compiler's own step names, never policy text.
    """
    if type(value) is not NormalizationConfig:
        raise TypeError(
            f"py_normalization expects a NormalizationConfig, got {type(value).__name__}"
        )
    assert isinstance(value, NormalizationConfig)
    args: list[tuple[str | None, Doc]] = []
    for step in value.off:
        if step not in STEPS:  # pragma: no cover - `off` only yields known steps
            raise ValueError(f"not a normalization step: {step!r}")
        args.append((step, py_bool(False)))
    return _field(Call(runtime_class(NormalizationConfig), tuple(args)), key)


def py_re_compile(value: object) -> PySource:
    """``re.compile(...)`` for a module-level pattern constant (``_P0001: Final = ...``)."""
    if type(value) is not PatternDef:
        raise TypeError(f"py_re_compile expects a PatternDef, got {type(value).__name__}")
    assert isinstance(value, PatternDef)
    args: list[tuple[str | None, Doc]] = [(None, py_regex(value.regex, value.flags))]
    if value.flags:
        args.append((None, py_flags(value.flags)))
    call = Call(PySource("re.compile"), tuple(args))
    return layout(call, 0, len(py_name(value.name)) + len(": Final = "))


_FILTERS = {
    "py_str": py_str,
    "py_int": py_int,
    "py_float": py_float,
    "py_bool": py_bool,
    "py_comment": py_comment,
    "py_name": py_name,
    "py_regex": py_regex,
    "py_flags": py_flags,
    "py_enum": py_enum,
    "py_token": py_token,
    "py_detector": py_detector,
    "py_condition": py_condition,
    "py_taxonomy": py_taxonomy,
    "py_normalization": py_normalization,
    "py_re_compile": py_re_compile,
    "py_shell_word": py_shell_word,
}


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("policylang.codegen", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters.update(_FILTERS)
    return env


def render_module(spec: ir.PolicySpec) -> str:
    """Render ``spec`` as the source of a compiled policy module.

    The result is deterministic (no timestamps, absolute paths or unordered
    iteration) and keeps declaration order. It is not yet verified.
    """
    if type(spec) is not ir.PolicySpec:
        raise TypeError(f"render_module expects a PolicySpec, got {type(spec).__name__}")
    template = _environment().get_template("module.py.j2")
    context = {
        "spec": spec,
        "patterns": PatternTable(spec),
        "compiler_version": compiler_version(),
        "runtime_abi": runtime.RUNTIME_ABI,
    }
    code = template.render(context, noqa_line_length=False)
    if any(is_overlong(line) for line in code.splitlines()):
        # Long policy text (a message, a pattern) cannot always be wrapped; say so
        # once for the file rather than exempt nothing and fail `ruff check`.
        code = template.render(context, noqa_line_length=True)
    return code
