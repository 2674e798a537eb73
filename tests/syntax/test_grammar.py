"""The grammar builds strictly, and parsing + building yields the expected AST and spans."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark

from policylang import nodes
from policylang.builder import MAX_NESTING, parse
from policylang.diagnostics import DiagnosticSink
from policylang.parser import (
    REPOSITORY_GRAMMAR,
    _read_grammar,
    build_parser,
    get_parser,
    grammar_text,
)
from policylang.source import SourceFile, Span

ROOT = Path(__file__).resolve().parents[2]

# Every construct of the grammar at least once.
REPRESENTATIVE = r"""# Every construct of the grammar at least once.
policy default {
  version: "1.0.0"
  owner: "Trust \"&\" Safety\t\u{1F600}\\"
}
list agents = ["sarin", "nerve agent",]
list nothing = []
pattern how_to = /\bhow (do|can) i\b/i
pattern path = /a\/b\d/
category mass_casualty {
  title: "Mass-casualty weapons"   # a trailing comment
  severity: critical
  maps_to: { mlcommons: "cbrne" llama_guard: ["S9", "S1"] }
  detect: keywords agents and (keywords ["make", "build"] or pattern how_to)
       or score "violence" >= 0.9 or pattern /x+/s
  unless: keywords "history of" or annotation "fiction"
}
counter failed_redirects { counts: failed_redirects per: category reset: after 3 benign turns }
rule end_persistent {
  when: failed_redirects[mass_casualty] >= 3 within 10 turns and category in [mass_casualty, csam]
        and not not end_request and severity >= high
  action: end
  priority: 2
}
protection imminent_risk {
  when: any(self_harm_risk, harm_to_others,) or all(a, (b or c) or d)
  action: escalate
  lasts: 1 turn
}
"""


def N(text: str) -> nodes.Name:
    return nodes.Name(text=text)


def R(text: str) -> nodes.Ref:
    return nodes.Ref(name=N(text))


def S(value: str) -> nodes.String:
    return nodes.String(value=value)


def num(value: float, *, integer: bool = True) -> nodes.Number:
    return nodes.Number(value=value, is_integer=integer)


def prop(key: str, value: nodes.Value) -> nodes.Property:
    return nodes.Property(key=N(key), value=value)


def block_decl(kind: str, name: str, *props: nodes.Property) -> nodes.Declaration:
    return nodes.Declaration(
        kind=N(kind), name=N(name), body=nodes.Block(properties=props), value=None
    )


def value_decl(kind: str, name: str, value: nodes.Value) -> nodes.Declaration:
    return nodes.Declaration(kind=N(kind), name=N(name), body=None, value=value)


EXPECTED = nodes.PolicyFile(
    declarations=(
        block_decl(
            "policy",
            "default",
            prop("version", S("1.0.0")),
            prop("owner", S('Trust "&" Safety\t\U0001f600\\')),
        ),
        value_decl("list", "agents", nodes.ListValue(items=(S("sarin"), S("nerve agent")))),
        value_decl("list", "nothing", nodes.ListValue(items=())),
        value_decl("pattern", "how_to", nodes.Regex(pattern=r"\bhow (do|can) i\b", flags="i")),
        value_decl("pattern", "path", nodes.Regex(pattern=r"a/b\d", flags="")),
        block_decl(
            "category",
            "mass_casualty",
            prop("title", S("Mass-casualty weapons")),
            prop("severity", R("critical")),
            prop(
                "maps_to",
                nodes.Block(
                    properties=(
                        prop("mlcommons", S("cbrne")),
                        prop("llama_guard", nodes.ListValue(items=(S("S9"), S("S1")))),
                    )
                ),
            ),
            prop(
                "detect",
                nodes.Or(
                    items=(
                        nodes.And(
                            items=(
                                nodes.Keywords(source=R("agents")),
                                nodes.Or(
                                    items=(
                                        nodes.Keywords(
                                            source=nodes.ListValue(items=(S("make"), S("build")))
                                        ),
                                        nodes.PatternMatch(source=R("how_to")),
                                    )
                                ),
                            )
                        ),
                        nodes.Score(key=S("violence"), op=">=", threshold=num(0.9, integer=False)),
                        nodes.PatternMatch(source=nodes.Regex(pattern="x+", flags="s")),
                    )
                ),
            ),
            prop(
                "unless",
                nodes.Or(
                    items=(
                        nodes.Keywords(source=S("history of")),
                        nodes.Annotation(label=S("fiction")),
                    )
                ),
            ),
        ),
        block_decl(
            "counter",
            "failed_redirects",
            prop("counts", R("failed_redirects")),
            prop("per", R("category")),
            prop("reset", nodes.ResetAfter(turns=num(3))),
        ),
        block_decl(
            "rule",
            "end_persistent",
            prop(
                "when",
                nodes.And(
                    items=(
                        nodes.Comparison(
                            subject=N("failed_redirects"),
                            key=N("mass_casualty"),
                            op=">=",
                            operand=num(3),
                            window=nodes.Duration(turns=num(10)),
                        ),
                        nodes.Membership(
                            subject=N("category"),
                            options=nodes.ListValue(items=(R("mass_casualty"), R("csam"))),
                        ),
                        nodes.Not(item=nodes.Not(item=R("end_request"))),
                        nodes.Comparison(
                            subject=N("severity"), key=None, op=">=", operand=R("high"), window=None
                        ),
                    )
                ),
            ),
            prop("action", R("end")),
            prop("priority", num(2)),
        ),
        block_decl(
            "protection",
            "imminent_risk",
            prop(
                "when",
                nodes.Or(
                    items=(
                        nodes.AnyOf(items=(R("self_harm_risk"), R("harm_to_others"))),
                        nodes.AllOf(
                            items=(
                                R("a"),
                                # Parentheses are kept as nesting: `(b or c) or d`.
                                nodes.Or(items=(nodes.Or(items=(R("b"), R("c"))), R("d"))),
                            )
                        ),
                    )
                ),
            ),
            prop("action", R("escalate")),
            prop("lasts", nodes.Duration(turns=num(1))),
        ),
    )
)


def build(text: str) -> tuple[nodes.PolicyFile | None, DiagnosticSink]:
    sink = DiagnosticSink()
    return parse(SourceFile.from_text("test.policy", text), sink), sink


def representative() -> nodes.PolicyFile:
    tree, sink = build(REPRESENTATIVE)
    assert list(sink) == []
    assert tree is not None
    return tree


def covered(span: Span) -> str:
    return REPRESENTATIVE[span.start : span.end]


# ---------------------------------------------------------------- the grammar itself


def test_grammar_builds_with_strict_collision_checks() -> None:
    parser = build_parser(strict=True)
    assert isinstance(parser, Lark)
    assert parser.parse(REPRESENTATIVE) is not None


def test_shared_parser_is_built_once() -> None:
    assert get_parser() is get_parser()


def test_grammar_loads_from_repository_in_a_checkout() -> None:
    assert grammar_text() == REPOSITORY_GRAMMAR.read_text(encoding="utf-8")


def test_packaged_grammar_is_preferred(tmp_path: Path) -> None:
    packaged = tmp_path / "packaged.lark"
    fallback = tmp_path / "fallback.lark"
    packaged.write_text("packaged", encoding="utf-8")
    fallback.write_text("fallback", encoding="utf-8")
    assert _read_grammar((packaged, fallback)) == "packaged"


def test_repository_fallback_when_not_packaged(tmp_path: Path) -> None:
    fallback = tmp_path / "fallback.lark"
    fallback.write_text("fallback", encoding="utf-8")
    assert _read_grammar((tmp_path / "missing.lark", fallback)) == "fallback"
    with pytest.raises(FileNotFoundError):
        _read_grammar((tmp_path / "missing.lark",))


# ---------------------------------------------------------------- tree shape


def test_representative_policy_builds_the_expected_ast() -> None:
    assert representative() == EXPECTED


def test_equality_ignores_layout() -> None:
    squeezed = 'list agents=["sarin","nerve agent"]\n'
    spaced = '\n\n  list   agents =\n [ "sarin" ,\n "nerve agent" , ]  # x\n'
    assert build(squeezed)[0] == build(spaced)[0]


def test_empty_file_has_no_declarations() -> None:
    tree, sink = build("# only a comment\n")
    assert list(sink) == []
    assert tree == nodes.PolicyFile(declarations=())


def test_keywords_stay_usable_as_names_outside_expressions() -> None:
    tree, sink = build("pattern pattern = /x/\nsignal and { not: in }\n")
    assert list(sink) == []
    assert tree == nodes.PolicyFile(
        declarations=(
            value_decl("pattern", "pattern", nodes.Regex(pattern="x", flags="")),
            block_decl("signal", "and", prop("not", R("in"))),
        )
    )


def test_long_chains_are_flattened_without_recursion() -> None:
    tree, sink = build("rule r { when: " + " or ".join(["a"] * 3000) + " }")
    assert list(sink) == []
    assert tree is not None
    body = tree.declarations[0].body
    assert body is not None
    value = body.properties[0].value
    assert isinstance(value, nodes.Or)
    assert len(value.items) == 3000


def test_nesting_limit_is_a_diagnostic() -> None:
    depth = MAX_NESTING + 5
    text = "rule r { when: " + "(" * depth + "a" + ")" * depth + " }"
    tree, sink = build(text)
    assert tree is None
    assert [d.code for d in sink] == ["PL106"]
    ok, ok_sink = build("rule r { when: " + "(" * 20 + "a" + ")" * 20 + " }")
    assert ok is not None
    assert list(ok_sink) == []


def test_invalid_escape_is_reported_and_building_continues() -> None:
    text = 'list x = ["a\\qb", "ok"]'
    tree, sink = build(text)
    assert [(d.code, text[d.span.start : d.span.end]) for d in sink] == [("PL105", "\\q")]
    assert tree == nodes.PolicyFile(
        declarations=(value_decl("list", "x", nodes.ListValue(items=(S("a\\qb"), S("ok")))),)
    )


# ---------------------------------------------------------------- spans


def test_spans_are_half_open_code_point_offsets() -> None:
    tree = representative()
    policy = tree.declarations[0]
    start = REPRESENTATIVE.index("default")
    assert policy.name.span == Span(start, start + len("default"))
    assert covered(policy.kind.span) == "policy"
    assert covered(policy.span).startswith("policy default {")
    assert covered(policy.span).endswith("}")
    assert tree.span == Span(0, len(REPRESENTATIVE))


def test_spans_after_non_bmp_characters_count_code_points() -> None:
    text = 'list x = ["\U0001f600"] list y = [a]'
    tree, _ = build(text)
    assert tree is not None
    name = tree.declarations[1].name
    assert text[name.span.start : name.span.end] == "y"


def test_comparison_and_window_spans() -> None:
    rule = representative().declarations[7]
    assert rule.body is not None
    when = rule.body.properties[0]
    assert covered(when.span).startswith("when: failed_redirects[")
    assert isinstance(when.value, nodes.And)
    comparison = when.value.items[0]
    assert isinstance(comparison, nodes.Comparison)
    assert covered(comparison.span) == "failed_redirects[mass_casualty] >= 3 within 10 turns"
    assert covered(comparison.subject.span) == "failed_redirects"
    assert comparison.key is not None
    assert covered(comparison.key.span) == "mass_casualty"
    assert isinstance(comparison.operand, nodes.Number)
    assert covered(comparison.operand.span) == "3"
    assert comparison.window is not None
    assert covered(comparison.window.span) == "10 turns"
    assert covered(when.value.items[2].span) == "not not end_request"


def test_group_takes_the_span_of_the_parentheses() -> None:
    category = representative().declarations[5]
    assert category.body is not None
    detect = category.body.properties[3].value
    assert isinstance(detect, nodes.Or)
    assert covered(detect.span).startswith("keywords agents and (")
    assert covered(detect.span).endswith("pattern /x+/s")
    conjunction = detect.items[0]
    assert isinstance(conjunction, nodes.And)
    group = conjunction.items[1]
    assert isinstance(group, nodes.Or)
    assert covered(group.span) == '(keywords ["make", "build"] or pattern how_to)'


def test_literal_spans_include_delimiters() -> None:
    tree = representative()
    owner = tree.declarations[0].body
    assert owner is not None
    assert covered(owner.properties[1].value.span) == '"Trust \\"&\\" Safety\\t\\u{1F600}\\\\"'
    regex = tree.declarations[3].value
    assert regex is not None
    assert covered(regex.span) == r"/\bhow (do|can) i\b/i"
    counter = tree.declarations[6].body
    assert counter is not None
    assert covered(counter.properties[2].value.span) == "after 3 benign turns"


# ---------------------------------------------------------------- policies on disk

POLICY_FILES = sorted((ROOT / "policies").glob("**/*.policy"))


@pytest.mark.skipif(not POLICY_FILES, reason="no policies/**/*.policy files yet")
@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_policy_file_parses_cleanly(path: Path) -> None:
    source = SourceFile.from_text(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
    sink = DiagnosticSink()
    tree = parse(source, sink)
    assert [f"{d.code} {d.message}" for d in sink] == []
    assert tree is not None
