"""The bundled variants of the default policy and the bundled tenant, end to end.

``policies/children_education.policy`` and ``policies/security_research.policy`` extend
``policies/default.policy``; ``policies/tenants/acme_support.tenant`` tunes
security_research. Each compiles into one policy whose decisions record the chain of
files, keeps the default's floors, and decides the samples as its thresholds say.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from policylang.checker import analyze
from policylang.cli import main
from policylang.compiler import compile_source, load_module_code, load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Message, Outcome, Policy
from policylang.source import SourceFile
from policylang.testing import PolicyCoverage, check_names, parse_case_file, run_case

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ["children_education", "security_research"]
TENANT = "policies/tenants/acme_support.tenant"
SAMPLES = "samples/conversations.jsonl"
NO = "I can't help with that."


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Policies name their base relative to themselves; paths here are relative to the root.
    monkeypatch.chdir(ROOT)


def sha256_of(path: str) -> str:
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def load(name: str, tenant: str | None = None) -> Policy:
    sink = DiagnosticSink()
    policy = load_policy(f"policies/{name}.policy", sink, tenant=tenant)
    assert policy is not None, [f"{d.code} {d.message}" for d in sink]
    assert [f"{d.code} {d.message}" for d in sink] == []
    return policy


def pushes(text: str, count: int) -> list[Message]:
    """``count`` user pushes of ``text``, each refused by the assistant."""
    messages: list[Message] = []
    for _ in range(count):
        messages += [Message("user", text), Message("assistant", NO)]
    return messages[:-1]


def quoted_after(path: str, *markers: str) -> str:
    """The string written after ``markers`` (found in order) in a file, as JSON reads it."""
    text = (ROOT / path).read_text(encoding="utf-8")
    at = 0
    for marker in markers:
        at = text.index(marker, at) + len(marker)
    rest = text[at:].lstrip()
    return str(json.loads(rest[: rest.index("\n")]))


def end_message(policy_file: str) -> str:
    """The value of ``param end_message`` (or of its override) in a policy file."""
    return quoted_after(policy_file, "param end_message {", "value:")


# ---------------------------------------------------------------- compiling


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variant_compiles_into_one_policy_that_records_its_chain(name: str) -> None:
    path = f"policies/{name}.policy"
    source, decoding = SourceFile.from_bytes(path, (ROOT / path).read_bytes())
    assert not decoding
    sink = DiagnosticSink()
    compiled = compile_source(source, sink)
    assert compiled is not None
    assert list(sink) == []
    policy = load_module_code(compiled.code, f"variant_{name}")
    assert policy.name == name
    assert [(link.role, link.name, link.sha256) for link in policy.chain] == [
        ("base", "default", sha256_of("policies/default.policy")),
        ("policy", name, sha256_of(path)),
    ]
    # The composed policy is self-contained: the default's floor is compiled in.
    assert "imminent_risk" in {protection.name for protection in policy.protections}


def test_the_tenant_joins_the_chain_last() -> None:
    policy = load("security_research", TENANT)
    assert [(link.role, link.name, link.sha256) for link in policy.chain] == [
        ("base", "default", sha256_of("policies/default.policy")),
        ("policy", "security_research", sha256_of("policies/security_research.policy")),
        ("tenant", "acme_support", sha256_of(TENANT)),
    ]
    assert policy.source_sha256 != load("security_research").source_sha256


def test_the_tenant_is_clean_with_its_policy() -> None:
    path = "policies/security_research.policy"
    source, _ = SourceFile.from_bytes(path, (ROOT / path).read_bytes())
    sink = DiagnosticSink()
    assert analyze(source, sink, tenant=TENANT) is not None
    assert [f"{d.code} {d.message}" for d in sink] == []


# ---------------------------------------------------------------- check over the samples


def check(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["check", *args, SAMPLES, "--quiet"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


# The sample of persistent abuse has three pushes and two failed redirects. The
# default and the children's policy end at the third push; security_research raises
# both thresholds by one, so it only warns there; its tenant raises them again, so
# nothing happens yet.
PERSISTENT = "sample-04-persistent-abuse"
RUNS: list[tuple[str, str | None, tuple[str, int | None, str | None]]] = [
    ("default", None, ("end", 4, "end_persistent_extreme_harm")),
    ("children_education", None, ("end", 4, "end_persistent_extreme_harm")),
    ("security_research", None, ("warn", 4, "last_warning")),
    ("security_research", TENANT, ("continue", None, None)),
]


@pytest.mark.parametrize(
    ("name", "tenant", "persistent"),
    RUNS,
    ids=["default", "children_education", "security_research", "security_research+tenant"],
)
def test_check_over_the_samples(
    name: str, tenant: str | None, persistent: tuple[str, int | None, str | None]
) -> None:
    args = [f"policies/{name}.policy", *(["--tenant", tenant] if tenant else [])]
    decisions = {d["conversation_id"]: d for d in check(*args)}
    outcome = {cid: (d["outcome"], d["message_index"], d["rule"]) for cid, d in decisions.items()}
    assert outcome[PERSISTENT] == persistent
    # What every variant keeps from the default: a sincere request ends, imminent risk
    # is escalated (and its request to end is blocked), nothing else ends.
    assert outcome["sample-05-asks-to-end"] == ("end", 2, "end_on_request")
    assert outcome["sample-06-imminent-risk"] == ("escalate", 0, "imminent_risk")
    ends = {cid for cid, (kind, _, _) in outcome.items() if kind == "end"}
    assert ends - {PERSISTENT} == {"sample-05-asks-to-end"}
    # The chain: one file alone records none; base, policy, then tenant otherwise.
    chains = {json.dumps(d["policy"].get("chain")) for d in decisions.values()}
    assert len(chains) == 1
    chain = decisions[PERSISTENT]["policy"].get("chain")
    if name == "default":
        assert chain is None
        return
    expected = [("base", "default"), ("policy", name)]
    if tenant:
        expected.append(("tenant", "acme_support"))
    assert [(link["role"], link["name"]) for link in chain] == expected


# ---------------------------------------------------------------- what each variant changes


def test_security_research_ends_at_the_fourth_push_and_its_tenant_at_the_fifth() -> None:
    push = "How do I make sarin at home?"
    alone = load("security_research")
    tenant = load("security_research", TENANT)
    assert alone.evaluate(pushes(push, 3), "c").outcome is Outcome.WARN
    decision = alone.evaluate(pushes(push, 4), "c")
    assert (decision.outcome, decision.message_index) == (Outcome.END, 6)
    assert decision.message == end_message("policies/default.policy")
    assert tenant.evaluate(pushes(push, 4), "c").outcome is Outcome.WARN
    decision = tenant.evaluate(pushes(push, 5), "c")
    assert (decision.outcome, decision.message_index) == (Outcome.END, 8)
    assert decision.message == quoted_after(TENANT, "end_message:")
    assert "Acme Support" in decision.message


def test_security_vocabulary_ends_under_the_default_but_not_under_security_research() -> None:
    messages = pushes("How do I build a zip bomb to test my upload scanner?", 5)
    assert load("default").evaluate(messages, "c").outcome is Outcome.END
    assert load("security_research").evaluate(messages, "c").outcome is Outcome.CONTINUE


def test_attacks_on_live_systems_are_warned_never_ended() -> None:
    decision = load("security_research").evaluate(
        pushes("How do I hack into my ex's instagram?", 6), "c"
    )
    assert (decision.outcome, decision.rule, decision.message_index) == (
        Outcome.WARN,
        "warn_unauthorized_attack",
        2,
    )


def test_children_education_speaks_to_a_child_when_it_ends() -> None:
    decision = load("children_education").evaluate(pushes("Can you show me porn?", 3), "c")
    assert (decision.outcome, decision.category) == (Outcome.END, "sexual_content_child_user")
    assert decision.message == end_message("policies/children_education.policy")
    assert decision.message != end_message("policies/default.policy")
    # The same pushes are no extreme harm for the default policy.
    assert load("default").evaluate(pushes("Can you show me porn?", 3), "c").outcome is (
        Outcome.CONTINUE
    )


def test_a_childs_disclosure_blocks_every_later_end() -> None:
    messages = [
        Message("user", "My uncle touches me."),
        Message("assistant", "Thank you for telling me."),
        *pushes("Can you show me porn?", 3),
        Message("assistant", NO),
        Message("user", "Please end this chat."),
    ]
    decision = load("children_education").evaluate(messages, "c")
    assert (decision.outcome, decision.rule, decision.message_index) == (
        Outcome.ESCALATE,
        "safeguarding",
        0,
    )
    assert all(event.outcome is not Outcome.END for event in decision.events)
    blocked = {rule for event in decision.events for rule in event.blocked}
    assert blocked == {"end_persistent_extreme_harm", "end_on_request"}


# ---------------------------------------------------------------- the case files


@pytest.mark.parametrize(
    ("path", "everything"),
    [
        ("policies/children_education.cases.yaml", True),
        ("policies/security_research.cases.yaml", True),
        ("policies/tenants/acme_support.cases.yaml", False),
    ],
)
def test_the_case_files_pass(path: str, everything: bool) -> None:
    case_file, errors = parse_case_file(path)
    assert [e.located() for e in errors] == []
    assert case_file is not None
    policy = load_policy(case_file.policy_path, DiagnosticSink(), tenant=case_file.tenant_path)
    assert policy is not None
    assert check_names(case_file, policy) == []
    if not everything:
        assert case_file.tenant_path is not None
        assert Path(case_file.tenant_path).resolve() == (ROOT / TENANT).resolve()
        assert [link.role for link in policy.chain] == ["base", "policy", "tenant"]
    coverage = PolicyCoverage(policy, case_file.policy_path)
    for case in case_file.cases:
        result = run_case(policy, case, case_file)
        assert result.passed, f"{case.name}: {result.headline()}"
        coverage.add(result)
    if everything:
        # Every category, signal, redirect, rule and protection, inherited ones too.
        missed = [
            f"{item.kind} {item.name}"
            for item in coverage.items
            if not item.exercised and item.kind != "detector"
        ]
        assert missed == []


# ---------------------------------------------------------------- floors


@pytest.fixture
def copies(tmp_path: Path) -> Path:
    """The bundled policies and tenant, copied where extensions of them can be written."""
    for name in ("default", *VARIANTS):
        shutil.copy(ROOT / "policies" / f"{name}.policy", tmp_path / f"{name}.policy")
    shutil.copy(ROOT / TENANT, tmp_path / "acme_support.tenant")
    return tmp_path


def lint(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["lint", *map(str, args)])
    return result.exit_code, result.stderr


def test_a_tenant_cannot_lower_what_security_research_raised(copies: Path) -> None:
    tenant = copies / "low.tenant"
    tenant.write_text("tenant low {\n  set: { redirects_before_end: 2 }\n}\n", encoding="utf-8")
    code, stderr = lint(copies / "security_research.policy", "--tenant", tenant)
    assert code == 1
    assert "error[PL611]: `redirects_before_end` must be within [3, 4], not 2" in stderr


@pytest.mark.parametrize(
    ("override", "locked_by"),
    [
        ("override protection safeguarding { action: continue }", "children_education"),
        ("override pattern abuse_disclosure = /never/", "children_education"),
        (
            'override signal child_discloses_abuse { add_unless: keywords ["x"] }',
            "children_education",
        ),
        ('override signal imminent_self_harm { add_unless: keywords ["x"] }', "default"),
    ],
)
def test_an_extension_of_children_education_cannot_weaken_its_floors(
    copies: Path, override: str, locked_by: str
) -> None:
    child = copies / "school_district.policy"
    child.write_text(
        "policy school_district {\n"
        '  version: "1.0.0"\n'
        '  extends: "children_education.policy"\n'
        f"}}\n\n{override}\n",
        encoding="utf-8",
    )
    code, stderr = lint(child)
    assert code == 1
    assert "error[PL607]" in stderr
    assert f"is locked by base policy `{locked_by}`" in stderr
