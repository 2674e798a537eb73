"""A tunable parameter of a locked declaration, the default's locked end rule, and the
module header of a policy compiled with a tenant."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policylang.compiler import compile_source
from policylang.diagnostics import DiagnosticSink, Severity
from policylang.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "policies" / "default.policy", tmp_path / "default.policy")
    return tmp_path


def _errors(directory: Path, body: str, tenant: str | None = None) -> list[tuple[str, str]]:
    text = f'policy e {{\n  version: "1"\n  extends: "default.policy"\n}}\n\n{body}\n'
    path = directory / "e.policy"
    path.write_text(text, encoding="utf-8")
    sink = DiagnosticSink()
    compile_source(SourceFile.from_text(str(path), text), sink, tenant=tenant)
    return [(d.code, d.message) for d in sink if d.severity is Severity.ERROR]


@pytest.mark.parametrize(
    "body",
    [
        'override param end_message { value: "Goodbye." }',
        "override param redirects_before_end { value: 4 }",
    ],
)
def test_a_tunable_parameter_of_a_locked_rule_stays_open(base_dir: Path, body: str) -> None:
    assert _errors(base_dir, body) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("override param redirects_before_end { value: 1 }", "PL607"),  # below the floor
        ("override param end_message { value: 3 }", "PL607"),  # not what a tenant could set
        ("override param end_message { tunable: false }", "PL607"),
        ("override rule end_persistent_extreme_harm { when: failed_redirects >= 1 }", "PL607"),
        ('override rule end_persistent_extreme_harm { message: "Bye." }', "PL607"),
    ],
)
def test_the_locked_end_rule_and_its_parameters_hold(base_dir: Path, body: str, code: str) -> None:
    errors = _errors(base_dir, body)
    assert [c for c, _ in errors] == [code], errors
    assert "end_persistent_extreme_harm" in errors[0][1] or "redirects_before_end" in errors[0][1]


def test_the_locked_end_rule_cannot_be_disabled(base_dir: Path) -> None:
    text = (
        'policy e {\n  version: "1"\n  extends: "default.policy"\n'
        "  disable: [end_persistent_extreme_harm]\n}\n"
    )
    path = base_dir / "d.policy"
    path.write_text(text, encoding="utf-8")
    sink = DiagnosticSink()
    assert compile_source(SourceFile.from_text(str(path), text), sink) is None
    assert [d.code for d in sink] == ["PL607"]


def test_a_module_compiled_with_a_tenant_says_how_to_regenerate_it(base_dir: Path) -> None:
    (base_dir / "t.tenant").write_text(
        "tenant t { set: { redirects_before_end: 3 } }\n", encoding="utf-8"
    )
    path = base_dir / "default.policy"
    sink = DiagnosticSink()
    compiled = compile_source(
        SourceFile.from_text(str(path), path.read_text(encoding="utf-8")),
        sink,
        tenant=str(base_dir / "t.tenant"),
    )
    assert compiled is not None, list(sink)
    second = compiled.code.splitlines()[1]
    assert second.startswith("# Do not edit; regenerate with: policylang compile ")
    assert second.endswith('--tenant "t.tenant"') or second.endswith('t.tenant"'), second
    assert "--tenant" in second
    plain = compile_source(
        SourceFile.from_text(str(path), path.read_text(encoding="utf-8")), DiagnosticSink()
    )
    assert plain is not None
    assert "--tenant" not in plain.code.splitlines()[1]
