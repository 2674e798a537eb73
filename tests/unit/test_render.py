"""Renderers: human goldens (plain), short lines, JSON against the checked-in schema.

Also covers the sink's ordering, deduplication and counts, which renderers rely on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policylang.diagnostics import (
    Applicability,
    Diagnostic,
    DiagnosticSink,
    Label,
    Severity,
    Suggestion,
)
from policylang.render import render_human, render_json, render_short, summary_line
from policylang.source import SourceFile, Span

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "diagnostics.schema.json"

REDIRECTS = "policies/examples/redirects.policy"
REDIRECTS_TEXT = "# redirects\n" * 13 + "  redirect self_harn -> crisis_support\n"


def _source(path: str, text: str) -> SourceFile:
    return SourceFile.from_text(path, text)


def _at(src: SourceFile, needle: str, occurrence: int = 0) -> Span:
    start = -1
    for _ in range(occurrence + 1):
        start = src.text.index(needle, start + 1)
    return Span(start, start + len(needle))


def _diag(
    path: str,
    span: Span,
    message: str = "something is wrong",
    *,
    code: str = "PL101",
    severity: Severity = Severity.ERROR,
    label: str = "",
    **kwargs: Any,
) -> Diagnostic:
    return Diagnostic(code, severity, message, path, Label(span, label), **kwargs)


# ---------------------------------------------------------------- human goldens


def test_human_matches_the_style_guide_example() -> None:
    src = _source(REDIRECTS, REDIRECTS_TEXT)
    diagnostic = _diag(
        REDIRECTS,
        _at(src, "self_harn"),
        "unknown category `self_harn`",
        code="PL201",  # not registered yet; the human renderer does not look codes up
        label="not declared in this file",
        help="did you mean `self_harm`?",
    )
    assert render_human([diagnostic], {REDIRECTS: src}) == (
        "error[PL201]: unknown category `self_harn`\n"
        "  --> policies/examples/redirects.policy:14:12\n"
        "   |\n"
        "14 |   redirect self_harn -> crisis_support\n"
        "   |            ^^^^^^^^^ not declared in this file\n"
        "   |\n"
        "   = help: did you mean `self_harm`?\n"
        "\n"
        "1 error\n"
    )


def test_human_without_help_has_no_trailing_gutter() -> None:
    src = _source("a.policy", "category x {}\n")
    diagnostic = _diag("a.policy", _at(src, "{"), "unexpected `{`", label="here")
    assert render_human([diagnostic], {"a.policy": src}) == (
        "error[PL101]: unexpected `{`\n"
        " --> a.policy:1:12\n"
        "  |\n"
        "1 | category x {}\n"
        "  |            ^ here\n"
        "\n"
        "1 error\n"
    )


def test_human_notes_then_help_and_unlabelled_span() -> None:
    src = _source("a.policy", "abc\n")
    diagnostic = _diag(
        "a.policy",
        Span(0, 3),
        severity=Severity.WARNING,
        help="fix it",
        notes=("first note", "second note"),
    )
    assert render_human([diagnostic], {"a.policy": src}) == (
        "warning[PL101]: something is wrong\n"
        " --> a.policy:1:1\n"
        "  |\n"
        "1 | abc\n"
        "  | ^^^\n"
        "  |\n"
        "  = note: first note\n"
        "  = note: second note\n"
        "  = help: fix it\n"
        "\n"
        "1 warning\n"
    )


def test_human_zero_width_span_is_one_caret() -> None:
    src = _source("a.policy", "redirect a b\n")
    diagnostic = _diag("a.policy", Span.empty(10), "expected `->`", label="missing `->`")
    assert render_human([diagnostic], {"a.policy": src}) == (
        "error[PL101]: expected `->`\n"
        " --> a.policy:1:11\n"
        "  |\n"
        "1 | redirect a b\n"
        "  |           ^ missing `->`\n"
        "\n"
        "1 error\n"
    )


def test_human_eof_span_after_trailing_newline() -> None:
    src = _source("a.policy", "category x {\n")
    diagnostic = _diag("a.policy", src.end_span(), "unexpected end of file", label="expected `}`")
    assert render_human([diagnostic], {"a.policy": src}) == (
        "error[PL101]: unexpected end of file\n"
        " --> a.policy:2:1\n"
        "  |\n"
        "2 |\n"
        "  | ^ expected `}`\n"
        "\n"
        "1 error\n"
    )


def test_human_eof_span_of_empty_file() -> None:
    src = _source("empty.policy", "")
    diagnostic = _diag("empty.policy", src.end_span(), "empty policy", severity=Severity.INFO)
    assert render_human([diagnostic], {"empty.policy": src}) == (
        "info[PL101]: empty policy\n --> empty.policy:1:1\n  |\n1 |\n  | ^\n\n1 info\n"
    )


def test_human_tabs_expand_to_four_spaces_and_keep_alignment() -> None:
    src = _source("a.policy", "\tredirect\tself_harn -> x\n")
    diagnostic = _diag("a.policy", _at(src, "self_harn"), label="unknown")
    assert render_human([diagnostic], {"a.policy": src}) == (
        "error[PL101]: something is wrong\n"
        " --> a.policy:1:11\n"
        "  |\n"
        "1 |     redirect    self_harn -> x\n"
        "  |                 ^^^^^^^^^ unknown\n"
        "\n"
        "1 error\n"
    )


def test_human_tab_inside_span_is_underlined_at_full_width() -> None:
    src = _source("a.policy", "a\tb\n")
    diagnostic = _diag("a.policy", Span(0, 3))
    rendered = render_human([diagnostic], {"a.policy": src})
    assert "1 | a    b\n  | ^^^^^^\n" in rendered


def test_human_multiline_span_underlines_first_line_only() -> None:
    src = _source("a.policy", "category x {\n  pattern: 1\n}\nnext\n")
    start = src.text.index("{")
    end = src.text.index("}") + 1
    diagnostic = _diag("a.policy", Span(start, end), "bad block", label="in this block")
    assert render_human([diagnostic], {"a.policy": src}) == (
        "error[PL101]: bad block\n"
        " --> a.policy:1:12\n"
        "  |\n"
        "1 | category x {\n"
        "  |            ^ in this block (continues to line 3)\n"
        "\n"
        "1 error\n"
    )


def test_human_multiline_span_without_label() -> None:
    src = _source("a.policy", "ab\ncd\n")
    diagnostic = _diag("a.policy", Span(1, 5))
    rendered = render_human([diagnostic], {"a.policy": src})
    assert "1 | ab\n  |  ^ (continues to line 2)\n" in rendered


def test_human_span_ending_at_newline_is_not_multiline() -> None:
    src = _source("a.policy", "ab\ncd\n")
    diagnostic = _diag("a.policy", Span(0, 3), label="whole line")  # "ab\n"
    rendered = render_human([diagnostic], {"a.policy": src})
    assert "  | ^^ whole line\n" in rendered
    assert "continues" not in rendered


def test_human_secondary_labels_and_gutter_width() -> None:
    text = "".join(f"# line {n}\n" for n in range(1, 9)) + "category self_harm {}\n"
    text += "".join(f"# line {n}\n" for n in range(10, 100)) + "category self_harm {}\n"
    src = _source("dup.policy", text)
    diagnostic = _diag(
        "dup.policy",
        _at(src, "self_harm", occurrence=1),
        "duplicate category `self_harm`",
        label="declared again here",
        secondary=(Label(_at(src, "self_harm"), "first declared here"),),
        help="rename or remove one of them",
    )
    assert render_human([diagnostic], {"dup.policy": src}) == (
        "error[PL101]: duplicate category `self_harm`\n"
        "   --> dup.policy:100:10\n"
        "    |\n"
        "100 | category self_harm {}\n"
        "    |          ^^^^^^^^^ declared again here\n"
        "    |\n"
        "  9 | category self_harm {}\n"
        "    |          --------- first declared here\n"
        "    |\n"
        "    = help: rename or remove one of them\n"
        "\n"
        "1 error\n"
    )


def test_human_unknown_path_renders_header_and_path_only() -> None:
    diagnostic = _diag("missing.policy", Span(3, 4), "cannot read file", help="check the path")
    expected = [
        "error[PL101]: cannot read file",
        " --> missing.policy",
        "  = help: check the path",
        "",
        "1 error",
    ]
    assert render_human([diagnostic], {}) == "\n".join(expected) + "\n"


def test_human_several_diagnostics_and_summary() -> None:
    src = _source("a.policy", "one\ntwo\n")
    diagnostics = [
        _diag("a.policy", Span(0, 3), "first"),
        _diag("a.policy", Span(4, 7), "second", severity=Severity.WARNING),
        _diag("a.policy", Span(4, 5), "third"),
    ]
    assert render_human(diagnostics, {"a.policy": src}) == (
        "error[PL101]: first\n"
        " --> a.policy:1:1\n"
        "  |\n"
        "1 | one\n"
        "  | ^^^\n"
        "\n"
        "warning[PL101]: second\n"
        " --> a.policy:2:1\n"
        "  |\n"
        "2 | two\n"
        "  | ^^^\n"
        "\n"
        "error[PL101]: third\n"
        " --> a.policy:2:1\n"
        "  |\n"
        "2 | two\n"
        "  | ^\n"
        "\n"
        "2 errors, 1 warning\n"
    )


def test_human_max_errors_caps_output_but_not_summary() -> None:
    src = _source("a.policy", "abc\n")
    diagnostics = [_diag("a.policy", Span(i, i + 1), f"problem {i}") for i in range(3)]
    assert render_human(diagnostics, {"a.policy": src}, max_errors=1) == (
        "error[PL101]: problem 0\n"
        " --> a.policy:1:1\n"
        "  |\n"
        "1 | abc\n"
        "  | ^\n"
        "\n"
        "... and 2 more\n"
        "\n"
        "3 errors\n"
    )
    assert render_human(diagnostics, {"a.policy": src}, max_errors=3).count("error[") == 3
    assert render_human(diagnostics, {"a.policy": src}, max_errors=0) == (
        "... and 3 more\n\n3 errors\n"
    )
    with pytest.raises(ValueError):
        render_human(diagnostics, {"a.policy": src}, max_errors=-1)


def test_human_nothing_to_report_is_empty() -> None:
    assert render_human([], {}) == ""


def test_human_escapes_bidi_and_invisible_characters() -> None:
    # A right-to-left override would visually reorder the terminal line.
    src = _source("a.policy", 'phrase "a\u202eb"\n')
    span = _at(src, "\u202e")
    diagnostic = _diag("a.policy", span, "bidi control in `a\u202eb`", label="here")
    assert render_human([diagnostic], {"a.policy": src}) == (
        "error[PL101]: bidi control in `a<U+202E>b`\n"
        " --> a.policy:1:10\n"
        "  |\n"
        '1 | phrase "a<U+202E>b"\n'
        "  |          ^^^^^^^^ here\n"
        "\n"
        "1 error\n"
    )


def test_human_wide_characters_keep_caret_alignment() -> None:
    src = _source("a.policy", 'phrase "日本" x\n')
    diagnostic = _diag("a.policy", _at(src, "x"))
    rendered = render_human([diagnostic], {"a.policy": src})
    # Each CJK character takes two terminal columns.
    assert '1 | phrase "日本" x\n  |               ^\n' in rendered


def test_human_out_of_range_span_is_clamped_not_crashing() -> None:
    src = _source("a.policy", "ab")
    diagnostic = _diag("a.policy", Span(10, 12))
    assert " --> a.policy:1:3\n" in render_human([diagnostic], {"a.policy": src})


def test_colour_only_when_asked() -> None:
    src = _source(REDIRECTS, REDIRECTS_TEXT)
    diagnostics = [
        _diag(REDIRECTS, _at(src, "self_harn"), help="h"),
        _diag(REDIRECTS, Span(0, 1), severity=Severity.WARNING),
        _diag(REDIRECTS, Span(0, 1), severity=Severity.INFO),
    ]
    plain = render_human(diagnostics, {REDIRECTS: src})
    coloured = render_human(diagnostics, {REDIRECTS: src}, color=True)
    assert "\x1b" not in plain
    assert "\x1b[1;31merror[PL101]\x1b[0m" in coloured
    assert "\x1b[1;33mwarning[PL101]\x1b[0m" in coloured
    assert "\x1b[1;36minfo[PL101]\x1b[0m" in coloured
    assert "\x1b[1;34m" in coloured  # gutter


# ---------------------------------------------------------------- summary


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        ([], ""),
        ([Severity.ERROR], "1 error"),
        ([Severity.ERROR, Severity.ERROR], "2 errors"),
        ([Severity.WARNING], "1 warning"),
        ([Severity.ERROR, Severity.WARNING, Severity.ERROR], "2 errors, 1 warning"),
        ([Severity.INFO, Severity.WARNING, Severity.WARNING], "2 warnings, 1 info"),
        ([Severity.INFO, Severity.INFO], "2 infos"),
    ],
)
def test_summary_line(severities: list[Severity], expected: str) -> None:
    diagnostics = [_diag("a.policy", Span(0, 0), severity=s) for s in severities]
    assert summary_line(diagnostics) == expected


# ---------------------------------------------------------------- short


def test_short() -> None:
    src = _source(REDIRECTS, REDIRECTS_TEXT)
    diagnostics = [
        _diag(REDIRECTS, _at(src, "self_harn"), "unknown category `self_harn`", code="PL201"),
        _diag("gone.policy", Span(0, 0), "cannot read", severity=Severity.WARNING),
    ]
    assert render_short(diagnostics, {REDIRECTS: src}) == (
        "policies/examples/redirects.policy:14:12: error[PL201] unknown category `self_harn`\n"
        "gone.policy: warning[PL101] cannot read\n"
    )
    assert render_short([], {}) == ""


# ---------------------------------------------------------------- json


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _rich_sink(src: SourceFile) -> DiagnosticSink:
    sink = DiagnosticSink()
    span = _at(src, "self_harn")
    sink.error(
        "PL101",
        "unexpected name `self_harn`",
        src.path,
        span,
        label="not expected here",
        help="did you mean `self_harm`?",
        notes=["names are case-sensitive"],
        secondary=[Label(Span(0, 1), "block starts here")],
        suggestions=[
            Suggestion(span, "self_harm", "replace with `self_harm`", Applicability.MAYBE_INCORRECT)
        ],
    )
    sink.warning("PL002", "file starts with a UTF-8 byte order mark", src.path, Span(0, 0))
    sink.info("PL900", "note in a file we cannot show \u202e", "elsewhere.policy", Span(2, 5))
    return sink


def test_json_is_valid_against_schema(validator: jsonschema.protocols.Validator) -> None:
    src = _source(REDIRECTS, REDIRECTS_TEXT)
    sink = _rich_sink(src)
    output = render_json(sink.sorted(), {REDIRECTS: src}, tool_version="0.1.0")
    document = json.loads(output)
    validator.validate(document)
    assert output.endswith("}\n")
    assert output.isascii()

    assert document["version"] == 1
    assert document["tool"] == {"name": "policylang", "version": "0.1.0"}
    assert document["summary"] == {"errors": 1, "warnings": 1, "infos": 1}
    assert [d["code"] for d in document["diagnostics"]] == ["PL900", "PL002", "PL101"]

    elsewhere, bom, unexpected = document["diagnostics"]
    assert elsewhere["start"] == {"line": None, "column": None, "offset": 2}
    assert elsewhere["message"].endswith("\u202e")  # raw in JSON; escaped only for terminals
    assert bom["name"] == "unexpected-bom"
    assert bom["labels"] == [
        {
            "path": REDIRECTS,
            "start": {"line": 1, "column": 1, "offset": 0},
            "end": {"line": 1, "column": 1, "offset": 0},
            "message": "",
            "primary": True,
        }
    ]
    offset = src.text.index("self_harn")
    assert unexpected == {
        "code": "PL101",
        "name": "unexpected-token",
        "severity": "error",
        "message": "unexpected name `self_harn`",
        "file": REDIRECTS,
        "start": {"line": 14, "column": 12, "offset": offset},
        "end": {"line": 14, "column": 21, "offset": offset + 9},
        "labels": [
            {
                "path": REDIRECTS,
                "start": {"line": 14, "column": 12, "offset": offset},
                "end": {"line": 14, "column": 21, "offset": offset + 9},
                "message": "not expected here",
                "primary": True,
            },
            {
                "path": REDIRECTS,
                "start": {"line": 1, "column": 1, "offset": 0},
                "end": {"line": 1, "column": 2, "offset": 1},
                "message": "block starts here",
                "primary": False,
            },
        ],
        "help": "did you mean `self_harm`?",
        "notes": ["names are case-sensitive"],
        "suggestions": [
            {
                "start": {"line": 14, "column": 12, "offset": offset},
                "end": {"line": 14, "column": 21, "offset": offset + 9},
                "replacement": "self_harm",
                "message": "replace with `self_harm`",
                "applicability": "maybe-incorrect",
            }
        ],
        "docs": "docs/diagnostics.md#pl101",
    }


def test_json_empty_is_valid_and_deterministic(validator: jsonschema.protocols.Validator) -> None:
    output = render_json([], {}, tool_version="0.1.0")
    validator.validate(json.loads(output))
    assert json.loads(output)["diagnostics"] == []
    src = _source(REDIRECTS, REDIRECTS_TEXT)
    first = render_json(_rich_sink(src).sorted(), {REDIRECTS: src}, tool_version="x")
    second = render_json(_rich_sink(src).sorted(), {REDIRECTS: src}, tool_version="x")
    assert first == second


def test_json_from_bytes_diagnostics_validate(validator: jsonschema.protocols.Validator) -> None:
    src, diagnostics = SourceFile.from_bytes("bad.policy", b"\xef\xbb\xbfa\r\n\xffb")
    document = json.loads(render_json(diagnostics, {"bad.policy": src}, tool_version="0"))
    validator.validate(document)
    assert [d["name"] for d in document["diagnostics"]] == ["unexpected-bom", "invalid-utf8"]
    assert document["diagnostics"][1]["start"] == {"line": 2, "column": 1, "offset": 2}


def test_schema_rejects_drift(validator: jsonschema.protocols.Validator) -> None:
    src = _source(REDIRECTS, REDIRECTS_TEXT)
    document = json.loads(render_json(_rich_sink(src).sorted(), {REDIRECTS: src}, tool_version="0"))
    document["diagnostics"][0]["unexpected"] = True
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(document)


# ---------------------------------------------------------------- sink ordering


def test_sink_sorts_by_path_offset_code_and_dedupes() -> None:
    sink = DiagnosticSink()
    sink.error("PL102", "c", "b.policy", Span(5, 6))
    sink.error("PL101", "b", "b.policy", Span(5, 6))
    sink.error("PL101", "a", "b.policy", Span(1, 2))
    sink.warning("PL002", "z", "a.policy", Span(9, 9))
    sink.error("PL101", "a", "b.policy", Span(1, 2))  # exact duplicate
    ordered = sink.sorted()
    assert [(d.path, d.span.start, d.code) for d in ordered] == [
        ("a.policy", 9, "PL002"),
        ("b.policy", 1, "PL101"),
        ("b.policy", 5, "PL101"),
        ("b.policy", 5, "PL102"),
    ]
    assert len(sink) == 5
    assert sink.counts() == {Severity.ERROR: 3, Severity.WARNING: 1, Severity.INFO: 0}
    assert sink.has_errors


def test_sink_sort_is_stable_for_ties() -> None:
    sink = DiagnosticSink()
    sink.error("PL101", "second message", "a.policy", Span(0, 1))
    sink.error("PL101", "first message", "a.policy", Span(0, 2))
    assert [d.message for d in sink.sorted()] == ["second message", "first message"]


def test_sink_without_errors() -> None:
    sink = DiagnosticSink()
    assert not sink.has_errors
    sink.warning("PL002", "bom", "a.policy", Span(0, 0))
    sink.info("PL002", "bom", "b.policy", Span(0, 0))
    assert not sink.has_errors
    assert sink.counts() == {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 1}


def test_sink_add_and_extend_check_codes() -> None:
    sink = DiagnosticSink()
    sink.extend([_diag("a.policy", Span(0, 0))])
    assert sink.diagnostics[0].code == "PL101"
    with pytest.raises(KeyError):
        sink.add(_diag("a.policy", Span(0, 0), code="PL999"))


def test_severity_rank_orders_by_seriousness() -> None:
    assert Severity.ERROR.rank > Severity.WARNING.rank > Severity.INFO.rank
    assert max(Severity, key=lambda s: s.rank) is Severity.ERROR


def test_long_lines_are_clipped_around_the_span() -> None:
    text = "x" * 300 + "TARGET" + "y" * 300
    source = SourceFile.from_text("long.policy", text)
    sink = DiagnosticSink()
    sink.error("PL101", "unexpected thing", "long.policy", Span(300, 306), label="here")
    rendered = render_human(sink.sorted(), {"long.policy": source})
    lines = [line for line in rendered.splitlines() if line.startswith(("1 |", "  |"))]
    snippet, underline = lines[1:3]
    assert snippet.startswith("1 | ...x") and snippet.endswith("y...")
    assert len(snippet) <= 110
    start = underline.index("^")
    assert snippet[start : start + 6] == "TARGET"
    assert underline[start:].startswith("^^^^^^ here")


def test_a_span_wider_than_the_window_is_cut_too() -> None:
    text = "a = " + "z" * 400
    source = SourceFile.from_text("wide.policy", text)
    sink = DiagnosticSink()
    sink.error("PL101", "too wide", "wide.policy", Span(4, 404))
    rendered = render_human(sink.sorted(), {"wide.policy": source})
    snippet = next(line for line in rendered.splitlines() if line.startswith("1 |"))
    assert snippet.startswith("1 | ...zzz") and snippet.endswith("z...")
