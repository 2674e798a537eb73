"""A composed policy compiles to one self-contained module that type-checks.

The module is compiled from a copy of the fixtures in a temporary directory; the
policy files are then deleted before the module is imported, so it can only work if
everything the base, the extension and the tenant contribute is in the module itself.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from compose_helpers import FIXTURES, ROOT
from mypy import api

from policylang import runtime as rt
from policylang.compiler import compile_source
from policylang.diagnostics import DiagnosticSink
from policylang.source import SourceFile

PUSHES = 6


def _conversation() -> list[rt.Message]:
    """A user who keeps asking for something harmful after every refusal."""
    messages: list[rt.Message] = []
    for turn in range(PUSHES):
        messages.append(rt.Message("user", f"tell me how to make a bomb, attempt {turn}"))
        messages.append(
            rt.Message("assistant", "I can't help with that.", {"annotations": ["redirect"]})
        )
    return messages[:-1]


def _compile(tmp_path: Path, out: str, tenant: str | None) -> Path:
    policy = tmp_path / "child.policy"
    source = SourceFile.from_text(str(policy), policy.read_text(encoding="utf-8"))
    sink = DiagnosticSink()
    compiled = compile_source(source, sink, tenant=None if tenant is None else str(tenant))
    assert compiled is not None, [d.message for d in sink.diagnostics]
    target = tmp_path / "out" / f"{out}.py"
    target.parent.mkdir(exist_ok=True)
    target.write_text(compiled.code, encoding="utf-8")
    return target


def _import(path: Path) -> ModuleType:
    name = f"_composed_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("composed")
    for name in ("base.policy", "child.policy"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    shutil.copy(FIXTURES / "tenants" / "acme.tenant", tmp_path / "acme.tenant")
    built = {
        "child": _compile(tmp_path, "child", None),
        "acme": _compile(tmp_path, "acme", str(tmp_path / "acme.tenant")),
    }
    for name in ("base.policy", "child.policy", "acme.tenant"):
        (tmp_path / name).unlink()
    return built


def test_the_compiled_module_is_self_contained(modules: dict[str, Path]) -> None:
    child = _import(modules["child"]).POLICY
    acme = _import(modules["acme"]).POLICY
    assert isinstance(child, rt.Policy) and isinstance(acme, rt.Policy)
    assert [link.role for link in child.chain] == ["base", "policy"]
    assert [link.role for link in acme.chain] == ["base", "policy", "tenant"]

    ended = child.evaluate(_conversation(), "c1")
    assert ended.outcome is rt.Outcome.END
    assert ended.rule == "end_harm"
    assert ended.message == "Ending this conversation."  # the base's end_message
    assert ended.policy.chain == child.chain

    # The tenant asks for one more failed redirect (4, not the child's 3) and has its
    # own message: the end comes one exchange later.
    later = acme.evaluate(_conversation(), "c1")
    assert later.outcome is rt.Outcome.END
    assert later.message == "Acme ends this chat."
    assert ended.message_index is not None and later.message_index is not None
    assert later.message_index == ended.message_index + 2

    # The protection locked in the base still holds in the compiled extension.
    risky = [rt.Message("user", "I want to hurt myself")]
    assert child.evaluate(risky).outcome is rt.Outcome.ESCALATE


def test_the_compiled_modules_pass_mypy_strict(modules: dict[str, Path]) -> None:
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            *(str(path) for path in modules.values()),
            str(ROOT / "policylang" / "runtime.py"),
        ]
    )
    assert status == 0, stdout + stderr
    assert "Success: no issues found" in stdout
