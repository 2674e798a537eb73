"""batch.run: chunked reading, worker processes, input order, bounded and lazy reading."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import multiprocessing
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import conversation, jsonl, write_corpus

import policylang.batch as batch_module
from policylang.batch import Chunk, ReadFailure, Settings, WorkerFailed, run
from policylang.runtime import Policy
from policylang.transcripts import RecordError, iter_lines

SMALL = Settings(chunk_lines=7)
"""Small chunks, so that a small corpus makes many of them."""


def outcome(items: list[Chunk | ReadFailure]) -> list[tuple[Any, ...]]:
    """What a run gave, comparable across runs (an OSError is equal only to itself)."""
    return [
        ("failure", item.path, str(item.error))
        if isinstance(item, ReadFailure)
        else ("chunk", item.text, item.errors, item.records, item.read, item.summary)
        for item in items
    ]


def test_jobs_give_the_same_output_in_input_order(policy: Policy, tmp_path: Path) -> None:
    plain, packed, array = write_corpus(tmp_path)
    paths = [str(plain), str(tmp_path / "missing.jsonl"), str(packed), str(array)]
    one = list(run(policy, paths, SMALL, jobs=1))
    two = list(run(policy, paths, SMALL, jobs=2))
    three = list(run(policy, paths, SMALL, jobs=3))
    assert outcome(one) == outcome(two) == outcome(three)
    # Many chunks, a read failure in its place, and rows in file and line order.
    assert len(one) > 20
    assert [item.path for item in one if isinstance(item, ReadFailure)] == [paths[1]]
    documents = [
        json.loads(line)
        for item in one
        if isinstance(item, Chunk)
        for line in item.text.splitlines()
    ]
    places = [(paths.index(d["file"]), d["line"], d.get("index", 0)) for d in documents]
    assert places == sorted(places)


def test_workers_are_spawn_safe(policy: Policy, tmp_path: Path) -> None:
    plain = tmp_path / "t.jsonl"
    plain.write_bytes(jsonl([conversation(n) for n in range(30)]) + b"{\n")
    spawn = multiprocessing.get_context("spawn")
    parallel = list(run(policy, [str(plain)], SMALL, jobs=2, context=spawn))
    assert outcome(parallel) == outcome(list(run(policy, [str(plain)], SMALL, jobs=1)))


def test_summaries_count_every_record(policy: Policy, tmp_path: Path) -> None:
    paths = [str(path) for path in write_corpus(tmp_path)]
    chunks = [item for item in run(policy, paths, SMALL, jobs=2) if isinstance(item, Chunk)]
    records = sum(chunk.records for chunk in chunks)
    summary = chunks[0].summary
    for chunk in chunks[1:]:
        summary = summary + chunk.summary
    # 120 records and 4 bad lines, 120 gzip records, 3 array elements (one bad).
    assert records == summary.records == 247
    assert summary.errors == 5
    assert summary.records == summary.evaluated + summary.errors
    assert sum(chunk.read for chunk in chunks) == sum(os.path.getsize(p) for p in paths)


def test_only_filters_written_rows_but_not_counts(policy: Policy, tmp_path: Path) -> None:
    paths = [str(path) for path in write_corpus(tmp_path)]
    settings = Settings(only=frozenset({"end"}))
    chunks = [item for item in run(policy, paths, settings) if isinstance(item, Chunk)]
    documents = [json.loads(line) for chunk in chunks for line in chunk.text.splitlines()]
    assert {d.get("outcome", "error") for d in documents} == {"end", "error"}
    total = sum(chunk.summary.decisions for chunk in chunks)
    assert total > len([d for d in documents if "outcome" in d])


# ---------------------------------------------------------------- lazy and bounded reading


class Endless(io.RawIOBase):
    """Standard input that never ends: the same record over and over. Counts bytes read."""

    def __init__(self) -> None:
        super().__init__()
        self.line = jsonl([conversation(0)])
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = (self.line * (len(view) // len(self.line) + 1))[: len(view)]
        view[:] = data
        self.read_bytes += len(data)
        return len(data)


@pytest.mark.parametrize("jobs", [1, 2])
def test_reading_is_lazy_and_bounded(
    policy: Policy, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    source = Endless()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(source)))
    settings = Settings(chunk_lines=50)
    chunks = run(policy, ["-"], settings, jobs=jobs)
    taken = list(itertools.islice(chunks, 4))
    chunks.close()
    assert all(isinstance(chunk, Chunk) and chunk.records == 50 for chunk in taken)
    # At most the chunks read ahead for the workers (2 * jobs + 1) and the buffers.
    ahead = 4 + (2 * jobs + 1 if jobs > 1 else 0) + 1
    assert source.read_bytes <= ahead * 50 * len(source.line) + 3 * (1 << 16)


def long_record_file(path: Path, size: int) -> bytes:
    record = conversation(0)
    messages: list[dict[str, str]] = record["messages"]  # type: ignore[assignment]
    long = {"id": "long", "messages": [{"role": "user", "content": "x" * size}]}
    data = jsonl([record]) + jsonl([long]) + jsonl([{**record, "messages": messages}])
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return jsonl([long])


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz", "t.json"])
def test_a_record_over_the_limit_is_an_error_and_is_not_held(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    line = long_record_file(path, 8 << 20)
    limit = 256 << 10
    tracemalloc.start()
    try:
        items = list(iter_lines(str(path), max_record_size=limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 << 20, peak  # the long line is 8 MiB
    first, error, last = items
    assert isinstance(first, tuple) and first[0] == 1
    assert isinstance(last, tuple) and last[0] == 3
    assert isinstance(error, RecordError)
    assert (error.line, error.column, error.code) == (2, 1, "PL810")
    assert f"{len(line) - 1:,} bytes, over {limit:,}" in error.reason
    assert "--max-record-size" in error.reason


def test_a_record_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    line = long_record_file(path, 1000)
    for limit, ok in ((len(line) - 1, True), (len(line) - 2, False)):
        items = list(iter_lines(str(path), max_record_size=limit))
        assert isinstance(items[1], tuple) is ok, limit


def test_a_json_array_is_read_whole_whatever_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([conversation(n) for n in range(50)]), encoding="utf-8")
    items = list(iter_lines(str(path), max_record_size=100))
    assert len(items) == 50
    assert not any(isinstance(item, RecordError) for item in items)


def test_run_reports_the_long_record_and_goes_on(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    long_record_file(path, 100_000)
    chunks = list(run(policy, [str(path)], Settings(max_record_size=10_000), jobs=1))
    documents = [
        json.loads(line) for c in chunks if isinstance(c, Chunk) for line in c.text.splitlines()
    ]
    assert [("error" in d, d["line"]) for d in documents] == [(False, 1), (True, 2), (False, 3)]
    assert documents[1]["error"]["code"] == "PL810"


# ---------------------------------------------------------------- failures


def _die(task: object) -> object:
    os._exit(7)


def _explode(task: object) -> object:
    raise ValueError("evaluation failed")


fork_only = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)


@fork_only
def test_a_dead_worker_is_reported(
    policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(path) for path in write_corpus(tmp_path)]
    # Forked workers see the replaced function.
    monkeypatch.setattr(batch_module, "_work", _die)
    with pytest.raises(WorkerFailed, match="worker process stopped unexpectedly"):
        list(run(policy, paths, SMALL, jobs=2, context=multiprocessing.get_context("fork")))


@fork_only
def test_an_exception_on_a_worker_reaches_the_caller(
    policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(path) for path in write_corpus(tmp_path)]
    monkeypatch.setattr(batch_module, "_work", _explode)
    with pytest.raises(ValueError, match="evaluation failed"):
        list(run(policy, paths, SMALL, jobs=2, context=multiprocessing.get_context("fork")))
