"""``policylang explain`` errors and exit codes: 0 found, 1 not found, 2 usage/I-O, 3 internal."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import policylang.explain
from policylang.cli import main
from policylang.cli.explain import MAX_SKIPPED_SHOWN

HERE = Path(__file__).parent
CASES = HERE / "cases"
POLICY = CASES / "fixture.policy"
TRANSCRIPTS = CASES / "fixture.jsonl"
REPO = HERE.parents[1]
BROKEN_POLICY = REPO / "tests" / "cli" / "fixtures" / "broken.policy"
BROKEN_SAMPLES = REPO / "samples" / "broken.jsonl"

LOCATED = re.compile(r"^[^\s:][^:]*:\d+:\d+: (error|warning|info)\[PL\d{3}\] \S.*$")


def run(args: Sequence[str | os.PathLike[str]], *, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, ["explain", *map(str, args)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("POLICYLANG_DEBUG", raising=False)


def write_jsonl(path: Path, lines: Sequence[object]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
        encoding="utf-8",
    )
    return path


def record(conversation_id: str, *texts: str) -> dict[str, object]:
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]
    return {"id": conversation_id, "messages": messages}


# ---------------------------------------------------------------- found


def test_found_exits_0_with_the_explanation_on_stdout() -> None:
    result = run([POLICY, TRANSCRIPTS, "--id", "sincere-end"])
    assert result.exit_code == 0
    assert result.stdout.startswith("conversation sincere-end (")
    assert "decision: end at message 2 by rule end_on_request" in result.stdout
    assert result.stderr == ""


def test_json_format() -> None:
    result = run([POLICY, TRANSCRIPTS, "--id", "sincere-end", "--format", "json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["conversation"]["id"] == "sincere-end"
    assert document["conversation"]["line"] == 3
    assert document["decision"]["outcome"] == "end"


def test_stdin_and_gzip(tmp_path: Path) -> None:
    data = TRANSCRIPTS.read_text(encoding="utf-8")
    stdin = run([POLICY, "-", "--id", "sincere-end"], input=data)
    assert stdin.exit_code == 0
    assert "conversation sincere-end (<stdin>:3)" in stdin.stdout
    packed = tmp_path / "fixture.jsonl.gz"
    packed.write_bytes(gzip.compress(data.encode("utf-8")))
    assert run([POLICY, packed, "--id", "sincere-end"]).exit_code == 0


def test_an_integer_id_is_found_as_text(tmp_path: Path) -> None:
    transcripts = write_jsonl(tmp_path / "t.jsonl", ['{"id": 7, "messages": []}'])
    result = run([POLICY, transcripts, "--id", "7"])
    assert result.exit_code == 0
    assert "conversation 7 (" in result.stdout


# ---------------------------------------------------------------- not found


def test_unknown_id_exits_1_and_counts_what_was_searched() -> None:
    result = run([POLICY, TRANSCRIPTS, "--id", "nothing-like-it"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: no conversation has id `nothing-like-it` (searched 4 conversations in 1 file)\n"
    )


def test_unknown_id_suggests_a_close_one() -> None:
    result = run([POLICY, TRANSCRIPTS, TRANSCRIPTS, "--id", "sincere-edn"])
    assert result.exit_code == 1
    assert "(searched 8 conversations in 2 files); did you mean `sincere-end`?" in result.stderr


def test_unknown_id_suggests_ids_that_contain_it() -> None:
    result = run([POLICY, TRANSCRIPTS, "--id", "close"])
    assert result.exit_code == 1
    assert "did you mean `close-to-warning`?" in result.stderr


def test_an_invalid_record_with_the_id_is_pointed_out(tmp_path: Path) -> None:
    transcripts = write_jsonl(
        tmp_path / "t.jsonl", [record("good", "hi"), {"id": "wanted", "messages": [{"x": 1}]}]
    )
    result = run([POLICY, transcripts, "--id", "wanted"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert LOCATED.match(lines[0]) and "warning[PL802]" in lines[0]
    assert lines[0].endswith("(record skipped)")
    assert lines[1].startswith("error: no conversation has id `wanted` (searched 1 conversation")
    assert lines[2].startswith(f"note: the record at {transcripts}:2 has this id but is invalid: ")


# ---------------------------------------------------------------- warnings


def test_invalid_records_are_skipped_with_a_located_warning() -> None:
    result = run([POLICY, BROKEN_SAMPLES, TRANSCRIPTS, "--id", "sincere-end"])
    assert result.exit_code == 0
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2
    assert all(LOCATED.match(line) and "warning[PL80" in line for line in warnings)
    assert warnings[0].startswith(f"{BROKEN_SAMPLES}:2:")
    assert "conversation sincere-end" in result.stdout


def test_many_invalid_records_are_counted(tmp_path: Path) -> None:
    transcripts = write_jsonl(
        tmp_path / "t.jsonl", ["{oops"] * (MAX_SKIPPED_SHOWN + 3) + [json.dumps(record("a", "hi"))]
    )
    result = run([POLICY, transcripts, "--id", "a"])
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert len(lines) == MAX_SKIPPED_SHOWN + 1
    assert lines[-1] == "... and 3 more invalid records skipped"


def test_an_id_in_several_files_uses_the_first(tmp_path: Path) -> None:
    other = write_jsonl(
        tmp_path / "other.jsonl", [record("x", "hello"), record("sincere-end", "hi")]
    )
    result = run([POLICY, TRANSCRIPTS, other, "--id", "sincere-end"])
    assert result.exit_code == 0
    assert result.stderr == (
        f"warning: id `sincere-end` is also at {other}:2; "
        f"explaining the first, at {TRANSCRIPTS}:3\n"
    )
    assert f"conversation sincere-end ({TRANSCRIPTS}:3): 3 messages" in result.stdout


# ---------------------------------------------------------------- policy, usage and I/O errors


def test_policy_errors_are_rendered_like_lint_and_exit_1() -> None:
    result = run([BROKEN_POLICY, TRANSCRIPTS, "--id", "sincere-end"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert re.search(r"^error\[PL\d{3}\]: ", result.stderr, re.M)
    assert f"--> {BROKEN_POLICY}:" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([POLICY, TRANSCRIPTS], id="no --id"),
        pytest.param([POLICY, "--id", "x"], id="no transcripts"),
        pytest.param([POLICY, "missing.jsonl", "--id", "x"], id="missing transcripts"),
        pytest.param(["missing.policy", TRANSCRIPTS, "--id", "x"], id="missing policy"),
        pytest.param([POLICY, CASES, "--id", "x"], id="directory"),
        pytest.param([POLICY, TRANSCRIPTS, "--id", "x", "--format", "xml"], id="bad format"),
        pytest.param([POLICY, TRANSCRIPTS, "--id", "x", "--color", "pink"], id="bad color"),
    ],
)
def test_usage_errors_exit_2(args: list[str | Path]) -> None:
    result = run(args)
    assert result.exit_code == 2
    assert result.stdout == ""


def test_an_unreadable_file_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("policylang.cli._common.iter_records", refuse)
    result = run([POLICY, TRANSCRIPTS, "--id", "x"])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot read `{TRANSCRIPTS}`: Permission denied\n"


def test_an_internal_error_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise policylang.explain.ExplainError("replay disagrees with the evaluator")

    monkeypatch.setattr(policylang.explain, "explain", broken)
    result = run([POLICY, TRANSCRIPTS, "--id", "sincere-end"])
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "internal error: ExplainError: replay disagrees with the evaluator\n"
    )


def test_help_lists_the_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "explain" in result.stdout
    help_text = CliRunner().invoke(main, ["explain", "--help"])
    assert help_text.exit_code == 0
    assert "--id ID" in help_text.stdout
