"""Shared helpers of the composition tests: analyse a fixture as the CLI does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from policylang import ir
from policylang.checker import analyze
from policylang.cli._common import complete_sources, read_source
from policylang.diagnostics import Diagnostic, DiagnosticSink
from policylang.render import render_human
from policylang.source import SourceFile

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"
ROOT = HERE.parents[1]


@dataclass
class Analysis:
    """A policy analysed with its chain: the spec (or None), the findings, every file read."""

    spec: ir.PolicySpec | None
    diagnostics: list[Diagnostic]
    sources: dict[str, SourceFile]

    @property
    def codes(self) -> set[str]:
        return {d.code for d in self.diagnostics}

    def human(self) -> str:
        return render_human(self.diagnostics, self.sources)

    def text(self, path: str | None, start: int, end: int) -> str:
        """The text a span covers in the file ``path`` (as the diagnostics name it)."""
        assert path is not None
        return self.sources[path].text[start:end]


def analyse(policy: str | Path, tenant: str | Path | None = None) -> Analysis:
    """Analyse ``policy`` (a path, relative to the working directory or absolute)."""
    source, decoding = read_source(str(policy))
    sink = DiagnosticSink()
    sink.extend(decoding)
    spec = analyze(source, sink, tenant=None if tenant is None else str(tenant))
    diagnostics = sink.sorted()
    sources = complete_sources(diagnostics, {source.path: source})
    return Analysis(spec, diagnostics, sources)


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as the policy chain records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
