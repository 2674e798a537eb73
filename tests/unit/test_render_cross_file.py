"""Secondary labels that point into another file (a base policy): human and JSON output.

The same-file layout is pinned by the goldens in ``test_render.py``; these tests cover
labels whose ``path`` names a different file.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from policylang.diagnostics import Diagnostic, Label, Severity
from policylang.render import render_human, render_json, render_short
from policylang.source import SourceFile, Span

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "diagnostics.schema.json"

CHILD = "policies/child.policy"
BASE = "policies/base.policy"
CHILD_TEXT = 'policy child {\n  extends: "base.policy"\n}\noverride hold {\n  locked: false\n}\n'
# The lock sits on line 42 of the base, so the base's line numbers set the gutter width.
BASE_TEXT = "".join(f"# base line {n}\n" for n in range(1, 42)) + "  locked: true\n"


def _span(text: str, needle: str) -> Span:
    start = text.index(needle)
    return Span(start, start + len(needle))


def _weakened(*secondary: Label, help: str | None = "keep `locked: true`") -> Diagnostic:
    return Diagnostic(
        "PL101",
        Severity.ERROR,
        "this override weakens a lock declared in the base",
        CHILD,
        Label(_span(CHILD_TEXT, "locked: false"), "unlocks it"),
        secondary=secondary,
        help=help,
    )


def _in_base(message: str = "locked here", needle: str = "locked: true") -> Label:
    return Label(_span(BASE_TEXT, needle), message, path=BASE)


@pytest.fixture
def sources() -> dict[str, SourceFile]:
    return {
        CHILD: SourceFile.from_text(CHILD, CHILD_TEXT),
        BASE: SourceFile.from_text(BASE, BASE_TEXT),
    }


# ---------------------------------------------------------------- the label


def test_label_path_defaults_to_the_diagnostics_own_file() -> None:
    plain = Label(Span(0, 1), "here")
    assert plain.path is None
    assert plain.path_or(CHILD) == CHILD
    assert Label(Span(0, 1), "there", path=BASE).path_or(CHILD) == BASE
    assert Label(Span(0, 1)) == Label(Span(0, 1), "", None)  # old constructions still work


def test_diagnostic_paths_lists_each_file_once_in_label_order() -> None:
    diagnostic = _weakened(
        Label(Span(0, 1), "own file"),
        _in_base(),
        Label(Span(0, 1), "elsewhere", path="other.policy"),
        _in_base("again"),
        Label(Span(0, 1), "own file, named", path=CHILD),
    )
    assert diagnostic.paths == (CHILD, BASE, "other.policy")
    assert _weakened().paths == (CHILD,)


# ---------------------------------------------------------------- human


def test_human_shows_a_label_in_another_file_as_its_own_located_block(
    sources: dict[str, SourceFile],
) -> None:
    diagnostic = _weakened(_in_base())
    assert render_human([diagnostic], sources) == (
        "error[PL101]: this override weakens a lock declared in the base\n"
        "  --> policies/child.policy:5:3\n"
        "   |\n"
        " 5 |   locked: false\n"
        "   |   ^^^^^^^^^^^^^ unlocks it\n"
        "   |\n"
        "  ::: policies/base.policy:42:3\n"
        "   |\n"
        "42 |   locked: true\n"
        "   |   ------------ locked here\n"
        "   |\n"
        "   = help: keep `locked: true`\n"
        "\n"
        "1 error\n"
    )


def test_human_same_file_labels_first_then_one_block_per_other_file(
    sources: dict[str, SourceFile],
) -> None:
    diagnostic = _weakened(
        _in_base("locked here"),
        Label(_span(CHILD_TEXT, "base.policy"), "extended here"),
        _in_base("declared here", needle="# base line 3\n"),
        help=None,
    )
    assert render_human([diagnostic], sources) == (
        "error[PL101]: this override weakens a lock declared in the base\n"
        "  --> policies/child.policy:5:3\n"
        "   |\n"
        " 5 |   locked: false\n"
        "   |   ^^^^^^^^^^^^^ unlocks it\n"
        "   |\n"
        ' 2 |   extends: "base.policy"\n'
        "   |             ----------- extended here\n"
        "   |\n"
        "  ::: policies/base.policy:42:3\n"
        "   |\n"
        "42 |   locked: true\n"
        "   |   ------------ locked here\n"
        "   |\n"
        " 3 | # base line 3\n"
        "   | ------------- declared here\n"
        "\n"
        "1 error\n"
    )


def test_human_without_the_other_files_source_names_it_with_the_message(
    sources: dict[str, SourceFile],
) -> None:
    del sources[BASE]
    diagnostic = _weakened(_in_base(), Label(Span(0, 4), path=BASE))
    assert render_human([diagnostic], sources) == (
        "error[PL101]: this override weakens a lock declared in the base\n"
        " --> policies/child.policy:5:3\n"
        "  |\n"
        "5 |   locked: false\n"
        "  |   ^^^^^^^^^^^^^ unlocks it\n"
        "  |\n"
        " ::: policies/base.policy: locked here\n"
        " ::: policies/base.policy\n"
        "  |\n"
        "  = help: keep `locked: true`\n"
        "\n"
        "1 error\n"
    )


def test_human_shows_the_other_file_even_without_the_diagnostics_own_source(
    sources: dict[str, SourceFile],
) -> None:
    del sources[CHILD]
    diagnostic = _weakened(_in_base(), Label(Span(0, 1), "not shown: no source"))
    assert render_human([diagnostic], sources) == (
        "error[PL101]: this override weakens a lock declared in the base\n"
        "  --> policies/child.policy\n"
        "   |\n"
        "  ::: policies/base.policy:42:3\n"
        "   |\n"
        "42 |   locked: true\n"
        "   |   ------------ locked here\n"
        "   |\n"
        "   = help: keep `locked: true`\n"
        "\n"
        "1 error\n"
    )


def test_human_label_naming_its_own_file_renders_like_an_unnamed_one(
    sources: dict[str, SourceFile],
) -> None:
    span = _span(CHILD_TEXT, "base.policy")
    named = render_human([_weakened(Label(span, "extended here", path=CHILD))], sources)
    unnamed = render_human([_weakened(Label(span, "extended here"))], sources)
    assert named == unnamed
    assert ":::" not in named


def test_human_other_file_block_is_coloured_like_the_gutter(
    sources: dict[str, SourceFile],
) -> None:
    coloured = render_human([_weakened(_in_base())], sources, color=True)
    assert "  \x1b[1;34m:::\x1b[0m policies/base.policy:42:3\n" in coloured
    assert "\x1b[1;34m------------ locked here\x1b[0m" in coloured


def test_short_shows_only_the_primary(sources: dict[str, SourceFile]) -> None:
    assert render_short([_weakened(_in_base())], sources) == (
        "policies/child.policy:5:3: error[PL101] "
        "this override weakens a lock declared in the base\n"
    )


# ---------------------------------------------------------------- json


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_json_labels_carry_their_file_and_positions_in_it(
    sources: dict[str, SourceFile], validator: jsonschema.protocols.Validator
) -> None:
    extended = Label(_span(CHILD_TEXT, "base.policy"), "extended here")
    diagnostic = _weakened(_in_base(), extended)
    document = json.loads(render_json([diagnostic], sources, tool_version="0"))
    validator.validate(document)
    (item,) = document["diagnostics"]
    assert item["file"] == CHILD
    assert item["start"] == {"line": 5, "column": 3, "offset": CHILD_TEXT.index("locked: false")}
    primary, in_base, in_child = item["labels"]
    assert primary["path"] == CHILD and primary["primary"] is True
    base_offset = BASE_TEXT.index("locked: true")
    assert in_base == {
        "path": BASE,
        "start": {"line": 42, "column": 3, "offset": base_offset},
        "end": {"line": 42, "column": 15, "offset": base_offset + 12},
        "message": "locked here",
        "primary": False,
    }
    assert in_child["path"] == CHILD
    assert in_child["start"]["line"] == 2


def test_json_label_in_a_file_without_source_has_null_positions(
    sources: dict[str, SourceFile], validator: jsonschema.protocols.Validator
) -> None:
    del sources[BASE]
    document = json.loads(render_json([_weakened(_in_base())], sources, tool_version="0"))
    validator.validate(document)
    in_base = document["diagnostics"][0]["labels"][1]
    assert in_base["path"] == BASE
    assert in_base["start"] == {
        "line": None,
        "column": None,
        "offset": BASE_TEXT.index("locked: true"),
    }


def test_schema_requires_the_label_path(
    sources: dict[str, SourceFile], validator: jsonschema.protocols.Validator
) -> None:
    document = json.loads(render_json([_weakened(_in_base())], sources, tool_version="0"))
    del document["diagnostics"][0]["labels"][1]["path"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(document)
