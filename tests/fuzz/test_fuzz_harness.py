"""The fuzz invariants catch what they promise to: a fuzzer that cannot fail proves nothing.

Each test breaks the front end in one way (by replacing ``analyze`` or ``format_source``
inside :mod:`fuzz_helpers`) and checks that the harness reports it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import fuzz_helpers
import pytest
from fuzz_helpers import Hang, Violation, check_all, check_analyze, check_format, time_limit

from policylang import ir
from policylang.diagnostics import DiagnosticSink
from policylang.source import SourceFile, Span

SOURCE = SourceFile.from_text("harness.policy", 'policy p { version: "1" }\n')
Analyze = Callable[..., ir.PolicySpec | None]


def analyze_reporting(code: str, span: Span, *, path: str | None = None) -> Analyze:
    def analyze(source: SourceFile, sink: DiagnosticSink, **_: object) -> None:
        sink.error(code, "made up", path or source.path, span)

    return analyze


@pytest.mark.parametrize(
    ("analyze", "complaint"),
    [
        (analyze_reporting("PL900", Span(0, 1)), "internal error"),
        (analyze_reporting("PL101", Span(0, 10_000)), r"primary span \[0, 10000\) outside"),
        (analyze_reporting("PL601", Span(0, 0), path="/nonexistent/x"), "unreadable file"),
    ],
)
def test_bad_diagnostics_are_violations(
    monkeypatch: pytest.MonkeyPatch, analyze: Analyze, complaint: str
) -> None:
    monkeypatch.setattr(fuzz_helpers, "analyze", analyze)
    with pytest.raises(Violation, match=complaint):
        check_analyze(SOURCE)


def test_no_policy_and_no_error_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz_helpers, "analyze", lambda source, sink, **_: None)
    with pytest.raises(Violation, match="None without an error"):
        check_analyze(SOURCE)


def test_an_exception_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(source: SourceFile, sink: DiagnosticSink, **_: object) -> None:
        raise IndexError("boom")

    monkeypatch.setattr(fuzz_helpers, "analyze", crash)
    with pytest.raises(IndexError, match="boom"):
        check_all(SOURCE)


def test_a_python_warning_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    def noisy(source: SourceFile, sink: DiagnosticSink, **_: object) -> None:
        warnings.warn("noise", FutureWarning, stacklevel=1)
        sink.error("PL101", "made up", source.path, Span(0, 1))

    monkeypatch.setattr(fuzz_helpers, "analyze", noisy)
    with pytest.raises(Violation, match="FutureWarning: noise"):
        check_all(SOURCE)


@pytest.mark.parametrize(
    ("output", "complaint"),
    [
        ('policy q { version: "1" }\n', "different syntax tree"),
        ('policy p { version: "1" } # new\n', "different comments"),
        ('policy p {\n  version: "1" }\n', "not idempotent"),
        ("policy p {\n", "does not parse"),
    ],
)
def test_a_formatter_that_changes_the_policy_is_a_violation(
    monkeypatch: pytest.MonkeyPatch, output: str, complaint: str
) -> None:
    real = fuzz_helpers.format_source

    def wrong(source: SourceFile, sink: DiagnosticSink) -> str | None:
        # The first call is the one checked; formatting its output again is real.
        return output if source is SOURCE else real(source, sink)

    monkeypatch.setattr(fuzz_helpers, "format_source", wrong)
    with pytest.raises(Violation, match=complaint):
        check_format(SOURCE)


def test_time_limit_turns_a_hang_into_a_failure() -> None:
    with pytest.raises(Hang), time_limit(0.05):
        while True:
            pass


def test_time_limit_zero_is_off() -> None:
    with time_limit(0):
        total = sum(range(1000))
    assert total == 499500


def test_time_limit_is_not_swallowed_by_a_catch_all() -> None:
    # The front end turns any Exception into PL900; a hang must still be a hang.
    with pytest.raises(Hang), time_limit(0.05):
        while True:
            try:
                while True:
                    pass
            except Exception:
                pass
