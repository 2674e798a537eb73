"""Cedar-style assertions: exactly which text each key diagnostic underlines, and its help.

Independent of rendering layout: each test lists ``(code, underlined text, help)`` for
every diagnostic a small policy produces, in sorted order.
"""

from __future__ import annotations

from policylang.checker import analyze
from policylang.diagnostics import Diagnostic, DiagnosticSink
from policylang.source import SourceFile

HEADER = 'policy p { version: "1" }\n'
PROTECTED = (
    HEADER
    + 'signal risk { detect: keywords ["kill myself"] }\n'
    + 'protection imminent_risk { when: risk action: escalate reason: "imminent-risk" }\n'
)


def diagnose(text: str) -> tuple[SourceFile, list[Diagnostic]]:
    source = SourceFile.from_text("t.policy", text)
    sink = DiagnosticSink()
    analyze(source, sink)
    return source, sink.sorted()


def underlines(text: str) -> list[tuple[str, str, str | None]]:
    source, diagnostics = diagnose(text)
    return [(d.code, source.span_text(d.span), d.help) for d in diagnostics]


def secondary(text: str) -> list[tuple[str, str, str]]:
    """``(code, underlined text, label)`` of every secondary label."""
    source, diagnostics = diagnose(text)
    return [
        (d.code, source.span_text(label.span), label.message)
        for d in diagnostics
        for label in d.secondary
    ]


# ---------------------------------------------------------------- names & structure


def test_undefined_reference_suggests_the_closest_list() -> None:
    text = (
        HEADER
        + 'list agents = ["sarin"]\n'
        + 'category harm { title: "Harm" severity: high detect: keywords agentz }\n'
        + 'rule r { when: harm action: warn reason: "r" }\n'
    )
    assert underlines(text) == [("PL211", "agentz", "did you mean `agents`?")]
    source, (diagnostic,) = diagnose(text)
    (suggestion,) = diagnostic.suggestions
    assert (source.span_text(suggestion.span), suggestion.replacement) == ("agentz", "agents")


def test_undefined_condition_name_suggests_a_signal() -> None:
    text = PROTECTED + 'rule r { when: rsk action: warn reason: "r" }\n'
    assert underlines(text) == [("PL211", "rsk", "did you mean `risk`?")]


def test_duplicate_definition_points_back_at_the_first() -> None:
    text = (
        HEADER
        + 'list words = ["a"]\n'
        + 'list words = ["b"]\n'
        + 'signal s { detect: keywords words }\n'
        + 'rule r { when: s action: warn reason: "r" }\n'
    )
    assert underlines(text) == [
        ("PL203", "words", "rename one of them; names are unique across the whole file")
    ]
    source, (diagnostic,) = diagnose(text)
    (first,) = diagnostic.secondary
    assert source.span_text(first.span) == "words"
    assert first.message == "first defined here"
    assert first.span.start == text.index("words")
    assert diagnostic.span.start == text.index("words", first.span.end)


def test_unknown_declaration_kind() -> None:
    text = HEADER + 'categroy harm { title: "Harm" severity: high detect: keywords ["x"] }\n'
    assert underlines(text) == [("PL201", "categroy", "did you mean `category`?")]


def test_unknown_property_does_not_also_report_it_missing() -> None:
    text = (
        HEADER
        + 'category harm { titel: "Harm" severity: high detect: keywords ["x"] }\n'
        + 'rule r { when: harm action: warn reason: "r" }\n'
    )
    assert underlines(text) == [("PL206", "titel", "did you mean `title`?")]


def test_missing_required_property_points_at_the_declaration_name() -> None:
    text = (
        HEADER
        + 'category harm { severity: high detect: keywords ["x"] }\n'
        + 'rule r { when: harm action: warn reason: "r" }\n'
    )
    assert underlines(text) == [
        ("PL207", "harm", 'add `title: "Mass-casualty weapons"` to the block')
    ]


def test_unknown_severity_suggests_the_closest() -> None:
    text = (
        HEADER
        + 'category harm { title: "Harm" severity: critcal detect: keywords ["x"] }\n'
        + 'rule r { when: harm action: warn reason: "r" }\n'
    )
    assert underlines(text) == [("PL210", "critcal", "did you mean `critical`?")]


def test_wrong_kind_reference_shows_the_declaration() -> None:
    text = (
        HEADER
        + "pattern refusal = /no/\n"
        + 'category harm { title: "Harm" severity: high detect: keywords refusal }\n'
        + 'rule r { when: harm action: warn reason: "r" }\n'
    )
    assert underlines(text) == [("PL212", "refusal", "write `pattern refusal` to use a pattern")]
    assert secondary(text) == [("PL212", "refusal", "declared as a pattern here")]


def test_counter_key_must_fit_per() -> None:
    text = (
        HEADER
        + 'category harm { title: "Harm" severity: high detect: keywords ["x"] }\n'
        + "counter turns { counts: harmful_turns }\n"
        + 'rule r { when: turns[high] >= 3 action: warn reason: "r" }\n'
    )
    assert underlines(text) == [
        ("PL213", "high", "use a category's name, or give the counter `per: severity`")
    ]


# ---------------------------------------------------------------- values


def test_invalid_regex_underlines_the_exact_position() -> None:
    text = (
        HEADER
        + "pattern broken = /make|(build/\n"
        + 'redirect refusal { detect: pattern broken }\n'
    )
    assert underlines(text) == [
        ("PL301", "(", "add the missing `)`, or write `\\(` to match a parenthesis")
    ]
    _, (diagnostic,) = diagnose(text)
    assert diagnostic.span.start == text.index("(build")


def test_invalid_regex_position_accounts_for_escaped_slashes() -> None:
    text = HEADER + "redirect refusal { detect: pattern /a\\/b\\/(c/ }\n"
    _, (diagnostic,) = diagnose(text)
    assert diagnostic.code == "PL301"
    assert diagnostic.span.start == text.index("(c")


def test_backtracking_regex_underlines_the_nested_repeat() -> None:
    text = HEADER + "redirect refusal { detect: pattern /^x(a+)+b$/ }\n"
    assert underlines(text) == [
        (
            "PL302",
            "(a+)+",
            "`(a+)+` can match the same text in exponentially many ways; make the inner "
            "repetition possessive (`++`, `*+`) or atomic (`(?>...)`), bound the outer one "
            "(e.g. `{0,5}`), or use a keyword list",
        )
    ]


def test_overlapping_alternation_under_a_star_is_rejected() -> None:
    text = HEADER + "redirect refusal { detect: pattern /x(.|\\s)*y/ }\n"
    assert [(code, under) for code, under, _ in underlines(text)] == [("PL302", "(.|\\s)*")]


def test_unknown_regex_flag() -> None:
    text = HEADER + "redirect refusal { detect: pattern /no/gi }\n"
    assert [(code, under) for code, under, _ in underlines(text)] == [("PL303", "g")]


def test_threshold_out_of_range() -> None:
    text = HEADER + 'redirect refusal { detect: score "refusal" >= 90 }\n'
    assert underlines(text) == [
        ("PL304", "90", "write the threshold as a fraction, as in `0.9`")
    ]


def test_uppercase_letter_in_pattern() -> None:
    text = HEADER + "redirect refusal { detect: pattern /i can't help You/ }\n"
    assert underlines(text) == [
        (
            "PL405",
            "Y",
            "messages are lower-cased before matching; write `y` instead, or add the `i` flag",
        )
    ]


# ---------------------------------------------------------------- coherence


def test_unprotected_end_underlines_the_action() -> None:
    text = (
        HEADER
        + 'signal end_request { detect: keywords ["end this chat"] }\n'
        + 'rule end_on_request { when: end_request action: end reason: "user-request" }\n'
    )
    assert underlines(text) == [
        (
            "PL310",
            "end",
            "declare a protection for users who may be at imminent risk, such as "
            "`protection imminent_risk { when: self_harm_risk action: escalate "
            'reason: "imminent-risk" }`; protections are checked first and block every end',
        )
    ]


def test_end_without_failed_redirects_underlines_the_condition() -> None:
    text = (
        PROTECTED
        + 'category harm { title: "Harm" severity: critical detect: keywords ["x"] }\n'
        + 'redirect refusal { detect: annotation "redirect" }\n'
        + "counter failed { counts: failed_redirects }\n"
        + "counter turns { counts: harmful_turns }\n"
        + 'rule warn_first { when: failed >= 1 action: warn reason: "w" }\n'
        + 'rule end_harm { when: turns >= 3 and severity >= critical action: end reason: "h" }\n'
    )
    assert underlines(text) == [
        (
            "PL311",
            "turns >= 3 and severity >= critical",
            "require failed redirects on every path, as in `failed >= 3 and (...)`; an `end` "
            "on a signal alone, such as a sincere request to end, needs none",
        )
    ]
    _, (diagnostic,) = diagnose(text)
    assert diagnostic.message == (
        "ending must be a last resort: rule `end_harm` can end without a failed redirect"
    )
    assert diagnostic.notes == ("for example when: turns >= 3 and severity >= critical",)


def test_end_on_a_signal_alone_needs_no_failed_redirects() -> None:
    text = (
        PROTECTED
        + 'signal end_request { detect: keywords ["end this chat"] }\n'
        + 'rule end_on_request { when: end_request action: end reason: "user-request" }\n'
    )
    assert underlines(text) == []


def test_dead_by_protection_points_at_rule_and_protection() -> None:
    text = (
        PROTECTED
        + 'signal end_request { detect: keywords ["end this chat"] }\n'
        + 'rule end_despair { when: end_request and risk action: end reason: "user-request" }\n'
    )
    assert underlines(text) == [
        (
            "PL406",
            "end_despair",
            "protections are checked first and block every end while they last; narrow the "
            "rule's condition so it can hold without the protection, or remove the rule",
        )
    ]
    assert secondary(text) == [
        ("PL406", "imminent_risk", "holds whenever `end_despair` does")
    ]


def test_protection_cannot_end() -> None:
    text = (
        HEADER
        + 'signal risk { detect: keywords ["kill myself"] }\n'
        + 'protection imminent_risk { when: risk action: end reason: "imminent-risk" }\n'
    )
    assert [(code, under) for code, under, _ in underlines(text)] == [("PL309", "end")]


# ---------------------------------------------------------------- lint and hygiene


def test_unused_list() -> None:
    text = HEADER + 'list unused_words = ["a"]\n'
    assert underlines(text) == [
        (
            "PL401",
            "unused_words",
            "use it in a detector, as in `detect: keywords unused_words`, or remove it",
        )
    ]


def test_bidi_control_in_a_string() -> None:
    text = HEADER + 'redirect refusal { detect: keywords ["no\u202e"] }\n'
    assert underlines(text) == [
        (
            "PL501",
            "\u202e",
            'text can read differently from what it is ("Trojan Source"); remove it, or '
            "write the escape `\\u{202E}` if it is intended",
        )
    ]


def test_suppression_silences_a_lint_finding_but_never_an_error() -> None:
    allowed = HEADER + "# policylang: allow(PL401)\nlist spare = [\"a\"]\n"
    assert underlines(allowed) == []
    error = HEADER + "rule r { when: nope action: warn reason: \"r\" } # policylang: allow(PL211)\n"
    assert [(code, under) for code, under, _ in underlines(error)] == [
        ("PL211", "nope"),
        ("PL411", "PL211"),
    ]


def test_one_misspelt_name_does_not_hide_problems_beside_it() -> None:
    text = (
        'policy p { version: "1" }\n'
        'list agents = ["sarin"]\n'
        "category weapons {\n"
        '  title: "W"\n'
        "  severity: critcal\n"
        '  detect: keywords agnets or pattern /(a+)+b/ or score "v" >= 1.5\n'
        "}\n"
    )
    source = SourceFile.from_text("one-pass.policy", text)
    sink = DiagnosticSink()
    assert analyze(source, sink) is None
    found = [(d.code, text[d.primary.span.start : d.primary.span.end]) for d in sink.sorted()]
    assert found == [
        ("PL210", "critcal"),
        ("PL211", "agnets"),
        ("PL302", "(a+)+"),
        ("PL304", "1.5"),
    ]
