"""The CLI finds the source of every file a diagnostic points into, for its snippets.

A secondary label can point into a file that was not named on the command line (a
base policy); the CLI reads it from disk so that its snippet, JSON positions and SARIF
region can be shown, and renders without it when it cannot be read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from policylang.cli import main
from policylang.cli._common import complete_sources, report
from policylang.diagnostics import Diagnostic, DiagnosticSink, Label, Severity
from policylang.source import SourceFile, Span

HERE = Path(__file__).parent
BROKEN = HERE / "fixtures" / "broken.policy"
TRANSCRIPTS = HERE / "fixtures" / "transcripts.jsonl"

CHILD_TEXT = 'policy child {\n  version: "1"\n}\n'
BASE_TEXT = "# the base\n" * 9 + "  locked: true\n"
LOCK = BASE_TEXT.index("locked: true")


def run(args: Sequence[str | os.PathLike[str]]) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _locked_label(path: str = "base.policy") -> Label:
    return Label(Span(LOCK, LOCK + len("locked: true")), "locked here", path=path)


def _weakened(path: str, base: str = "base.policy") -> Diagnostic:
    return Diagnostic(
        "PL101",
        Severity.ERROR,
        "this override weakens a lock declared in the base",
        path,
        Label(Span(0, 6), "overrides it"),
        secondary=(_locked_label(base),),
    )


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NO_COLOR", raising=False)
    (tmp_path / "child.policy").write_text(CHILD_TEXT, encoding="utf-8")
    (tmp_path / "base.policy").write_text(BASE_TEXT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- complete_sources


@pytest.mark.usefixtures("tree")
def test_complete_sources_reads_the_files_labels_name() -> None:
    given = {"child.policy": SourceFile.from_text("child.policy", "kept as given\n")}
    complete = complete_sources([_weakened("child.policy")], given)
    assert set(complete) == {"child.policy", "base.policy"}
    assert complete["child.policy"] is given["child.policy"]  # not read again
    assert complete["base.policy"].text == BASE_TEXT
    assert set(given) == {"child.policy"}  # the caller's mapping is left alone


@pytest.mark.usefixtures("tree")
def test_complete_sources_reads_the_diagnostics_own_file_too() -> None:
    complete = complete_sources([_weakened("child.policy")], {})
    assert complete["child.policy"].text == CHILD_TEXT


def test_complete_sources_skips_what_cannot_be_read(tree: Path) -> None:
    (tree / "folder.policy").mkdir()
    (tree / "dangling.policy").symlink_to(tree / "nowhere")
    diagnostics = [
        _weakened("child.policy", base="missing.policy"),
        _weakened("child.policy", base="folder.policy"),
        _weakened("child.policy", base="dangling.policy"),
    ]
    assert set(complete_sources(diagnostics, {})) == {"child.policy"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_complete_sources_does_not_open_a_named_pipe(tree: Path) -> None:
    # Opening a FIFO for reading would block until a writer appears.
    os.mkfifo(tree / "pipe.policy")
    assert set(complete_sources([_weakened("child.policy", base="pipe.policy")], {})) == {
        "child.policy"
    }


# ---------------------------------------------------------------- report


@pytest.mark.usefixtures("tree")
def test_report_shows_the_base_snippet_read_from_disk(capsys: pytest.CaptureFixture[str]) -> None:
    child = SourceFile.from_text("child.policy", CHILD_TEXT)
    report([_weakened("child.policy")], {"child.policy": child})
    err = capsys.readouterr().err
    assert "  ::: base.policy:10:3\n   |\n10 |   locked: true\n" in err
    assert "   |   ------------ locked here\n" in err


@pytest.mark.usefixtures("tree")
def test_report_without_the_base_on_disk_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    child = SourceFile.from_text("child.policy", CHILD_TEXT)
    report([_weakened("child.policy", base="gone.policy")], {"child.policy": child})
    err = capsys.readouterr().err
    assert " ::: gone.policy: locked here\n" in err


@pytest.mark.usefixtures("tree")
def test_report_json_positions_come_from_the_base(capsys: pytest.CaptureFixture[str]) -> None:
    report([_weakened("child.policy")], {}, output_format="json")
    labels = json.loads(capsys.readouterr().out)["diagnostics"][0]["labels"]
    assert labels[1]["path"] == "base.policy"
    assert labels[1]["start"] == {"line": 10, "column": 3, "offset": LOCK}


# ---------------------------------------------------------------- commands


@pytest.fixture
def cross_file_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the checker report a lock weakened in a base file not named on the command line."""

    def analyze(source: SourceFile, sink: DiagnosticSink, *, tenant: str | None = None) -> None:
        sink.error(
            "PL101",
            "this override weakens a lock declared in the base",
            source.path,
            Span(0, 6),
            label="overrides it",
            secondary=[_locked_label()],
        )

    monkeypatch.setattr("policylang.checker.analyze", analyze)


@pytest.mark.usefixtures("tree", "cross_file_checker")
def test_lint_human_shows_the_base_file() -> None:
    result = run(["lint", "child.policy"])
    assert result.exit_code == 1
    assert "  --> child.policy:1:1\n" in result.stderr
    assert "  ::: base.policy:10:3\n" in result.stderr
    assert "10 |   locked: true\n" in result.stderr


@pytest.mark.usefixtures("tree", "cross_file_checker")
def test_lint_sarif_relates_the_base_artifact() -> None:
    result = run(["lint", "--format", "sarif", "child.policy"])
    assert result.exit_code == 1
    run_: dict[str, Any] = json.loads(result.stdout)["runs"][0]
    assert [a["location"]["uri"] for a in run_["artifacts"]] == ["child.policy", "base.policy"]
    (related,) = run_["results"][0]["relatedLocations"]
    assert related["physicalLocation"]["artifactLocation"]["uri"] == "base.policy"
    assert related["physicalLocation"]["region"] == {
        "startLine": 10,
        "startColumn": 3,
        "endLine": 10,
        "endColumn": 15,
    }


@pytest.mark.usefixtures("tree", "cross_file_checker")
def test_lint_verbose_counts_only_the_files_checked() -> None:
    result = run(["lint", "-v", "child.policy"])
    assert "1 file checked: 1 error\n" in result.stderr


def test_check_still_shows_the_policy_snippet() -> None:
    result = run(["check", BROKEN, TRANSCRIPTS])
    assert result.exit_code == 1
    assert f"--> {BROKEN}:" in result.stderr
    assert " | " in result.stderr  # a source line, read for the snippet
