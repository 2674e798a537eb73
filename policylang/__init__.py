"""policylang: a policy language for when an AI assistant may end a conversation.

The public API, imported lazily so that a compiled policy (which needs only
:mod:`policylang.runtime`) does not load the parser or the code generator:

- :func:`analyze`: parse and check policy text into a checked model, with diagnostics
- :func:`compile_source`: check and compile policy text into a verified Python module
- :func:`load_policy`: compile a policy file in memory and return its runtime ``Policy``
- :func:`format_source`: lay out policy text canonically, keeping comments
- :class:`SourceFile`, :class:`DiagnosticSink`, :class:`Diagnostic`, :class:`Severity`

Everything else may be imported but is not promised stable, except
:mod:`policylang.runtime`, which compiled modules depend on.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from policylang.checker import analyze
    from policylang.compiler import CompiledPolicy, compile_source, load_policy
    from policylang.diagnostics import Diagnostic, DiagnosticSink, Severity
    from policylang.fmt import format_source
    from policylang.source import SourceFile

__all__ = [
    "CompiledPolicy",
    "Diagnostic",
    "DiagnosticSink",
    "Severity",
    "SourceFile",
    "__version__",
    "analyze",
    "compile_source",
    "format_source",
    "load_policy",
]

_LAZY = {
    "analyze": "policylang.checker",
    "CompiledPolicy": "policylang.compiler",
    "compile_source": "policylang.compiler",
    "load_policy": "policylang.compiler",
    "format_source": "policylang.fmt",
    "Diagnostic": "policylang.diagnostics",
    "DiagnosticSink": "policylang.diagnostics",
    "Severity": "policylang.diagnostics",
    "SourceFile": "policylang.source",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'policylang' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
