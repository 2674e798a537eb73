"""The front end's robustness invariants, shared by the hypothesis properties and atheris.

For any input, :func:`check_analyze` and :func:`check_format` either return normally or
raise :class:`Violation` (an ``AssertionError``) that says which invariant broke:

* ``analyze`` raises nothing, returns a ``PolicySpec`` or None, returns None exactly when
  it reported an error, reports only registered codes and never PL900, and every span
  (primary, secondary, suggestion) lies inside the file it points into; rendering the
  diagnostics as text and as JSON raises nothing;
* neither emits a Python warning (a user would see it on stderr);
* ``format_source`` raises nothing and never reports PL900; when it returns text, that
  text parses to the same syntax tree with the same comments, and formatting it again
  changes nothing; when it returns None, it reported an error.

:func:`time_limit` turns a hang into a :class:`Hang` failure. This module imports
nothing from hypothesis or atheris, so both drivers (``tests/fuzz`` and ``fuzz/``) use it.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from lark import Token

from policylang import codes, ir
from policylang.builder import parse
from policylang.checker import analyze
from policylang.diagnostics import Diagnostic, DiagnosticSink, Severity
from policylang.fmt import format_source
from policylang.parser import parse_tree
from policylang.render import render_human, render_json
from policylang.source import SourceFile, Span

__all__ = [
    "BUNDLED_POLICIES",
    "BUNDLED_TENANTS",
    "EXAMPLE_SECONDS",
    "ROOT",
    "Hang",
    "Violation",
    "check_all",
    "check_analyze",
    "check_bytes",
    "check_format",
    "check_format_bytes",
    "time_limit",
]

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_POLICIES = tuple(sorted((ROOT / "policies").glob("*.policy")))
BUNDLED_TENANTS = tuple(sorted((ROOT / "policies" / "tenants").glob("*.tenant")))

#: Wall-clock seconds one example may take (analysis and formatting together) before it
#: counts as a hang. This is a hang detector, not a speed check: a bundled policy takes
#: well under a second, a hang never finishes, and the margin between them absorbs a
#: shared, noisy machine.
EXAMPLE_SECONDS = float(os.environ.get("POLICYLANG_FUZZ_SECONDS", "30"))
#: Extra seconds allowed per character of input: work linear in the input (a diagnostic
#: for each of 20,000 bidi controls, each rendered) is slow, not a hang.
SECONDS_PER_CHARACTER = 0.0005


class Violation(AssertionError):
    """An input broke one of the front end's invariants."""


class Hang(Violation):
    """An input took longer than the time limit."""


class _Expired(BaseException):
    """Raised by the alarm: a BaseException, so that the front end's own ``except
    Exception`` (which turns a bug into PL900) cannot swallow it."""


# ---------------------------------------------------------------- time guard


@contextmanager
def time_limit(seconds: float | None = None) -> Iterator[None]:
    """Raise :class:`Hang` if the block runs longer than ``seconds``.

    ``None`` means :data:`EXAMPLE_SECONDS` as it is when the block starts (0 turns the
    guard off: atheris sets that, as libFuzzer's own ``-timeout`` owns ``SIGALRM``).
    Uses ``SIGALRM`` (a real-time interval timer), which interrupts Python code; it is a
    no-op off the main thread or where the platform has no ``setitimer``.
    """
    if seconds is None:
        seconds = EXAMPLE_SECONDS
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise Hang(f"took longer than {seconds:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- analyze


def _describe(diagnostic: Diagnostic) -> str:
    notes = "; ".join(diagnostic.notes)
    return f"{diagnostic.code} {diagnostic.path}: {diagnostic.message} [{notes}]"


class _Files:
    """The text of every file a diagnostic may point into, read as compose reads it."""

    def __init__(self, root: SourceFile) -> None:
        self.sources: dict[str, SourceFile] = {root.path: root}

    def get(self, path: str) -> SourceFile:
        found = self.sources.get(path)
        if found is None:
            try:
                data = Path(path).read_bytes()
            except (OSError, ValueError) as exc:
                message = f"a diagnostic points into unreadable file {path!r}: {exc}"
                raise Violation(message) from exc
            found, _ = SourceFile.from_bytes(path, data)
            self.sources[path] = found
        return found


def _check_span(files: _Files, path: str, span: Span, what: str, diagnostic: Diagnostic) -> None:
    length = len(files.get(path).text)
    if not 0 <= span.start <= span.end <= length:
        raise Violation(
            f"{what} span [{span.start}, {span.end}) outside {path!r} (length {length}): "
            + _describe(diagnostic)
        )


def _check_diagnostics(
    diagnostics: list[Diagnostic], files: _Files, *, where: str
) -> Mapping[str, SourceFile]:
    for diagnostic in diagnostics:
        if diagnostic.code not in codes.CODES:
            raise Violation(f"{where}: unregistered code: {_describe(diagnostic)}")
        if diagnostic.code == "PL900":
            raise Violation(f"{where}: internal error: {_describe(diagnostic)}")
        _check_span(files, diagnostic.path, diagnostic.span, "primary", diagnostic)
        for label in diagnostic.secondary:
            _check_span(files, label.path_or(diagnostic.path), label.span, "secondary", diagnostic)
        for suggestion in diagnostic.suggestions:
            _check_span(files, diagnostic.path, suggestion.span, "suggestion", diagnostic)
    return files.sources


def check_analyze(
    source: SourceFile, *, tenant: str | None = None, decoding: list[Diagnostic] | None = None
) -> ir.PolicySpec | None:
    """Run ``analyze`` on ``source`` (with ``tenant``) and check its invariants.

    ``decoding`` holds the diagnostics :meth:`SourceFile.from_bytes` gave, which are
    checked and rendered along with the analysis's.
    """
    sink = DiagnosticSink()
    spec = analyze(source, sink, tenant=tenant)
    diagnostics = [*(decoding or ()), *sink.sorted()]
    if spec is not None and not isinstance(spec, ir.PolicySpec):
        raise Violation(f"analyze returned {type(spec).__name__}")
    has_errors = any(d.severity is Severity.ERROR for d in sink.diagnostics)
    if has_errors and spec is not None:
        raise Violation("analyze returned a policy despite errors")
    if not has_errors and spec is None:
        raise Violation("analyze returned None without an error")
    sources = _check_diagnostics(diagnostics, _Files(source), where="analyze")
    render_human(diagnostics, sources, color=True)
    render_json(diagnostics, sources, tool_version="fuzz")
    return spec


# ---------------------------------------------------------------- format


def _comments(text: str) -> Counter[str] | None:
    comments: list[Token] = []
    if parse_tree(SourceFile("comments.policy", text), DiagnosticSink(), comments=comments) is None:
        return None
    return Counter(str(c).rstrip() for c in comments)


def check_format(source: SourceFile) -> str | None:
    """Run ``format_source`` on ``source`` and check its invariants; return its output."""
    sink = DiagnosticSink()
    text = format_source(source, sink)
    _check_diagnostics(list(sink.diagnostics), _Files(source), where="fmt")
    if text is None:
        if not sink.has_errors:
            raise Violation("fmt returned None without an error")
        return None
    if sink.has_errors:
        raise Violation("fmt returned text despite errors")
    before_sink, after_sink = DiagnosticSink(), DiagnosticSink()
    before = parse(source, before_sink)
    output = SourceFile(source.path, text)
    after = parse(output, after_sink)
    if after is None or after_sink.has_errors:
        first = after_sink.sorted()[0].message if after_sink.diagnostics else "no diagnostic"
        raise Violation(f"fmt output does not parse: {first}")
    if before != after:
        raise Violation("fmt output has a different syntax tree")
    if _comments(text) != _comments(source.text):
        raise Violation("fmt output has different comments")
    again_sink = DiagnosticSink()
    again = format_source(output, again_sink)
    if again != text:
        raise Violation("fmt is not idempotent: formatting its output changes it")
    return text


@contextmanager
def _guarded(source: SourceFile) -> Iterator[None]:
    """:func:`time_limit` for ``source``; fail if a Python warning escapes (a user sees it)."""
    seconds = EXAMPLE_SECONDS and EXAMPLE_SECONDS + SECONDS_PER_CHARACTER * len(source.text)
    with time_limit(seconds), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if caught:
        first = caught[0]
        raise Violation(
            f"a Python warning escaped: {first.category.__name__}: {first.message} "
            f"({first.filename}:{first.lineno})"
        )


def check_all(
    source: SourceFile,
    *,
    tenant: str | None = None,
    decoding: list[Diagnostic] | None = None,
    format: bool = True,
) -> None:
    """Check ``analyze`` (and ``format_source`` unless not ``format``) on ``source``.

    Both run under :func:`time_limit`, and neither may emit a Python warning.
    """
    with _guarded(source):
        check_analyze(source, tenant=tenant, decoding=decoding)
        if format:
            check_format(source)


def check_bytes(path: str, data: bytes, *, tenant: str | None = None, format: bool = True) -> None:
    """Decode ``data`` as the CLI does (:meth:`SourceFile.from_bytes`) and :func:`check_all`."""
    source, decoding = SourceFile.from_bytes(path, data)
    check_all(source, tenant=tenant, decoding=decoding, format=format)


def check_format_bytes(path: str, data: bytes) -> None:
    """Decode ``data`` and check only ``format_source`` on it (a tenant file, a base)."""
    source, _ = SourceFile.from_bytes(path, data)
    with _guarded(source):
        check_format(source)
