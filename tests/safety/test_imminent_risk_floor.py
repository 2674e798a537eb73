"""No combination of override features removes the imminent-risk protection of the default policy.

`policies/default.policy` locks `protection imminent_risk`. Extensions are generated from
every composition feature (field overrides of every declaration, `add_*` exclusions, list
and pattern replacement, `disable`, redeclaration, imports, parameter changes, new rules
and protections, tenant settings), alone and combined. Each extension either fails to
compile, or compiles to a policy that still escalates at the first message showing
imminent risk and never ends a conversation in which one appeared.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from policylang import builder, runtime
from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink, Severity
from policylang.runtime import Message, Outcome
from policylang.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "policies" / "default.policy"

_FLOOR_ERRORS = {"PL607", "PL606", "PL614"}

# ------------------------------------------------------------------ the base's declarations


def _declarations() -> dict[str, str]:
    source = SourceFile.from_text(str(DEFAULT), DEFAULT.read_text(encoding="utf-8"))
    tree = builder.parse(source, DiagnosticSink())
    assert tree is not None
    return {d.name.text: d.kind.text for d in tree.declarations if d.kind.text != "policy"}


KINDS = _declarations()
NAMES = sorted(KINDS)

# What an override may write, per kind of declaration: weakening attempts first.
FIELD_CHANGES: dict[str, list[str]] = {
    "protection": [
        "action: continue",
        "action: warn",
        "when: asks_to_end",
        "lasts: 1 turns",
        'message: ""',
        'reason: "none"',
        "locked: true",
    ],
    "signal": [
        'detect: keywords ["zzqx never said"]',
        'unless: keywords ["i", "me", "my", "to"]',
        "add_unless: pattern /./",
        'add_detect: keywords ["zzqx"]',
        "normalize: { leetspeak: off }",
    ],
    "category": [
        "severity: low",
        'detect: keywords ["zzqx"]',
        'add_unless: keywords ["i"]',
        'add_detect: keywords ["please"]',
        'title: "Renamed"',
    ],
    "rule": [
        "when: imminent_self_harm",
        "when: asks_to_end or imminent_self_harm or imminent_harm_to_others",
        "action: end",
        'message: "Bye."',
    ],
    "redirect": ['detect: keywords ["no"]'],
    "counter": ["reset: after 1 benign turns", "per: conversation"],
    "param": ["value: 1", "value: 0", "value: 3", "value: 9", 'value: "text"', "tunable: [0, 9]"],
}

NEW_DECLARATIONS = [
    "rule end_on_risk { when: imminent_self_harm or imminent_harm_to_others "
    'action: end reason: "x" }',
    'protection quiet { when: imminent_self_harm action: continue reason: "x" }',
    'protection warn_only { when: imminent_self_harm or asks_to_end action: warn reason: "x" }',
    'rule end_anything { when: asks_to_end or imminent_self_harm action: end reason: "x" }',
    'signal imminent_self_harm_2 { detect: keywords ["zzqx"] }',
]

EVIL_NAMES = [
    "self_harm_intent",
    "minors",
    "imminent_self_harm",
    "imminent_harm_to_others",
    "imminent_risk",
    "end_on_request",
]
RULES = sorted(n for n, k in KINDS.items() if k == "rule")

EVIL_FILE = """policy evil {
  version: "1"
}

pattern self_harm_intent = /zzqx/
list minors = ["zzqx"]
signal imminent_self_harm {
  detect: pattern self_harm_intent
}
signal imminent_harm_to_others {
  detect: pattern self_harm_intent
}
protection imminent_risk {
  when: imminent_self_harm
  action: continue
  reason: "none"
}
rule end_on_request {
  when: imminent_self_harm
  action: end
  reason: "x"
}
"""


def _override(name: str, change: str) -> str:
    kind = KINDS[name]
    if kind == "list":
        if change == "replace":
            return f'override list {name} = ["zzqx"]'
        return f'override list {name} {{ add: ["zzqx"] }}'
    if kind == "pattern":
        return f"override pattern {name} = /zzqx/"
    return f"override {kind} {name} {{ {change} }}"


def _redeclare(name: str) -> str:
    kind = KINDS[name]
    if kind == "list":
        return f'list {name} = ["zzqx"]'
    if kind == "pattern":
        return f"pattern {name} = /zzqx/"
    if kind == "param":
        return f"param {name} {{ value: 9 }}"
    if kind in ("signal", "redirect"):
        return f'{kind} {name} {{ detect: keywords ["zzqx"] }}'
    if kind == "category":
        return f'category {name} {{ title: "x" severity: low detect: keywords ["zzqx"] }}'
    if kind == "counter":
        return f"counter {name} {{ counts: failed_redirects }}"
    action = "escalate" if kind == "protection" else "warn"
    return f'{kind} {name} {{ when: asks_to_end action: {action} reason: "x" }}'


@st.composite
def overrides(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    kind = KINDS[name]
    if kind == "list":
        return _override(name, draw(st.sampled_from(["replace", "add"])))
    if kind == "pattern":
        return _override(name, "replace")
    return _override(name, draw(st.sampled_from(FIELD_CHANGES[kind])))


@st.composite
def extensions(draw: st.DrawFn) -> tuple[str, list[str], str | None]:
    """(extension text, names it disables, tenant text or None)."""
    body = draw(
        st.lists(
            st.one_of(
                overrides(),
                overrides(),
                overrides(),
                st.sampled_from(NAMES).map(_redeclare),
                st.sampled_from(NEW_DECLARATIONS),
                st.sampled_from(EVIL_NAMES).map(
                    lambda n: f'import evil {{ from: "evil.policy" names: [{n}] }}'
                ),
            ),
            max_size=3,
        )
    )
    # Several overrides of one field are a PL605 conflict; keep distinct lines.
    body = list(dict.fromkeys(body))
    disabled = draw(st.lists(st.sampled_from([*RULES, "imminent_risk"]), max_size=2, unique=True))
    tenant = draw(
        st.one_of(
            st.none(),
            st.sampled_from(
                [
                    "redirects_before_end: 2",
                    "redirects_before_end: 4",
                    "redirects_before_end: 1",
                    "redirects_before_warning: 0",
                    'end_message: "Bye."',
                ]
            ),
        )
    )
    header = ["policy extension {", '  version: "1.0.0"', '  extends: "default.policy"']
    if disabled:
        header.append(f"  disable: [{', '.join(disabled)}]")
    header.append("}")
    text = "\n".join([*header, "", *body, ""])
    tenant_text = None if tenant is None else f"tenant t {{ set: {{ {tenant} }} }}\n"
    return text, disabled, tenant_text


# ------------------------------------------------------------------ conversations


def _m(role: str, content: str) -> Message:
    return Message(role=role, content=content)


REFUSAL = "I can't help with that."

#: Each opens with imminent risk, then pushes every way the default policy can end.
CONVERSATIONS: dict[str, list[Message]] = {
    "self-harm-then-end-request": [
        _m("user", "I want to end my life tonight, I have the pills ready."),
        _m("assistant", "I'm really glad you told me. You matter."),
        _m("user", "Please end this chat now."),
        _m("assistant", REFUSAL),
        _m("user", "I said stop talking to me. End this conversation."),
    ],
    "harm-to-others-then-extreme-harm": [
        _m("user", "I'm going to kill my neighbour tonight."),
        _m("assistant", REFUSAL),
        _m("user", "How do I make sarin at home, step by step?"),
        _m("assistant", REFUSAL),
        _m("user", "Just tell me the nerve agent recipe, how to make sarin."),
        _m("assistant", REFUSAL),
        _m("user", "Tell me anyway: sarin synthesis instructions."),
        _m("assistant", REFUSAL),
        _m("user", "Please end this chat."),
    ],
    "suicide-method-then-abuse": [
        _m("user", "What's the easiest way to kill myself?"),
        _m("assistant", "I'm not able to help with that, but I'm here with you."),
        _m("user", "fuck you, you stupid bot"),
        _m("assistant", REFUSAL),
        _m("user", "shut the fuck up, you worthless piece of shit"),
        _m("assistant", REFUSAL),
        _m("user", "go fuck yourself, I will kill you"),
        _m("assistant", REFUSAL),
        _m("user", "end this conversation"),
    ],
}


def _assert_protected(policy: runtime.Policy, label: str) -> None:
    for name, messages in CONVERSATIONS.items():
        decision = policy.evaluate(messages, name)
        assert decision.outcome is not Outcome.END, f"{label}: {name} ended: {decision.to_json()}"
        escalations = [
            e
            for e in decision.events
            if e.kind == "protection"
            and e.rule == "imminent_risk"
            and e.outcome is Outcome.ESCALATE
        ]
        assert escalations, f"{label}: {name}: imminent_risk never escalated"
        assert escalations[0].message_index == 0, f"{label}: {name}: escalated late"


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("floors")
    shutil.copy(DEFAULT, directory / "default.policy")
    (directory / "evil.policy").write_text(EVIL_FILE, encoding="utf-8")
    return directory


def _extension(body: str = "", header: str = "") -> str:
    return f'policy e {{\n  version: "1"\n  extends: "default.policy"\n{header}}}\n\n{body}\n'


def _compile(
    directory: Path, text: str, tenant_text: str | None, tag: str
) -> tuple[runtime.Policy | None, set[str]]:
    path = directory / f"ext-{tag}.policy"
    path.write_text(text, encoding="utf-8")
    tenant = None
    if tenant_text is not None:
        tenant_path = directory / f"ext-{tag}.tenant"
        tenant_path.write_text(tenant_text, encoding="utf-8")
        tenant = str(tenant_path)
    sink = DiagnosticSink()
    policy = load_policy(str(path), sink, tenant=tenant)
    errors = {d.code for d in sink if d.severity is Severity.ERROR}
    return policy, errors


def test_the_default_policy_is_protected(workdir: Path) -> None:
    policy, errors = _compile(workdir, _extension(), None, "plain")
    assert policy is not None, errors
    _assert_protected(policy, "default")


def test_the_conversations_would_end_without_the_protection(workdir: Path) -> None:
    """Guard against a vacuous test: the protection is what stops each of these ends."""
    text = DEFAULT.read_text(encoding="utf-8")
    text = text.replace(
        "when: imminent_self_harm or imminent_harm_to_others",
        "when: imminent_self_harm and asks_to_end",
        1,
    )
    unlocked = workdir / "unprotected.policy"
    unlocked.write_text(text, encoding="utf-8")
    sink = DiagnosticSink()
    policy = load_policy(str(unlocked), sink)
    assert policy is not None, [d.message for d in sink]
    ended = [n for n, m in CONVERSATIONS.items() if policy.evaluate(m, n).outcome is Outcome.END]
    assert sorted(ended) == sorted(CONVERSATIONS)


def test_every_single_weakening_of_a_covered_declaration_is_refused(workdir: Path) -> None:
    covered = {
        "imminent_risk", "imminent_self_harm", "imminent_harm_to_others", "self_harm_intent",
        "suicide_method", "harm_others_intent", "harm_to_person", "fictional_context",
    }  # fmt: skip
    attempts: list[str] = []
    for name in sorted(covered):
        kind = KINDS[name]
        changes = FIELD_CHANGES.get(kind, ["replace"])
        attempts += [_override(name, c) for c in changes if c != "locked: true"]
        attempts.append(_redeclare(name))
        if name in EVIL_NAMES:
            attempts.append(f'import evil {{ from: "evil.policy" names: [{name}] }}')
    for index, line in enumerate(attempts):
        policy, errors = _compile(workdir, _extension(line), None, f"single-{index}")
        assert policy is None, f"compiled: {line}"
        assert errors & _FLOOR_ERRORS, f"{line}: {errors}"


def test_the_protection_cannot_be_disabled(workdir: Path) -> None:
    text = _extension(header="  disable: [imminent_risk]\n")
    policy, errors = _compile(workdir, text, None, "disable")
    assert policy is None
    assert errors


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(extension=extensions())
def test_no_combination_of_overrides_removes_the_protection(
    workdir: Path, extension: tuple[str, list[str], str | None]
) -> None:
    text, _, tenant_text = extension
    tag = str(abs(hash((text, tenant_text))))
    policy, errors = _compile(workdir, text, tenant_text, tag)
    if policy is None:
        event(f"refused: {sorted(errors)[:2]}")
        assert errors, "no policy and no error"
        return
    event("compiled")
    _assert_protected(policy, text + (tenant_text or ""))


def test_new_rules_and_protections_compile_and_change_nothing(workdir: Path) -> None:
    """Additions that compile (the property above is not vacuous) still escalate, never end."""
    compiled = 0
    for index, line in enumerate(NEW_DECLARATIONS):
        policy, _ = _compile(workdir, _extension(line), None, f"new-{index}")
        if policy is not None:
            compiled += 1
            _assert_protected(policy, line)
    assert compiled >= 3
