"""Every composition error, rendered for a person, against golden files.

Each ``fixtures/errors/*.policy`` is a policy with one composition problem; each
``fixtures/errors/*.tenant`` is a tenant file with one problem, applied to
``fixtures/child.policy``. The full human rendering (with snippets of every file the
diagnostics point into: the policy, its base, the tenant) is compared with
``golden/<name>.txt``; regenerate with ``pytest tests/compose --update-goldens`` and
read the diff. Paths are relative to ``fixtures/``, so the output does not depend on
where the checkout lives.

Besides the golden text, :data:`EXPECTED` pins what matters in each: the one code, and
the secondary label (which file, which text) where there is one, so that a lock
violation always shows the ``locked:`` it breaks in the base file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_helpers import FIXTURES, GOLDEN, Analysis, analyse

from policylang.diagnostics import Severity

ERRORS = FIXTURES / "errors"
CASES = sorted(ERRORS.glob("*.policy")) + sorted(ERRORS.glob("*.tenant"))

BASE = "base.policy"
LOCK = "locked: true"

#: name -> (code, secondary label as (file, text it covers), or None for no label)
EXPECTED: dict[str, tuple[str, tuple[str, str] | None]] = {
    # lock-breaking attempts: the base's `locked:` is always the second span
    "lock_protection_action": ("PL607", (BASE, LOCK)),
    "lock_protection_unlock": ("PL607", (BASE, LOCK)),
    "lock_rule_field": ("PL607", (BASE, LOCK)),
    "lock_rule_disabled": ("PL607", (BASE, LOCK)),
    "lock_signal_field": ("PL607", (BASE, LOCK)),
    "lock_pattern_replaced": ("PL607", (BASE, LOCK)),
    "lock_list_changed": ("PL607", (BASE, LOCK)),
    "lock_list_replaced": ("PL607", (BASE, LOCK)),
    "lock_list_of_locked_rule": ("PL607", (BASE, LOCK)),
    "lock_param_used": ("PL607", (BASE, LOCK)),
    "lock_raise_only_lowered": ("PL607", (BASE, "locked: raise-only")),
    "lock_lower_only_raised": ("PL607", (BASE, "locked: lower-only")),
    "lock_tunable_changed": ("PL607", (BASE, "locked: raise-only")),
    "lock_direction_changed": ("PL607", (BASE, "locked: raise-only")),
    "lock_redeclared": ("PL606", (BASE, "imminent_risk")),
    "lock_import_conflict": ("PL614", (BASE, "risk_pattern")),
    # the other composition errors
    "import_conflict_named": ("PL614", (BASE, "risk_pattern")),
    "unreadable_base": ("PL601", None),
    "unreadable_import": ("PL601", None),
    "override_undeclared": ("PL603", (BASE, "base")),
    "override_own": ("PL603", ("errors/override_own.policy", "extra_words")),
    "override_without_base": ("PL603", None),
    "disable_unknown": ("PL603", (BASE, "base")),
    "remove_missing_term": ("PL603", (BASE, "harm_words")),
    "kind_mismatch": ("PL604", (BASE, "harm")),
    "disable_not_a_rule": ("PL604", (BASE, "risk")),
    "conflicting_override": ("PL605", ("errors/conflicting_override.policy", "message")),
    "overridden_and_disabled": ("PL605", ("errors/overridden_and_disabled.policy", "message")),
    "list_replaced_and_changed": (
        "PL605",
        ("errors/list_replaced_and_changed.policy", "harm_words"),
    ),
    "detect_set_and_added": ("PL605", ("errors/detect_set_and_added.policy", "detect")),
    "redeclared": ("PL606", (BASE, "harm_words")),
    "unknown_parameter": ("PL608", None),
    "invalid_parameter": ("PL609", ("errors/invalid_parameter.policy", "[1, 5]")),
    "string_param_as_number": ("PL609", (BASE, "end_message")),
    "extends_not_a_string": ("PL612", None),
    "extends_no_header": ("PL612", None),
    "bad_lock_word": ("PL612", None),
    "unknown_import": ("PL613", None),
    "unused_parameter": ("PL615", None),
    "cycle": ("PL602", ("cycles/a.policy", '"b.policy"')),
    # tenant files, applied to child.policy
    "tenant_out_of_range": ("PL611", (BASE, "harm_window")),
    "tenant_raise_only_clamped": ("PL611", (BASE, "redirects_before_end")),
    "tenant_lower_only_clamped": ("PL611", (BASE, "harm_score")),
    "tenant_number_expected": ("PL611", None),
    "tenant_string_expected": ("PL611", None),
    "tenant_not_tunable": ("PL610", (BASE, "warn_after")),
    "tenant_unknown": ("PL608", None),
    "tenant_set_twice": ("PL605", ("errors/tenant_set_twice.tenant", "reset_turns")),
    "tenant_policy_mismatch": ("PL612", None),
    "tenant_unknown_field": ("PL612", None),
    "tenant_not_a_tenant": ("PL612", None),
}


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)


def _run(case: Path) -> tuple[str, Analysis]:
    relative = f"errors/{case.name}"
    if case.suffix == ".tenant":
        return relative, analyse("child.policy", tenant=relative)
    return relative, analyse(relative)


def test_every_case_has_an_expectation() -> None:
    assert {case.stem for case in CASES} == set(EXPECTED)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_human_rendering_matches_the_golden(case: Path, update_goldens: bool) -> None:
    _, analysis = _run(case)
    actual = analysis.human()
    golden = GOLDEN / f"{case.stem}.txt"
    if update_goldens:
        golden.write_text(actual, encoding="utf-8")
        return
    assert golden.exists(), f"{golden} is missing: run pytest tests/compose --update-goldens"
    assert actual == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_one_finding_in_the_right_files(case: Path) -> None:
    relative, analysis = _run(case)
    code, label = EXPECTED[case.stem]
    assert analysis.codes == {code}, analysis.human()
    assert len(analysis.diagnostics) == 1, analysis.human()
    (diagnostic,) = analysis.diagnostics
    if code != "PL602":
        # The finding is in the file that has the problem (the cycle is found in
        # whichever file closes it).
        assert diagnostic.path == relative
    assert (analysis.spec is None) == (diagnostic.severity is Severity.ERROR)
    if label is None:
        assert not [s for s in diagnostic.secondary if s.path is not None]
        return
    path, text = label
    matching = [
        s
        for s in diagnostic.secondary
        if (s.path or diagnostic.path) == path
        and analysis.text(s.path or diagnostic.path, s.span.start, s.span.end) == text
    ]
    assert matching, analysis.human()
    if path != diagnostic.path:
        # A label in another file says which file it is in.
        assert all(s.path == path for s in matching)
