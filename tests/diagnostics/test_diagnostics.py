"""Each case file triggers exactly the diagnostic its name carries, and nothing else.

``cases/PLnnn-<name>.policy`` is a minimal policy whose first line is a comment saying
what is wrong with it. Running it through :func:`policylang.checker.analyze` must emit
``PLnnn`` (one concern per case: no other code), and the file name must match the
code's registered name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from policylang.checker import analyze
from policylang.codes import CODES
from policylang.diagnostics import Diagnostic, DiagnosticSink, Severity
from policylang.source import SourceFile

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(CASES_DIR.glob("PL*.policy"))
_NAME_RE = re.compile(r"^(PL\d{3})-([a-z0-9-]+)\.policy$")


def run_case(path: Path) -> tuple[SourceFile, list[Diagnostic], bool]:
    """Read a case as the CLI does (bytes, so encoding codes can fire) and analyze it.

    The case is read by its real path, so the files it names (``extends``, ``import``)
    resolve next to it; a sibling ``PLnnn-name.tenant`` is applied as its tenant file.
    """
    source, read_diagnostics = SourceFile.from_bytes(str(path), path.read_bytes())
    sink = DiagnosticSink()
    sink.extend(read_diagnostics)
    tenant = path.with_suffix(".tenant")
    spec = analyze(source, sink, tenant=str(tenant) if tenant.is_file() else None)
    return source, sink.sorted(), spec is not None


def test_there_are_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_emits_its_code(path: Path) -> None:
    match = _NAME_RE.match(path.name)
    assert match, f"case file name must be PLnnn-<name>.policy: {path.name}"
    code, name = match.groups()
    assert code in CODES, f"{code} is not registered"
    assert CODES[code].name == name, f"{path.name}: {code} is named {CODES[code].name!r}"

    source, diagnostics, lowered = run_case(path)
    emitted = {d.code for d in diagnostics}
    assert code in emitted, f"{path.name} emitted {sorted(emitted)}"
    assert emitted == {code}, f"{path.name} should test one concern, emitted {sorted(emitted)}"
    # Only error-free files lower to a policy.
    assert lowered == all(d.severity is not Severity.ERROR for d in diagnostics)
    # Every span lies inside the file it points into (a base or tenant file, for some).
    for diagnostic in diagnostics:
        for label in (diagnostic.primary, *diagnostic.secondary):
            where = label.path or diagnostic.path
            text = source.text if where == source.path else Path(where).read_text("utf-8")
            assert 0 <= label.span.start <= label.span.end <= len(text)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_states_its_intent(path: Path) -> None:
    first_line = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    assert first_line.startswith("# "), f"{path.name}: first line must be a comment"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_messages_follow_the_style_guide(path: Path) -> None:
    _, diagnostics, _ = run_case(path)
    for diagnostic in diagnostics:
        message = diagnostic.message
        assert message, diagnostic
        assert not message.endswith("."), message
        assert "\n" not in message, message
        assert message[0] == message[0].lower(), message
