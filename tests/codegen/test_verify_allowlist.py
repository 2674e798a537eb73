"""The post-render verifier is an allow-list: every node type Python's ``ast`` has is either
allowed (and then only where a generated module uses it) or refused, with one rejecting
case for each refused type and each place an allowed type may not stand.

``test_verify.py`` covers the verifier's basic contract and PL900; this file is the
exhaustive side: a module that is not plain data plus wiring never gets executed.
"""

from __future__ import annotations

import _ast
import ast
import types
import typing
from pathlib import Path

import pytest

from policylang.codegen import verify
from policylang.codegen.verify import ALLOWED_NODES, FORBIDDEN_NODES, verify_module
from policylang.compiler import InvalidModuleError, load_module_code

HERE = Path(__file__).resolve().parent
GOLDENS = sorted(HERE.glob("*/*.expected.py"))

# A well-formed module using every allowed construct; each case below appends to it.
GOOD = '''\
"""Docstring."""

from __future__ import annotations

import re
from typing import Final

from policylang import runtime as rt

__all__ = ["POLICY", "RUNTIME_ABI"]

RUNTIME_ABI: Final = 2

if rt.RUNTIME_ABI != RUNTIME_ABI:
    raise ImportError("recompile")

_P0001: Final = re.compile("a", re.I | re.S)
NAME: Final = "x"

CATEGORIES: Final[tuple[rt.Category, ...]] = (
    rt.Category(
        name="c",
        title="C",
        severity=rt.Severity.HIGH,
        detect=rt.Keywords(label="k", pattern=_P0001, line=1, column=1),
        unless=None,
        taxonomy=(("mlcommons", "cbrne"),),
        line=1,
        column=1,
        normalize=rt.NormalizationConfig(spacing=False),
    ),
)

POLICY: Final = rt.Policy(
    name=NAME,
    version="1",
    description="",
    owner="",
    source_path="x.policy",
    source_sha256="0",
    categories=CATEGORIES,
    signals=(),
    redirects=(),
    counters=(),
    protections=(),
    rules=(),
)
'''


def problems(addition: str) -> list[str]:
    return verify_module(GOOD + addition)


def test_the_good_module_is_accepted_and_loads() -> None:
    assert verify_module(GOOD) == []
    policy = load_module_code(GOOD, "good")
    assert policy.categories[0].severity.name == "HIGH"


# --------------------------------------------------------------------- every node type


def _concrete_node_types() -> set[type[ast.AST]]:
    # The node classes the parser can build: those of the C module _ast (ast.Num and
    # the other deprecated aliases live in ast.py), without the abstract bases.
    classes = {
        value
        for value in vars(_ast).values()
        if isinstance(value, type) and issubclass(value, ast.AST)
    }
    return {cls for cls in classes if not any(o is not cls and issubclass(o, cls) for o in classes)}


def test_every_node_type_has_a_policy() -> None:
    concrete = _concrete_node_types()
    assert len(concrete) > 100
    assert not set(ALLOWED_NODES) & set(FORBIDDEN_NODES)
    missing = concrete - set(ALLOWED_NODES) - set(FORBIDDEN_NODES)
    assert missing == set(), sorted(cls.__name__ for cls in missing)
    # ... and names only real node types: no abstract base, no deprecated alias.
    assert set(ALLOWED_NODES) <= concrete
    assert set(FORBIDDEN_NODES) <= concrete


def test_every_allowed_node_type_is_one_generated_modules_use() -> None:
    assert GOLDENS
    used: set[type[ast.AST]] = set()
    for path in GOLDENS:
        used.update(type(node) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
    assert set(ALLOWED_NODES) <= used, set(ALLOWED_NODES) - used
    assert used <= set(ALLOWED_NODES), used - set(ALLOWED_NODES)


# Code that contains each refused node type (by class name), appended to GOOD.
_MATCH = "match NAME:\n    case {}:\n        pass\n"
SNIPPETS: dict[str, str] = {
    "FunctionDef": "def f():\n    pass\n",
    "AsyncFunctionDef": "async def f():\n    pass\n",
    "ClassDef": "class C:\n    pass\n",
    "Return": "return POLICY\n",
    "Delete": "del POLICY\n",
    "Del": "del POLICY\n",
    "AugAssign": "RUNTIME_ABI += 1\n",
    "For": "for x in ():\n    pass\n",
    "AsyncFor": "async for x in ():\n    pass\n",
    "While": "while False:\n    pass\n",
    "With": "with POLICY:\n    pass\n",
    "AsyncWith": "async with POLICY:\n    pass\n",
    "withitem": "with POLICY as p:\n    pass\n",
    "Match": _MATCH.format("1"),
    "match_case": _MATCH.format("1"),
    "MatchValue": _MATCH.format("1"),
    "MatchSingleton": _MATCH.format("None"),
    "MatchSequence": _MATCH.format("[a]"),
    "MatchMapping": _MATCH.format("{'k': a}"),
    "MatchClass": _MATCH.format("str()"),
    "MatchStar": _MATCH.format("[*rest]"),
    "MatchAs": _MATCH.format("_"),
    "MatchOr": _MATCH.format("1 | 2"),
    "Try": "try:\n    pass\nexcept Exception:\n    pass\n",
    "TryStar": "try:\n    pass\nexcept* Exception:\n    pass\n",
    "ExceptHandler": "try:\n    pass\nexcept Exception:\n    pass\n",
    "Assert": "assert POLICY\n",
    "Global": "global POLICY\n",
    "Nonlocal": "nonlocal POLICY\n",
    "Pass": "pass\n",
    "Break": "while NAME:\n    break\n",
    "Continue": "while NAME:\n    continue\n",
    "arguments": "def f(a):\n    pass\n",
    "arg": "def f(a):\n    pass\n",
    "BoolOp": "X = NAME or NAME\n",
    "NamedExpr": "X = (Y := 1)\n",
    "UnaryOp": "X = -1\n",
    "Lambda": "X = lambda: 1\n",
    "IfExp": "X = 1 if NAME else 2\n",
    "Dict": "X = {'a': 1}\n",
    "Set": "X = {1}\n",
    "ListComp": "X = [y for y in ()]\n",
    "SetComp": "X = {y for y in ()}\n",
    "DictComp": "X = {y: y for y in ()}\n",
    "GeneratorExp": "X = rt.Policy(name=(y for y in ()))\n",
    "comprehension": "X = [y for y in ()]\n",
    "Await": "X = await POLICY\n",
    "Yield": "X = (yield)\n",
    "YieldFrom": "X = (yield from ())\n",
    "JoinedStr": "X = f'a{NAME}'\n",
    "FormattedValue": "X = f'{NAME!r:>{NAME}}'\n",
    "Starred": "X = rt.Policy(*CATEGORIES)\n",
    "Slice": "X = NAME[0:1]\n",
    "And": "X = NAME and NAME\n",
    "Or": "X = NAME or NAME\n",
    "Add": "X = NAME + NAME\n",
    "Sub": "X = RUNTIME_ABI - 1\n",
    "Mult": "X = NAME * 2\n",
    "MatMult": "X = NAME @ NAME\n",
    "Div": "X = RUNTIME_ABI / 2\n",
    "Mod": "X = NAME % NAME\n",
    "Pow": "X = RUNTIME_ABI ** 99\n",
    "LShift": "X = RUNTIME_ABI << 1\n",
    "RShift": "X = RUNTIME_ABI >> 1\n",
    "BitXor": "X = RUNTIME_ABI ^ 1\n",
    "BitAnd": "X = RUNTIME_ABI & 1\n",
    "FloorDiv": "X = RUNTIME_ABI // 2\n",
    "Invert": "X = ~RUNTIME_ABI\n",
    "Not": "X = not NAME\n",
    "UAdd": "X = +RUNTIME_ABI\n",
    "USub": "X = -RUNTIME_ABI\n",
    "Eq": "X = NAME == NAME\n",
    "Lt": "X = RUNTIME_ABI < 1\n",
    "LtE": "X = RUNTIME_ABI <= 1\n",
    "Gt": "X = RUNTIME_ABI > 1\n",
    "GtE": "X = RUNTIME_ABI >= 1\n",
    "Is": "X = NAME is None\n",
    "IsNot": "X = NAME is not None\n",
    "In": "X = NAME in NAME\n",
    "NotIn": "X = NAME not in NAME\n",
    # Python 3.12 and later
    "TypeAlias": "type X = int\n",
    "TypeVar": "def f[T]():\n    pass\n",
    "ParamSpec": "def f[**P]():\n    pass\n",
    "TypeVarTuple": "def f[*Ts]():\n    pass\n",
    # Python 3.14
    "TemplateStr": "X = t'{NAME}'\n",
    "Interpolation": "X = t'{NAME}'\n",
}

# Never in a module `ast.parse(mode="exec")` builds: other parse modes, type comments.
UNPARSEABLE: dict[str, ast.AST] = {
    "Interactive": ast.Interactive(body=[]),
    "Expression": ast.Expression(body=ast.Constant(1)),
    "FunctionType": ast.FunctionType(argtypes=[], returns=ast.Constant(None)),
    "TypeIgnore": ast.TypeIgnore(lineno=1, tag=""),
}


def test_every_refused_node_type_has_a_case() -> None:
    names = {cls.__name__ for cls in FORBIDDEN_NODES}
    assert names <= set(SNIPPETS) | set(UNPARSEABLE), names - set(SNIPPETS) - set(UNPARSEABLE)


@pytest.mark.parametrize("node_type", list(FORBIDDEN_NODES), ids=lambda cls: cls.__name__)
def test_each_refused_node_type_is_rejected(node_type: type[ast.AST]) -> None:
    kind = FORBIDDEN_NODES[node_type]
    if node_type.__name__ in UNPARSEABLE:
        # The walk refuses it all the same (it never sees one from verify_module).
        checker = verify._Verifier()
        checker.walk(UNPARSEABLE[node_type.__name__], "value")
        assert any(f"{kind} is not allowed" in problem for problem in checker.problems)
        return
    addition = SNIPPETS[node_type.__name__]
    assert node_type in {type(node) for node in ast.walk(ast.parse(addition))}
    found = problems(addition)
    assert any(f"{kind} is not allowed" in problem for problem in found), found
    with pytest.raises(InvalidModuleError):
        load_module_code(GOOD + addition, "refused")


def test_a_node_type_of_a_later_python_is_refused() -> None:
    class Novel(ast.expr):
        _fields = ()

    checker = verify._Verifier()
    checker.walk(ast.Tuple(elts=[Novel()], ctx=ast.Load()), "value")
    assert checker.problems == ["line ?: Novel is not allowed"]


def test_problems_carry_the_line_of_the_statement() -> None:
    line = GOOD.count("\n") + 1
    assert problems("X = NAME + NAME\n") == [
        f"line {line}: operator outside the flags of `re.compile`",
        f"line {line}: `+` operator is not allowed",
    ]


# --------------------------------------------------------------------- allowed nodes, wrong places

BAD: dict[str, tuple[str, str]] = {
    # imports
    "import os": ("import os\n", "`import os` is not allowed"),
    "import subprocess as re2": ("import subprocess as re2\n", "`import subprocess`"),
    "import policylang.cli": ("import policylang.cli as c\n", "`import policylang.cli`"),
    "from os import system": ("from os import system\n", "import from `os`"),
    "from policylang import compiler": ("from policylang import compiler\n", "not allowed"),
    "from typing import Any": ("from typing import Any\n", "`from typing import Any`"),
    "from __future__ other": ("from __future__ import division\n", "`from __future__"),
    "from importlib": ("from importlib import import_module\n", "import from `importlib`"),
    "relative import": ("from .x import y\n", "import from `.x`"),
    "runtime function": ("from policylang.runtime import compare\n", "not allowed"),
    "runtime private": ("from policylang.runtime import _detect\n", "not allowed"),
    "runtime module": ("from policylang.runtime import re\n", "not allowed"),
    "star import": ("from policylang.runtime import *\n", "`from policylang.runtime import *`"),
    "unaliased runtime": ("import policylang.runtime\n", "needs an alias"),
    "import rebinds": ("from policylang.runtime import Policy as NAME\n", "rebinds `NAME`"),
    "import rebinds re": ("from typing import Final as re\n", "rebinds `re`"),
    "import shadows builtin": ("from policylang.runtime import Policy as tuple\n", "builtin"),
    "import binds dunder": ("import re as __builtins__\n", "import binds `__builtins__`"),
    "import binds eval": ("from policylang.runtime import Policy as eval\n", "binds `eval`"),
    # dangerous builtins, called or not
    "__import__": ("X = __import__('os')\n", "use of `__import__`"),
    "exec": ("X = exec('1')\n", "use of `exec`"),
    "eval": ("X = eval('1')\n", "use of `eval`"),
    "compile": ("X = compile('1', 'f', 'exec')\n", "use of `compile`"),
    "open": ("X = open('/etc/passwd')\n", "use of `open`"),
    "getattr": ("X = getattr(rt, 'Policy')\n", "use of `getattr`"),
    "globals": ("X = globals()\n", "use of `globals`"),
    "eval as data": ("X = rt.Policy(name=eval)\n", "use of `eval`"),
    "builtin as data": ("X = rt.Policy(name=print)\n", "use of `print`, which the module"),
    "dunder name": ("X = __builtins__\n", "use of dunder name `__builtins__`"),
    "undefined name": ("X = rt.Policy(name=LATER)\nLATER = 1\n", "use of `LATER`"),
    "self reference": ("X = X\n", "use of `X`"),
    # attributes
    "dunder attribute": ("X = rt.__dict__\n", "attribute `__dict__`"),
    "dunder of a class": ("X = rt.Policy.__init__\n", "attribute `__init__`"),
    "dunder of re": ("X = re.__builtins__\n", "attribute `__builtins__`"),
    "class walk": ("X = ().__class__.__base__\n", "attribute `__class__`"),
    "private attribute": ("X = rt._detect\n", "attribute `_detect`"),
    "runtime module attribute": ("X = rt.re\n", "attribute `rt.re` is not allowed"),
    "runtime function reference": ("X = rt.normalize\n", "attribute `rt.normalize`"),
    "runtime constant": ("X = rt.REEXPORTED_CLASSES\n", "attribute `rt.REEXPORTED_CLASSES`"),
    "enum non-member": ("X = rt.Severity.mro\n", "attribute `rt.Severity.mro`"),
    "class as a value": ("X = rt.Policy\n", "attribute `rt.Policy` is not allowed"),
    "imported class as a value": (
        "from policylang.runtime import Policy\nX = Policy\n",
        "runtime class `Policy` used other than called",
    ),
    "module as a value": ("X = rt\n", "module `rt` used as a value"),
    "re as a value": ("X = rt.Policy(name=re)\n", "module `re` used as a value"),
    "abi outside the check": ("X = rt.RUNTIME_ABI\n", "attribute `rt.RUNTIME_ABI`"),
    "re flag outside flags": ("X = re.I\n", "attribute `re.I` is not allowed here"),
    "re.compile uncalled": ("X = re.compile\n", "attribute `re.compile` is not allowed"),
    "re other function": ("X = re.sub('a', 'b', 'c')\n", "call of something other"),
    "attribute of a call": ("X = rt.Policy().name\n", "attribute `name` of a computed value"),
    "attribute of a literal": ("X = 'a'.join\n", "attribute `join` of a computed value"),
    # calls
    "builtin call": ("X = print('hi')\n", "call of `print`"),
    "type call": ("X = type('A', (), {})\n", "call of `type`"),
    "tuple call": ("X = tuple()\n", "call of `tuple`"),
    "constant call": ("X = NAME()\n", "call of `NAME`"),
    "method call": ("X = 'a'.join(())\n", "call of something other"),
    "call of a call": ("X = rt.Policy()()\n", "call in the callee of a call"),
    "positional runtime arguments": ("X = rt.Severity('high')\n", "named arguments only"),
    "double star": ("X = rt.Policy(**{'name': 'x'})\n", "`**` argument unpacking"),
    "re.compile of a name": ("X = re.compile(NAME)\n", "`re.compile` takes a string literal"),
    "re.compile keyword": ("X = re.compile(pattern='a')\n", "`re.compile` takes a string"),
    "re.compile three args": ("X = re.compile('a', re.I, 1)\n", "`re.compile` takes a string"),
    "re.compile int flags": ("X = re.compile('a', 2)\n", "flags of `re.compile` must be"),
    "re.compile name flags": ("X = re.compile('a', RUNTIME_ABI)\n", "Name in the flags"),
    "re.compile tuple flags": ("X = re.compile('a', ())\n", "Tuple in the flags"),
    "tuple in the abi check": (
        "if rt.RUNTIME_ABI != ():\n    raise ImportError('x')\n",
        "the only `if` allowed",
    ),
    "re.compile call flags": ("X = re.compile('a', rt.Policy())\n", "call in the flags"),
    "re.compile other operator": ("X = re.compile('a', re.I + re.S)\n", "`+` operator"),
    # annotations: typing.get_type_hints evaluates them
    "string annotation": ("X: 'print(1)' = 1\n", "literal in an annotation"),
    "nested string annotation": ("X: Final['print(1)'] = 1\n", "literal in an annotation"),
    "call in annotation": ("X: rt.Policy() = 1\n", "call in an annotation"),
    "builtin in annotation": ("X: print = 1\n", "use of `print`"),
    "annotation without value": ("X: Final\n", "must bind one plain name to a value"),
    "non-simple annotation": ("(X): Final = 1\n", "must bind one plain name to a value"),
    # literals and displays
    "bytes": ("X = b'a'\n", "bytes literal is not allowed"),
    "complex": ("X = 1j\n", "complex literal is not allowed"),
    "ellipsis as a value": ("X = ...\n", "ellipsis literal is not allowed"),
    "list": ("X = [1]\n", "list display outside `__all__`"),
    "subscript of a constant": ("X = CATEGORIES[0]\n", "subscript outside an annotation"),
    "subscript of a name": ("X = NAME[0]\n", "subscript outside an annotation"),
    "comparison": ("X = RUNTIME_ABI != 2\n", "comparison outside the runtime ABI check"),
    "binary or": ("X = RUNTIME_ABI | 1\n", "operator outside the flags of `re.compile`"),
    # statements and bindings
    "bare expression": ("rt.Policy()\n", "Expr statement is not allowed"),
    "second docstring": ('"""again"""\n', "Expr statement is not allowed"),
    "raise": ("raise SystemExit(1)\n", "Raise statement is not allowed"),
    "other if": ("if NAME:\n    X = 1\n", "the only `if` allowed"),
    "abi check with else": (
        "if rt.RUNTIME_ABI != 1:\n    raise ImportError('x')\nelse:\n    X = 1\n",
        "the only `if` allowed",
    ),
    "abi check with a cause": (
        "if rt.RUNTIME_ABI != 1:\n    raise ImportError('x') from None\n",
        "the only `if` allowed",
    ),
    "attribute target": ("rt.RUNTIME_ABI = 3\n", "one plain name"),
    "subscript target": ("X = ()\nX[0] = 1\n", "one plain name"),
    "tuple target": ("A, B = 1, 2\n", "one plain name"),
    "chained assignment": ("A = B = 1\n", "one plain name"),
    "starred target": ("*A, B = ()\n", "one plain name"),
    "rebinding a constant": ("NAME = 'y'\n", "rebinds `NAME`"),
    "rebinding runtime": ("rt = 1\n", "rebinds `rt`"),
    "rebinding a builtin": ("ImportError = rt.Policy()\n", "rebinds `ImportError`, a builtin"),
    "rebinding eval": ("eval = 1\n", "rebinds `eval`"),
    "dunder binding": ("__name__ = 'x'\n", "binds dunder name `__name__`"),
    "__all__ not literal": ("__all__ = list(('POLICY',))\n", "list of string literals"),
    "__all__ of a name": ("__all__ = [NAME]\n", "list of string literals"),
    "__all__ undefined": ("__all__ = ['MISSING']\n", "`MISSING`"),
    # text
    "non-ascii": ("X = 'caf\u00e9'\n", "non-ASCII"),
    "syntax error": ("X = (\n", "does not parse"),
    "nul byte": ("X = 1\x00\n", "does not parse"),
}


@pytest.mark.parametrize(("addition", "expected"), BAD.values(), ids=BAD.keys())
def test_allowed_nodes_out_of_place_are_rejected(addition: str, expected: str) -> None:
    found = problems(addition)
    assert any(expected in problem for problem in found), found
    with pytest.raises(InvalidModuleError):
        load_module_code(GOOD + addition, "refused")


GOOD_VARIANTS: dict[str, str] = {
    "runtime class by name": (
        "from policylang.runtime import Severity, Signal\n"
        "S: Final = Signal(name='s', detect=None, unless=None, line=1, column=Severity.LOW)\n"
    ),
    "re under another name": "import re as regex\nP: Final = regex.compile('b', regex.X)\n",
    "runtime under another name": (
        "from policylang import runtime as r2\nX: Final = r2.Severity.LOW\n"
    ),
    "annotation of a runtime tuple": "X: Final[tuple[rt.Rule, ...]] = ()\n",
    "abi check against a literal": "if rt.RUNTIME_ABI != 2:\n    raise ImportError('x')\n",
    "every flag": "P: Final = re.compile('c', re.I | re.M | re.S | re.X)\n",
}


@pytest.mark.parametrize("addition", GOOD_VARIANTS.values(), ids=GOOD_VARIANTS.keys())
def test_generated_shapes_are_accepted(addition: str) -> None:
    assert problems(addition) == []


def test_string_annotations_would_run_code_under_get_type_hints() -> None:
    # Why annotations hold no literals: typing evaluates string annotations as code.
    module = types.ModuleType("evaluated")
    ran: list[str] = []
    module.__dict__["record"] = ran.append
    exec(  # a hand-made module, never a generated one
        "from __future__ import annotations\nX: \"record('ran') or int\" = 1\n",
        module.__dict__,
    )
    assert ran == []
    typing.get_type_hints(module)
    assert ran == ["ran"]
    assert problems("X: \"record('ran') or int\" = 1\n") != []
