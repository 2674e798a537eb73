"""The checker's pass table, lowering to IR, and the termination-path report."""

from __future__ import annotations

import hashlib
import re

import pytest

from policylang import checker, ir
from policylang.checker import PASSES, TerminationPath, analyze, termination_paths
from policylang.diagnostics import DiagnosticSink, Severity
from policylang.lower import (
    canonical_term,
    describe_condition,
    keyword_alternative,
    keywords_regex,
    source_path,
)
from policylang.runtime import (
    AllConditions,
    AnyCondition,
    CategoryIn,
    Counter,
    CounterCompare,
    CounterKind,
    CounterScope,
    NotCondition,
    Outcome,
    SeverityCompare,
    SignalMatched,
)
from policylang.runtime import Severity as Harm
from policylang.source import SourceFile

SMOKE = """\
policy smoke { version: "1.0" description: "d" owner: "o" }
list agents = ["sarin", "nerve agent", "bomb*"]
pattern refusal = /\\b(i can't|i cannot|i won't) help\\b/
category mass_casualty { title: "Mass casualty" severity: critical maps_to: { llama_guard: "S9" } detect: keywords agents unless: keywords ["history of"] }
signal self_harm_risk { detect: keywords ["kill myself"] }
signal end_request { detect: keywords ["end this chat"] }
redirect refused { detect: pattern refusal or annotation "redirect" }
counter failed_redirects { counts: failed_redirects per: category reset: after 3 benign turns }
protection imminent_risk { when: self_harm_risk action: escalate reason: "imminent-risk" message: "Help is available." }
rule end_on_request { when: end_request action: end reason: "user-request" message: "Ending as you asked." }
rule end_extreme { when: failed_redirects >= 3 and severity >= critical action: end reason: "persistent-extreme-harm" message: "Ending." }
rule warn_extreme { when: failed_redirects >= 2 within 10 turns and mass_casualty action: warn reason: "last-warning" message: "Last warning." }
"""  # noqa: E501

HEADER = 'policy p { version: "1" }\n'


def compile_text(text: str, path: str = "t.policy") -> tuple[ir.PolicySpec | None, DiagnosticSink]:
    sink = DiagnosticSink()
    spec = analyze(SourceFile.from_text(path, text), sink)
    return spec, sink


# ---------------------------------------------------------------- the pass table


def test_pass_order() -> None:
    assert [name for name, _ in PASSES] == [
        "declare",
        "properties",
        "resolve",
        "values",
        "coherence",
        "lint",
        "hygiene",
    ]


def test_passes_are_named_functions() -> None:
    for name, run in PASSES:
        assert callable(run)
        assert run.__name__ == f"_{name}"


def test_an_unexpected_exception_becomes_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(context: object) -> None:
        raise RuntimeError("boom")

    broken = (*PASSES[:2], ("resolve", explode), *PASSES[3:])
    monkeypatch.setattr(checker, "PASSES", broken)
    spec, sink = compile_text(HEADER + "list words = [1]\n")
    assert spec is None
    codes = [d.code for d in sink.sorted()]
    assert "PL209" in codes  # findings of the passes before the failure are kept
    (internal,) = [d for d in sink if d.code == "PL900"]
    assert internal.severity is Severity.ERROR
    assert internal.message == "internal error in the `resolve` stage: RuntimeError"
    assert internal.help is not None and "please report" in internal.help
    assert internal.notes == ("boom",)


def test_errors_stop_lowering_but_warnings_do_not() -> None:
    spec, sink = compile_text(HEADER + 'list spare = ["a"]\n')
    assert spec is not None
    assert [d.code for d in sink] == ["PL401"]
    spec, sink = compile_text(HEADER + "list spare = []\n")
    assert spec is None
    assert [d.code for d in sink] == ["PL308"]


def test_bad_text_never_raises() -> None:
    hostile = [
        "",
        "}",
        "policy",
        HEADER + "rule r { when: not not not x action: end reason: \"r\" }",
        HEADER + "pattern p = /" + "(" * 200 + "/",
        HEADER + "counter c { counts: redirects }\nrule r { when: c[x] >= 1e9 action: warn }",
        HEADER + 'category c { title: "" severity: high maps_to: { openai: [1, "x"] } '
        "detect: not not keywords [] unless: score \"\" > 9 }",
    ]
    for text in hostile:
        _, sink = compile_text(text)
        assert not any(d.code == "PL900" for d in sink), text


# ---------------------------------------------------------------- keyword lowering


def test_keyword_terms_are_normalized() -> None:
    assert canonical_term("Nerve  Agent") == "nerve agent"
    assert canonical_term("\uff33\uff21\uff32\uff29\uff2e")  # full-width SARIN == "sarin"
    assert canonical_term(" Bomb* ") == "bomb*"
    assert canonical_term("*Cide") == "*cide"


def test_keywords_regex_shape_and_order() -> None:
    regex = keywords_regex(["sarin", "nerve agent", "bomb*", "vx"])
    assert regex == r"(?<!\w)(?:nerve\s+agent|bomb\w*|sarin|vx)(?!\w)"


def test_wildcards_become_word_characters() -> None:
    assert keyword_alternative("bomb*") == r"bomb\w*"
    assert keyword_alternative("*cide") == r"\w*cide"
    assert keyword_alternative("*ject*") == r"\w*ject\w*"
    pattern = re.compile(keywords_regex(["bomb*"]))
    assert pattern.search("a bomb") and pattern.search("bombing") and pattern.search("bombs")
    assert not pattern.search("abomb")


def test_regex_metacharacters_in_terms_are_escaped() -> None:
    terms = ["c++", "a.b", "(x)", "$5 [now]", "what?|", "back\\slash"]
    regex = keywords_regex(terms)
    assert regex == (
        r"(?<!\w)(?:back\\slash|\$5\s+\[now\]|what\?\||\(x\)|a\.b|c\+\+)(?!\w)"
    )
    pattern = re.compile(regex)
    assert pattern.search("learn c++ today")
    assert pattern.search("a.b") and not pattern.search("axb")
    assert pattern.search("$5   [now]")
    assert pattern.search("back\\slash")
    assert not pattern.search("x")  # `(x)` is literal parentheses, not a group


def test_lowered_keywords_come_from_escaped_normalized_terms() -> None:
    spec, sink = compile_text(
        HEADER
        + 'list tricky = ["Nerve  Agent", "a.b*", "nerve agent"]\n'
        + "redirect r { detect: keywords tricky }\n"
    )
    assert spec is not None, sink.sorted()
    detect = spec.redirects[0].detect
    assert isinstance(detect, ir.KeywordsSpec)
    assert detect.label == "keywords tricky"
    assert detect.terms == ("nerve agent", "a.b*")
    assert detect.regex == r"(?<!\w)(?:nerve\s+agent|a\.b\w*)(?!\w)"
    assert [d.code for d in sink] == ["PL404"]  # the duplicate is reported, and merged


def test_detector_labels() -> None:
    long_terms = ", ".join(f'"term number {i}"' for i in range(8))
    spec, _ = compile_text(
        HEADER
        + "redirect r { detect: any(keywords [\"a\", \"b\"], keywords \"c\", pattern /x{1,5}/s,"
        + ' score "violence" >= 0.90, annotation "redirect",'
        + f" keywords [{long_terms}]) }}\n"
    )
    assert spec is not None
    detect = spec.redirects[0].detect
    assert isinstance(detect, ir.AnyOfSpec)
    labels = [
        item.label
        for item in detect.items
        if not isinstance(item, ir.NotSpec | ir.AllOfSpec | ir.AnyOfSpec)
    ]
    assert labels[:5] == [
        'keywords ["a", "b"]',
        'keywords "c"',
        "pattern /x{1,5}/s",
        'score "violence" >= 0.90',
        'annotation "redirect"',
    ]
    assert len(labels[5]) == 60 and labels[5].endswith("…")
    assert labels[5].startswith('keywords ["term number 0", ')


# ---------------------------------------------------------------- conditions


def test_conditions_are_resolved_and_flattened() -> None:
    spec, sink = compile_text(
        HEADER
        + 'category harm { title: "H" severity: high detect: keywords ["x"] }\n'
        + 'category worse { title: "W" severity: critical detect: keywords ["y"] }\n'
        + 'signal ask { detect: keywords ["end"] }\n'
        + 'redirect refusal { detect: annotation "redirect" }\n'
        + "counter fr { counts: failed_redirects per: severity }\n"
        + "rule r { when: any(ask, not harm) or (severity < critical and fr[high] > 1"
        + ' and all(category in [harm, worse, harm])) action: warn reason: "r" }\n'
    )
    assert spec is not None, sink.sorted()
    assert spec.rules[0].when == AnyCondition(
        (
            SignalMatched("ask"),
            NotCondition(CategoryIn(("harm",))),
            AllConditions(
                (
                    SeverityCompare("<", Harm.CRITICAL),
                    CounterCompare("fr", "high", ">", 1),
                    CategoryIn(("harm", "worse")),
                )
            ),
        )
    )
    assert describe_condition(spec.rules[0].when) == (
        "ask or not harm or severity < critical and fr[high] > 1 and category in [harm, worse]"
    )


def test_horizon_is_the_largest_window_used() -> None:
    spec, sink = compile_text(
        HEADER
        + 'category harm { title: "H" severity: high detect: keywords ["x"] }\n'
        + 'signal risk { detect: keywords ["kill myself"] }\n'
        + "counter turns { counts: harmful_turns }\n"
        + "counter total { counts: harmful_turns per: conversation }\n"
        + "protection pr { when: risk or turns >= 2 within 20 turns action: escalate"
        + ' reason: "p" lasts: 10 turns }\n'
        + 'rule a { when: turns >= 3 within 5 turns and harm action: warn reason: "a" }\n'
        + 'rule b { when: turns >= 4 within 10 turns action: escalate reason: "b" }\n'
        + 'rule c { when: total >= 4 action: escalate reason: "c" }\n'
    )
    assert spec is not None, sink.sorted()
    horizons = {counter.name: counter.horizon for counter in spec.counters}
    assert horizons == {"turns": 20, "total": 0}
    assert spec.protections[0].lasts == 10


# ---------------------------------------------------------------- a whole policy


def test_smoke_policy_has_no_diagnostics_and_lowers_exactly() -> None:
    spec, sink = compile_text(SMOKE, path="policies/smoke.policy")
    assert list(sink) == []
    agents_regex = r"(?<!\w)(?:nerve\s+agent|bomb\w*|sarin)(?!\w)"
    expected = ir.PolicySpec(
        name="smoke",
        version="1.0",
        description="d",
        owner="o",
        source_path="policies/smoke.policy",
        source_sha256=hashlib.sha256(SMOKE.encode("utf-8")).hexdigest(),
        categories=(
            ir.CategorySpec(
                name="mass_casualty",
                title="Mass casualty",
                severity=Harm.CRITICAL,
                detect=ir.KeywordsSpec(
                    "keywords agents", ("sarin", "nerve agent", "bomb*"), agents_regex, 4, 107
                ),
                unless=ir.KeywordsSpec(
                    'keywords ["history of"]',
                    ("history of",),
                    r"(?<!\w)(?:history\s+of)(?!\w)",
                    4,
                    131,
                ),
                taxonomy=(("llama_guard", "S9"),),
                line=4,
                column=1,
            ),
        ),
        signals=(
            ir.SignalSpec(
                name="self_harm_risk",
                detect=ir.KeywordsSpec(
                    'keywords ["kill myself"]',
                    ("kill myself",),
                    r"(?<!\w)(?:kill\s+myself)(?!\w)",
                    5,
                    33,
                ),
                unless=None,
                line=5,
                column=1,
            ),
            ir.SignalSpec(
                name="end_request",
                detect=ir.KeywordsSpec(
                    'keywords ["end this chat"]',
                    ("end this chat",),
                    r"(?<!\w)(?:end\s+this\s+chat)(?!\w)",
                    6,
                    30,
                ),
                unless=None,
                line=6,
                column=1,
            ),
        ),
        redirects=(
            ir.RedirectSpec(
                name="refused",
                detect=ir.AnyOfSpec(
                    (
                        ir.PatternSpec(
                            "pattern refusal", r"\b(i can't|i cannot|i won't) help\b", (), 7, 28
                        ),
                        ir.AnnotationSpec('annotation "redirect"', "redirect", 7, 47),
                    )
                ),
                line=7,
                column=1,
            ),
        ),
        counters=(
            Counter(
                name="failed_redirects",
                counts=CounterKind.FAILED_REDIRECTS,
                per=CounterScope.CATEGORY,
                reset_after=3,
                horizon=10,
                line=8,
                column=1,
            ),
        ),
        protections=(
            ir.ProtectionSpec(
                name="imminent_risk",
                when=SignalMatched("self_harm_risk"),
                action=Outcome.ESCALATE,
                reason="imminent-risk",
                message="Help is available.",
                lasts=None,
                line=9,
                column=1,
            ),
        ),
        rules=(
            ir.RuleSpec(
                name="end_on_request",
                when=SignalMatched("end_request"),
                action=Outcome.END,
                reason="user-request",
                message="Ending as you asked.",
                line=10,
                column=1,
            ),
            ir.RuleSpec(
                name="end_extreme",
                when=AllConditions(
                    (
                        CounterCompare("failed_redirects", None, ">=", 3),
                        SeverityCompare(">=", Harm.CRITICAL),
                    )
                ),
                action=Outcome.END,
                reason="persistent-extreme-harm",
                message="Ending.",
                line=11,
                column=1,
            ),
            ir.RuleSpec(
                name="warn_extreme",
                when=AllConditions(
                    (
                        CounterCompare("failed_redirects", None, ">=", 2, 10),
                        CategoryIn(("mass_casualty",)),
                    )
                ),
                action=Outcome.WARN,
                reason="last-warning",
                message="Last warning.",
                line=12,
                column=1,
            ),
        ),
    )
    assert spec == expected


def test_defaults_are_filled() -> None:
    spec, sink = compile_text(
        'policy bare { version: "2" }\n'
        + 'category harm { title: "H" severity: low detect: keywords ["x"] }\n'
        + 'signal risk { detect: keywords ["kill myself"] }\n'
        + 'redirect refusal { detect: annotation "redirect" }\n'
        + "counter fr { counts: failed_redirects }\n"
        + 'protection pr { when: risk action: continue reason: "p" }\n'
        + 'rule r { when: fr >= 1 and harm action: end reason: "r" }\n'
    )
    assert spec is not None, sink.sorted()
    assert (spec.description, spec.owner) == ("", "")
    (counter,) = spec.counters
    assert (counter.per, counter.reset_after, counter.horizon) == (CounterScope.CATEGORY, None, 0)
    assert spec.protections[0].lasts is None
    assert spec.protections[0].message == "" and spec.rules[0].message == ""


def test_lowering_is_deterministic() -> None:
    first, _ = compile_text(SMOKE)
    second, _ = compile_text(SMOKE)
    assert first == second and repr(first) == repr(second)


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("policies/smoke.policy", "policies/smoke.policy"),
        ("./policies/smoke.policy", "policies/smoke.policy"),
        ("policies\\smoke.policy", "policies/smoke.policy"),
        ("/home/someone/project/smoke.policy", "smoke.policy"),
        ("C:\\work\\smoke.policy", "smoke.policy"),
        ("<stdin>", "<stdin>"),
    ],
)
def test_source_path(given: str, recorded: str) -> None:
    assert source_path(given) == recorded


# ---------------------------------------------------------------- termination paths


def test_termination_paths_list_every_end_rule_with_its_gates() -> None:
    spec, _ = compile_text(SMOKE)
    assert spec is not None
    assert termination_paths(spec) == [
        TerminationPath(
            rule="end_on_request",
            line=10,
            column=1,
            condition="end_request",
            protections=("imminent_risk",),
            last_resort="signal",
        ),
        TerminationPath(
            rule="end_extreme",
            line=11,
            column=1,
            condition="failed_redirects >= 3 and severity >= critical",
            protections=("imminent_risk",),
            last_resort="failed-redirects",
        ),
    ]
    assert termination_paths(spec)[1].describe() == (
        "end rule `end_extreme` (line 11) when failed_redirects >= 3 and severity >= critical: "
        "blocked while any of `imminent_risk` holds; requires failed redirects on every path"
    )
