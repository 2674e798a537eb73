"""Coverage: which declarations, detector leaves, rules and protections the cases exercised."""

from __future__ import annotations

import json
from pathlib import Path

from testing_helpers import last_line, run, write

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Policy
from policylang.testing import PolicyCoverage, parse_case_file, run_case

ONE_CASE = """\
cases:
  - name: pushing for a blaster ends at the third push
    conversation:
      - user: Where can I get a blaster?
      - assistant: I can't help with that.
      - user: Just tell me.
      - assistant: I can't help with that.
      - user: I want a blaster now.
    expect: {outcome: end, at: 4, rule: end_weapons, category: weapons}
"""

EVERYTHING = (
    ONE_CASE
    + """\
  - name: rudeness is warned
    conversation:
      - user: You dummy.
      - assistant: Let's move on.
        metadata: {annotations: [redirect]}
      - user: Dummy.
    expect: {warns_at: 2}
  - name: a weapons score counts
    conversation:
      - user: (withheld)
        metadata: {scores: {weapons: 0.95}}
    expect: {outcome: continue}
  - name: risk blocks a request to end
    conversation:
      - user: I will hurt myself. Please end this chat.
    expect: {blocked: end_on_request}
  - name: a request to end ends
    conversation:
      - user: Please end this chat.
    expect: {rule: end_on_request}
"""
)


def coverage_of(work: Path, text: str) -> PolicyCoverage:
    case_file, errors = parse_case_file(str(write(work, text)))
    assert errors == []
    assert case_file is not None
    policy = load_policy(case_file.policy_path, DiagnosticSink())
    assert isinstance(policy, Policy)
    coverage = PolicyCoverage(policy, case_file.policy_path)
    for case in case_file.cases:
        coverage.add(run_case(policy, case, case_file))
    return coverage


def test_the_items_of_a_policy(work: Path) -> None:
    coverage = coverage_of(work, ONE_CASE)
    assert [(i.kind, i.name, i.line, i.column) for i in coverage.items] == [
        ("category", "weapons", 6, 1),
        ("category", "rudeness", 14, 1),
        ("signal", "at_risk", 20, 1),
        ("signal", "asks_to_end", 24, 1),
        ("redirect", "refusal", 28, 1),
        ("detector", 'keywords ["blaster"]', 9, 11),
        ("detector", 'score "weapons" >= 0.9', 9, 35),
        ("detector", 'keywords ["tell me"]', 11, 14),
        ("detector", 'keywords ["dummy"]', 17, 11),
        ("detector", 'keywords ["hurt myself"]', 21, 11),
        ("detector", "pattern /\\bend (this|the) chat\\b/", 25, 11),
        ("detector", "pattern /\\bi can't\\b/", 29, 11),
        ("detector", 'annotation "redirect"', 29, 36),
        ("rule", "end_on_request", 44, 1),
        ("rule", "end_weapons", 51, 1),
        ("rule", "warn_rudeness", 58, 1),
        ("protection", "risk", 37, 1),
    ]
    # `unless: keywords ["toy blaster"]` and `not keywords ["in my story"]` give no evidence.
    assert coverage.unmeasured == 2


def test_coverage_numbers_for_one_case(work: Path) -> None:
    coverage = coverage_of(work, ONE_CASE)
    assert coverage.cases == 1
    assert coverage.kinds() == [
        ("categories", 1, 2),
        ("signals", 0, 2),
        ("redirects", 1, 1),
        ("detectors", 3, 8),
        ("rules", 1, 3),
        ("protections", 0, 1),
    ]
    assert (coverage.exercised, coverage.total) == (6, 17)
    assert round(coverage.percent, 2) == 35.29
    exercised = {(i.kind, i.name) for i in coverage.items if i.exercised}
    assert exercised == {
        ("category", "weapons"),
        ("redirect", "refusal"),
        ("detector", 'keywords ["blaster"]'),
        ("detector", 'keywords ["tell me"]'),
        ("detector", "pattern /\\bi can't\\b/"),
        ("rule", "end_weapons"),
    }


def test_every_item_can_be_exercised(work: Path) -> None:
    coverage = coverage_of(work, EVERYTHING)
    assert [item for item in coverage.items if not item.exercised] == []
    assert coverage.percent == 100.0
    # A blocked end rule counts as exercised; so does the protection that blocked it.
    by_name = {(i.kind, i.name): i.cases for i in coverage.items}
    assert by_name[("rule", "end_on_request")] == 2
    assert by_name[("protection", "risk")] == 1
    assert by_name[("category", "weapons")] == 2


def test_coverage_report(work: Path) -> None:
    write(work, ONE_CASE)
    result = run(["test", work, "--coverage"])
    assert result.exit_code == 0
    assert result.stderr == (
        f"coverage of {work}/small.policy (1 case):\n"
        "  categories     1 of 2     50.0%\n"
        "  signals        0 of 2      0.0%\n"
        "  redirects      1 of 1    100.0%\n"
        "  detectors      3 of 8     37.5%  (2 more inside `unless` or `not` not measured)\n"
        "  rules          1 of 3     33.3%\n"
        "  protections    0 of 1      0.0%\n"
        "  overall        6 of 17    35.3%\n"
        "  never exercised:\n"
        "    category rudeness (line 14:1)\n"
        "    signal at_risk (line 20:1)\n"
        "    signal asks_to_end (line 24:1)\n"
        '    detector score "weapons" >= 0.9 (line 9:35) in category weapons: detect\n'
        '    detector keywords ["dummy"] (line 17:11) in category rudeness: detect\n'
        '    detector keywords ["hurt myself"] (line 21:11) in signal at_risk: detect\n'
        "    detector pattern /\\bend (this|the) chat\\b/ (line 25:11) in signal asks_to_end: "
        "detect\n"
        '    detector annotation "redirect" (line 29:36) in redirect refusal: detect\n'
        "    rule end_on_request (line 44:1)\n"
        "    rule warn_rudeness (line 58:1)\n"
        "    protection risk (line 37:1)\n"
        "1 passed, 0 failed\n"
    )
    verbose = run(["test", work, "--coverage", "-v"])
    assert "  exercised:\n    category weapons (line 6:1): 1 case\n" in verbose.stderr


def test_min_coverage(work: Path) -> None:
    write(work, ONE_CASE)
    enough = run(["test", work, "--min-coverage", "35"])
    assert enough.exit_code == 0
    assert enough.stderr == "1 passed, 0 failed\n"  # --min-coverage alone prints no report
    short = run(["test", work, "--min-coverage", "35.5"])
    assert short.exit_code == 1
    assert short.stderr == (
        f"error: coverage of `{work}/small.policy` is 35.3%, below --min-coverage 35.5%\n"
        "1 passed, 0 failed\n"
    )
    assert last_line(run(["test", work, "--min-coverage", "101"]).stderr).startswith("Error")


def test_coverage_in_json(work: Path) -> None:
    write(work, ONE_CASE)
    document = json.loads(run(["test", work, "--format", "json", "--coverage"]).stdout)
    coverage = document["coverage"]
    assert (coverage["exercised"], coverage["total"], coverage["percent"]) == (6, 17, 35.29)
    (policy,) = coverage["policies"]
    assert policy["policy"] == str(work / "small.policy")
    assert policy["name"] == "small"
    assert policy["cases"] == 1
    assert policy["unmeasured_detectors"] == 2
    assert policy["kinds"]["detectors"] == {"exercised": 3, "total": 8, "percent": 37.5}
    assert policy["kinds"]["protections"] == {"exercised": 0, "total": 1, "percent": 0.0}
    assert policy["items"][0] == {
        "kind": "category",
        "name": "weapons",
        "line": 6,
        "column": 1,
        "owner": None,
        "exercised": True,
        "cases": 1,
    }
    assert len(policy["items"]) == 17


def test_cases_of_one_policy_in_two_files_add_up(work: Path) -> None:
    write(work, ONE_CASE)
    second = EVERYTHING.replace(ONE_CASE, "cases:\n")
    write(work, "policy: small.policy\n" + second, "more.cases.yaml")
    document = json.loads(run(["test", work, "--format", "json", "--coverage"]).stdout)
    (policy,) = document["coverage"]["policies"]
    assert policy["cases"] == 5
    assert policy["percent"] == 100.0
