"""Where only a number or a parameter can stand, any other name is an unknown parameter,
in a policy of one file as in a composed one (never an internal error)."""

from __future__ import annotations

from policylang.checker import analyze
from policylang.diagnostics import DiagnosticSink
from policylang.source import SourceFile

PLAIN = """policy plain {
  version: "1"
}
redirect refusal {
  detect: annotation "redirect"
}
counter failed_redirects {
  counts: failed_redirects
  reset: after bar benign turns
}
category c {
  title: "t"
  severity: critical
  detect: score "x" >= foo
}
rule r {
  when: failed_redirects >= baz within qux turns and severity >= critical
  action: warn
  reason: "r"
}
"""


def test_names_in_number_positions_are_unknown_parameters() -> None:
    sink = DiagnosticSink()
    assert analyze(SourceFile.from_text("plain.policy", PLAIN), sink) is None
    found = sorted((d.code, d.message) for d in sink)
    assert found == [
        ("PL608", "unknown parameter `bar`"),
        ("PL608", "unknown parameter `baz`"),
        ("PL608", "unknown parameter `foo`"),
        ("PL608", "unknown parameter `qux`"),
    ]


def test_a_near_miss_is_suggested() -> None:
    text = PLAIN.replace("policy plain {", "param bazz { value: 2 }\n\npolicy plain {")
    text = text.replace(">= foo", ">= 0.5").replace("bar", "3").replace("qux", "4")
    sink = DiagnosticSink()
    analyze(SourceFile.from_text("plain.policy", text), sink)
    [diagnostic] = [d for d in sink if d.code == "PL608"]
    assert diagnostic.message == "unknown parameter `baz`"
    assert diagnostic.help == "did you mean `bazz`?"


def test_declared_parameters_make_the_same_policy_valid() -> None:
    text = (
        "param foo { value: 0.5 }\nparam bar { value: 3 }\nparam baz { value: 2 }\n"
        "param qux { value: 4 }\n" + PLAIN
    )
    sink = DiagnosticSink()
    spec = analyze(SourceFile.from_text("plain.policy", text), sink)
    assert spec is not None, [d.message for d in sink]
    assert spec.counters[0].reset_after == 3
    assert spec.chain == ()  # parameters alone do not make a policy composed
