"""``policylang check``: formats, --only, atomic output, exit codes, --jobs, progress, summary."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from check_helpers import POLICY, conversation, jsonl, write_corpus
from click.testing import CliRunner, Result

import policylang.batch as batch_module
import policylang.cli.check as check_module
from policylang.batch import Chunk, Summary, WorkerFailed
from policylang.cli import main

SCRIPT = Path(sys.executable).with_name("policylang")
TRANSCRIPTS = Path(__file__).parent / "fixtures" / "transcripts.jsonl"
SUMMARY_ROW = re.compile(r"^ *(?P<label>[a-z_][a-z_ -]*?) +(?P<count>[\d,]+)(?:  .*)?$", re.M)


def run(args: Sequence[str | os.PathLike[str]], *, input: bytes | None = None) -> Result:
    result = CliRunner().invoke(main, ["check", *map(str, args)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def counts(stderr: str) -> dict[str, int]:
    return {m["label"]: int(m["count"].replace(",", "")) for m in SUMMARY_ROW.finditer(stderr)}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def corpus(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "in"
    directory.mkdir()
    return write_corpus(directory)


# ---------------------------------------------------------------- output formats


def test_jsonl_is_the_default(corpus: list[Path]) -> None:
    result = run([POLICY, *corpus, "--jobs", "1"])
    assert result.exit_code == 1  # the corpus has invalid records
    documents = json_lines(result.stdout)
    decisions = [d for d in documents if "error" not in d]
    errors = [d for d in documents if "error" in d]
    summary = counts(result.stderr)
    assert len(decisions) == summary["conversations"]
    assert len(errors) == summary["errors"] == 7 + 6 + 1
    assert {d["file"] for d in documents} == {str(path) for path in corpus}
    branches = [d for d in decisions if "branch" in d]
    assert {d["branch"] for d in branches} == {"3a", "3b"}
    assert [d["index"] for d in documents if d["file"] == str(corpus[2])] == [0, 1, 2, 2]


def test_csv(corpus: list[Path]) -> None:
    jsonl_run = run([POLICY, *corpus, "--jobs", "1"])
    result = run([POLICY, *corpus, "--jobs", "1", "--format", "csv"])
    assert result.exit_code == 1
    table = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    documents = json_lines(jsonl_run.stdout)
    assert len(table) == len(documents)
    assert list(table[0]) == [
        "file",
        "line",
        "index",
        "conversation_id",
        "branch",
        "outcome",
        "message_index",
        "rule",
        "category",
        "reason",
        "blocked",
        "error_code",
        "error_message",
    ]
    for row, document in zip(table, documents, strict=True):
        assert (row["file"], row["line"]) == (document["file"], str(document["line"]))
        assert row["index"] == str(document.get("index", ""))
        if "error" in document:
            assert (row["outcome"], row["error_code"]) == ("invalid", document["error"]["code"])
            assert row["error_message"] == document["error"]["message"]
        else:
            assert row["outcome"] == document["outcome"]
            assert row["conversation_id"] == document["conversation_id"]
            assert row["branch"] == document.get("branch", "")
            assert row["rule"] == (document["rule"] or "")
    assert result.stderr == jsonl_run.stderr


def test_human_table_stays_aligned(tmp_path: Path) -> None:
    directory = tmp_path / ("a-rather-long-directory-name-" * 3)
    directory.mkdir()
    path = directory / "conversations.jsonl"
    records = [conversation(n) for n in range(4)]
    records.append({"id": "an-identifier-far-longer-than-its-column" * 2, "messages": []})
    path.write_bytes(jsonl(records) + b"not json\n")
    result = run([POLICY, path, "--format", "human"])
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RECORD", "ID", "OUTCOME", "AT", "RULE", "CATEGORY", "REASON"]
    assert len(lines) == 1 + 6 + 1  # header, 5 records (one with two branches), one error
    starts = [lines[0].index(title) for title in ("ID", "OUTCOME", "AT ", "RULE", "CATEGORY")]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  " and line[start] != " ", (line, start)
    assert lines[1].startswith("\u2026") and lines[1].split()[0].endswith("conversations.jsonl:1")
    assert "\u2026" in lines[-2]  # the long id is cut
    assert lines[-1].split()[2:4] == ["invalid", "-"]


# ---------------------------------------------------------------- --only


def test_only_is_repeatable_and_keeps_errors(corpus: list[Path]) -> None:
    everything = json_lines(run([POLICY, *corpus, "--jobs", "1"]).stdout)
    result = run([POLICY, *corpus, "--only", "ended", "--only", "escalated", "--jobs", "1"])
    shown = json_lines(result.stdout)
    assert shown == [d for d in everything if d.get("outcome", "end") in {"end", "escalate"}]
    assert any("error" in d for d in shown)
    assert counts(result.stderr)["conversations"] == len([d for d in everything if "outcome" in d])


# ---------------------------------------------------------------- --output


def test_output_replaces_the_file_and_keeps_its_mode(corpus: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    result = run([POLICY, *corpus, "--output", out])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert out.read_text() == run([POLICY, *corpus]).stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def failing_run(exception: BaseException) -> Any:
    """A stand-in for batch.run that gives one real chunk, then fails."""
    real = batch_module.run

    def fake(*args: Any, **kwargs: Any) -> Iterator[object]:
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise exception

    return fake


@pytest.mark.parametrize(
    ("exception", "code", "message"),
    [
        (RuntimeError("boom"), 3, "internal error: RuntimeError: boom"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (WorkerFailed("a worker process stopped unexpectedly"), 3, "error: a worker process"),
    ],
    ids=["internal-error", "interrupt", "dead-worker"],
)
def test_output_is_untouched_when_the_run_fails(
    corpus: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exception: BaseException,
    code: int,
    message: str,
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    monkeypatch.setattr(check_module, "run", failing_run(exception))
    result = run([POLICY, *corpus, "--output", out])
    assert result.exit_code == code
    assert message in result.stderr
    assert out.read_text() == "old\n"
    assert leftovers(tmp_path) == []
    assert "records read" not in result.stderr  # no summary for a run that did not finish


def test_output_is_untouched_when_it_cannot_be_written(
    corpus: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(check_module.os, "fsync", full)
    result = run([POLICY, *corpus, "--output", out])
    assert result.exit_code == 2
    assert f"error: cannot write `{out}`: No space left on device" in result.stderr
    assert out.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_output_through_a_symbolic_link(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    result = run([POLICY, TRANSCRIPTS, "-o", link])
    assert result.exit_code == 0
    assert link.is_symlink()
    assert len(json_lines(real.read_text())) == 5
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_output_to_a_pipe_or_device_is_written_not_replaced(tmp_path: Path) -> None:
    # As `-o /dev/null` must leave the device alone, a named pipe stays a pipe.
    fifo = tmp_path / "out.pipe"
    os.mkfifo(fifo)
    received = bytearray()

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.extend(handle.read())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        result = run([POLICY, TRANSCRIPTS, "-o", fifo])
    finally:
        reader.join(timeout=30)
    assert result.exit_code == 0
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert len(json_lines(received.decode())) == 5
    assert leftovers(tmp_path) == []


def test_output_in_a_missing_directory(tmp_path: Path) -> None:
    result = run([POLICY, TRANSCRIPTS, "--output", tmp_path / "nowhere" / "out.jsonl"])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


# ---------------------------------------------------------------- exit codes


def test_allow_errors(corpus: list[Path], tmp_path: Path) -> None:
    assert run([POLICY, *corpus]).exit_code == 1
    allowed = run([POLICY, *corpus, "--allow-errors"])
    assert allowed.exit_code == 0
    assert counts(allowed.stderr)["errors"] == 14  # still written and counted
    assert run([POLICY, TRANSCRIPTS, "--allow-errors"]).exit_code == 0
    missing = run([POLICY, tmp_path / "missing.jsonl", *corpus, "--allow-errors"])
    assert missing.exit_code == 2
    assert f"error: cannot read `{tmp_path / 'missing.jsonl'}`" in missing.stderr
    assert len(json_lines(missing.stdout)) == len(json_lines(allowed.stdout))


@pytest.mark.parametrize(
    "args", [["--jobs", "0"], ["--max-record-size", "lots"], ["--max-record-size", "0"]]
)
def test_bad_option_values_are_usage_errors(args: list[str]) -> None:
    result = run([POLICY, TRANSCRIPTS, *args])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_a_record_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    big = {"id": "big", "messages": [{"role": "user", "content": "x" * 5000}]}
    path.write_bytes(jsonl([conversation(0), big, conversation(1)]))
    result = run([POLICY, path, "--max-record-size", "4K"])
    assert result.exit_code == 1
    first, error, last = json_lines(result.stdout)
    assert error["error"]["code"] == "PL810"
    assert error["line"] == 2 and error["error"]["conversation_id"] is None
    assert (first["line"], last["line"]) == (1, 3)
    assert f"{path}:2:1: error[PL810] record is larger than the limit: 5,0" in result.stderr
    assert "raise --max-record-size" in result.stderr
    assert run([POLICY, path, "--max-record-size", "1M"]).exit_code == 0


def test_records_are_accounted_for(corpus: list[Path]) -> None:
    result = run([POLICY, *corpus])
    summary = counts(result.stderr)
    documents = json_lines(result.stdout)
    errors = len([d for d in documents if "error" in d])
    evaluated = len({(d["file"], d["line"], d.get("index")) for d in documents if "error" not in d})
    assert summary["records read"] == evaluated + errors
    assert summary["conversations"] == len(documents) - errors  # branches count one each
    assert summary["conversations"] > evaluated
    assert (
        f"all {evaluated + errors:,} records accounted for: {evaluated:,} evaluated"
        f" ({summary['conversations']:,} decisions) + {errors} invalid"
    ) in result.stderr
    outcomes = [summary[name] for name in ("ended", "escalated", "warned", "continued")]
    assert sum(outcomes) == summary["conversations"]
    assert summary["ended"] == len([d for d in documents if d.get("outcome") == "end"])
    assert summary["end_on_request"] == summary["ended"]
    assert summary["blocked ends"] == len(
        [d for d in documents if any(event["blocked"] for event in d.get("events", []))]
    )


def test_a_mismatch_in_the_accounting_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def lossy(*args: Any, **kwargs: Any) -> Iterator[Chunk]:
        yield Chunk("", Summary(), (), records=3, read=0)

    monkeypatch.setattr(check_module, "run", lossy)
    result = run([POLICY, TRANSCRIPTS])
    assert result.exit_code == 3
    assert "internal error: 3 records read but 0 accounted for" in result.stderr


def test_summary_counts_per_outcome() -> None:
    result = run([POLICY, TRANSCRIPTS])
    assert result.exit_code == 0
    summary = counts(result.stderr)
    assert [summary[k] for k in ("conversations", "ended", "escalated", "warned", "continued")] == [
        5,
        2,
        1,
        0,
        2,
    ]
    assert (summary["errors"], summary["records read"], summary["blocked ends"]) == (0, 5, 1)
    assert (summary["danger"], summary["end_on_request"], summary["end_persistent"]) == (1, 1, 1)
    assert summary["zapguns"] == 1
    assert result.stderr.rstrip().endswith(
        "all 5 records accounted for: 5 evaluated (5 decisions) + 0 invalid"
    )


def test_quiet_prints_no_summary(corpus: list[Path]) -> None:
    result = run([POLICY, *corpus, "--quiet", "--max-errors", "0"])
    assert result.exit_code == 1
    assert result.stderr == "... and 14 more invalid records (all are in the output)\n"


# ---------------------------------------------------------------- --jobs


def test_jobs_give_identical_output(
    corpus: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parallel_runs: list[int] = []
    real = batch_module._parallel

    def spy(*args: Any, **kwargs: Any) -> Any:
        parallel_runs.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_module, "_parallel", spy)
    inputs = [*corpus, tmp_path / "missing.jsonl", "-"]
    stdin = jsonl([conversation(n) for n in range(300)]) + b"[1]\n"
    results = {jobs: run([POLICY, *inputs, "--jobs", str(jobs)], input=stdin) for jobs in (1, 2, 3)}
    assert parallel_runs == [2, 3]  # --jobs 1 runs in this process
    first = results[1]
    assert first.exit_code == 2  # the missing file
    assert len(first.stdout) > 100_000
    for result in results.values():
        assert result.exit_code == first.exit_code
        assert result.stdout_bytes == first.stdout_bytes
        assert result.stderr_bytes == first.stderr_bytes
    for fmt in ("csv", "human"):
        one = run([POLICY, *corpus, "--jobs", "1", "--format", fmt])
        two = run([POLICY, *corpus, "--jobs", "2", "--format", fmt])
        assert one.stdout_bytes == two.stdout_bytes


# ---------------------------------------------------------------- progress


def test_no_progress_bar_when_stderr_is_not_a_terminal(corpus: list[Path]) -> None:
    result = run([POLICY, *corpus])
    assert "checking" not in result.stderr
    assert "\r" not in result.stderr


needs_pty = pytest.mark.skipif(
    not SCRIPT.exists() or sys.platform == "win32", reason="needs the installed script and a pty"
)


def run_on_a_terminal(args: list[str]) -> tuple[int, str, bytes]:
    """Run check with stderr on a pseudo-terminal; return its exit code, stderr and stdout."""
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), "check", *args], stdout=subprocess.PIPE, stderr=terminal
    )
    os.close(terminal)
    shown = bytearray()
    stdout = bytearray()
    assert process.stdout is not None
    streams = {controller, process.stdout.fileno()}
    while streams:
        ready, _, _ = select.select(list(streams), [], [], 60)
        assert ready, "check did not finish"
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal closed
                data = b""
            if not data:
                streams.discard(fd)
            (shown if fd == controller else stdout).extend(data)
    os.close(controller)
    return process.wait(), shown.decode("utf-8", "replace"), bytes(stdout)


@needs_pty
def test_progress_bar_on_a_terminal(corpus: list[Path]) -> None:
    code, stderr, stdout = run_on_a_terminal([str(POLICY), *map(str, corpus)])
    assert code == 1
    assert "checking" in stderr and "100%" in stderr
    summary = counts(stderr.replace("\r\n", "\n"))  # the summary after the bar
    assert f"100%  {summary['records read']:,} records" in stderr  # the records read so far
    assert stdout.count(b"\n") > 1000
    quiet, stderr, _ = run_on_a_terminal([str(POLICY), *map(str, corpus), "--quiet"])
    assert quiet == 1
    assert "checking" not in stderr and "records read" not in stderr


# ---------------------------------------------------------------- interrupts


@pytest.mark.skipif(not SCRIPT.exists() or sys.platform == "win32", reason="needs POSIX signals")
def test_ctrl_c_stops_cleanly(corpus: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    # The corpus is read, then standard input, which stays open: check waits there.
    process = subprocess.Popen(
        [str(SCRIPT), "check", str(POLICY), *map(str, corpus), "-", "--jobs", "2", "-o", str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not leftovers(tmp_path) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert leftovers(tmp_path), "check never started writing"
        time.sleep(1.0)  # let it read the files and wait on stdin
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    text = stderr.decode()
    assert text.rstrip().endswith("interrupted")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert out.read_text() == "old\n"
    assert leftovers(tmp_path) == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the workers are gone too
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("worker processes outlived check")


# ---------------------------------------------------------------- conformance


def test_conformance(tmp_path: Path) -> None:
    ended = {
        "id": "ended",
        "messages": [
            {"role": "user", "content": "Please end this chat."},
            {"role": "assistant", "content": "Ending.", "end_conversation": True},
            {"role": "user", "content": "Wait, one more thing."},
        ],
    }
    missed = {"id": "missed", "messages": [{"role": "user", "content": "Please end this chat."}]}
    unjustified = {
        "id": "unjustified",
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Bye.", "end_conversation": True},
        ],
    }
    path = tmp_path / "t.jsonl"
    path.write_bytes(jsonl([ended, missed, unjustified, conversation(0)]))
    result = run([POLICY, path, "--conformance"])
    assert result.exit_code == 0
    documents = json_lines(result.stdout)
    statuses = [d["conformance"]["status"] for d in documents]
    assert statuses == ["agree", "missed_end", "unjustified_end", "agree"]
    assert documents[0]["conformance"]["post_termination_messages"] == [2]
    summary = counts(result.stderr)
    assert (summary["agree"], summary["missed_end"], summary["unjustified_end"]) == (2, 1, 1)
    assert summary["post-termination"] == 1
    assert "took 1 user message after its own end" in result.stderr
    plain = run([POLICY, path])
    assert all("conformance" not in d for d in json_lines(plain.stdout))
    assert "missed_end" not in plain.stderr
    table = list(
        csv.DictReader(io.StringIO(run([POLICY, path, "--conformance", "--format", "csv"]).stdout))
    )
    assert [row["conformance"] for row in table] == statuses
