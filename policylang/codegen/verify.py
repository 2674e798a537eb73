"""Post-render verification of a generated module: an AST allow-list, then ``compile()``.

Run on every compile (STYLE §3.7 layer 5). The escaping filters should make a hostile
module impossible; this is the independent second line of defence, so it checks what
the module *is* rather than how it was made. A compiled policy is data plus wiring:
imports, one runtime-ABI check, and assignments of literals, runtime objects and
precompiled patterns. Anything else is reported. A non-empty result is a compiler
bug (PL900), never the policy author's fault.

Every node type of Python's ``ast`` has a policy: :data:`ALLOWED_NODES` lists the few a
module is built from (each further restricted by where it stands), :data:`FORBIDDEN_NODES`
names the rest; a node type in neither (one a later Python adds) is refused too.
"""

from __future__ import annotations

import ast
import builtins
import enum
from typing import Final

from policylang import runtime

__all__ = ["ALLOWED_NODES", "FORBIDDEN_NAMES", "FORBIDDEN_NODES", "verify_module"]

FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "input",
        "exit",
        "quit",
        "help",
    }
)
"""Builtins a generated module may neither call nor even mention."""

ALLOWED_NODES: dict[type[ast.AST], str] = {
    ast.Module: "the module",
    ast.Expr: "the module docstring (the first statement) only",
    ast.Import: "`import re` and `import policylang.runtime as NAME`",
    ast.ImportFrom: "`__future__.annotations`, `typing.Final`, the runtime and its classes",
    ast.alias: "a name in an allowed import",
    ast.Assign: "one plain name bound to a value (`__all__`: a list of string literals)",
    ast.AnnAssign: "one plain name, its annotation and a value",
    ast.If: "the runtime ABI check only",
    ast.Raise: '`raise ImportError("...")` in the runtime ABI check only',
    ast.Compare: "`rt.RUNTIME_ABI != ...` in the runtime ABI check only",
    ast.NotEq: "the runtime ABI check's comparison only",
    ast.Constant: "str, int, float, bool and None literals; `...` in annotations",
    ast.Name: "a name the module bound before (not a module or class on its own); "
    "`tuple` in annotations",
    ast.Load: "reading a name",
    ast.Store: "a plain assignment target",
    ast.Attribute: "`rt.<runtime class>` (called, or in annotations), `rt.<enum>.<member>`, "
    "`rt.RUNTIME_ABI` (ABI check), `re.compile` (called) and `re.I|M|S|X` (flags)",
    ast.Call: 'a runtime class with named arguments; `re.compile("literal"[, flags])`',
    ast.keyword: "a named argument (no `**` unpacking)",
    ast.Tuple: "a tuple display",
    ast.List: "the `__all__` list only",
    ast.Subscript: "annotations only (`Final[tuple[rt.Category, ...]]`)",
    ast.BinOp: "`|` between regex flags in `re.compile` only",
    ast.BitOr: "`|` between regex flags only",
}
"""The node types a generated module is made of, and where each may stand."""

# Statements and expressions a generated module never needs. Functions, classes and
# comprehensions open new scopes; loops, with, try and match are control flow; the
# rest can rebind or smuggle names, compute, or hide code in text that tools evaluate.
FORBIDDEN_NODES: dict[type[ast.AST], str] = {
    # statements
    ast.FunctionDef: "function definition",
    ast.AsyncFunctionDef: "function definition",
    ast.ClassDef: "class definition",
    ast.Return: "return statement",
    ast.Delete: "del statement",
    ast.AugAssign: "augmented assignment",
    ast.For: "for loop",
    ast.AsyncFor: "for loop",
    ast.While: "while loop",
    ast.With: "with statement",
    ast.AsyncWith: "with statement",
    ast.Match: "match statement",
    ast.Try: "try statement",
    ast.TryStar: "try statement",
    ast.Assert: "assert statement",
    ast.Global: "global statement",
    ast.Nonlocal: "nonlocal statement",
    ast.Pass: "pass statement",
    ast.Break: "break statement",
    ast.Continue: "continue statement",
    # expressions
    ast.BoolOp: "boolean operation",
    ast.NamedExpr: "assignment expression",
    ast.UnaryOp: "unary operation",
    ast.Lambda: "lambda",
    ast.IfExp: "conditional expression",
    ast.Dict: "dict display",
    ast.Set: "set display",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.FormattedValue: "f-string",
    ast.JoinedStr: "f-string",
    ast.Starred: "starred expression",
    ast.Slice: "slice",
    # parts of forbidden constructs
    ast.Del: "del statement",
    ast.arguments: "function parameters",
    ast.arg: "function parameter",
    ast.comprehension: "comprehension",
    ast.ExceptHandler: "except clause",
    ast.withitem: "with statement",
    ast.match_case: "match statement",
    ast.MatchValue: "match pattern",
    ast.MatchSingleton: "match pattern",
    ast.MatchSequence: "match pattern",
    ast.MatchMapping: "match pattern",
    ast.MatchClass: "match pattern",
    ast.MatchStar: "match pattern",
    ast.MatchAs: "match pattern",
    ast.MatchOr: "match pattern",
    # operators other than `|` and `!=`
    ast.And: "`and` operator",
    ast.Or: "`or` operator",
    ast.Add: "`+` operator",
    ast.Sub: "`-` operator",
    ast.Mult: "`*` operator",
    ast.MatMult: "`@` operator",
    ast.Div: "`/` operator",
    ast.Mod: "`%` operator",
    ast.Pow: "`**` operator",
    ast.LShift: "`<<` operator",
    ast.RShift: "`>>` operator",
    ast.BitXor: "`^` operator",
    ast.BitAnd: "`&` operator",
    ast.FloorDiv: "`//` operator",
    ast.Invert: "`~` operator",
    ast.Not: "`not` operator",
    ast.UAdd: "unary `+` operator",
    ast.USub: "unary `-` operator",
    ast.Eq: "`==` comparison",
    ast.Lt: "`<` comparison",
    ast.LtE: "`<=` comparison",
    ast.Gt: "`>` comparison",
    ast.GtE: "`>=` comparison",
    ast.Is: "`is` comparison",
    ast.IsNot: "`is not` comparison",
    ast.In: "`in` comparison",
    ast.NotIn: "`not in` comparison",
    # other parse modes and type comments, which ``ast.parse(mode="exec")`` never yields
    ast.Interactive: "interactive module",
    ast.Expression: "expression module",
    ast.FunctionType: "function type",
    ast.TypeIgnore: "type: ignore comment",
}
"""Node types a generated module may not contain, with what to call them."""

for _name, _kind in {
    "TypeAlias": "type alias",  # Python 3.12
    "TypeVar": "type parameter",
    "ParamSpec": "type parameter",
    "TypeVarTuple": "type parameter",
    "TemplateStr": "template string",  # Python 3.14
    "Interpolation": "template string",
}.items():
    _node = getattr(ast, _name, None)
    if isinstance(_node, type) and issubclass(_node, ast.AST):
        FORBIDDEN_NODES[_node] = _kind

_RUNTIME_CLASSES: Final = frozenset(
    name
    for name, value in vars(runtime).items()
    if not name.startswith("_")
    and isinstance(value, type)
    and (value.__module__ == runtime.__name__ or value in runtime.REEXPORTED_CLASSES)
)

_RUNTIME_ENUMS: Final = {
    name: frozenset(value.__members__)
    for name, value in vars(runtime).items()
    if name in _RUNTIME_CLASSES and issubclass(value, enum.Enum)
}

# from-imports: module -> names that may be imported from it.
_FROM_IMPORTS: dict[str, frozenset[str]] = {
    "__future__": frozenset({"annotations"}),
    "typing": frozenset({"Final"}),
    "policylang": frozenset({"runtime"}),
    "policylang.runtime": _RUNTIME_CLASSES,
}
"""What may be imported by name; from the runtime, only the classes it defines and the
few it re-exports for compiled modules (:data:`policylang.runtime.REEXPORTED_CLASSES`)."""

# plain imports: module -> what the binding refers to.
_IMPORTS: frozenset[str] = frozenset({"re", "policylang.runtime"})

_RE_FLAGS: Final = frozenset({"I", "M", "S", "X"})
_ANNOTATION_BUILTINS: Final = frozenset({"tuple"})
_BUILTINS: Final = frozenset(dir(builtins))
_LITERALS: Final = (str, int, float, bool, type(None))

# Where an expression stands; the same node type is allowed in some places only.
_VALUE = "value"  # the value of an assignment, or an argument
_ANNOTATION = "annotation"  # an annotation (typing.get_type_hints evaluates these)
_ABI = "abi"  # the test of the runtime ABI check
_FLAGS = "flags"  # the flags argument of re.compile
_CALLEE = "callee"  # what a call calls

# What each place other than a value may hold at all (each node is then checked as usual).
_PLACE_NODES: Final[dict[str, tuple[type[ast.AST], ...]]] = {
    _ANNOTATION: (ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.Constant, ast.Load),
    _ABI: (ast.Compare, ast.NotEq, ast.Attribute, ast.Name, ast.Constant, ast.Load),
    _FLAGS: (ast.BinOp, ast.BitOr, ast.Attribute, ast.Constant, ast.Load),
    _CALLEE: (ast.Name, ast.Attribute, ast.Load),
}

_PLACES: Final = {
    _ANNOTATION: "an annotation",
    _ABI: "the runtime ABI check",
    _FLAGS: "the flags of `re.compile`",
    _CALLEE: "the callee of a call",
}


def _where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}"


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _dotted(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None when the chain does not start at a name."""
    parts: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    parts.append(current.id)
    return parts[::-1]


class _Verifier:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.runtime_aliases: set[str] = set()  # names bound to policylang.runtime
        self.runtime_names: dict[str, str] = {}  # runtime classes imported by name -> class
        self.re_aliases: set[str] = set()
        self.assigned: set[str] = set()
        self.exported: list[str] = []

    def report(self, node: ast.AST, message: str, line: int | None = None) -> None:
        where = _where(node) if line is None or hasattr(node, "lineno") else f"line {line}"
        self.problems.append(f"{where}: {message}")

    # -- module level

    def module(self, tree: ast.Module) -> None:
        for index, statement in enumerate(tree.body):
            if (
                index == 0
                and isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and type(statement.value.value) is str
            ):
                continue  # the module docstring
            self.statement(statement)
        for name in self.exported:
            if name not in self.assigned:
                self.problems.append(f"__all__ names `{name}`, which the module does not define")

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.ImportFrom):
            self.import_from(node)
        elif isinstance(node, ast.Import):
            self.import_(node)
        elif isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                self.report(node, "assignment to something other than one plain name")
                self.walk(node, _VALUE)
                return
            if node.targets[0].id == "__all__":
                self.dunder_all(node.value)
            else:
                self.walk(node.value, _VALUE)
            self.bind(node.targets[0])
        elif isinstance(node, ast.AnnAssign):
            if not isinstance(node.target, ast.Name) or not node.simple or node.value is None:
                self.report(node, "annotated assignment must bind one plain name to a value")
                self.walk(node, _VALUE)
                return
            self.walk(node.annotation, _ANNOTATION)
            self.walk(node.value, _VALUE)
            self.bind(node.target)
        elif isinstance(node, ast.If):
            self.abi_check(node)
        else:
            if type(node) not in FORBIDDEN_NODES:  # those are reported by the walk
                self.report(node, f"{type(node).__name__} statement is not allowed")
            self.walk(node, _VALUE)

    def bind(self, target: ast.Name) -> None:
        name = target.id
        if name in FORBIDDEN_NAMES or name in self.assigned:
            self.report(target, f"rebinds `{name}`")
        elif _is_dunder(name) and name != "__all__":
            self.report(target, f"binds dunder name `{name}`")
        elif name in _BUILTINS:
            self.report(target, f"rebinds `{name}`, a builtin")
        self.assigned.add(name)

    def import_from(self, node: ast.ImportFrom) -> None:
        allowed = _FROM_IMPORTS.get(node.module or "")
        if node.level != 0 or allowed is None:
            self.report(node, f"import from `{'.' * node.level}{node.module or ''}` is not allowed")
            return
        for alias in node.names:
            if alias.name not in allowed:
                self.report(node, f"`from {node.module} import {alias.name}` is not allowed")
                continue
            bound = alias.asname or alias.name
            self.check_binding(node, bound)
            if node.module == "policylang":
                self.runtime_aliases.add(bound)
            elif node.module == "policylang.runtime":
                self.runtime_names[bound] = alias.name

    def import_(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in _IMPORTS:
                self.report(node, f"`import {alias.name}` is not allowed")
                continue
            if alias.name == "re":
                bound = alias.asname or "re"
                self.re_aliases.add(bound)
            elif alias.asname is None:
                # `import policylang.runtime` binds `policylang`; runtime is reached
                # as an attribute, which the call check does not follow. Require an alias.
                self.report(node, "`import policylang.runtime` needs an alias")
                continue
            else:
                bound = alias.asname
                self.runtime_aliases.add(bound)
            self.check_binding(node, bound)

    def check_binding(self, node: ast.AST, name: str) -> None:
        if _is_dunder(name) or name in FORBIDDEN_NAMES:
            self.report(node, f"import binds `{name}`")
        elif name in self.assigned:
            self.report(node, f"import rebinds `{name}`")
        elif name in _BUILTINS:
            self.report(node, f"import rebinds `{name}`, a builtin")
        self.assigned.add(name)

    def dunder_all(self, value: ast.expr) -> None:
        if not isinstance(value, ast.List | ast.Tuple) or not all(
            isinstance(item, ast.Constant) and type(item.value) is str for item in value.elts
        ):
            self.report(value, "__all__ must be a list of string literals")
            self.walk(value, _VALUE)
            return
        self.exported.extend(
            item.value
            for item in value.elts
            if isinstance(item, ast.Constant) and type(item.value) is str
        )

    def abi_check(self, node: ast.If) -> None:
        # Exactly: if <runtime>.RUNTIME_ABI != <name or int>: raise ImportError("...")
        test = node.test
        shaped = (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.NotEq)
            and isinstance(test.left, ast.Attribute)
            and isinstance(test.left.value, ast.Name)
            and test.left.value.id in self.runtime_aliases
            and test.left.attr == "RUNTIME_ABI"
            and len(test.comparators) == 1
            and (
                isinstance(test.comparators[0], ast.Name)
                or (
                    isinstance(test.comparators[0], ast.Constant)
                    and type(test.comparators[0].value) is int
                )
            )
            and not node.orelse
            and len(node.body) == 1
            and isinstance(node.body[0], ast.Raise)
            and node.body[0].cause is None
            and isinstance(node.body[0].exc, ast.Call)
            and isinstance(node.body[0].exc.func, ast.Name)
            and node.body[0].exc.func.id == "ImportError"
            and not node.body[0].exc.keywords
            and len(node.body[0].exc.args) == 1
            and isinstance(node.body[0].exc.args[0], ast.Constant)
            and type(node.body[0].exc.args[0].value) is str
        )
        if not shaped:
            self.report(node, "the only `if` allowed is the runtime ABI check")
            self.walk(node, _VALUE)
        else:
            self.walk(test, _ABI)

    # -- expressions

    def walk(self, root: ast.AST, context: str) -> None:
        """Check ``root`` and everything under it, in source order, without recursion.

        (Deeply nested detector trees must not hit the recursion limit.)
        """
        # Operators and contexts carry no line number; they report their parent's.
        stack: list[tuple[ast.AST, str, int | None]] = [
            (root, context, getattr(root, "lineno", None))
        ]
        while stack:
            node, where, line = stack.pop()
            line = getattr(node, "lineno", line)
            children = self.node(node, where, line)
            stack.extend((child, place, line) for child, place in reversed(children))

    def node(self, node: ast.AST, where: str, line: int | None) -> list[tuple[ast.AST, str]]:
        """Check one node; return its children to check, each with where it stands."""
        kind = FORBIDDEN_NODES.get(type(node))
        if kind is not None:
            self.report(node, f"{kind} is not allowed", line)
        elif type(node) not in ALLOWED_NODES:
            self.report(node, f"{type(node).__name__} is not allowed", line)
        elif where in _PLACE_NODES and not isinstance(node, _PLACE_NODES[where] + (ast.Call,)):
            # (a call is reported below, with where it stands)
            self.report(node, f"{type(node).__name__} in {_PLACES[where]}", line)
        elif isinstance(node, ast.Constant):
            self.constant(node, where)
        elif isinstance(node, ast.Name):
            self.name(node, where)
        elif isinstance(node, ast.Attribute):
            if self.attribute(node, where):
                return []  # a dotted name: the whole chain is checked
        elif isinstance(node, ast.Call):
            return self.call(node, where)
        elif isinstance(node, ast.keyword):
            if node.arg is None:
                self.report(node, "`**` argument unpacking is not allowed")
        elif isinstance(node, ast.Subscript):
            if where != _ANNOTATION:
                self.report(node, "subscript outside an annotation")
        elif isinstance(node, ast.BinOp):
            if where != _FLAGS or not isinstance(node.op, ast.BitOr):
                self.report(node, "operator outside the flags of `re.compile`")
        elif isinstance(node, ast.Compare):
            if where != _ABI:
                self.report(node, "comparison outside the runtime ABI check")
        elif isinstance(node, ast.List):
            self.report(node, "list display outside `__all__`")
        return [(child, where) for child in ast.iter_child_nodes(node)]

    def constant(self, node: ast.Constant, where: str) -> None:
        value = node.value
        if where == _ANNOTATION:
            # typing.get_type_hints evaluates string annotations as code.
            if value is not Ellipsis:
                self.report(node, "literal in an annotation")
        elif where == _FLAGS:
            self.report(node, "flags of `re.compile` must be `re.I`, `re.M`, `re.S` or `re.X`")
        elif type(value) not in _LITERALS:
            self.report(node, f"{type(value).__name__} literal is not allowed")

    def name(self, node: ast.Name, where: str) -> None:
        name = node.id
        if not isinstance(node.ctx, ast.Load):
            return  # a target; plain ones are checked by bind, others are reported
        if name in FORBIDDEN_NAMES:
            self.report(node, f"use of `{name}`")
        elif _is_dunder(name):
            self.report(node, f"use of dunder name `{name}`")
        elif name in self.runtime_names:
            if where not in (_CALLEE, _ANNOTATION):
                self.report(node, f"runtime class `{name}` used other than called")
        elif name in self.runtime_aliases or name in self.re_aliases:
            self.report(node, f"module `{name}` used as a value")
        elif where == _ANNOTATION and name in _ANNOTATION_BUILTINS:
            pass
        elif name not in self.assigned:
            self.report(node, f"use of `{name}`, which the module has not defined")

    def attribute(self, node: ast.Attribute, where: str) -> bool:
        """Check the attribute chain at ``node``; whether it was a dotted name (all checked).

        An attribute of a computed value is reported, and its value is left to the walk.
        """
        chain = _dotted(node)
        if node.attr.startswith("_"):
            self.report(node, f"access to private or dunder attribute `{node.attr}`")
            return chain is not None
        if chain is None:
            self.report(node, f"attribute `{node.attr}` of a computed value")
            return False
        owner, *attrs = chain
        if owner in self.runtime_aliases:
            if len(attrs) == 1 and attrs[0] in _RUNTIME_CLASSES:
                if where in (_CALLEE, _ANNOTATION):
                    return True
            elif len(attrs) == 2 and attrs[1] in _RUNTIME_ENUMS.get(attrs[0], ()):
                if where == _VALUE:
                    return True
            elif attrs == ["RUNTIME_ABI"] and where == _ABI:
                return True
        elif owner in self.runtime_names:
            cls = self.runtime_names[owner]
            if len(attrs) == 1 and attrs[0] in _RUNTIME_ENUMS.get(cls, ()) and where == _VALUE:
                return True
        elif owner in self.re_aliases:
            if attrs == ["compile"] and where == _CALLEE:
                return True
            if len(attrs) == 1 and attrs[0] in _RE_FLAGS and where == _FLAGS:
                return True
        self.report(node, f"attribute `{'.'.join(chain)}` is not allowed here")
        return True

    def call(self, node: ast.Call, where: str) -> list[tuple[ast.AST, str]]:
        func = node.func
        chain = _dotted(func) if isinstance(func, ast.Attribute) else None
        runtime_class = (isinstance(func, ast.Name) and func.id in self.runtime_names) or (
            chain is not None
            and len(chain) == 2
            and chain[0] in self.runtime_aliases
            and chain[1] in _RUNTIME_CLASSES
        )
        re_compile = chain is not None and chain[0] in self.re_aliases and chain[1:] == ["compile"]
        if where != _VALUE:
            self.report(node, f"call in {_PLACES[where]}")
        if isinstance(func, ast.Name) and not runtime_class:
            if func.id not in FORBIDDEN_NAMES:  # those are reported as a use of the name
                self.report(node, f"call of `{func.id}`: only runtime classes may be called")
        elif not (runtime_class or re_compile):
            self.report(node, "call of something other than a runtime class or re.compile")
        children: list[tuple[ast.AST, str]] = [(func, _CALLEE)]
        if re_compile:
            if (
                node.keywords
                or not 1 <= len(node.args) <= 2
                or not isinstance(node.args[0], ast.Constant)
                or type(node.args[0].value) is not str
            ):
                self.report(node, "`re.compile` takes a string literal and flags, nothing else")
            children.extend((arg, _VALUE if i == 0 else _FLAGS) for i, arg in enumerate(node.args))
        else:
            if runtime_class and node.args:
                self.report(node, "runtime classes are called with named arguments only")
            children.extend((arg, _VALUE) for arg in node.args)
        children.extend((keyword, _VALUE) for keyword in node.keywords)
        return children


def verify_module(code: str) -> list[str]:
    """Check generated module source; return the problems found (empty means it is fine).

    The module must parse; be pure ASCII; import only ``__future__.annotations``, ``re``,
    ``typing.Final`` and ``policylang.runtime``; consist of a docstring, imports, the
    runtime-ABI ``if ... raise`` check and assignments of new names (``__all__``
    included); call only runtime classes (with named arguments) and ``re.compile`` (with
    a string literal and ``re`` flags); read only names it bound before, runtime enum
    members and those flags; mention none of :data:`FORBIDDEN_NAMES`, no dunder name but
    ``__all__`` and no private or dunder attribute; hold only names, attributes,
    subscripts and ``...`` in annotations; contain only the node types of
    :data:`ALLOWED_NODES`, each where it belongs; and compile.
    """
    try:
        tree = ast.parse(code, filename="<generated policy>", mode="exec")
    except (SyntaxError, ValueError) as exc:
        return [f"does not parse: {exc}"]
    problems: list[str] = []
    if not code.isascii():
        line = next(n for n, text in enumerate(code.splitlines(), 1) if not text.isascii())
        problems.append(f"line {line}: non-ASCII character (string literals must be escaped)")
    verifier = _Verifier()
    verifier.module(tree)
    problems.extend(verifier.problems)
    if problems:
        return problems
    try:
        compile(code, "<generated policy>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return [f"does not compile: {exc}"]
    return []
