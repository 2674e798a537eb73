"""The public facade, and that a compiled policy loads without the compiler."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import policylang

ROOT = Path(__file__).resolve().parents[2]


def test_facade_names_resolve() -> None:
    for name in policylang.__all__:
        assert getattr(policylang, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        policylang.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_compiled_policy_imports_neither_lark_nor_jinja(tmp_path: Path) -> None:
    source = policylang.SourceFile.from_text(
        "policies/default.policy", (ROOT / "policies" / "default.policy").read_text("utf-8")
    )
    sink = policylang.DiagnosticSink()
    compiled = policylang.compile_source(source, sink)
    assert compiled is not None, sink.sorted()
    (tmp_path / "compiled_default.py").write_text(compiled.code, encoding="utf-8")
    probe = (
        "import sys, compiled_default\n"
        "from policylang.runtime import Message\n"
        "d = compiled_default.POLICY.evaluate([Message('user', 'please end this chat')])\n"
        "assert d.outcome.value == 'end', d\n"
        "print(sorted(m for m in ('lark', 'jinja2', 'pydantic') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
