"""The ``policylang`` command line: exit codes, stdout and stderr for every command."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import policylang
from policylang.cli import main

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
CLEAN = FIXTURES / "clean.policy"
BROKEN = FIXTURES / "broken.policy"
SYNTAX = FIXTURES / "syntax.policy"
TRANSCRIPTS = FIXTURES / "transcripts.jsonl"
REPO = HERE.parents[1]
DEFAULT_POLICY = REPO / "policies" / "default.policy"
SAMPLES = REPO / "samples" / "conversations.jsonl"
BROKEN_SAMPLES = REPO / "samples" / "broken.jsonl"
CORPUS = REPO.parent / "shared" / "corpora" / "hh-benign-dev.jsonl.gz"

LOCATED = re.compile(r"^[^\s:][^:]*:\d+:\d+: (error|warning|info)\[PL\d{3}\] \S.*$")


def run(
    args: Sequence[str | os.PathLike[str]], *, input: bytes | str | None = None, **env: str
) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args], input=input, env=env or None)
    # A traceback never reaches the user: any exception must have become an exit code.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def summary_counts(stderr: str) -> dict[str, int]:
    """The rows of check's summary table on stderr: label -> count."""
    found = re.findall(r"^ *([a-z_][a-z_ -]*?) +([\d,]+)(?:  .*)?$", stderr, flags=re.MULTILINE)
    return {label: int(count.replace(",", "")) for label, count in found}


@pytest.fixture(autouse=True)
def _no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("POLICYLANG_DEBUG", raising=False)


# ---------------------------------------------------------------- the group


def test_version() -> None:
    result = run(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"policylang {policylang.__version__}\n"
    assert result.stdout == "policylang 0.1.0\n"


def test_help_lists_commands() -> None:
    result = run(["--help"])
    assert result.exit_code == 0
    for command in ("lint", "compile", "check"):
        assert command in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run(["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    assert run(["lint", "--nope", CLEAN]).exit_code == 2


def test_bad_color_value_is_a_usage_error() -> None:
    assert run(["--color", "sometimes", "lint", CLEAN]).exit_code == 2


# ---------------------------------------------------------------- lint


def test_lint_clean_prints_nothing() -> None:
    result = run(["lint", CLEAN])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_lint_verbose_counts_and_proves() -> None:
    result = run(["lint", "-v", CLEAN])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.endswith("1 file checked, no problems\n")
    assert f"{CLEAN}: termination paths" in result.stderr
    assert "end_on_request" in result.stderr
    assert "end_persistent" in result.stderr


def test_lint_errors_human() -> None:
    result = run(["lint", BROKEN])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert re.search(r"^error\[PL\d{3}\]: ", result.stderr, re.M)
    assert f"--> {BROKEN}:" in result.stderr
    assert re.search(r"^\d+ errors?", result.stderr.splitlines()[-1])


def test_lint_errors_short() -> None:
    result = run(["lint", "--format", "short", BROKEN, SYNTAX])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines
    assert all(LOCATED.match(line) for line in lines), lines
    assert any(line.startswith(f"{SYNTAX}:") for line in lines)
    assert any(line.startswith(f"{BROKEN}:") for line in lines)


def test_lint_json_is_one_document_on_stdout() -> None:
    result = run(["lint", "--format", "json", BROKEN])
    assert result.exit_code == 1
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["version"] == 1
    assert document["tool"] == {"name": "policylang", "version": policylang.__version__}
    assert document["summary"]["errors"] >= 1
    assert all(d["file"] == str(BROKEN) for d in document["diagnostics"])
    assert all(re.fullmatch(r"PL\d{3}", d["code"]) for d in document["diagnostics"])


def test_lint_json_when_clean() -> None:
    result = run(["lint", "--format", "json", CLEAN])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["diagnostics"] == []
    assert document["summary"] == {"errors": 0, "warnings": 0, "infos": 0}


def test_lint_json_validates_against_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "schemas" / "diagnostics.schema.json").read_text())
    result = run(["lint", "--format", "json", BROKEN, SYNTAX])
    jsonschema.validate(json.loads(result.stdout), schema)


def test_lint_max_errors() -> None:
    result = run(["lint", "--max-errors", "0", BROKEN])
    assert result.exit_code == 1
    assert "... and" in result.stderr
    assert "error[" not in result.stderr
    short = run(["lint", "--format", "short", "--max-errors", "1", BROKEN, SYNTAX])
    lines = short.stderr.splitlines()
    assert LOCATED.match(lines[0])
    assert re.fullmatch(r"\.\.\. and \d+ more", lines[1])


def test_lint_warnings_as_errors(tmp_path: Path) -> None:
    # A byte order mark is a warning (PL002).
    with_bom = tmp_path / "bom.policy"
    with_bom.write_bytes(b"\xef\xbb\xbf" + CLEAN.read_bytes())
    plain = run(["lint", "--format", "short", with_bom])
    assert plain.exit_code == 0
    assert "warning[PL002]" in plain.stderr
    strict = run(["lint", "--format", "short", "--warnings-as-errors", with_bom])
    assert strict.exit_code == 1


def test_lint_invalid_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "bad.policy"
    bad.write_bytes(CLEAN.read_bytes().replace(b"Imaginary", b"Imagin\xffary"))
    result = run(["lint", "--format", "short", bad])
    assert result.exit_code == 1
    assert "error[PL001]" in result.stderr


def test_lint_searches_directories(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    shutil.copy(CLEAN, tmp_path / "b.policy")
    shutil.copy(CLEAN, tmp_path / "sub" / "a.policy")
    shutil.copy(BROKEN, tmp_path / ".hidden" / "broken.policy")
    shutil.copy(BROKEN, tmp_path / "notes.txt")
    result = run(["lint", "-v", tmp_path, tmp_path / "b.policy"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.endswith("2 files checked, no problems\n")


def test_lint_checks_each_file_once() -> None:
    result = run(["lint", "-v", CLEAN, CLEAN, FIXTURES / "." / "clean.policy"])
    assert result.stderr.endswith("1 file checked, no problems\n")


def test_lint_directory_without_policies(tmp_path: Path) -> None:
    result = run(["lint", tmp_path])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no `.policy` files found")


def test_lint_missing_path() -> None:
    result = run(["lint", "does-not-exist.policy"])
    assert result.exit_code == 2
    assert "does-not-exist.policy" in result.stderr


def test_lint_requires_a_path() -> None:
    assert run(["lint"]).exit_code == 2


def test_lint_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    locked = tmp_path / "locked.policy"
    shutil.copy(CLEAN, locked)
    locked.chmod(0)
    result = run(["lint", locked])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


# ---------------------------------------------------------------- colour


def test_color_auto_is_off_when_not_a_terminal() -> None:
    assert "\x1b[" not in run(["lint", BROKEN]).stderr


def test_color_always_global_and_per_command() -> None:
    assert "\x1b[" in run(["--color", "always", "lint", BROKEN]).stderr
    assert "\x1b[" in run(["lint", "--color", "always", BROKEN]).stderr
    assert "\x1b[" not in run(["--color", "always", "lint", "--color", "never", BROKEN]).stderr


def test_color_always_beats_no_color() -> None:
    assert "\x1b[" in run(["--color", "always", "lint", BROKEN], NO_COLOR="1").stderr


def test_use_color_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from policylang.cli._common import use_color

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    assert use_color("auto", tty) is True
    assert use_color("never", tty) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color("auto", tty) is False
    assert use_color("always", tty) is True
    monkeypatch.setenv("NO_COLOR", "")
    assert use_color("auto", tty) is True


# ---------------------------------------------------------------- compile


def test_compile_to_file(tmp_path: Path) -> None:
    out = tmp_path / "out.py"
    result = run(["compile", CLEAN, "-o", out])
    assert result.exit_code == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    code = out.read_text(encoding="utf-8")
    compile(code, str(out), "exec")
    assert "policylang.runtime" in code
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.py"]  # no temp files left
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # not mkstemp's private 0600


def test_compile_through_a_symlink_replaces_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real.py"
    target.write_text("old\n")
    link = tmp_path / "link.py"
    link.symlink_to(target)
    assert run(["compile", CLEAN, "-o", link]).exit_code == 0
    assert link.is_symlink()
    assert "policylang.runtime" in target.read_text(encoding="utf-8")


def test_compile_to_a_named_pipe_writes_into_it(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run(["compile", CLEAN, "-o", fifo])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert b"policylang.runtime" in received[0]
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a pipe, not replaced by a file


def test_compile_to_stdout_matches_file(tmp_path: Path) -> None:
    out = tmp_path / "out.py"
    assert run(["compile", CLEAN, "-o", out]).exit_code == 0
    result = run(["compile", CLEAN, "-o", "-"])
    assert result.exit_code == 0
    assert result.stdout_bytes == out.read_bytes()
    assert result.stderr == ""


def test_compile_is_deterministic(tmp_path: Path) -> None:
    first = run(["compile", CLEAN, "-o", "-"]).stdout_bytes
    assert run(["compile", CLEAN, "-o", "-"]).stdout_bytes == first


def test_compile_refuses_on_errors_and_keeps_old_output(tmp_path: Path) -> None:
    out = tmp_path / "out.py"
    out.write_text("# previous\n")
    result = run(["compile", BROKEN, "-o", out])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error[PL" in result.stderr
    assert out.read_text() == "# previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.py"]


def test_compile_refuses_on_syntax_error_to_stdout() -> None:
    result = run(["compile", SYNTAX, "-o", "-", "--format", "short"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert all(LOCATED.match(line) for line in result.stderr.splitlines())


def test_compile_check_fresh_stale_missing(tmp_path: Path) -> None:
    policy = tmp_path / "p.policy"
    shutil.copy(CLEAN, policy)
    out = tmp_path / "p.py"

    missing = run(["compile", policy, "-o", out, "--check"])
    assert missing.exit_code == 1
    assert missing.stderr.count("\n") == 1
    assert "missing" in missing.stderr
    assert not out.exists()

    assert run(["compile", policy, "-o", out]).exit_code == 0
    fresh = run(["compile", policy, "-o", out, "--check"])
    assert (fresh.exit_code, fresh.stdout, fresh.stderr) == (0, "", "")

    policy.write_text(CLEAN.read_text().replace('"0.1.0"', '"0.2.0"'), encoding="utf-8")
    before = out.read_bytes()
    stale = run(["compile", policy, "-o", out, "--check"])
    assert stale.exit_code == 1
    assert stale.stderr.count("\n") == 1
    assert "stale" in stale.stderr
    assert out.read_bytes() == before  # --check never writes


def test_compile_check_with_stdout_is_a_usage_error() -> None:
    assert run(["compile", CLEAN, "-o", "-", "--check"]).exit_code == 2


def test_compile_requires_output() -> None:
    assert run(["compile", CLEAN]).exit_code == 2


def test_compile_missing_policy() -> None:
    result = run(["compile", "nope.policy", "-o", "-"])
    assert result.exit_code == 2
    assert "nope.policy" in result.stderr


def test_compile_directory_as_policy(tmp_path: Path) -> None:
    assert run(["compile", tmp_path, "-o", "-"]).exit_code == 2


def test_compile_output_directory_missing(tmp_path: Path) -> None:
    result = run(["compile", CLEAN, "-o", tmp_path / "no" / "such" / "out.py"])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


def test_compile_output_is_a_directory(tmp_path: Path) -> None:
    assert run(["compile", CLEAN, "-o", tmp_path]).exit_code == 2


def test_compile_default_policy_passes_mypy_strict(tmp_path: Path) -> None:
    """The issue's acceptance command: compile, then ``mypy --strict out.py``."""
    api = pytest.importorskip("mypy.api")
    if not DEFAULT_POLICY.exists():
        pytest.skip("policies/default.policy is not available")
    out = tmp_path / "out.py"
    result = run(["compile", DEFAULT_POLICY, "-o", out])
    assert result.exit_code == 0, result.stderr
    stdout, stderr, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", os.devnull, str(out)]
    )
    assert status == 0, stdout + stderr


# ---------------------------------------------------------------- check


def test_check_fixture_one_line_per_record() -> None:
    result = run(["check", CLEAN, TRANSCRIPTS])
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["line"] for r in records] == [1, 2, 3, 4, 6]  # line 5 is blank
    assert {r["file"] for r in records} == {str(TRANSCRIPTS)}
    by_id = {r["conversation_id"]: r for r in records}
    assert by_id["benign"]["outcome"] == "continue"
    assert by_id["benign"]["message_index"] is None
    assert by_id["request"]["outcome"] == "end"
    assert by_id["request"]["rule"] == "end_on_request"
    assert by_id["request"]["message_index"] == 2
    persistent = by_id["persistent"]
    assert (persistent["outcome"], persistent["rule"]) == ("end", "end_persistent")
    assert persistent["category"] == "zapguns"
    assert persistent["message_index"] == 6
    assert persistent["post_termination_messages"] == [8]
    assert by_id["danger"]["outcome"] == "escalate"
    assert by_id["7"]["outcome"] == "continue"  # integer id, coerced
    for record in records:
        assert record["policy"]["name"] == "cli_fixture"
        assert set(record) >= {
            "conversation_id",
            "outcome",
            "message_index",
            "rule",
            "category",
            "reason",
            "message",
            "evidence",
            "counters",
            "events",
            "post_termination_messages",
            "messages",
            "policy",
            "file",
            "line",
        }
    summary = summary_counts(result.stderr)
    assert summary["conversations"] == 5
    assert (summary["ended"], summary["escalated"], summary["warned"]) == (2, 1, 0)
    assert (summary["continued"], summary["errors"], summary["records read"]) == (2, 0, 5)
    assert (summary["danger"], summary["end_on_request"], summary["end_persistent"]) == (1, 1, 1)


def test_check_invalid_records_are_counted_and_located(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(
        TRANSCRIPTS.read_bytes()
        + b'{"id": "cut", "messages": [\n'
        + b'{"id": "norole", "messages": [{"content": "hi"}]}\n'
        + b"\xff\xfe\n"
    )
    result = run(["check", CLEAN, mixed])
    assert result.exit_code == 1
    lines = json_lines(result.stdout)
    assert len(lines) == 8  # records in = decisions + errors
    errors = [line for line in lines if "error" in line]
    assert [(e["line"], e["error"]["code"]) for e in errors] == [
        (7, "PL801"),
        (8, "PL802"),
        (9, "PL803"),
    ]
    assert errors[1]["error"]["message"] == "messages/0/role: field required"
    assert errors[1]["file"] == str(mixed)
    stderr = result.stderr.splitlines()
    assert f"{mixed}:8:1: error[PL802] messages/0/role: field required" in stderr
    assert any(line.startswith(f"{mixed}:7:") and "error[PL801]" in line for line in stderr)
    assert any(line.startswith(f"{mixed}:9:1: error[PL803]") for line in stderr)
    summary = summary_counts(result.stderr)
    assert (summary["conversations"], summary["errors"], summary["records read"]) == (5, 3, 8)


def test_check_max_errors_caps_stderr_only(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("x\n" * 5)
    result = run(["check", "--max-errors", "2", CLEAN, bad])
    assert result.exit_code == 1
    assert len(json_lines(result.stdout)) == 5
    assert result.stderr.count("error[PL801]") == 2
    assert "... and 3 more invalid records" in result.stderr


def test_check_only(tmp_path: Path) -> None:
    result = run(["check", "--only", "ended", CLEAN, TRANSCRIPTS])
    assert result.exit_code == 0
    records = json_lines(result.stdout)
    assert {r["outcome"] for r in records} == {"end"}
    assert len(records) == 2
    assert summary_counts(result.stderr)["conversations"] == 5  # the summary still counts all
    both = run(["check", "--only", "ended", "--only", "escalated", CLEAN, TRANSCRIPTS])
    assert len(json_lines(both.stdout)) == 3


def test_check_human_table() -> None:
    result = run(["check", "--format", "human", CLEAN, TRANSCRIPTS])
    assert result.exit_code == 0
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["RECORD", "ID", "OUTCOME", "AT", "RULE", "CATEGORY", "REASON"]
    assert len(rows) == 6
    assert rows[1].split()[0].endswith("transcripts.jsonl:1")  # long paths keep their end
    assert any(" end " in row and "end_on_request" in row for row in rows)


def test_check_output_file(tmp_path: Path) -> None:
    out = tmp_path / "decisions.jsonl"
    result = run(["check", "--output", out, CLEAN, TRANSCRIPTS])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert len(json_lines(out.read_text(encoding="utf-8"))) == 5


def test_check_output_may_not_be_an_input(tmp_path: Path) -> None:
    copy = tmp_path / "t.jsonl"
    shutil.copy(TRANSCRIPTS, copy)
    result = run(["check", "--output", copy, CLEAN, copy])
    assert result.exit_code == 2
    assert copy.read_bytes() == TRANSCRIPTS.read_bytes()


def test_check_stdin_and_gzip(tmp_path: Path) -> None:
    packed = tmp_path / "t.jsonl.gz"
    packed.write_bytes(gzip.compress(TRANSCRIPTS.read_bytes()))
    from_file = json_lines(run(["check", CLEAN, packed]).stdout)
    from_stdin = run(["check", CLEAN, "-"], input=TRANSCRIPTS.read_bytes())
    assert from_stdin.exit_code == 0
    stdin_records = json_lines(from_stdin.stdout)
    assert {r["file"] for r in stdin_records} == {"<stdin>"}
    assert [(r["conversation_id"], r["outcome"]) for r in stdin_records] == [
        (r["conversation_id"], r["outcome"]) for r in from_file
    ]


def test_check_several_files_in_order(tmp_path: Path) -> None:
    result = run(["check", CLEAN, TRANSCRIPTS, TRANSCRIPTS])
    assert result.exit_code == 0
    assert len(json_lines(result.stdout)) == 10
    assert summary_counts(result.stderr)["conversations"] == 10


def test_check_policy_warnings_are_shown_but_do_not_stop(tmp_path: Path) -> None:
    with_bom = tmp_path / "bom.policy"
    with_bom.write_bytes(b"\xef\xbb\xbf" + CLEAN.read_bytes())
    result = run(["check", with_bom, TRANSCRIPTS])
    assert result.exit_code == 0
    assert "warning[PL002]" in result.stderr
    assert len(json_lines(result.stdout)) == 5


def test_check_invalid_policy() -> None:
    result = run(["check", BROKEN, TRANSCRIPTS])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error[PL" in result.stderr
    assert "records read" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["check", "missing.policy", TRANSCRIPTS],
        ["check", CLEAN, "missing.jsonl"],
        ["check", FIXTURES, TRANSCRIPTS],
        ["check", CLEAN, HERE],
        ["check", CLEAN, FIXTURES / "*.nothing"],
        ["check", CLEAN],
    ],
    ids=[
        "missing-policy",
        "missing-transcripts",
        "policy-dir",
        "transcripts-dir-without-transcripts",
        "glob-without-matches",
        "no-transcripts",
    ],
)
def test_check_usage_errors(args: list[str | Path]) -> None:
    result = run([str(a) for a in args])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_check_samples() -> None:
    if not DEFAULT_POLICY.exists():
        pytest.skip("policies/default.policy is not available")
    result = run(["check", DEFAULT_POLICY, SAMPLES])
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == 10
    outcomes = {r["conversation_id"]: r["outcome"] for r in records}
    assert outcomes["sample-04-persistent-abuse"] == "end"
    assert outcomes["sample-05-asks-to-end"] == "end"
    assert outcomes["sample-06-imminent-risk"] == "escalate"
    assert outcomes["sample-02-kill-process"] == "continue"
    assert outcomes["sample-09-bath-bomb"] == "continue"
    summary = summary_counts(result.stderr)
    assert (summary["conversations"], summary["errors"]) == (10, 0)


def test_check_samples_match_their_expected_labels() -> None:
    if not DEFAULT_POLICY.exists():
        pytest.skip("policies/default.policy is not available")
    expected = {
        r["id"] if isinstance(r["id"], str) else str(r["id"]): r["labels"]["expected"]
        for r in json_lines(SAMPLES.read_text(encoding="utf-8"))
    }
    result = run(["check", DEFAULT_POLICY, SAMPLES])
    actual = {r["conversation_id"]: r["outcome"] for r in json_lines(result.stdout)}
    assert actual == expected


def test_check_broken_samples() -> None:
    if not DEFAULT_POLICY.exists():
        pytest.skip("policies/default.policy is not available")
    result = run(["check", DEFAULT_POLICY, BROKEN_SAMPLES])
    assert result.exit_code == 1
    lines = json_lines(result.stdout)
    assert len(lines) == 5
    assert [("error" in line, line["line"]) for line in lines] == [
        (False, 1),
        (True, 2),
        (False, 3),
        (True, 4),
        (False, 6),
    ]
    assert f"{BROKEN_SAMPLES}:4:1: error[PL802] messages/1/role: field required" in result.stderr
    summary = summary_counts(result.stderr)
    assert (summary["conversations"], summary["continued"], summary["errors"]) == (3, 3, 2)


def test_check_real_corpus_smoke() -> None:
    if not CORPUS.exists() or not DEFAULT_POLICY.exists():
        pytest.skip("the shared corpus or the default policy is not available")
    result = run(["check", DEFAULT_POLICY, CORPUS])
    assert result.exit_code == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 1171
    summary = summary_counts(result.stderr)
    assert (summary["conversations"], summary["errors"]) == (1171, 0)


# ---------------------------------------------------------------- internal errors


@pytest.fixture
def exploding_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make reading transcripts fail with an unexpected exception (a stand-in for a bug)."""
    import policylang.batch as batch_module

    def explode(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(batch_module, "_tasks", explode)


@pytest.mark.usefixtures("exploding_reader")
def test_internal_error_is_reported_without_traceback() -> None:
    result = run(["check", CLEAN, TRANSCRIPTS])
    assert result.exit_code == 3
    assert result.stderr.startswith("internal error: RuntimeError: boom\n")
    assert "please report this at " in result.stderr


@pytest.mark.usefixtures("exploding_reader")
def test_internal_error_debug_shows_traceback() -> None:
    result = CliRunner().invoke(
        main, ["check", str(CLEAN), str(TRANSCRIPTS)], env={"POLICYLANG_DEBUG": "1"}
    )
    assert result.exit_code == 3
    assert "internal error: RuntimeError: boom" in result.stderr
    assert "Traceback" in result.stderr
