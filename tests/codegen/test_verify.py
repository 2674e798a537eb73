"""codegen/verify.py: hand-made hostile modules are rejected, generated ones accepted.

Also: a verification failure inside ``compile_source`` is a PL900 diagnostic, never an
exception, and ``load_module_code`` refuses to execute unverified code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import policylang.compiler
from policylang.codegen.verify import verify_module
from policylang.compiler import InvalidModuleError, compile_source, load_module_code
from policylang.diagnostics import DiagnosticSink, Severity
from policylang.source import SourceFile

CASES_DIR = Path(__file__).resolve().parent / "cases"
GOLDENS = sorted(CASES_DIR.glob("*.expected.py"))

# A minimal well-formed module; each bad case below adds one thing to it.
GOOD = '''\
"""Docstring."""

from __future__ import annotations

import re
from typing import Final

from policylang import runtime as rt

__all__ = ["POLICY"]

RUNTIME_ABI: Final = 2

if rt.RUNTIME_ABI != RUNTIME_ABI:
    raise ImportError("recompile")

_P0001: Final = re.compile("a", re.I | re.S)

POLICY: Final = rt.Policy(
    name="x",
    version="1",
    description="",
    owner="",
    source_path="x.policy",
    source_sha256="0",
    categories=(),
    signals=(),
    redirects=(),
    counters=(),
    protections=(),
    rules=(),
)
'''


def test_minimal_module_is_accepted() -> None:
    assert verify_module(GOOD) == []
    assert isinstance(load_module_code(GOOD, "good"), policylang.runtime.Policy)


def test_the_normalization_config_may_be_built() -> None:
    code = GOOD + "N: Final = rt.NormalizationConfig(spacing=False, leetspeak=False)\n"
    assert verify_module(code) == []
    code = GOOD + "from policylang.runtime import NormalizationConfig\n"
    assert verify_module(code) == []


@pytest.mark.parametrize("path", GOLDENS, ids=lambda path: path.name)
def test_generated_modules_are_accepted(path: Path) -> None:
    assert verify_module(path.read_text(encoding="utf-8")) == []


def test_goldens_exist() -> None:
    assert GOLDENS


BAD: dict[str, tuple[str, str]] = {
    # name: (code appended to GOOD, fragment of the expected problem)
    "import os": ("import os\n", "`import os` is not allowed"),
    "from os import system": ("from os import system\n", "import from `os`"),
    "from policylang import cli": ("from policylang import cli\n", "is not allowed"),
    "relative import": ("from . import runtime\n", "import from `.`"),
    "import typing name": ("from typing import cast\n", "`from typing import cast`"),
    "runtime private": ("from policylang.runtime import _detect\n", "is not allowed"),
    "runtime non-class": ("from policylang.runtime import compare\n", "is not allowed"),
    "runtime function": ("x = rt.normalize('a')\n", "call of something other"),
    "normalized text": (
        "x = rt.NormalizedText('a', 'a', None)\n",
        "call of something other",
    ),
    "unaliased runtime": ("import policylang.runtime\n", "needs an alias"),
    "dunder import": ("x = __import__('os')\n", "`__import__`"),
    "eval": ("x = eval('1')\n", "use of `eval`"),
    "exec": ("x = exec('1')\n", "use of `exec`"),
    "compile": ("x = compile('1', 'f', 'eval')\n", "use of `compile`"),
    "open": ("x = open('/etc/passwd')\n", "use of `open`"),
    "getattr": ("x = getattr(rt, 'Policy')\n", "use of `getattr`"),
    "setattr": ("x = setattr(rt, 'RUNTIME_ABI', 2)\n", "use of `setattr`"),
    "globals": ("x = globals()\n", "use of `globals`"),
    "vars": ("x = vars()\n", "use of `vars`"),
    "breakpoint": ("x = breakpoint()\n", "use of `breakpoint`"),
    "input": ("x = input()\n", "use of `input`"),
    "alias of eval": ("x = eval\n", "use of `eval`"),
    "rebinding eval": ("eval = 1\n", "rebinds `eval`"),
    "rebinding runtime": ("rt = re\n", "rebinds `rt`"),
    "rebinding re": ("re: Final = rt\n", "rebinds `re`"),
    "builtin call": ("x = print('hi')\n", "call of `print`"),
    "method call": ("x = 'a'.join(['b'])\n", "call of something other"),
    "re other": ("x = re.sub('a', 'b', 'c')\n", "call of something other"),
    "dunder attribute": ("x = rt.__dict__\n", "attribute `__dict__`"),
    "class walk": ("x = ().__class__.__mro__\n", "attribute `__class__`"),
    "private attribute": ("x = rt._detect\n", "attribute `_detect`"),
    "dunder name": ("x = __builtins__\n", "dunder name `__builtins__`"),
    "dunder binding": ("__name__ = 'x'\n", "binds dunder name `__name__`"),
    "def": ("def f() -> None:\n    pass\n", "function definition"),
    "async def": ("async def f() -> None:\n    pass\n", "function definition"),
    "lambda": ("x = lambda: 1\n", "lambda"),
    "class": ("class A:\n    pass\n", "class definition"),
    "with": ("with rt.Policy() as p:\n    pass\n", "with statement"),
    "for": ("for x in ():\n    pass\n", "for loop"),
    "while": ("while False:\n    pass\n", "while loop"),
    "try": ("try:\n    pass\nexcept Exception:\n    pass\n", "try statement"),
    "global": ("global x\n", "global statement"),
    "comprehension": ("x = [y for y in ()]\n", "comprehension"),
    "generator": ("x = tuple(y for y in ())\n", "generator expression"),
    "walrus": ("x = (y := 1)\n", "assignment expression"),
    "f-string": ("x = f'{rt}'\n", "f-string"),
    "del": ("del POLICY\n", "del statement"),
    "bare expression": ("rt.Policy\n", "Expr statement"),
    "second docstring": ('"""again"""\n', "Expr statement"),
    "raise": ("raise SystemExit(1)\n", "Raise statement"),
    "other if": ("if True:\n    x = 1\n", "the only `if` allowed"),
    "abi check with else": (
        "if rt.RUNTIME_ABI != 1:\n    raise ImportError('x')\nelse:\n    x = 1\n",
        "the only `if` allowed",
    ),
    "abi check raising other": (
        "if rt.RUNTIME_ABI != 1:\n    raise SystemExit('x')\n",
        "the only `if` allowed",
    ),
    "attribute target": ("rt.RUNTIME_ABI = 2\n", "one plain name"),
    "subscript target": ("x = {}\nx['a'] = 1\n", "one plain name"),
    "tuple target": ("a, b = 1, 2\n", "one plain name"),
    "augmented": ("x = 1\nx += 1\n", "augmented assignment"),
    "__all__ not literal": ("__all__ = list(('POLICY',))\n", "list of string literals"),
    "__all__ undefined": ("__all__ = ['POLICY', 'MISSING']\n", "`MISSING`"),
    "non-ascii": ("x = 'caf\u00e9'\n", "non-ASCII"),
    "syntax error": ("x = (\n", "does not parse"),
    "nul byte": ("x = 1\x00\n", "does not parse"),
    "match": ("match 1:\n    case _:\n        pass\n", "match statement"),
    "assert": ("assert True\n", "assert statement"),
    "star import": ("from typing import *\n", "`from typing import *`"),
}


@pytest.mark.parametrize(("addition", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_modules_are_rejected(addition: str, expected: str) -> None:
    problems = verify_module(GOOD + addition)
    assert problems, "accepted"
    assert any(expected in problem for problem in problems), problems
    with pytest.raises(InvalidModuleError):
        load_module_code(GOOD + addition, "bad")


def test_problems_name_lines() -> None:
    problems = verify_module(GOOD + "x = eval('1')\n")
    assert problems == [f"line {GOOD.count(chr(10)) + 1}: use of `eval`"]


def test_payload_inside_a_string_is_only_data() -> None:
    payload = """x = "\\"\\"\\"; __import__('os').system('echo pwned') #"\n"""
    assert verify_module(GOOD + payload) == []


def test_load_requires_a_runtime_policy() -> None:
    code = GOOD.replace(
        "POLICY: Final = rt.Policy(",
        "POLICY: Final = rt.Message(role='u', content='c')\nIGNORED: Final = rt.Policy(",
    )
    code = code.replace('__all__ = ["POLICY"]', '__all__ = ["POLICY", "IGNORED"]')
    assert verify_module(code) == []
    with pytest.raises(InvalidModuleError, match="not a runtime Policy"):
        load_module_code(code, "wrong")


def test_loaded_module_is_not_registered() -> None:
    import sys

    load_module_code(GOOD, "policylang_test_not_registered")
    assert "policylang_test_not_registered" not in sys.modules


# --------------------------------------------------------------------- PL900


POLICY_TEXT = 'policy p {\n  version: "1"\n}\n'


def test_verification_failure_is_an_internal_error_diagnostic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def hostile_render(spec: object) -> str:
        return GOOD + "import os\n"

    monkeypatch.setattr(policylang.compiler, "render_module", hostile_render)
    sink = DiagnosticSink()
    result = compile_source(SourceFile.from_text("p.policy", POLICY_TEXT), sink)
    assert result is None
    [diagnostic] = list(sink)
    assert diagnostic.code == "PL900"
    assert diagnostic.severity is Severity.ERROR
    assert diagnostic.message == "internal error: generated code failed verification"
    assert any("`import os` is not allowed" in note for note in diagnostic.notes)
    assert diagnostic.help is not None and "bug" in diagnostic.help


def test_render_exception_is_an_internal_error_diagnostic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_render(spec: object) -> str:
        raise TypeError("py_str expects exactly str, got Sneaky")

    monkeypatch.setattr(policylang.compiler, "render_module", broken_render)
    sink = DiagnosticSink()
    assert compile_source(SourceFile.from_text("p.policy", POLICY_TEXT), sink) is None
    [diagnostic] = list(sink)
    assert diagnostic.code == "PL900"
    assert diagnostic.notes == ("TypeError: py_str expects exactly str, got Sneaky",)


def test_many_problems_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        policylang.compiler,
        "render_module",
        lambda spec: GOOD + "".join(f"x{n} = eval(1)\n" for n in range(15)),
    )
    sink = DiagnosticSink()
    assert compile_source(SourceFile.from_text("p.policy", POLICY_TEXT), sink) is None
    [diagnostic] = list(sink)
    assert len(diagnostic.notes) == 11
    assert diagnostic.notes[-1] == "... and 5 more"


def test_clean_policy_compiles_without_diagnostics() -> None:
    sink = DiagnosticSink()
    compiled = compile_source(SourceFile.from_text("p.policy", POLICY_TEXT), sink)
    assert compiled is not None
    assert list(sink) == []
    assert verify_module(compiled.code) == []
