"""Composition as the checker sees it: what each construct does to the lowered policy.

Extensions are compared with the base they extend (``fixtures/base.policy``): an
override must change only what it writes, a disable only remove its rule, a tenant
only the values it sets. Chains are checked against the real SHA-256 of each file.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from compose_helpers import FIXTURES, Analysis, analyse, sha256_of, write

from policylang import builder, compose, ir, nodes
from policylang.checker import analyze
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import (
    AllConditions,
    CounterCompare,
    PolicyLink,
    Severity,
)
from policylang.source import SourceFile

BASE = FIXTURES / "base.policy"
SECTIONS = ("categories", "signals", "redirects", "counters", "protections", "rules")


def spec_of(path: Path, tenant: Path | None = None) -> ir.PolicySpec:
    analysis = analyse(path, tenant)
    assert analysis.spec is not None, analysis.human()
    assert not analysis.diagnostics, analysis.human()
    return analysis.spec


def extend(tmp_path: Path, body: str, header: str = "", name: str = "child") -> Path:
    """A policy in ``tmp_path`` that extends the fixtures' base, with ``body`` after it."""
    text = f'policy {name} {{\n  version: "2.0.0"\n  extends: "{BASE}"\n{header}}}\n{body}\n'
    return write(tmp_path / f"{name}.policy", text)


def by_name(spec: ir.PolicySpec, section: str) -> dict[str, Any]:
    return {item.name: item for item in getattr(spec, section)}


def differing(old: object, new: object) -> set[str]:
    """The fields of two dataclass instances that differ."""
    return {
        f.name
        for f in dataclasses.fields(old)  # type: ignore[arg-type]
        if getattr(old, f.name) != getattr(new, f.name)
    }


def only_changed(
    base: ir.PolicySpec, child: ir.PolicySpec, section: str, name: str, fields: set[str]
) -> Any:
    """Assert that ``child`` differs from ``base`` only in ``fields`` of one declaration."""
    for other in SECTIONS:
        old, new = by_name(base, other), by_name(child, other)
        assert list(old) == list(new), other
        for key in old:
            expected = fields if (other, key) == (section, name) else set()
            assert differing(old[key], new[key]) == expected, (other, key)
    return by_name(child, section)[name]


@pytest.fixture(scope="module")
def base() -> ir.PolicySpec:
    return spec_of(BASE)


# ---------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("body", "section", "name", "fields", "check"),
    [
        (
            'override rule end_harm { message: "So long." }',
            "rules",
            "end_harm",
            {"message"},
            lambda rule: rule.message == "So long.",
        ),
        (
            'override rule warn_harm { reason: "second-warning" }',
            "rules",
            "warn_harm",
            {"reason"},
            lambda rule: rule.reason == "second-warning",
        ),
        (
            "override category harm { severity: high }",
            "categories",
            "harm",
            {"severity"},
            lambda category: category.severity is Severity.HIGH,
        ),
        (
            'override category harm { title: "Violence" }',
            "categories",
            "harm",
            {"title"},
            lambda category: category.title == "Violence",
        ),
        (
            "override counter failed_redirects { reset: after 3 benign turns }",
            "counters",
            "failed_redirects",
            {"reset_after"},
            lambda counter: counter.reset_after == 3,
        ),
        (
            'override redirect refusal { detect: annotation "deflect" }',
            "redirects",
            "refusal",
            {"detect"},
            lambda redirect: redirect.detect.name == "deflect",
        ),
    ],
    ids=["rule-message", "rule-reason", "severity", "title", "counter-reset", "redirect"],
)
def test_an_override_changes_only_the_field_it_writes(
    tmp_path: Path,
    base: ir.PolicySpec,
    body: str,
    section: str,
    name: str,
    fields: set[str],
    check: Any,
) -> None:
    changed = only_changed(base, spec_of(extend(tmp_path, body)), section, name, fields)
    assert check(changed)
    assert not check(by_name(base, section)[name])


def test_overriding_a_parameter_changes_every_use_and_nothing_else(
    tmp_path: Path, base: ir.PolicySpec
) -> None:
    child = spec_of(extend(tmp_path, "override param warn_after { value: 3 }"))
    rule = only_changed(base, child, "rules", "warn_harm", {"when"})
    assert rule.when == AllConditions(
        items=(rule.when.items[0], CounterCompare("failed_redirects", None, ">=", 3, window=10))
    )


def test_a_raise_only_param_may_be_raised_and_a_lower_only_one_lowered(
    tmp_path: Path, base: ir.PolicySpec
) -> None:
    body = "override param redirects_before_end { value: 4 }\n"
    body += "override param harm_score { value: 0.6 }"
    child = spec_of(extend(tmp_path, body))
    end_harm = by_name(child, "rules")["end_harm"]
    assert end_harm.when.items[1] == CounterCompare("failed_redirects", None, ">=", 4)
    harm = by_name(child, "categories")["harm"]
    assert harm.detect.items[2].threshold == 0.6
    assert by_name(base, "categories")["harm"].detect.items[2].threshold == 0.8


def test_an_extension_may_lock_harder(tmp_path: Path, base: ir.PolicySpec) -> None:
    body = "override param redirects_before_end { locked: true }"
    assert spec_of(extend(tmp_path, body)).rules == base.rules


def test_add_detect_add_unless_and_add_follow_up_append(
    tmp_path: Path, base: ir.PolicySpec
) -> None:
    body = (
        "override category harm {\n"
        '  add_detect: keywords ["knife"]\n'
        '  add_unless: keywords ["cartoon"]\n'
        '  add_follow_up: keywords ["and then"]\n'
        "}"
    )
    child = spec_of(extend(tmp_path, body))
    old = by_name(base, "categories")["harm"]
    new = only_changed(base, child, "categories", "harm", {"detect", "unless", "follow_up"})
    assert isinstance(new.detect, ir.AnyOfSpec)
    assert new.detect.items[:-1] == old.detect.items  # the base's detectors, in order
    assert new.detect.items[-1].terms == ("knife",)
    assert old.unless is None and new.unless.terms == ("cartoon",)
    assert old.follow_up is None and new.follow_up.terms == ("and then",)


def test_add_unless_appends_to_an_inherited_unless(tmp_path: Path) -> None:
    # child.policy adds `unless: keywords ["video game"]`; a grandchild adds another.
    text = (
        f'policy late {{ version: "1" extends: "{FIXTURES / "child.policy"}" }}\n'
        'override category harm { add_unless: keywords ["cartoon"] }\n'
    )
    child = spec_of(FIXTURES / "child.policy")
    late = spec_of(write(tmp_path / "late.policy", text))
    unless = by_name(late, "categories")["harm"].unless
    assert isinstance(unless, ir.AnyOfSpec)
    assert unless.items[0] == by_name(child, "categories")["harm"].unless
    assert unless.items[1].terms == ("cartoon",)


def test_an_imported_signal_can_be_overridden(tmp_path: Path) -> None:
    text = (
        'policy p { version: "1" }\n'
        f'import shared {{ from: "{FIXTURES / "shared.policy"}" names: [self_harm] }}\n'
        'override signal self_harm { add_detect: keywords ["burn myself"] }\n'
        'protection care { when: self_harm action: escalate reason: "self-harm" }\n'
    )
    signal = by_name(spec_of(write(tmp_path / "p.policy", text)), "signals")["self_harm"]
    assert [item.terms for item in signal.detect.items] == [("cut myself",), ("burn myself",)]


# ---------------------------------------------------------------- lists, patterns, disable


def test_list_add_and_remove(base: ir.PolicySpec) -> None:
    child = spec_of(FIXTURES / "child.policy")
    assert by_name(base, "categories")["harm"].detect.items[0].terms == ("bomb", "weapon")
    assert by_name(child, "categories")["harm"].detect.items[0].terms == ("bomb", "gun")


def test_a_list_and_a_pattern_replaced_whole(tmp_path: Path, base: ir.PolicySpec) -> None:
    body = 'override list harm_words = ["knife", "blade"]\n'
    body += "override pattern harm_pattern = /\\bbuild a bomb\\b/"
    child = spec_of(extend(tmp_path, body))
    harm = only_changed(base, child, "categories", "harm", {"detect"})
    assert harm.detect.items[0].terms == ("knife", "blade")
    assert harm.detect.items[1].regex == "\\bbuild a bomb\\b"
    assert by_name(base, "categories")["harm"].detect.items[1].regex == "\\bmake a bomb\\b"


def test_disable_removes_the_rule_and_nothing_else(base: ir.PolicySpec) -> None:
    child = spec_of(FIXTURES / "child.policy")
    assert [r.name for r in base.rules] == ["escalate_minor", "end_harm", "warn_harm"]
    assert [r.name for r in child.rules] == ["escalate_minor", "end_harm"]
    assert child.protections == base.protections


# ---------------------------------------------------------------- chains


def test_a_three_level_chain_records_each_file() -> None:
    spec = spec_of(FIXTURES / "grandchild.policy")
    assert spec.chain == (
        PolicyLink("base", "base", "1.0.0", sha256_of(BASE)),
        PolicyLink("base", "child", "2.0.0", sha256_of(FIXTURES / "child.policy")),
        PolicyLink("policy", "grandchild", "3.0.0", sha256_of(FIXTURES / "grandchild.policy")),
    )
    # The grandchild changes the end rule's message and inherits the child's changes.
    rules = by_name(spec, "rules")
    assert rules["end_harm"].message == "Goodbye from the grandchild."
    assert "warn_harm" not in rules
    assert spec.source_sha256 not in {link.sha256 for link in spec.chain}


def test_a_single_file_policy_has_no_chain(base: ir.PolicySpec) -> None:
    assert base.chain == ()
    assert base.source_sha256 == sha256_of(BASE)


def test_the_policy_digest_covers_the_base(tmp_path: Path) -> None:
    shutil.copy(BASE, tmp_path / "base.policy")
    child = write(tmp_path / "child.policy", (FIXTURES / "child.policy").read_text())
    before = spec_of(child)
    with (tmp_path / "base.policy").open("a", encoding="utf-8") as handle:
        handle.write("# a comment changes the file, not the policy\n")
    after = spec_of(child)
    assert before.chain[0].sha256 != after.chain[0].sha256
    assert before.source_sha256 != after.source_sha256
    assert before.rules == after.rules


# ---------------------------------------------------------------- imports


def test_an_import_brings_its_dependencies_and_nothing_more(tmp_path: Path) -> None:
    shared = FIXTURES / "shared.policy"
    text = (
        'policy p { version: "1" }\n'
        f'import shared {{ from: "{shared}" names: [self_harm] }}\n'
        # Not imported, so this file may declare it: had it come along, this is PL606.
        'list unrelated_terms = ["rain"]\n'
        "signal weather { detect: keywords unrelated_terms }\n"
        'protection care { when: self_harm or weather action: escalate reason: "care" }\n'
    )
    spec = spec_of(write(tmp_path / "p.policy", text))
    signals = by_name(spec, "signals")
    assert signals["self_harm"].detect.terms == ("cut myself",)  # its list came along
    assert signals["weather"].detect.terms == ("rain",)
    assert spec.chain[1] == PolicyLink("import", "shared", "", sha256_of(shared))


def test_a_diamond_import_of_the_same_declaration_is_no_conflict() -> None:
    diamond = FIXTURES / "diamond"
    spec = spec_of(diamond / "top.policy")
    signals = by_name(spec, "signals")
    assert signals["left_signal"].detect.terms == ("lonely",)
    assert signals["right_signal"].detect.items[0].terms == ("lonely",)
    # Every file that shaped the policy is in its chain, once.
    assert [(link.role, link.name) for link in spec.chain] == [
        ("policy", "top"),
        ("import", "left"),
        ("import", "bottom"),
        ("import", "right"),
    ]
    assert spec.chain[2].sha256 == sha256_of(diamond / "bottom.policy")


def test_the_digest_covers_a_file_imported_by_an_imported_file(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "diamond", tmp_path / "diamond")
    before = spec_of(tmp_path / "diamond" / "top.policy")
    write(tmp_path / "diamond" / "bottom.policy", 'list shared_terms = ["alone at night"]\n')
    after = spec_of(tmp_path / "diamond" / "top.policy")
    assert by_name(after, "signals")["left_signal"].detect.terms == ("alone at night",)
    assert before.source_sha256 != after.source_sha256


# ---------------------------------------------------------------- cycles


def _analyse_or_hang(path: Path) -> Analysis:
    """Analyse ``path`` in a thread; fail (rather than hang the suite) if it never ends."""
    found: list[Analysis] = []
    worker = threading.Thread(target=lambda: found.append(analyse(path)), daemon=True)
    worker.start()
    worker.join(120)
    assert found, f"analysing {path} did not finish"
    return found[0]


@pytest.mark.parametrize(
    ("name", "cycle"),
    [
        ("self.policy", ["self.policy", "self.policy"]),
        ("a.policy", ["a.policy", "b.policy", "a.policy"]),
        ("import_a.policy", ["import_a.policy", "import_b.policy", "import_a.policy"]),
    ],
)
def test_cycles_are_reported_not_followed(name: str, cycle: list[str]) -> None:
    analysis = _analyse_or_hang(FIXTURES / "cycles" / name)
    assert analysis.codes == {"PL602"}
    assert analysis.spec is None
    (diagnostic,) = analysis.diagnostics
    named = [str(FIXTURES / "cycles" / file) for file in cycle]
    assert diagnostic.message == "policies form a cycle: " + " -> ".join(f"`{p}`" for p in named)


def test_a_chain_too_deep_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "p0.policy", 'policy p0 { version: "1" }\n')
    for level in range(1, 40):
        write(
            tmp_path / f"p{level}.policy",
            f'policy p{level} {{ version: "1" extends: "p{level - 1}.policy" }}\n',
        )
    analysis = _analyse_or_hang(tmp_path / "p39.policy")
    assert analysis.codes == {"PL602"}
    assert "nested more than 32 deep" in analysis.diagnostics[0].message


# ---------------------------------------------------------------- parameters and tenants


def test_parameters_are_substituted_everywhere(base: ir.PolicySpec) -> None:
    # Base values: harm_score 0.8, warn_after 1, harm_window 10, reset_turns 6,
    # redirects_before_end 2, end_message "Ending this conversation.".
    harm = by_name(base, "categories")["harm"]
    assert harm.detect.items[2].threshold == 0.8
    assert base.counters[0].reset_after == 6
    rules = by_name(base, "rules")
    assert rules["warn_harm"].when.items[1] == CounterCompare(
        "failed_redirects", None, ">=", 1, window=10
    )
    assert rules["end_harm"].when.items[1] == CounterCompare("failed_redirects", None, ">=", 2)
    assert rules["end_harm"].message == "Ending this conversation."
    assert rules["escalate_minor"].message == "Let's talk about something else."


def test_a_tenant_within_range_changes_the_compiled_values() -> None:
    child = spec_of(FIXTURES / "child.policy")
    tenant = FIXTURES / "tenants" / "acme.tenant"
    acme = spec_of(FIXTURES / "child.policy", tenant)
    # The tenant sets harm_score 0.6, harm_window 5, reset_turns 3,
    # redirects_before_end 4 and end_message; nothing else changes.
    assert by_name(acme, "categories")["harm"].detect.items[2].threshold == 0.6
    assert acme.counters[0].reset_after == 3
    end_harm = by_name(acme, "rules")["end_harm"]
    assert end_harm.when.items[1] == CounterCompare("failed_redirects", None, ">=", 4)
    assert end_harm.message == "Acme ends this chat."
    assert differing(by_name(child, "rules")["end_harm"], end_harm) == {"when", "message"}
    assert acme.protections == child.protections
    assert acme.chain == (
        *child.chain,
        PolicyLink("tenant", "acme", "3", sha256_of(tenant)),
    )
    assert acme.source_sha256 != child.source_sha256


def test_a_tenant_may_set_a_raise_only_param_at_its_value_and_above(tmp_path: Path) -> None:
    # child.policy raised redirects_before_end to 3: tenants choose in [3, 4].
    for value, ok in ((3, True), (4, True), (2, False)):
        tenant = write(
            tmp_path / "t.tenant", f"tenant t {{ set: {{ redirects_before_end: {value} }} }}\n"
        )
        analysis = analyse(FIXTURES / "child.policy", tenant)
        assert (analysis.spec is not None) == ok, analysis.human()


def test_a_frozen_param_is_not_tunable(tmp_path: Path) -> None:
    policy = extend(tmp_path, "override param harm_window { locked: true }")
    tenant = write(tmp_path / "t.tenant", "tenant t { set: { harm_window: 12 } }\n")
    analysis = analyse(policy, tenant)
    assert analysis.codes == {"PL610"}


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        ("harm_window: 50", "PL611"),
        ("harm_window: 4", "PL611"),
        ('harm_window: "ten"', "PL611"),
        ("end_message: 3", "PL611"),
        ("warn_after: 2", "PL610"),
        ('minor_message: "Hi."', "PL610"),
        ("harm_windw: 8", "PL608"),
    ],
)
def test_tenant_settings_that_are_refused(tmp_path: Path, setting: str, code: str) -> None:
    tenant = write(tmp_path / "t.tenant", f"tenant t {{\n  set: {{ {setting} }}\n}}\n")
    analysis = analyse(FIXTURES / "child.policy", tenant)
    assert analysis.codes == {code}
    assert analysis.spec is None
    (diagnostic,) = analysis.diagnostics
    assert diagnostic.path == str(tenant)
    source = SourceFile.from_text(str(tenant), tenant.read_text())
    line, column = source.line_col(diagnostic.primary.span.start)
    assert line == 2
    key = setting.partition(": ")[0]
    expected = 10 + (len(key) + 2 if code == "PL611" else 0)  # the value, or the name
    assert column == expected


def test_a_tenant_for_another_policy_is_refused(tmp_path: Path) -> None:
    tenant = write(tmp_path / "t.tenant", "tenant t { policy: base set: { harm_window: 8 } }\n")
    analysis = analyse(FIXTURES / "child.policy", tenant)
    assert analysis.codes == {"PL612"}
    assert "is for policy `base`, not `child`" in analysis.diagnostics[0].message
    named = write(tmp_path / "ok.tenant", "tenant t { policy: child set: { harm_window: 8 } }\n")
    assert analyse(FIXTURES / "child.policy", named).spec is not None


def test_a_missing_tenant_file_is_reported(tmp_path: Path) -> None:
    analysis = analyse(FIXTURES / "child.policy", tmp_path / "absent.tenant")
    assert analysis.codes == {"PL601"}


# ---------------------------------------------------------------- locations


def _position(path: str, offset: int) -> tuple[int, int]:
    return SourceFile.from_text(path, Path(path).read_text(encoding="utf-8")).line_col(offset)


def test_diagnostics_point_into_the_right_file_line_and_column(tmp_path: Path) -> None:
    body = (
        "\n"
        'override signal risk { add_unless: keywords ["joke"] }\n'  # line 6: PL607
        "override category harmz { severity: high }\n"  # line 7: PL603
        'list harm_words = ["gun"]\n'  # line 8: PL606
    )
    policy = extend(tmp_path, body)
    analysis = analyse(policy)
    found = {d.code: d for d in analysis.diagnostics}
    assert set(found) == {"PL603", "PL606", "PL607"}
    base_text = BASE.read_text(encoding="utf-8")
    lock_line = base_text.count("\n", 0, base_text.index("  locked: true")) + 1
    # code: (line, column) in the policy, line of the secondary label in the base
    expected = {"PL607": ((6, 24), lock_line), "PL603": ((7, 19), 2), "PL606": ((8, 6), 7)}
    for code, (position, label_line) in expected.items():
        diagnostic = found[code]
        assert diagnostic.path == str(policy)
        assert _position(str(policy), diagnostic.primary.span.start) == position, code
        (label,) = diagnostic.secondary
        assert label.path == str(BASE), code
        assert _position(str(BASE), label.span.start)[0] == label_line, code
    lock = found["PL607"].secondary[0]
    assert base_text[lock.span.start : lock.span.end] == "locked: true"


def test_an_error_inside_the_base_is_located_in_the_base(tmp_path: Path) -> None:
    base = write(
        tmp_path / "base.policy",
        'policy base { version: "1" }\n'
        'category harm { title: "Harm" severity: critical detect: keywords harm_wordz }\n',
    )
    policy = write(
        tmp_path / "child.policy", 'policy child { version: "1" extends: "base.policy" }\n'
    )
    analysis = analyse(policy)
    (diagnostic,) = [d for d in analysis.diagnostics if d.code == "PL211"]
    assert diagnostic.path == str(base)
    assert _position(str(base), diagnostic.primary.span.start) == (2, 67)


# ---------------------------------------------------------------- the composer itself


def test_compose_resolves_to_one_plain_tree() -> None:
    path = str(FIXTURES / "child.policy")
    source = SourceFile.from_text(path, Path(path).read_text(encoding="utf-8"))
    sink = DiagnosticSink()
    tree = builder.parse(source, sink)
    assert tree is not None and compose.needs_composition(tree)
    composition = compose.compose(source, tree, sink)
    assert composition is not None and not sink.has_errors
    kinds = {d.kind.text for d in composition.tree.declarations}
    assert not kinds & compose.COMPOSITION_KINDS  # params and imports are consumed
    assert all(d.modifier is None for d in composition.tree.declarations)
    names = [d.name.text for d in composition.tree.declarations]
    assert "warn_harm" not in names and names.count("harm_words") == 1
    # The composed tree checks as it is, as one policy.
    assert isinstance(composition.tree, nodes.PolicyFile)
    assert analyze(source, DiagnosticSink()) is not None


def test_a_lock_added_by_an_extension_binds_the_next_one(tmp_path: Path) -> None:
    # grandchild.policy locks `end_harm`, which its own base left unlocked.
    grandchild = FIXTURES / "grandchild.policy"
    text = f'policy late {{ version: "1" extends: "{grandchild}" }}\n'
    text += 'override rule end_harm { message: "Bye." }\n'
    analysis = analyse(write(tmp_path / "late.policy", text))
    assert analysis.codes == {"PL607"}
    (diagnostic,) = analysis.diagnostics
    assert "locked by base policy `grandchild`" in diagnostic.message
    (label,) = diagnostic.secondary
    assert label.path == str(grandchild)
    assert analysis.text(label.path, label.span.start, label.span.end) == "locked: true"


def test_warnings_about_the_base_are_left_to_the_base(tmp_path: Path) -> None:
    base = write(
        tmp_path / "base.policy",
        'policy base { version: "1" }\n'
        'list spare = ["x"]\n'
        "param spare_param { value: 2 }\n"
        'category harm { title: "Harm" severity: high detect: keywords ["bomb"] }\n'
        'rule r { when: harm action: warn reason: "r" }\n',
    )
    assert analyse(base).codes == {"PL401", "PL615"}
    text = 'policy child { version: "1" extends: "base.policy" }\nlist spare2 = ["y"]\n'
    child = analyse(write(tmp_path / "child.policy", text))
    assert [(d.code, d.path) for d in child.diagnostics] == [
        ("PL401", str(tmp_path / "child.policy"))
    ]
    assert child.spec is not None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("keyword", ["extends", "import"])
def test_a_pipe_named_in_a_policy_is_refused_not_read(tmp_path: Path, keyword: str) -> None:
    # Opening a pipe for reading blocks until something writes to it: it would hang.
    os.mkfifo(tmp_path / "base.policy")
    header = (
        'policy child { extends: "base.policy" }\n'
        if keyword == "extends"
        else 'policy child { }\nimport shared { from: "base.policy" names: [x] }\n'
    )
    policy = write(tmp_path / "child.policy", header)
    analysis = analyse(policy)
    assert "PL601" in analysis.codes
    found = [d for d in analysis.diagnostics if d.code == "PL601"]
    assert "not a regular file" in found[0].message
