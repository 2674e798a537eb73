"""The diagnostic code registry: well-formed, unique, and enforced by the sink."""

from __future__ import annotations

import re

import pytest

from policylang.codes import CODES, PHASES, Code, lookup
from policylang.diagnostics import DiagnosticSink, Severity
from policylang.source import Span

# Leading digit of the number -> family (PL0xx input ... PL9xx internal).
_FAMILIES = frozenset("012345689")


def test_keys_match_ids() -> None:
    assert all(key == code.id for key, code in CODES.items())


def test_ids_are_unique_and_well_formed() -> None:
    ids = [code.id for code in CODES.values()]
    assert len(ids) == len(set(ids))
    for code_id in ids:
        assert re.fullmatch(r"PL\d{3}", code_id), code_id


def test_names_are_unique_and_kebab_case() -> None:
    names = [code.name for code in CODES.values()]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name


def test_ids_belong_to_a_known_family() -> None:
    for code in CODES.values():
        assert code.id[2] in _FAMILIES, code.id


def test_entries_are_complete() -> None:
    for code in CODES.values():
        assert code.phase in PHASES, code.id
        assert isinstance(code.severity, Severity)
        assert code.summary, code.id
        assert code.summary == code.summary.strip()
        assert not code.summary.endswith("."), code.id
        assert "\n" not in code.summary


def test_registry_is_in_id_order() -> None:
    ids = list(CODES)
    assert ids == sorted(ids)


def test_required_codes() -> None:
    expected = {
        "PL001": ("invalid-utf8", Severity.ERROR),
        "PL002": ("unexpected-bom", Severity.WARNING),
        "PL101": ("unexpected-token", Severity.ERROR),
        "PL102": ("unexpected-character", Severity.ERROR),
        "PL103": ("unexpected-eof", Severity.ERROR),
        "PL104": ("unterminated-string", Severity.ERROR),
        "PL105": ("invalid-escape", Severity.ERROR),
        "PL900": ("internal-error", Severity.ERROR),
    }
    for code_id, (name, severity) in expected.items():
        assert (lookup(code_id).name, lookup(code_id).severity) == (name, severity)


def test_docs_path() -> None:
    assert lookup("PL001").docs_path == "docs/diagnostics.md#pl001"


def test_lookup_unknown_code_raises_key_error() -> None:
    with pytest.raises(KeyError):
        lookup("PL999")


def test_code_is_frozen() -> None:
    code = Code("PL000", "x", "source", Severity.INFO, "s")
    with pytest.raises(AttributeError):
        code.name = "y"  # type: ignore[misc]


# ---------------------------------------------------------------- sink uses the registry


def test_emitting_unregistered_code_is_a_bug() -> None:
    sink = DiagnosticSink()
    with pytest.raises(KeyError):
        sink.error("PL999", "nope", "a.policy", Span(0, 0))
    with pytest.raises(KeyError):
        sink.emit("not-a-code", "nope", "a.policy", Span(0, 0))
    assert len(sink) == 0


def test_emit_uses_registry_default_severity() -> None:
    sink = DiagnosticSink()
    assert sink.emit("PL002", "bom", "a.policy", Span(0, 0)).severity is Severity.WARNING
    assert sink.emit("PL101", "tok", "a.policy", Span(0, 1)).severity is Severity.ERROR
    overridden = sink.emit("PL002", "bom", "a.policy", Span(0, 0), severity=Severity.INFO)
    assert overridden.severity is Severity.INFO


def test_diagnostic_name_comes_from_registry() -> None:
    sink = DiagnosticSink()
    assert sink.error("PL104", "unterminated", "a.policy", Span(0, 3)).name == (
        "unterminated-string"
    )
