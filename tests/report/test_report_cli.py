"""``policylang report`` end to end through click's CliRunner."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from policylang.cli import main
from policylang.cli.report import parse_rate

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
POLICY = FIXTURES / "report.policy"
CORPUS = FIXTURES / "corpus.jsonl"
BENIGN = FIXTURES / "benign.jsonl"
GOLD = FIXTURES / "gold" / "corpus.jsonl"
REPO = HERE.parents[1]
BROKEN_POLICY = REPO / "tests" / "cli" / "fixtures" / "broken.policy"
DEFAULT_POLICY = REPO / "policies" / "default.policy"
SHARED = REPO.parent / "shared" / "corpora"
SCHEMA = json.loads((REPO / "docs" / "schemas" / "report.schema.json").read_text())


def run(args: Sequence[str | os.PathLike[str]]) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("POLICYLANG_DEBUG", raising=False)


def test_help_lists_report() -> None:
    assert "report" in run(["--help"]).stdout
    result = run(["report", "--help"])
    assert result.exit_code == 0
    for option in ("--labels", "--benign", "--html", "--json", "--max-end-rate", "--examples"):
        assert option in result.stdout


def test_writes_html_and_json(tmp_path: Path) -> None:
    html, data = tmp_path / "r.html", tmp_path / "r.json"
    result = run(
        [
            "report", POLICY, CORPUS, BENIGN, "--labels", "auto", "--benign", "benign",
            "--html", html, "--json", data,
        ]
    )  # fmt: skip
    # The invalid record on line 12 makes it exit 1, as `check` does.
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    assert f"{CORPUS}:12:31: error[PL801]" in result.stderr
    assert "CORPUS  CONVERSATIONS" in result.stderr
    assert "corpus: 10 labelled; ends 3 of 6 matched (50.00%)" in result.stderr
    assert "benign: 3 labelled (benign); false ends 1 of 3 (benign-2)" in result.stderr
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "ex-corpus-late" in page
    document = json.loads(data.read_text(encoding="utf-8"))
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert [c["name"] for c in document["corpora"]] == ["corpus", "benign"]


def test_clean_run_exits_0_and_summary_only(tmp_path: Path) -> None:
    result = run(["report", POLICY, BENIGN])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("policy report_fixture 0.1.0")
    assert lines[2].split()[:4] == ["benign", "3", "1", "33.33%"]
    assert not any("agreement" in line for line in lines)


def test_json_to_stdout() -> None:
    result = run(["report", POLICY, BENIGN, "--json", "-", "--examples", "0"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["settings"]["examples_per_outcome"] == 0
    assert document["corpora"][0]["examples"]["end"] == []


def test_explicit_labels_option(tmp_path: Path) -> None:
    result = run(["report", POLICY, CORPUS, "--labels", GOLD, "--json", "-"])
    assert result.exit_code == 1  # the invalid record
    agreement = json.loads(result.stdout)["corpora"][0]["agreement"]
    assert agreement["premature"] == ["premature"]
    assert agreement["protection_failures"] == ["protection-failure"]


# ---------------------------------------------------------------- rarity budget


@pytest.mark.parametrize("rate", ["0.5", "50%", "0.34", "34%", "1"])
def test_budget_met(rate: str) -> None:
    result = run(["report", POLICY, BENIGN, "--max-end-rate", f"benign={rate}"])
    assert result.exit_code == 0, result.stderr
    assert " ok" in result.stderr


@pytest.mark.parametrize(("rate", "shown"), [("0.005", "0.5%"), ("0.5%", "0.5%"), ("0", "0%")])
def test_budget_exceeded_exits_1_after_writing(tmp_path: Path, rate: str, shown: str) -> None:
    html = tmp_path / "r.html"
    result = run(["report", POLICY, BENIGN, "--max-end-rate", f"benign={rate}", "--html", html])
    assert result.exit_code == 1
    assert html.exists()
    assert "Over budget" in html.read_text(encoding="utf-8")
    assert result.stderr.splitlines()[-1] == (
        f"error: `benign` ended 33.33% of its conversations (1 of 3), more than its "
        f"--max-end-rate budget of {shown}"
    )
    assert f"{shown} OVER" in result.stderr


def test_budget_only_for_the_named_corpus(tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_text(BENIGN.read_text().splitlines()[0] + "\n")
    result = run(
        ["report", POLICY, BENIGN, clean, "--max-end-rate", "clean=0", "--json", "-"]
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["over_budget"] == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("benign=lots", "is not a rate"),
        ("benign=1.5", "is not a rate"),
        ("benign=101%", "is not a rate"),
        ("benign=-0.1", "is not a rate"),
        ("benign=nan", "is not a rate"),
        ("benign", "should be CORPUS=RATE"),
        ("=0.1", "should be CORPUS=RATE"),
        ("nope=0.1", "`nope` is not the name of a corpus (corpora: benign)"),
    ],
)
def test_bad_budget_is_a_usage_error(value: str, message: str) -> None:
    result = run(["report", POLICY, BENIGN, "--max-end-rate", value])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "CONVERSATIONS" not in result.stderr  # nothing was run


def test_budget_given_twice() -> None:
    result = run(
        ["report", POLICY, BENIGN, "--max-end-rate", "benign=1%", "--max-end-rate", "benign=2%"]
    )
    assert result.exit_code == 2
    assert "given twice" in result.stderr


def test_parse_rate() -> None:
    assert parse_rate("0.005") == 0.005
    assert parse_rate("0.5%") == pytest.approx(0.005)
    assert parse_rate(" 1 ") == 1.0
    for bad in ("", "%", "x", "inf", "2", "-1%"):
        with pytest.raises(ValueError):
            parse_rate(bad)


# ---------------------------------------------------------------- other usage and I/O errors


def test_unknown_benign_corpus() -> None:
    result = run(["report", POLICY, BENIGN, "--benign", "hh-benign-dev"])
    assert result.exit_code == 2
    assert "`hh-benign-dev` is not the name of a corpus" in result.stderr


def test_two_corpora_with_one_name(tmp_path: Path) -> None:
    other = tmp_path / "benign.jsonl"
    shutil.copy(BENIGN, other)
    result = run(["report", POLICY, BENIGN, other])
    assert result.exit_code == 2
    assert "two corpora are named `benign`" in result.stderr


def test_both_outputs_to_stdout() -> None:
    result = run(["report", POLICY, BENIGN, "--html", "-", "--json", "-"])
    assert result.exit_code == 2
    assert "only one of --html and --json" in result.stderr


def test_output_may_not_be_an_input(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    shutil.copy(BENIGN, corpus)
    result = run(["report", POLICY, corpus, "--json", corpus])
    assert result.exit_code == 2
    assert "is also an input file" in result.stderr
    assert corpus.read_bytes() == BENIGN.read_bytes()


def test_missing_label_file(tmp_path: Path) -> None:
    result = run(["report", POLICY, BENIGN, "--labels", tmp_path / "nope.jsonl"])
    assert result.exit_code == 2
    assert "error: cannot read labels" in result.stderr


def test_malformed_label_file(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "a", "label": "maybe", "end_at": null}\n')
    result = run(["report", POLICY, BENIGN, "--labels", labels])
    assert result.exit_code == 2
    assert f"error: {labels}:1: `label` should be one of" in result.stderr


def test_unwritable_output(tmp_path: Path) -> None:
    result = run(["report", POLICY, BENIGN, "--html", tmp_path / "missing" / "r.html"])
    assert result.exit_code == 2
    assert "error: cannot write" in result.stderr


def test_policy_with_errors_exits_1_without_reading() -> None:
    result = run(["report", BROKEN_POLICY, BENIGN])
    assert result.exit_code == 1
    assert "CONVERSATIONS" not in result.stderr


def test_missing_corpus_is_a_usage_error(tmp_path: Path) -> None:
    result = run(["report", POLICY, tmp_path / "nope.jsonl"])
    assert result.exit_code == 2


def test_stdin_corpus() -> None:
    result = CliRunner().invoke(
        main, ["report", str(POLICY), "-", "--json", "-"], input=BENIGN.read_bytes()
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["corpora"][0]["name"] == "stdin"


# ---------------------------------------------------------------- the shared corpora


def test_smoke_hh_redteam_with_auto_labels(tmp_path: Path) -> None:
    corpus = SHARED / "hh-redteam-dev.jsonl.gz"
    if not corpus.exists() or not (SHARED / "gold" / "hh-redteam-dev.jsonl").exists():
        pytest.skip(f"{corpus} (and its gold labels) not available")
    html, data = tmp_path / "r.html", tmp_path / "r.json"
    result = run(
        ["report", DEFAULT_POLICY, corpus, "--labels", "auto", "--html", html, "--json", data]
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(data.read_text(encoding="utf-8"))
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    (report,) = document["corpora"]
    assert report["conversations"] == 1164
    assert report["agreement"]["labelled"] == 1164
    assert report["agreement"]["unlabelled"] == 0
    assert report["agreement"]["continue_rows"] == 1116
    assert report["agreement"]["crisis_rows"] == 44
    assert document["unused_labels"]["count"] == 0
    assert "hh-redteam-dev: 1,164 labelled" in result.stderr
    page = html.read_text(encoding="utf-8")
    assert "https://" not in page and "http://" not in page
