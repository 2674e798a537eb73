"""The pipeline facade: policy source to a verified Python module, and loading one.

``compile_source`` runs analysis, code generation and post-render verification and
never raises for a policy: user mistakes come back as diagnostics from the checker, and
anything that goes wrong after the checker accepted the policy is a compiler bug,
reported as one PL900 internal-error diagnostic. ``load_policy`` is what ``policylang
check`` uses: the very code ``compile`` would write, executed in memory.
"""

from __future__ import annotations

import ast
import os
import types
from collections.abc import Iterable
from dataclasses import dataclass

from policylang import checker, ir, runtime
from policylang.codegen import compiler_version, render_module
from policylang.codegen.verify import verify_module
from policylang.diagnostics import Diagnostic, DiagnosticSink, Severity
from policylang.source import SourceFile, Span

__all__ = [
    "CompiledPolicy",
    "InvalidModuleError",
    "compile_source",
    "is_stale",
    "load_module_code",
    "load_policy",
    "load_policy_and_code",
]

_INTERNAL_ERROR = "PL900"
_HELP_BUG = "this is a bug in policylang; please report it with the policy that caused it"
_MAX_NOTES = 10
_MODULE_NAME = "policylang.compiled"


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A compiled policy: its checked IR and the verified source of its Python module."""

    spec: ir.PolicySpec
    code: str


class InvalidModuleError(ValueError):
    """Generated code failed verification or did not define a ``POLICY`` (a compiler bug)."""

    def __init__(self, problems: list[str]) -> None:
        """Record the verifier's ``problems``."""
        super().__init__("; ".join(problems))
        self.problems = problems


def _errors(sink: DiagnosticSink) -> int:
    return sum(1 for diagnostic in sink if diagnostic.severity is Severity.ERROR)


def _internal_error(sink: DiagnosticSink, path: str, what: str, notes: list[str]) -> None:
    if len(notes) > _MAX_NOTES:
        notes = [*notes[:_MAX_NOTES], f"... and {len(notes) - _MAX_NOTES} more"]
    sink.error(
        _INTERNAL_ERROR,
        f"internal error: {what}",
        path,
        Span.empty(0),
        help=_HELP_BUG,
        notes=notes,
    )


def _describe(exc: BaseException) -> list[str]:
    return [f"{type(exc).__name__}: {exc}"]


def compile_source(
    source: SourceFile, sink: DiagnosticSink, *, tenant: str | None = None
) -> CompiledPolicy | None:
    """Check, lower, render and verify one policy; ``None`` when it has errors.

    ``tenant`` is the path of a tenant file whose parameter settings apply (see
    docs/composition.md). Diagnostics go to ``sink``. Never raises for any input: a
    failure after the checker accepted the policy (rendering, verification) is a PL900
    diagnostic.
    """
    before = _errors(sink)
    try:
        spec = checker.analyze(source, sink, tenant=tenant)
    except Exception as exc:  # INVARIANT: analyze reports, never raises
        _internal_error(sink, source.path, "analysis raised an exception", _describe(exc))
        return None
    if spec is None or _errors(sink) > before:
        return None
    try:
        code = render_module(spec)
    except Exception as exc:
        _internal_error(sink, source.path, "code generation failed", _describe(exc))
        return None
    problems = verify_module(code)
    if problems:
        _internal_error(sink, source.path, "generated code failed verification", problems)
        return None
    return CompiledPolicy(spec=spec, code=code)


def load_module_code(code: str, module_name: str) -> runtime.Policy:
    """Verify generated ``code``, execute it as a fresh module, and return its ``POLICY``.

    The module is not added to ``sys.modules``. Raises :class:`InvalidModuleError` when
    the code fails verification or its ``POLICY`` is not a :class:`runtime.Policy`.
    """
    problems = verify_module(code)
    if problems:
        raise InvalidModuleError(problems)
    module = types.ModuleType(module_name)
    # The code passed verify_module: imports, the ABI check and data, nothing else.
    exec(
        compile(code, f"<policylang module {module_name}>", "exec", dont_inherit=True), vars(module)
    )
    policy = vars(module).get("POLICY")
    if type(policy) is not runtime.Policy:
        raise InvalidModuleError([f"POLICY is a {type(policy).__name__}, not a runtime Policy"])
    return policy


def _read(path: str) -> tuple[SourceFile, list[Diagnostic]]:
    """The decoded file (as ``policylang compile`` reads it) and any decoding diagnostics.

    A file over the size limit is not read (PL003; see :meth:`SourceFile.read`).
    """
    return SourceFile.read(path)


def _has_error(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(diagnostic.severity is Severity.ERROR for diagnostic in diagnostics)


def load_policy(
    path: str, sink: DiagnosticSink, *, tenant: str | None = None
) -> runtime.Policy | None:
    """Read, compile and load the policy at ``path`` in memory (``policylang check``).

    The code executed is exactly what ``policylang compile`` writes. Diagnostics go to
    ``sink``; returns ``None`` when there are errors. Raises ``OSError`` when the file
    cannot be read.
    """
    return load_policy_and_code(path, sink, tenant=tenant)[0]


def load_policy_and_code(
    path: str, sink: DiagnosticSink, *, tenant: str | None = None
) -> tuple[runtime.Policy | None, str]:
    """:func:`load_policy`, and the verified module code it ran (``""`` when none ran)."""
    source, decoding = _read(path)
    sink.extend(decoding)
    compiled = compile_source(source, sink, tenant=tenant)
    if compiled is None or _has_error(decoding):
        return None, ""
    try:
        return load_module_code(compiled.code, _MODULE_NAME), compiled.code
    except Exception as exc:  # verified code that fails to run is a compiler bug
        _internal_error(sink, path, "the compiled policy failed to load", _describe(exc))
        return None, ""


def _recorded(code: str) -> dict[str, str]:
    """Module-level string constants of a compiled module, read without importing it."""
    tree = ast.parse(code)
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            value = node.value
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Constant)
                and type(value.value) is str
            ):
                found[target.id] = value.value
    return found


def is_stale(
    policy_path: str | os.PathLike[str],
    compiled_path: str | os.PathLike[str],
    *,
    tenant: str | None = None,
) -> tuple[bool, str]:
    """Whether the module at ``compiled_path`` is out of date, and why (``compile --check``).

    Reads ``SOURCE_SHA256`` and ``COMPILER_VERSION`` from the compiled file by parsing
    it (never importing it), then compares the whole file byte for byte with a fresh
    compile of ``policy_path``. Raises ``OSError`` when a file exists but cannot be read.
    """
    policy = os.fspath(policy_path)
    try:
        with open(compiled_path, "rb") as handle:
            compiled_bytes = handle.read()
    except FileNotFoundError:
        return True, "the compiled module does not exist"
    try:
        recorded = _recorded(compiled_bytes.decode("utf-8"))
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return True, "the compiled module is not a policylang module (it does not parse)"
    if "COMPILER_VERSION" not in recorded or "SOURCE_SHA256" not in recorded:
        return True, "the compiled module does not record its source hash and compiler version"
    current = compiler_version()
    if recorded["COMPILER_VERSION"] != current:
        return True, (
            f"it was compiled by policylang {recorded['COMPILER_VERSION']}, this is {current}"
        )
    source, decoding = _read(policy)
    compiled = compile_source(source, DiagnosticSink(), tenant=tenant)
    if compiled is None or _has_error(decoding):
        return True, "the policy has errors (run `policylang lint` to see them)"
    if recorded["SOURCE_SHA256"] != compiled.spec.source_sha256:
        return True, "the policy changed since it was compiled"
    if compiled.code.encode("utf-8") != compiled_bytes:
        return True, "the compiled module differs from a fresh compile"
    return False, "up to date"
