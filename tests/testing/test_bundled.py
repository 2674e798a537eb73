"""The bundled policies ship with test cases; every case passes and covers the policy."""

from __future__ import annotations

import json

import pytest
from testing_helpers import REPO, run

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Policy
from policylang.testing import PolicyCoverage, check_names, parse_case_file, run_case

POLICIES = REPO / "policies"
MINIMUM_CASES = {"default": 15, "customer_service": 8}


@pytest.mark.parametrize("stem", sorted(MINIMUM_CASES))
def test_bundled_cases_pass_and_cover_every_declaration(stem: str) -> None:
    case_file, errors = parse_case_file(str(POLICIES / f"{stem}.cases.yaml"))
    assert [e.located() for e in errors] == []
    assert case_file is not None
    assert len(case_file.cases) >= MINIMUM_CASES[stem]
    policy = load_policy(case_file.policy_path, DiagnosticSink())
    assert isinstance(policy, Policy)
    assert check_names(case_file, policy) == []
    coverage = PolicyCoverage(policy, case_file.policy_path)
    for case in case_file.cases:
        result = run_case(policy, case, case_file)
        assert result.passed, f"{case.name}: {result.headline()}"
        coverage.add(result)
    missed = [
        f"{item.kind} {item.name}"
        for item in coverage.items
        if not item.exercised and item.kind != "detector"
    ]
    assert missed == []
    assert coverage.percent >= 90


def test_policylang_test_on_the_bundled_policies() -> None:
    result = run(["test", "--coverage", "--format", "json"], cwd=REPO)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["summary"]["failed"] == 0
    assert document["summary"]["passed"] >= sum(MINIMUM_CASES.values())
    # Every bundled policy has test cases (variants and tenants included).
    bundled = {path.stem for path in POLICIES.glob("*.policy")}
    assert set(MINIMUM_CASES) <= bundled
    assert {p["name"] for p in document["coverage"]["policies"]} == bundled
