"""The ``normalize:`` property: checked, lowered into the IR, and used for keyword terms."""

from __future__ import annotations

import pytest

from policylang import ir
from policylang.checker import analyze
from policylang.diagnostics import Diagnostic, DiagnosticSink
from policylang.normalize import NormalizationConfig
from policylang.source import SourceFile

HEADER = 'policy p { version: "1" }\n'
RULE = 'rule r { when: c action: warn reason: "r" }\n'


def category(normalize: str, detect: str = 'keywords ["b0mb", "nuke"]') -> str:
    return (
        HEADER
        + f'category c {{ title: "C" severity: high detect: {detect} normalize: {normalize} }}\n'
        + RULE
    )


def check(text: str) -> tuple[ir.PolicySpec | None, list[Diagnostic]]:
    sink = DiagnosticSink()
    spec = analyze(SourceFile.from_text("t.policy", text), sink)
    return spec, sink.sorted()


def only(text: str) -> Diagnostic:
    spec, diagnostics = check(text)
    assert spec is None
    assert len(diagnostics) == 1, [f"{d.code} {d.message}" for d in diagnostics]
    return diagnostics[0]


def test_a_good_block_lowers_to_its_configuration() -> None:
    spec, diagnostics = check(category("{ leetspeak: off spacing: off nfkc: on }"))
    assert spec is not None and diagnostics == []
    assert spec.categories[0].normalize == NormalizationConfig(leetspeak=False, spacing=False)


def test_without_a_block_every_step_is_on() -> None:
    spec, _ = check(
        HEADER + 'category c { title: "C" severity: high detect: keywords ["x"] }\n' + RULE
    )
    assert spec is not None
    assert spec.categories[0].normalize == NormalizationConfig()


@pytest.mark.parametrize("kind", ["signal", "redirect"])
def test_signals_and_redirects_take_it_too(kind: str) -> None:
    text = (
        HEADER
        + f'{kind} s {{ detect: keywords ["x"] normalize: {{ confusables: off }} }}\n'
        + 'category c { title: "C" severity: high detect: keywords ["y"] }\n'
        + "counter n { counts: redirects }\n"
        + 'rule r { when: c or n >= 1 action: warn reason: "r" }\n'
        + ('rule q { when: s action: warn reason: "q" }\n' if kind == "signal" else "")
    )
    spec, diagnostics = check(text)
    assert spec is not None, [d.message for d in diagnostics]
    declared = spec.signals[0] if kind == "signal" else spec.redirects[0]
    assert declared.normalize == NormalizationConfig(confusables=False)


def test_keyword_terms_are_normalized_with_the_declaration_steps() -> None:
    spec, _ = check(category("{ leetspeak: off }"))
    assert spec is not None
    detect = spec.categories[0].detect
    assert isinstance(detect, ir.KeywordsSpec)
    assert detect.terms == ("b0mb", "nuke")
    spec, _ = check(category("{ spacing: on }"))
    assert spec is not None
    detect = spec.categories[0].detect
    assert isinstance(detect, ir.KeywordsSpec)
    assert detect.terms == ("bomb", "nuke")


def test_unknown_step_suggests_the_closest() -> None:
    diagnostic = only(category("{ leetspek: off }"))
    assert diagnostic.code == "PL314"
    assert diagnostic.message == "unknown normalization step `leetspek`"
    assert diagnostic.help == "did you mean `leetspeak`?"
    assert [s.replacement for s in diagnostic.suggestions] == ["leetspeak"]


def test_unknown_step_without_a_guess_lists_the_steps() -> None:
    diagnostic = only(category("{ stemming: off }"))
    assert diagnostic.code == "PL314"
    assert diagnostic.help is not None
    assert "`invisible`, `nfkc`, `confusables`, `casefold`, `spacing`, `leetspeak`" in (
        diagnostic.help
    )


def test_misspelt_switch() -> None:
    diagnostic = only(category("{ spacing: of }"))
    assert (diagnostic.code, diagnostic.message) == ("PL210", "unknown switch `of`")
    assert [s.replacement for s in diagnostic.suggestions] == ["off"]


@pytest.mark.parametrize(("word", "fix"), [("false", "`off`"), ("true", "`on`")])
def test_booleans_say_which_switch(word: str, fix: str) -> None:
    diagnostic = only(category(f"{{ spacing: {word} }}"))
    assert diagnostic.code == "PL210"
    assert diagnostic.help is not None and diagnostic.help.startswith(f"write {fix}")


def test_quoted_switch() -> None:
    diagnostic = only(category('{ spacing: "off" }'))
    assert (diagnostic.code, diagnostic.message) == (
        "PL209",
        "`spacing` takes a bare word, not a string",
    )
    assert [s.replacement for s in diagnostic.suggestions] == ["off"]


def test_not_a_block() -> None:
    diagnostic = only(category("off"))
    assert diagnostic.code == "PL209"
    assert diagnostic.message == "`normalize` must be a block, found the name `off`"


def test_duplicate_step() -> None:
    diagnostic = only(category("{ spacing: off spacing: on }"))
    assert (diagnostic.code, diagnostic.message) == (
        "PL208",
        "duplicate step `spacing` in `normalize`",
    )


def test_every_bad_entry_is_reported() -> None:
    _, diagnostics = check(category('{ leetspek: off spacing: of nfkc: "off" }'))
    assert [d.code for d in diagnostics] == ["PL314", "PL210", "PL209"]


def test_normalize_is_not_a_property_of_rules() -> None:
    text = HEADER + 'category c { title: "C" severity: high detect: keywords ["x"] }\n'
    text += 'rule r { when: c action: warn reason: "r" normalize: { spacing: off } }\n'
    diagnostic = only(text)
    assert diagnostic.code == "PL206"


def test_duplicate_keywords_follow_the_normalization_of_their_users() -> None:
    text = (
        HEADER
        + 'list l = ["bomb", "b0mb"]\n'
        + 'category c { title: "C" severity: high detect: keywords l }\n'
        + RULE
    )
    _, diagnostics = check(text)
    assert [d.code for d in diagnostics] == ["PL404"]
    assert "both match `bomb`" in diagnostics[0].notes[0]
    # Matched without leetspeak, "b0mb" is another keyword.
    _, diagnostics = check(
        text.replace("keywords l }", "keywords l normalize: { leetspeak: off } }")
    )
    assert diagnostics == []
    # Used both ways, it is a duplicate only if it is one for every use.
    both = text.replace(RULE, "") + (
        'category d { title: "D" severity: high detect: keywords l '
        "normalize: { leetspeak: off } }\n"
        'rule r { when: c or d action: warn reason: "r" }\n'
    )
    _, diagnostics = check(both)
    assert diagnostics == []
