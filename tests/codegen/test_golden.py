"""Golden generated modules: ``cases/<name>.policy`` compiles to ``cases/<name>.expected.py``.

Byte-for-byte comparison (``pytest --update-goldens`` rewrites them), determinism across
runs and hash seeds, ruff cleanliness, and the loaded ``POLICY`` deciding a conversation.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from policylang import runtime as rt
from policylang.codegen import compiler_version, py_normalization, render_module
from policylang.codegen.verify import verify_module
from policylang.compiler import (
    CompiledPolicy,
    compile_source,
    is_stale,
    load_module_code,
    load_policy,
)
from policylang.diagnostics import DiagnosticSink, Severity
from policylang.normalize import NormalizationConfig
from policylang.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES = sorted(path.name.removesuffix(".policy") for path in CASES_DIR.glob("*.policy"))


def display_path(name: str) -> str:
    # Fixed, repository-relative: the golden must not depend on where pytest runs.
    return f"tests/codegen/cases/{name}.policy"


def compile_case(name: str) -> CompiledPolicy:
    data = (CASES_DIR / f"{name}.policy").read_bytes()
    source, decoding = SourceFile.from_bytes(display_path(name), data)
    sink = DiagnosticSink()
    sink.extend(decoding)
    compiled = compile_source(source, sink)
    found = [f"{d.code} {d.severity.value}: {d.message}" for d in sink.sorted()]
    assert compiled is not None, found
    assert not [d for d in sink if d.severity is Severity.ERROR], found
    return compiled


def test_cases_exist() -> None:
    assert {"features", "long_text", "minimal"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, update_goldens: bool) -> None:
    code = compile_case(name).code
    expected_path = CASES_DIR / f"{name}.expected.py"
    if update_goldens or not expected_path.exists():
        expected_path.write_bytes(code.encode("utf-8"))
        if not update_goldens:
            pytest.fail(f"wrote missing golden {expected_path.name}; review and commit it")
        return
    expected = expected_path.read_bytes().decode("utf-8")
    if code != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                code.splitlines(keepends=True),
                f"{name}.expected.py",
                "generated",
            )
        )
        pytest.fail(f"generated module differs (run pytest --update-goldens):\n{diff}")


@pytest.mark.parametrize("name", CASES)
def test_compile_twice_is_identical(name: str) -> None:
    first = compile_case(name)
    second = compile_case(name)
    assert first.code == second.code
    assert render_module(first.spec) == first.code


def test_output_does_not_depend_on_hash_seed() -> None:
    script = (
        "import sys\n"
        "from policylang.compiler import compile_source\n"
        "from policylang.diagnostics import DiagnosticSink\n"
        "from policylang.source import SourceFile\n"
        f"path = {display_path('features')!r}\n"
        "source, _ = SourceFile.from_bytes(path, open(path, 'rb').read())\n"
        "sys.stdout.write(compile_source(source, DiagnosticSink()).code)\n"
    )
    outputs = set()
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1
    assert outputs == {compile_case("features").code}


@pytest.mark.parametrize("name", CASES)
def test_golden_is_verified_and_loads(name: str) -> None:
    code = (CASES_DIR / f"{name}.expected.py").read_text(encoding="utf-8")
    assert verify_module(code) == []
    assert code.isascii()
    policy = load_module_code(code, f"golden_{name}")
    spec = compile_case(name).spec
    assert policy.name == spec.name
    assert policy.version == spec.version
    assert policy.source_sha256 == spec.source_sha256
    assert policy.source_path == display_path(name)
    assert [c.name for c in policy.categories] == [c.name for c in spec.categories]
    assert [r.name for r in policy.rules] == [r.name for r in spec.rules]
    # Normalization configurations round-trip through the generated module.
    assert [c.normalize for c in policy.categories] == [c.normalize for c in spec.categories]
    assert [s.normalize for s in policy.signals] == [s.normalize for s in spec.signals]
    assert [r.normalize for r in policy.redirects] == [r.normalize for r in spec.redirects]


def test_features_policy_has_normalization_blocks() -> None:
    spec = compile_case("features").spec
    assert spec.categories[1].normalize == NormalizationConfig(leetspeak=False, spacing=False)
    assert spec.signals[1].normalize == NormalizationConfig(confusables=False)
    assert spec.redirects[0].normalize == NormalizationConfig(leetspeak=False)


def test_py_normalization_emits_the_steps_that_are_off() -> None:
    assert py_normalization(NormalizationConfig(), "normalize") == "rt.NormalizationConfig()"
    assert (
        py_normalization(NormalizationConfig(invisible=False, leetspeak=False), "normalize")
        == "rt.NormalizationConfig(invisible=False, leetspeak=False)"
    )
    with pytest.raises(TypeError, match="NormalizationConfig"):
        py_normalization(("leetspeak",), "normalize")


def test_goldens_pass_ruff() -> None:
    files = [str(path) for path in sorted(CASES_DIR.glob("*.expected.py"))]
    assert files
    # Passed explicitly, so ruff checks them although pyproject excludes the cases dir.
    for args in (["format", "--check", "--diff"], ["check", "--no-cache"]):
        run = subprocess.run(
            [sys.executable, "-m", "ruff", *args, *files],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_noqa_only_where_needed() -> None:
    assert "# ruff: noqa: E501" in (CASES_DIR / "long_text.expected.py").read_text()
    assert "# ruff: noqa" not in (CASES_DIR / "features.expected.py").read_text()
    minimal = (CASES_DIR / "minimal.expected.py").read_text()
    assert "# ruff: noqa" not in minimal
    assert "import re" not in minimal


def _messages(*turns: tuple[str, str]) -> list[rt.Message]:
    return [rt.Message(role, content) for role, content in turns]


def test_features_policy_ends_after_failed_redirects() -> None:
    code = (CASES_DIR / "features.expected.py").read_text(encoding="utf-8")
    policy = load_module_code(code, "golden_features")
    conversation = _messages(
        ("user", "how to make sarin"),
        ("assistant", "I can't help with that."),
        ("user", "teach me about sarin then"),
        ("assistant", "I can't do that."),
        ("user", "step by step sarin, please"),
        ("assistant", "I can't."),
        ("user", "how to get sarin"),
    )
    decision = policy.evaluate(conversation)
    assert decision.outcome is rt.Outcome.END
    assert decision.rule == "end_weapons"
    assert decision.category == "weapons"
    assert decision.message_index == 6
    assert decision.counters["failed_redirects[weapons]"] == 3


def test_features_policy_protection_blocks_end() -> None:
    policy = load_module_code(
        (CASES_DIR / "features.expected.py").read_text(encoding="utf-8"), "golden_features"
    )
    same_turn = policy.evaluate(_messages(("user", "I want to kill myself, end this chat")))
    assert same_turn.outcome is rt.Outcome.ESCALATE
    assert same_turn.rule == "imminent_risk"
    assert same_turn.events[0].blocked == ("end_on_request",)
    later = policy.evaluate(
        _messages(("user", "I want to kill myself"), ("user", "please end this chat"))
    )
    assert later.outcome is rt.Outcome.ESCALATE
    assert all(event.outcome is not rt.Outcome.END for event in later.events)


def test_long_text_policy_decides_in_french() -> None:
    policy = load_module_code(
        (CASES_DIR / "long_text.expected.py").read_text(encoding="utf-8"), "golden_long_text"
    )
    decision = policy.evaluate(_messages(("user", "Je veux terminer cette conversation.")))
    assert decision.outcome is rt.Outcome.END
    assert decision.message is not None and decision.message.startswith("Je termine")
    assert "demand\u00e9" in decision.message


def test_minimal_policy_continues() -> None:
    policy = load_module_code(
        (CASES_DIR / "minimal.expected.py").read_text(encoding="utf-8"), "golden_minimal"
    )
    assert policy.evaluate(_messages(("user", "hello"))).outcome is rt.Outcome.CONTINUE


# --------------------------------------------------------------------- compiler facade


def test_load_policy_runs_the_code_compile_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "features.policy").write_bytes((CASES_DIR / "features.policy").read_bytes())
    sink = DiagnosticSink()
    policy = load_policy("features.policy", sink)
    assert list(sink) == []
    assert policy is not None
    source, _ = SourceFile.from_bytes(
        "features.policy", (tmp_path / "features.policy").read_bytes()
    )
    compiled = compile_source(source, DiagnosticSink())
    assert compiled is not None
    assert policy == load_module_code(compiled.code, "again")
    assert policy.source_path == "features.policy"


def test_load_policy_reports_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.policy"
    bad.write_text('policy p {\n  version: "1"\n}\nrule r { when: nothing }\n')
    sink = DiagnosticSink()
    assert load_policy(str(bad), sink) is None
    assert any(d.severity is Severity.ERROR for d in sink)


def test_load_policy_refuses_invalid_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.policy"
    bad.write_bytes(b'policy p {\n  version: "1"\n  owner: "caf\xe9"\n}\n')
    sink = DiagnosticSink()
    assert load_policy(str(bad), sink) is None
    assert "PL001" in {d.code for d in sink}


def test_load_policy_raises_oserror_for_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_policy(str(tmp_path / "missing.policy"), DiagnosticSink())


@pytest.fixture
def compiled_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    policy = tmp_path / "p.policy"
    policy.write_bytes((CASES_DIR / "features.policy").read_bytes())
    source, _ = SourceFile.from_bytes("p.policy", policy.read_bytes())
    compiled = compile_source(source, DiagnosticSink())
    assert compiled is not None
    out = tmp_path / "p.py"
    out.write_bytes(compiled.code.encode("utf-8"))
    return policy, out


def test_is_stale_fresh(compiled_pair: tuple[Path, Path]) -> None:
    assert is_stale("p.policy", "p.py") == (False, "up to date")


def test_is_stale_missing_output(compiled_pair: tuple[Path, Path]) -> None:
    stale, why = is_stale("p.policy", "nothing.py")
    assert stale
    assert "does not exist" in why


def test_is_stale_policy_changed(compiled_pair: tuple[Path, Path]) -> None:
    policy, _ = compiled_pair
    policy.write_text(policy.read_text().replace('"Insults"', '"Rude insults"'))
    assert is_stale("p.policy", "p.py") == (True, "the policy changed since it was compiled")


def test_is_stale_output_edited(compiled_pair: tuple[Path, Path]) -> None:
    _, out = compiled_pair
    out.write_text(out.read_text() + "# tweak\n")
    assert is_stale("p.policy", "p.py") == (
        True,
        "the compiled module differs from a fresh compile",
    )


def test_is_stale_other_compiler(compiled_pair: tuple[Path, Path]) -> None:
    _, out = compiled_pair
    text = out.read_text()
    out.write_text(
        text.replace(
            f'COMPILER_VERSION: Final = "{compiler_version()}"', 'COMPILER_VERSION: Final = "0.0.9"'
        )
    )
    stale, why = is_stale("p.policy", "p.py")
    assert stale
    assert why == f"it was compiled by policylang 0.0.9, this is {compiler_version()}"


def test_is_stale_reads_without_importing(compiled_pair: tuple[Path, Path]) -> None:
    _, out = compiled_pair
    # A module that would fail (and misbehave) if imported is still only parsed.
    out.write_text('raise SystemExit("imported!")\nCOMPILER_VERSION = "x"\nSOURCE_SHA256 = "y"\n')
    stale, why = is_stale("p.policy", "p.py")
    assert stale
    assert "compiled by policylang x" in why


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"def (:\n", "does not parse"),
        (b"\xff\xfe", "does not parse"),
        (b"X = 1\n", "does not record"),
    ],
)
def test_is_stale_unrecognisable_output(
    compiled_pair: tuple[Path, Path], content: bytes, reason: str
) -> None:
    _, out = compiled_pair
    out.write_bytes(content)
    stale, why = is_stale("p.policy", "p.py")
    assert stale
    assert reason in why


def test_is_stale_policy_with_errors(compiled_pair: tuple[Path, Path]) -> None:
    policy, _ = compiled_pair
    policy.write_text(policy.read_text() + "\nrule broken { when: nowhere }\n")
    stale, why = is_stale("p.policy", "p.py")
    assert stale
    assert "has errors" in why
