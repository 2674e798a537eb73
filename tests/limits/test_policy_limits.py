"""Limits on policies: file size (PL003) and declarations, detectors, terms, patterns (PL316).

Every limit is passed small and explicitly, so the files stay tiny; the defaults are
checked against the docs in test_limit_defaults.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policylang.checker import analyze
from policylang.cli import main
from policylang.diagnostics import Diagnostic, DiagnosticSink
from policylang.limits import PolicyLimits
from policylang.source import SourceFile

REPO = Path(__file__).resolve().parents[2]
SAMPLES = str(REPO / "samples" / "conversations.jsonl")

# A valid policy: 9 declarations, 4 detectors, 8 keyword terms (5 + 1 + 1 + 1) and a
# pattern of 14 characters. It also has an unused list, so a run that got past the limits pass
# would report PL401 as well.
POLICY = """\
policy p { version: "1" }
list words = ["alpha", "beta", "gamma", "delta", "epsilon"]
list spare = ["unused"]
pattern how = /how (to|do) it/
category harm {
  title: "Harm"
  severity: high
  detect: keywords words or pattern how or keywords ["zeta"]
}
signal asks_to_end { detect: keywords ["end this"] }
protection danger { when: asks_to_end and harm action: escalate reason: "r" }
rule warn_harm { when: harm action: warn reason: "w" }
rule stop { when: asks_to_end action: end reason: "e" }
"""


def run(text: str, tmp_path: Path, **limits: int) -> list[Diagnostic]:
    path = tmp_path / "p.policy"
    path.write_text(text, encoding="utf-8")
    source, decoding = SourceFile.read(str(path))
    sink = DiagnosticSink()
    sink.extend(decoding)
    analyze(source, sink, limits=PolicyLimits(**limits))
    return sink.sorted()


def where(diagnostic: Diagnostic, text: str) -> str:
    return text[diagnostic.primary.span.start : diagnostic.primary.span.end]


def test_the_policy_is_within_its_limits_when_they_are_its_own_counts(tmp_path: Path) -> None:
    found = run(
        POLICY,
        tmp_path,
        max_declarations=9,
        max_detectors=4,
        max_keyword_terms=8,
        max_pattern_length=14,
        max_policy_size=len(POLICY.encode()),
    )
    assert [d.code for d in found] == ["PL401"]  # the unused list, and nothing else


def test_one_declaration_too_many_points_at_the_first_beyond_the_limit(tmp_path: Path) -> None:
    [found] = run(POLICY, tmp_path, max_declarations=8)
    assert found.code == "PL316"
    assert found.message == "policy has 9 declarations, over the limit of 8"
    assert where(found, POLICY) == "stop"
    assert found.primary.message == "declaration 9"
    assert "POLICYLANG_MAX_DECLARATIONS" in (found.help or "")


def test_one_detector_too_many_points_at_the_first_beyond_the_limit(tmp_path: Path) -> None:
    # Detectors in source order: keywords words, pattern how, keywords ["zeta"], keywords [...]
    [found] = run(POLICY, tmp_path, max_detectors=2)
    assert found.message == "policy has 4 detectors, over the limit of 2"
    assert where(found, POLICY) == 'keywords ["zeta"]'
    assert found.primary.message == "detector 3"


def test_one_term_too_many_points_at_the_first_beyond_the_limit(tmp_path: Path) -> None:
    [found] = run(POLICY, tmp_path, max_keyword_terms=6)
    assert found.message == "policy has 8 keyword terms, over the limit of 6"
    assert where(found, POLICY) == '"zeta"'
    assert found.primary.message == "term 7"


def test_a_single_term_keywords_counts_as_a_term(tmp_path: Path) -> None:
    text = POLICY.replace('keywords ["zeta"]', 'keywords "zeta"')
    [found] = run(text, tmp_path, max_keyword_terms=7)
    assert found.message == "policy has 8 keyword terms, over the limit of 7"
    assert where(found, text) == '"end this"'


def test_a_pattern_too_long_is_reported_at_the_pattern(tmp_path: Path) -> None:
    [found] = run(POLICY, tmp_path, max_pattern_length=13)
    assert found.message == "pattern is 14 characters long, over the limit of 13"
    assert where(found, POLICY) == "/how (to|do) it/"


def test_every_limit_exceeded_is_reported_and_no_other_pass_runs(tmp_path: Path) -> None:
    found = run(
        POLICY,
        tmp_path,
        max_declarations=1,
        max_detectors=1,
        max_keyword_terms=1,
        max_pattern_length=1,
    )
    assert [d.code for d in found] == ["PL316"] * 4  # no PL401: the other passes did not run


def test_the_limits_count_what_composition_brings_in(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text(POLICY, encoding="utf-8")
    child = 'policy child { version: "1" extends: "base.policy" }\n'
    [found] = run(child, tmp_path, max_detectors=3)
    assert found.message == "policy has 4 detectors, over the limit of 3"
    assert found.path.endswith("base.policy")  # located in the file that has it


# ---------------------------------------------------------------- file size (PL003)


def test_a_file_over_the_size_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "p.policy"
    path.write_text(POLICY, encoding="utf-8")
    size = len(POLICY.encode())
    source, [found] = SourceFile.read(str(path), max_size=size - 1)
    assert source.refused and source.text == ""
    assert found.code == "PL003"
    assert found.message == (
        f"`{path}` is larger than the size limit for a policy file: {size:,} bytes,"
        f" over {size - 1:,}"
    )
    assert (found.primary.span.start, found.primary.span.end) == (0, 0)
    # analyze() adds nothing to a refused file: its error came with it.
    sink = DiagnosticSink()
    assert analyze(source, sink) is None
    assert len(sink) == 0
    # At the limit exactly, the file is read.
    source, problems = SourceFile.read(str(path), max_size=size)
    assert not source.refused and source.text == POLICY and problems == []


def test_a_stream_without_a_size_is_read_only_up_to_the_limit() -> None:
    # /dev/zero never ends: reading it whole would never return.
    source, [found] = SourceFile.read("/dev/zero", max_size=1024)
    assert source.refused
    assert "more than 1,024 bytes, over 1,024" in found.message


@pytest.mark.parametrize("role", ["base", "import", "tenant"])
def test_a_file_composition_reads_is_refused_where_it_is_named(tmp_path: Path, role: str) -> None:
    big = "# " + "x" * 1000 + "\n"
    (tmp_path / "big.policy").write_text(big + POLICY, encoding="utf-8")
    (tmp_path / "big.tenant").write_text(
        big + "tenant t { policy: p set: { } }\n", encoding="utf-8"
    )
    text = {
        "base": 'policy child { version: "1" extends: "big.policy" }\n',
        "import": POLICY + 'import words { from: "big.policy" names: [words] }\n',
        "tenant": POLICY,
    }[role]
    path = tmp_path / "p.policy"
    path.write_text(text, encoding="utf-8")
    source, _ = SourceFile.read(str(path))
    sink = DiagnosticSink()
    tenant = str(tmp_path / "big.tenant") if role == "tenant" else None
    limits = PolicyLimits(max_policy_size=len(text.encode()) + 100)
    assert analyze(source, sink, tenant=tenant, limits=limits) is None
    codes = [d.code for d in sink.sorted()]
    assert "PL003" in codes, codes
    [found] = [d for d in sink.sorted() if d.code == "PL003"]
    assert found.path == str(path)
    if role == "tenant":
        assert "big.tenant" in found.message
    else:
        assert where(found, text) == '"big.policy"'
        assert found.primary.message.endswith("named here")


# ---------------------------------------------------------------- environment and CLI


def test_the_environment_sets_the_policy_limits() -> None:
    env = {
        "POLICYLANG_MAX_POLICY_SIZE": "8M",
        "POLICYLANG_MAX_DECLARATIONS": "20_000",
        "POLICYLANG_MAX_DETECTORS": "12,000",
        "POLICYLANG_MAX_KEYWORD_TERMS": " ",
    }
    limits = PolicyLimits.from_environment(env)
    assert limits == PolicyLimits(
        max_policy_size=8 << 20, max_declarations=20_000, max_detectors=12_000
    )
    assert PolicyLimits.environment_set(env)
    assert not PolicyLimits.environment_set({"POLICYLANG_MAX_DETECTORS": ""})


@pytest.mark.parametrize(
    ("variable", "value"),
    [("POLICYLANG_MAX_DETECTORS", "many"), ("POLICYLANG_MAX_DETECTORS", "0"),
     ("POLICYLANG_MAX_POLICY_SIZE", "4 parsecs")],
)  # fmt: skip
def test_a_malformed_variable_is_a_usage_error(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        PolicyLimits.from_environment({variable: value})
    result = CliRunner().invoke(
        main, ["lint", str(REPO / "policies" / "default.policy")], env={variable: value}
    )
    assert result.exit_code == 2
    assert variable in result.output and "Traceback" not in result.output


def test_lint_reads_the_limits_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "p.policy"
    path.write_text(POLICY, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["lint", "--format", "short", str(path)], env={"POLICYLANG_MAX_DETECTORS": "3"}
    )
    assert result.exit_code == 1
    assert f"{path}:10:30: error[PL316] policy has 4 detectors, over the limit of 3" in (
        result.output
    )
    result = CliRunner().invoke(
        main, ["lint", "--format", "short", str(path)], env={"POLICYLANG_MAX_POLICY_SIZE": "100"}
    )
    assert result.exit_code == 1
    assert f"{path}:1:1: error[PL003]" in result.output


def test_fmt_refuses_a_file_over_the_size_limit_and_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.policy"
    path.write_text(POLICY, encoding="utf-8")
    before = path.read_bytes()
    env = {"POLICYLANG_MAX_POLICY_SIZE": "100"}
    result = CliRunner().invoke(main, ["fmt", str(path)], env=env)
    assert result.exit_code == 1
    assert f"error[PL003]: `{path}` is larger than the size limit" in result.output
    assert path.read_bytes() == before
    result = CliRunner().invoke(main, ["fmt", "-"], input=POLICY, env=env)
    assert result.exit_code == 1
    assert "error[PL003]: `<stdin>` is larger than the size limit" in result.output
    assert CliRunner().invoke(main, ["fmt", "--check", str(path)]).exit_code in (0, 1)
    assert "PL003" not in CliRunner().invoke(main, ["fmt", "--check", str(path)]).output


def test_check_is_refused_under_a_limit_even_after_a_cached_run(tmp_path: Path) -> None:
    # The cache holds policies checked under the default limits: under others it is
    # neither read nor written, so a smaller limit is never bypassed by a cached module.
    env = {k: v for k, v in os.environ.items() if k != "POLICYLANG_NO_CACHE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    policy = str(REPO / "policies" / "customer_service.policy")
    command = [sys.executable, "-c", "from policylang.cli import main; main()"]
    command += ["check", policy, SAMPLES, "-q"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert any((tmp_path / "cache").rglob("*.py")), "the first run should have cached the policy"
    env["POLICYLANG_MAX_DETECTORS"] = "2"
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert second.returncode == 1
    assert "error[PL316]" in second.stderr
    assert second.stdout == ""
