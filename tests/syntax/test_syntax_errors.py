"""Syntax errors: the curated table still matches, and the exact text each error underlines."""

from __future__ import annotations

import pytest

from policylang import parser as parser_module
from policylang.diagnostics import Applicability, Diagnostic, DiagnosticSink
from policylang.parser import get_parser, parse_tree
from policylang.source import SourceFile
from policylang.syntax_errors import (
    CURATED,
    KEYWORDS,
    TERMINAL_DISPLAY,
    CuratedError,
    describe_character,
    describe_expected,
    describe_token,
)

VALID = r"""policy default {
  version: "1.0.0"
  owner: "Trust & Safety \u{1F6E1}"
}
list agents = ["sarin", "nerve agent",]
pattern how_to = /\bhow (do|can) i\b/i
category mass_casualty {
  title: "Mass-casualty weapons"  # comment
  severity: critical
  maps_to: { mlcommons: "cbrne" llama_guard: "S9" }
  detect: keywords agents and (keywords ["make", "build"] or pattern how_to)
       or score "violence" >= 0.9 or annotation "cbrn"
  unless: keywords ["history of"]
}
counter failed_redirects { counts: failed_redirects per: category reset: after 3 benign turns }
rule end_persistent { when: failed_redirects[x] >= 3 within 10 turns and category in [mass_casualty]
  and not end_request action: end }
protection imminent_risk { when: any(self_harm_risk, all(a, b)) action: escalate lasts: 10 turns }
"""


def diagnose(text: str) -> Diagnostic:
    """Parse ``text``, which must fail, and return its single diagnostic."""
    sink = DiagnosticSink()
    tree = parse_tree(SourceFile.from_text("bad.policy", text), sink)
    assert tree is None
    diagnostics = list(sink)
    assert len(diagnostics) == 1, diagnostics
    return diagnostics[0]


def underline(text: str, diagnostic: Diagnostic) -> str:
    return text[diagnostic.span.start : diagnostic.span.end]


@pytest.fixture(autouse=True)
def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail instead of silently using the plain description when describing errors fails."""

    def fail(*args: object) -> None:
        raise AssertionError("error description failed; fell back to the plain report")

    monkeypatch.setattr(parser_module, "_plain", fail)


# ---------------------------------------------------------------- the curated table

CURATED_CASES = [
    pytest.param(entry, example, id=f"{entry.message}: {example}")
    for entry in CURATED
    for example in entry.examples
]


@pytest.mark.parametrize(("entry", "example"), CURATED_CASES)
def test_curated_example_maps_to_its_entry(entry: CuratedError, example: str) -> None:
    diagnostic = diagnose(example)
    assert (diagnostic.code, diagnostic.message, diagnostic.help) == (
        entry.code,
        entry.message,
        entry.help,
    )


def test_curated_table_is_well_formed() -> None:
    messages = [entry.message for entry in CURATED]
    assert len(messages) == len(set(messages))
    for entry in CURATED:
        assert entry.examples
        assert entry.code in {"PL101", "PL102"}
        assert entry.message == entry.message.strip()
        assert not entry.message.endswith(".")
        assert entry.message[0].islower()
        if entry.anywhere:
            assert entry.at


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Same mistakes at other nesting depths than the curated examples.
        ('policy p { a: { b: { c "x" } } }', "expected `:` after the property name"),
        ('list x = [["a" "b"]]', "expected `,` between list items"),
        ("rule r { when: (any(a, all(b c))) }", "expected `,` between arguments"),
        ("rule r { when: a or (b and (c >= )) }", "expected a number after the comparison"),
        ("rule r { when: x\n  also: a and }", "expected a condition after `and`"),
        ("category x { detect: a or (pattern //) }", "pattern literal is empty"),
    ],
)
def test_curated_messages_apply_at_any_depth(text: str, message: str) -> None:
    assert diagnose(text).message == message


# ---------------------------------------------------------------- terminal display names


def test_every_terminal_has_a_display_name() -> None:
    terminals = {terminal.name for terminal in get_parser().terminals}
    assert terminals <= TERMINAL_DISPLAY.keys()


def test_keyword_table_matches_the_grammar() -> None:
    patterns = {terminal.name: terminal.pattern for terminal in get_parser().terminals}
    for terminal, text in KEYWORDS.items():
        assert terminal in patterns
        if terminal != "TURNS":  # a regex: `turns?` not followed by a name character
            assert patterns[terminal].value == text


def test_expected_lists_are_sorted_deduplicated_and_plain() -> None:
    assert describe_expected(["NAME", "RBRACE", "WS", "COMMENT", "NAME", "AND"]) == (
        "expected one of: `and`, `}`, a name"
    )
    assert describe_expected(["COLON"]) == "expected `:`"
    assert describe_expected(["COMPARATOR", "$END"]) == (
        "expected one of: a comparison (`>=`, `<`, ...), end of file"
    )


def test_token_and_character_descriptions() -> None:
    assert describe_token("NAME", "critcal") == "name `critcal`"
    assert describe_token("AND", "and") == "keyword `and`"
    assert describe_token("LBRACE", "{") == "`{`"
    assert describe_token("STRING", '"' + "x" * 60 + '"') == 'string `"' + "x" * 36 + "...`"
    assert describe_character("@") == "`@`"
    assert describe_character("\u200b") == "U+200B (ZERO WIDTH SPACE)"
    assert describe_character("\t") == "U+0009"


# ---------------------------------------------------------------- underlines, cedar-style


@pytest.mark.parametrize(
    ("text", "code", "underlined", "help"),
    [
        (
            'category x {\n  title "Weapons"\n}',
            "PL101",
            '"Weapons"',
            'write each property as `name: value`, as in `title: "Weapons"`',
        ),
        (
            "category {\n}",
            "PL101",
            "{",
            "declarations are written `KIND NAME { ... }` or `KIND NAME = value`, "
            "as in `category self_harm { ... }`",
        ),
        (
            'list agents = ["sarin" "nerve agent"]',
            "PL101",
            '"nerve agent"',
            'separate list items with commas, as in `["a", "b"]`',
        ),
        (
            "pattern empty = //\n",
            "PL102",
            "//",
            "write a regular expression between the slashes, as in `/how to/`",
        ),
        (
            'category x {\n  title: "Weapons\n}\n',
            "PL104",
            '"Weapons',
            'add the closing `"`; a string ends on the line it starts '
            "(write `\\n` for a line break)",
        ),
        (
            "counter c { reset: after 3 bening turns }",
            "PL101",
            "bening",
            "did you mean `benign`?",
        ),
        (
            "rule r { when: a >= 3 within 10 trns }",
            "PL101",
            "trns",
            "did you mean `turns`?",
        ),
        (
            'category x { title: "x" @ }',
            "PL102",
            "@",
            "expected one of: `and`, `or`, `}`, a name",
        ),
        (
            "rule r { when: (a and b }",
            "PL101",
            "}",
            "expected `)`",
        ),
        (
            "rule r { when: a in b }",
            "PL101",
            "b",
            "expected `[`",
        ),
    ],
)
def test_underlined_text(text: str, code: str, underlined: str, help: str) -> None:
    diagnostic = diagnose(text)
    assert (diagnostic.code, underline(text, diagnostic), diagnostic.help) == (
        code,
        underlined,
        help,
    )


def test_misspelt_keyword_gets_a_suggestion() -> None:
    text = "counter c { reset: after 3 bening turns }"
    diagnostic = diagnose(text)
    assert diagnostic.message == "unexpected name `bening`"
    (suggestion,) = diagnostic.suggestions
    assert suggestion.replacement == "benign"
    assert text[suggestion.span.start : suggestion.span.end] == "bening"
    assert suggestion.applicability is Applicability.MAYBE_INCORRECT


def test_misspelt_prefix_keyword_before_the_error() -> None:
    text = 'category x { detect: keyword "sarin" }'
    diagnostic = diagnose(text)
    assert underline(text, diagnostic) == '"sarin"'
    assert diagnostic.help == "did you mean `keywords` instead of `keyword`?"
    (suggestion,) = diagnostic.suggestions
    assert text[suggestion.span.start : suggestion.span.end] == "keyword"
    assert suggestion.replacement == "keywords"


def test_unterminated_string_runs_to_end_of_line() -> None:
    text = 'list x = ["ok", "open \\" still open\n]'
    diagnostic = diagnose(text)
    assert diagnostic.code == "PL104"
    assert diagnostic.message == "unterminated string"
    assert underline(text, diagnostic) == '"open \\" still open'


def test_invisible_character_is_named() -> None:
    text = "category x {\u200b}"
    diagnostic = diagnose(text)
    assert diagnostic.code == "PL102"
    assert diagnostic.message == "unexpected character U+200B (ZERO WIDTH SPACE)"
    assert underline(text, diagnostic) == "\u200b"


def test_missing_brace_before_the_next_declaration() -> None:
    text = 'category x {\n  title: "a"\n\ncategory y {\n  title: "b"\n}\n'
    diagnostic = diagnose(text)
    assert diagnostic.message == "expected `}` before the next declaration"
    assert diagnostic.help == "add `}` to close the block"
    assert diagnostic.span.start == text.index("category y")
    assert underline(text, diagnostic) == "category"
    (opener,) = diagnostic.secondary
    assert opener.span.start == text.index("{")
    assert opener.message == "this `{` is not closed"


# ---------------------------------------------------------------- end of file


@pytest.mark.parametrize(
    ("text", "help", "opener"),
    [
        ('category x {\n  title: "a"\n', "expected one of: `}`, a name", "{"),
        ('category x { maps_to: { a: "b" }\n', "expected one of: `}`, a name", "{"),
        ("list x = [a, b", "expected one of: `,`, `]`", "["),
        ("rule r { when: (a and b", "expected `)`", "("),
        ("rule r { when: failed_redirects >= ", "expected one of: a name, a number", "{"),
        ("category", "expected a name", None),
        ("category x", "expected one of: `=`, `{`, a name", None),
    ],
)
def test_unexpected_eof_points_at_end_of_file(text: str, help: str, opener: str | None) -> None:
    diagnostic = diagnose(text)
    assert diagnostic.code == "PL103"
    assert diagnostic.message == "unexpected end of file"
    assert diagnostic.span.start == diagnostic.span.end == len(text)
    assert diagnostic.help == help
    if opener is None:
        assert diagnostic.secondary == ()
    else:
        (label,) = diagnostic.secondary
        assert underline(text, diagnostic) == ""
        assert text[label.span.start : label.span.end] == opener
        assert label.message == f"this `{opener}` is not closed"


def test_eof_label_points_at_the_innermost_unclosed_brace() -> None:
    text = "category x {\n  maps_to: {\n    a: [b, c]\n"
    (label,) = diagnose(text).secondary
    assert label.span.start == text.rindex("{")


# ---------------------------------------------------------------- robustness


def test_every_prefix_of_a_valid_policy_gives_at_most_one_diagnostic() -> None:
    # Truncation at every offset exercises every parser state; nothing may raise,
    # and every span must lie inside the text.
    for end in range(len(VALID) + 1):
        text = VALID[:end]
        sink = DiagnosticSink()
        tree = parse_tree(SourceFile.from_text("prefix.policy", text), sink)
        diagnostics = list(sink)
        assert (tree is None) == (len(diagnostics) == 1), (end, diagnostics)
        for diagnostic in diagnostics:
            assert diagnostic.code in {"PL101", "PL102", "PL103", "PL104"}
            for label in (diagnostic.primary, *diagnostic.secondary):
                assert 0 <= label.span.start <= label.span.end <= len(text)


def test_every_single_deletion_is_reported_without_raising() -> None:
    text = VALID
    for index in range(0, len(text), 3):
        mutated = text[:index] + text[index + 1 :]
        sink = DiagnosticSink()
        parse_tree(SourceFile.from_text("mutated.policy", mutated), sink)
        assert len(sink) <= 1
