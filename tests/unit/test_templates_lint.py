"""Every ``{{ ... }}`` in the code generator's templates ends in a ``py_*`` filter.

The finalize guard catches a forgotten filter at render time, but only on the paths a
test happens to render; this lint catches it in every branch of every template.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

import policylang.codegen
from policylang.codegen import _FILTERS, _environment
from policylang.codegen.pyrender import RUNTIME_ALIAS

TEMPLATES = Path(policylang.codegen.__file__).parent / "templates"
TEMPLATE_FILES = sorted(TEMPLATES.glob("*.j2"))

# The last filter of an expression: `|name` or `|name(args)` right before `}}`.
_LAST_FILTER = re.compile(r"\|\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^{}]*\))?\s*-?$")


def _expressions(text: str) -> list[tuple[int, str]]:
    # Comments may mention `{{ }}`; blank them out, keeping line numbers.
    text = re.sub(r"\{#.*?#\}", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    found = []
    for match in re.finditer(r"\{\{(.*?)\}\}", text, re.S):
        line = text.count("\n", 0, match.start()) + 1
        found.append((line, match.group(1).strip().lstrip("-").strip()))
    return found


def test_there_are_templates() -> None:
    assert TEMPLATES.joinpath("module.py.j2").is_file()


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda path: path.name)
def test_every_expression_ends_in_a_py_filter(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expressions = _expressions(text)
    assert expressions, f"{path.name} has no expressions"
    for line, expression in expressions:
        match = _LAST_FILTER.search(expression)
        assert match is not None, f"{path.name}:{line}: `{{{{ {expression} }}}}` has no filter"
        name = match.group("name")
        assert name.startswith("py_"), f"{path.name}:{line}: last filter is `{name}`"
        assert name in _FILTERS, f"{path.name}:{line}: unknown filter `{name}`"


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda path: path.name)
def test_templates_parse_and_use_only_registered_filters(path: Path) -> None:
    env = _environment()
    source = path.read_text(encoding="utf-8")
    tree = env.parse(source)
    used = {node.name for node in tree.find_all(jinja2.nodes.Filter)}
    assert used <= set(_FILTERS), used - set(_FILTERS)
    # No autoescape tricks, no raw blocks that could hide an expression from the lint.
    assert "{% raw" not in source
    assert "{% autoescape" not in source


def test_runtime_alias_matches_template() -> None:
    text = TEMPLATES.joinpath("module.py.j2").read_text(encoding="utf-8")
    assert f"from policylang import runtime as {RUNTIME_ALIAS}\n" in text


def test_lint_regex_catches_unfiltered() -> None:
    assert _LAST_FILTER.search("spec.name") is None
    assert _LAST_FILTER.search("spec.name|upper").group("name") == "upper"  # type: ignore[union-attr]
    assert _LAST_FILTER.search('x|py_str(assign="A")').group("name") == "py_str"  # type: ignore[union-attr]
    assert _LAST_FILTER.search("x|py_str ~ y") is None
