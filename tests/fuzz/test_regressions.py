"""Inputs the fuzzers found, minimized: each broke an invariant before its fix.

Every test checks the exact diagnostics the input now gives, and runs the fuzzers'
own invariants on it (:func:`fuzz_helpers.check_bytes`).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from fuzz_helpers import BUNDLED_POLICIES, check_bytes

from policylang import render
from policylang.checker import analyze
from policylang.diagnostics import Diagnostic, DiagnosticSink
from policylang.source import SourceFile


def diagnostics(path: Path, text: str, tenant: str | None = None) -> list[Diagnostic]:
    sink = DiagnosticSink()
    analyze(SourceFile.from_text(str(path), text), sink, tenant=tenant)
    return sink.sorted()


# ---------------------------------------------------------------- regex warnings


@pytest.mark.parametrize(
    "pattern",
    [
        "/[[a]{1,3}/",  # "possible nested set"
        "/[a-z--]{1,3}/",  # "possible set difference"
        "/[a&&b]{1,3}/",  # "possible set intersection"
        "/[a||b]{1,3}/",  # "possible set union"
        "/[a~~b]{1,3}/",  # "possible set symmetric difference"
    ],
)
def test_pattern_with_a_possible_nested_set_warns_nothing_on_stderr(
    tmp_path: Path, pattern: str
) -> None:
    # Found by hypothesis (a `[` inserted into a bundled pattern): Python's regex parser
    # emits a FutureWarning for `[[`, `--`, `&&`, `||` and `~~` in a class; the checker
    # silenced it when compiling the pattern but not when analysing it for backtracking,
    # bounds and case, so `policylang lint` printed the warning to stderr.
    text = f"pattern p = {pattern}\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = diagnostics(tmp_path / "p.policy", text)
    assert [str(w.message) for w in caught] == []
    assert [d.code for d in found] == ["PL204", "PL401"]
    check_bytes(str(tmp_path / "p.policy"), text.encode())


# ---------------------------------------------------------------- NUL in a path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for path in BUNDLED_POLICIES:
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "what", "named"),
    [
        # Found by atheris: a raw NUL byte inside the string.
        ('policy a { extends: "b.polic\0\0y" }\n', "base policy", '"b.polic\0\0y"'),
        # The same with the escape a person would write.
        ('policy a { extends: "default.policy\\u{0}" }\n', "base policy", r'"default.policy\u{0}"'),
        ('import i { from: "\\u{0}" names: [x] }\npolicy a { }\n', "imported file", r'"\u{0}"'),
    ],
)
def test_nul_in_a_named_path_is_an_unreadable_file(
    folder: Path, text: str, what: str, named: str
) -> None:
    # Before: os.path.realpath raised "ValueError: embedded null byte", a PL900.
    path = folder / "a.policy"
    [found] = diagnostics(path, text)
    assert found.code == "PL601"
    assert found.message.startswith(f"cannot read {what} `")
    assert found.message.endswith("`: a path cannot contain the character U+0000")
    assert "\0" not in found.message  # shown as the escape \u{0}
    assert text[found.span.start : found.span.end] == named
    check_bytes(str(path), text.encode())


def test_nul_in_a_tenant_path_is_an_unreadable_file(folder: Path) -> None:
    # Before: open() raised "ValueError: embedded null byte", a PL900.
    policy = folder / "security_research.policy"
    [found] = diagnostics(policy, policy.read_text(), tenant=str(folder / "acme\0.tenant"))
    assert found.code == "PL601"
    assert found.message.startswith("cannot read tenant file `")
    assert "\\u{0}.tenant`" in found.message
    check_bytes(str(policy), policy.read_bytes(), tenant=str(folder / "acme\0.tenant"))


# ---------------------------------------------------------------- rendering a long line


def test_diagnostics_on_one_long_line_display_only_a_window_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by hypothesis (20,000 U+202E in one string): each of the 20,000 PL501
    # warnings displayed the whole line before clipping it to 100 columns, so
    # rendering took time quadratic in the line (`policylang lint` ran for minutes).
    count = 2_000
    text = 'policy p { description: "' + "\u202ea" * count + '" }\n'
    source = SourceFile.from_text("p.policy", text)
    sink = DiagnosticSink()
    analyze(source, sink)
    found = sink.sorted()
    assert [d.code for d in found].count("PL501") == count

    displayed: list[int] = []
    real_display = render._display

    def counting(text: str) -> str:
        displayed.append(len(text))
        return real_display(text)

    monkeypatch.setattr(render, "_display", counting)
    out = render.render_human(found, {"p.policy": source})
    # Each snippet displays at most a window of the line (100 characters each side of
    # the span, and the span) plus its message, label and help; never the whole line.
    assert max(displayed) < 400
    assert sum(displayed) < len(found) * 600  # the whole line each time: over 2,000
    first_snippet = out.splitlines()[3]
    assert first_snippet.startswith("1 | policy p { description: ")
    assert first_snippet.endswith("...")


def test_a_run_of_hidden_characters_is_one_warning(tmp_path: Path) -> None:
    # Found by hypothesis: a line of 20,000 U+202E gave 20,000 warnings, one per
    # character, which buried everything else lint said.
    count = 2_000
    text = 'policy p { description: "' + "\u202e" * count + '" }\n'
    found = diagnostics(tmp_path / "p.policy", text)
    bidi = [d for d in found if d.code == "PL501"]
    assert len(bidi) == 1
    [warning] = bidi
    assert warning.message == (
        "bidirectional control characters 2,000 in a row "
        "(U+202E, U+202E, U+202E, U+202E and 1,996 more) in a string"
    )
    start = text.index("\u202e")
    assert (warning.span.start, warning.span.end) == (start, start + count)
    # The suggestion covers the run, and applying it leaves no warning.
    [suggestion] = warning.suggestions
    assert suggestion.replacement == "\\u{202E}" * count
    fixed = text[:start] + suggestion.replacement + text[start + count :]
    assert not [d for d in diagnostics(tmp_path / "p.policy", fixed) if d.code == "PL501"]


def test_adjacent_hidden_characters_of_two_kinds_are_two_warnings(tmp_path: Path) -> None:
    text = 'policy p { description: "a\u202e\u2066\u200b\u200db" }\n'
    found = [d for d in diagnostics(tmp_path / "p.policy", text) if d.code in ("PL501", "PL502")]
    assert [(d.code, d.span.end - d.span.start) for d in found] == [("PL501", 2), ("PL502", 2)]
    assert found[0].message == (
        "bidirectional control characters 2 in a row (U+202E, U+2066) in a string"
    )
    assert "write the escapes `\\u{202E}\\u{2066}` if they are intended" in (found[0].help or "")
    assert found[1].message == "invisible characters 2 in a row (U+200B, U+200D) in a string"
