"""Post-render verification of a generated module: an AST allow-list, then ``compile()``.

Run on every compile (STYLE §3.7 layer 5). The escaping filters should make a hostile
module impossible; this is the independent second line of defence, so it checks what
the module *is* rather than how it was made. A compiled policy is data plus wiring:
imports, one runtime-ABI check, and assignments of literals, runtime objects and
precompiled patterns. Anything else is reported. A non-empty result is a compiler
bug (PL900), never the policy author's fault.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from policylang import runtime

__all__ = ["FORBIDDEN_NAMES", "verify_module"]

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

# Statements and expressions a generated module never needs. Functions, classes and
# comprehensions open new scopes; loops, with, try and match are control flow; the
# rest can rebind or smuggle names. (def/class/lambda/with/for/while/try/global/
# nonlocal are the required minimum; the others are refused for the same reason.)
_FORBIDDEN_NODES: dict[type[ast.AST], str] = {
    ast.FunctionDef: "function definition",
    ast.AsyncFunctionDef: "function definition",
    ast.ClassDef: "class definition",
    ast.Lambda: "lambda",
    ast.With: "with statement",
    ast.AsyncWith: "with statement",
    ast.For: "for loop",
    ast.AsyncFor: "for loop",
    ast.While: "while loop",
    ast.Try: "try statement",
    ast.TryStar: "try statement",
    ast.Global: "global statement",
    ast.Nonlocal: "nonlocal statement",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.NamedExpr: "assignment expression",
    ast.Delete: "del statement",
    ast.Match: "match statement",
    ast.JoinedStr: "f-string",
    ast.AugAssign: "augmented assignment",
    ast.Assert: "assert statement",
}

# from-imports: module -> names that may be imported from it.
_FROM_IMPORTS: dict[str, frozenset[str]] = {
    "__future__": frozenset({"annotations"}),
    "typing": frozenset({"Final"}),
    "policylang": frozenset({"runtime"}),
    "policylang.runtime": frozenset(
        name
        for name, value in vars(runtime).items()
        if not name.startswith("_")
        and isinstance(value, type)
        and (value.__module__ == runtime.__name__ or value in runtime.REEXPORTED_CLASSES)
    ),
}
"""What may be imported by name; from the runtime, only the classes it defines and the
few it re-exports for compiled modules (:data:`policylang.runtime.REEXPORTED_CLASSES`)."""

# plain imports: module -> what the binding refers to.
_IMPORTS: frozenset[str] = frozenset({"re", "policylang.runtime"})


def _where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}"


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Verifier:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.runtime_aliases: set[str] = set()  # names bound to policylang.runtime
        self.runtime_names: set[str] = set()  # runtime classes imported by name
        self.re_aliases: set[str] = set()
        self.assigned: set[str] = set()
        self.exported: list[str] = []

    def report(self, node: ast.AST, message: str) -> None:
        self.problems.append(f"{_where(node)}: {message}")

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
                return
            self.bind(node.targets[0])
            if node.targets[0].id == "__all__":
                self.dunder_all(node.value)
            else:
                self.expression(node.value)
        elif isinstance(node, ast.AnnAssign):
            if not isinstance(node.target, ast.Name) or not node.simple or node.value is None:
                self.report(node, "annotated assignment must bind one plain name to a value")
                return
            self.bind(node.target)
            self.expression(node.annotation)
            self.expression(node.value)
        elif isinstance(node, ast.If):
            self.abi_check(node)
        else:
            if type(node) not in _FORBIDDEN_NODES:  # those are reported by the walk
                self.report(node, f"{type(node).__name__} statement is not allowed")
            self.walk(node)

    def bind(self, target: ast.Name) -> None:
        imported = self.runtime_aliases | self.runtime_names | self.re_aliases
        if target.id in FORBIDDEN_NAMES or target.id in imported:
            self.report(target, f"rebinds `{target.id}`")
        elif _is_dunder(target.id) and target.id != "__all__":
            self.report(target, f"binds dunder name `{target.id}`")
        self.assigned.add(target.id)

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
                self.runtime_names.add(bound)

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
        self.assigned.add(name)

    def dunder_all(self, value: ast.expr) -> None:
        if not isinstance(value, ast.List | ast.Tuple) or not all(
            isinstance(item, ast.Constant) and type(item.value) is str for item in value.elts
        ):
            self.report(value, "__all__ must be a list of string literals")
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
            self.walk(node)
        else:
            self.walk(test)

    # -- expressions

    def expression(self, node: ast.expr) -> None:
        self.walk(node)

    def walk(self, root: ast.AST) -> None:
        for node in _walk(root):
            kind = _FORBIDDEN_NODES.get(type(node))
            if kind is not None:
                self.report(node, f"{kind} is not allowed")
            elif isinstance(node, ast.Name):
                self.name(node)
            elif isinstance(node, ast.Attribute):
                if node.attr.startswith("_"):
                    self.report(node, f"access to private or dunder attribute `{node.attr}`")
            elif isinstance(node, ast.Call):
                self.call(node)

    def name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self.report(node, f"use of `{node.id}`")
        elif _is_dunder(node.id) and node.id != "__all__":
            self.report(node, f"use of dunder name `{node.id}`")

    def call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in FORBIDDEN_NAMES:
                return  # already reported as a use of the name
            if func.id not in self.runtime_names:
                self.report(node, f"call of `{func.id}`: only runtime classes may be called")
            return
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner in self.runtime_aliases and func.attr in _FROM_IMPORTS["policylang.runtime"]:
                return
            if owner in self.re_aliases and func.attr == "compile":
                return
        self.report(node, "call of something other than a runtime class or re.compile")


def _walk(root: ast.AST) -> Iterator[ast.AST]:
    # ast.walk, but depth-first (problems come out in source order) and without
    # recursion (deeply nested detector trees must not hit the recursion limit).
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def verify_module(code: str) -> list[str]:
    """Check generated module source; return the problems found (empty means it is fine).

    The module must parse; be pure ASCII; import only ``__future__.annotations``, ``re``,
    ``typing.Final`` and ``policylang.runtime``; consist of a docstring, imports, the
    runtime-ABI ``if ... raise`` check and assignments (``__all__`` included); call only
    runtime classes and ``re.compile``; mention none of :data:`FORBIDDEN_NAMES`, no dunder
    name but ``__all__`` and no private or dunder attribute; contain no function, class,
    lambda, comprehension, loop, ``with``, ``try``, ``global`` or ``nonlocal``; and
    compile.
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
