"""The code registry, the source, the docs and the diagnostic cases agree.

1. Every code the package source can emit is registered.
2. Every registered code has a ``## PLnnn name`` section (with anchor ``plnnn``) in
   docs/diagnostics.md, and the docs describe no unregistered code.
3. Every registered code has at least one ``tests/diagnostics/cases`` file, except the
   ones listed in :data:`NO_CASE_FILE`, which other tests exercise.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from policylang.codes import CODES

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "policylang"
DOCS = ROOT / "docs" / "diagnostics.md"
CASES = ROOT / "tests" / "diagnostics" / "cases"

_CODE_RE = re.compile(r"^PL\d{3}$")

#: Codes that cannot be triggered by a ``.policy`` case file, and what exercises them.
NO_CASE_FILE: dict[str, str] = {
    "PL001": "invalid UTF-8 is about bytes, not policy text: tests/unit/test_source.py",
    "PL002": "a byte order mark precedes the intent comment: tests/unit/test_source.py",
    "PL003": "needs a file over the size limit (4 MiB): tests/limits/, with a small limit",
    "PL801": "transcript files, not policies: the transcript loader's tests",
    "PL802": "transcript files, not policies: the transcript loader's tests",
    "PL803": "transcript files, not policies: the transcript loader's tests",
    "PL804": "transcript files, not policies: the transcript loader's tests",
    "PL810": "transcript files, not policies: the transcript loader's and check's tests",
    "PL811": "transcript files, not policies: tests/limits/",
    "PL812": "transcript files, not policies: tests/limits/",
    **{code: "policy test files, not policies: tests/testing/" for code in (
        "PL805", "PL806", "PL807", "PL808", "PL809")},
    "PL900": "internal errors: tests/unit/test_checker_passes.py forces one",
}


def _emitted_codes() -> dict[str, list[str]]:
    """Every ``"PLnnn"`` string constant in the package, with the files it appears in."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _CODE_RE.match(node.value)
            ):
                found.setdefault(node.value, []).append(str(path.relative_to(ROOT)))
    return found


def _doc_sections() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    return dict(re.findall(r"^## (PL\d{3}) (\S+)$", text, flags=re.MULTILINE))


def test_every_emitted_code_is_registered() -> None:
    emitted = _emitted_codes()
    assert emitted, "expected to find diagnostic codes in the package source"
    unregistered = {code: files for code, files in emitted.items() if code not in CODES}
    assert not unregistered


def test_the_checker_emits_its_codes() -> None:
    emitted = _emitted_codes()
    own = [c for c in CODES if c[2] in "2345"]
    assert own
    for code in own:
        assert code in emitted, f"{code} is registered but nothing emits it"


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_a_docs_section(code: str) -> None:
    sections = _doc_sections()
    assert code in sections, f"docs/diagnostics.md has no `## {code} ...` section"
    assert sections[code] == CODES[code].name
    text = DOCS.read_text(encoding="utf-8")
    assert f'<a id="{code.lower()}"></a>' in text, f"no anchor for {code}"
    assert CODES[code].docs_path == f"docs/diagnostics.md#{code.lower()}"


def test_docs_describe_only_registered_codes() -> None:
    assert set(_doc_sections()) <= set(CODES)


def test_docs_sections_are_in_registry_order() -> None:
    documented = list(_doc_sections())
    assert documented == [code for code in CODES if code in documented]


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_a_case_file(code: str) -> None:
    cases = list(CASES.glob(f"{code}-*.policy"))
    if code in NO_CASE_FILE:
        assert not cases, f"{code} has a case file now; drop it from NO_CASE_FILE"
        return
    assert cases, f"{code} has no tests/diagnostics/cases/{code}-*.policy"


def test_exceptions_are_registered() -> None:
    assert set(NO_CASE_FILE) <= set(CODES)


def test_case_files_name_registered_codes() -> None:
    for path in CASES.glob("*.policy"):
        code, _, rest = path.stem.partition("-")
        assert code in CODES, path.name
        assert rest == CODES[code].name, path.name
