"""batch.run: chunked reading, worker processes, input order, bounded and lazy reading."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import multiprocessing
import os
import random
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import conversation, jsonl, write_corpus

import policylang.batch as batch_module
from policylang.batch import Chunk, ReadFailure, Settings, WorkerFailed, run
from policylang.runtime import Policy
from policylang.transcripts import RecordError, iter_lines

SMALL = Settings(chunk_lines=7, chunk_bytes=2048)
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


def test_a_json_array_is_read_whole_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([conversation(n) for n in range(50)]), encoding="utf-8")
    size = path.stat().st_size
    items = list(iter_lines(str(path), max_record_size=size))
    assert len(items) == 50
    assert not any(isinstance(item, RecordError) for item in items)
    # One byte more than the limit: the file is one error, and is not read further.
    [error] = list(iter_lines(str(path), max_record_size=size - 1))
    assert isinstance(error, RecordError) and error.code == "PL810"
    assert (error.line, error.column) == (1, 1)
    assert "JSON array file is larger than the limit" in error.reason
    assert len(list(iter_lines(str(path)))) == 50  # the default limit: 64 MiB


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


# ---------------------------------------------------------------- spans of plain files


def reader_items(path: Path, limit: int | None) -> list[object]:
    """What the line reader gives: numbered non-blank lines (line ends cut) and PL810 errors."""
    items: list[object] = []
    for item in iter_lines(str(path), max_record_size=limit):
        if isinstance(item, tuple):
            items.append((item[0], item[1].removesuffix(b"\n")))
        else:
            assert isinstance(item, RecordError)
            items.append((item.line, item.code, item.reason))
    return items


def span_items(path: Path, settings: Settings) -> tuple[list[object], int, int]:
    """The same from the spans a plain file is cut into; also how many spans and bytes."""
    plan = batch_module._plan_plain(str(path), settings)
    assert plan is not None
    items: list[object] = []
    spans = read = 0
    for task in plan:
        assert not isinstance(task, ReadFailure)
        read += task.read
        if isinstance(task, batch_module._Span):
            spans += 1
            items.extend(batch_module._span_lines(task))
        else:
            (error,) = task.results
            assert isinstance(error, RecordError)
            items.append((error.line, error.code, error.reason))
    return items, spans, read


def random_file(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(0, 60)):
        kind = rng.random()
        if kind < 0.1:
            lines.append(rng.choice([b"", b"  ", b"\t\r"]))
        elif kind < 0.2:
            lines.append(b"x" * rng.randrange(200, 3000))  # long, sometimes over the limit
        else:
            lines.append(
                json.dumps({"id": rng.randrange(99), "n": "y" * rng.randrange(40)}).encode()
            )
        if rng.random() < 0.1:
            lines[-1] += b"\r"
    data = b"\n".join(lines)
    if rng.random() < 0.7 and data:
        data += b"\n"
    if rng.random() < 0.2:
        data = b"\xef\xbb\xbf" + data
    return data


@pytest.mark.parametrize("seed", range(40))
def test_spans_hold_exactly_the_lines_the_line_reader_gives(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "t.jsonl"
    data = random_file(rng)
    path.write_bytes(data)
    limit = rng.choice([None, 1000, 2000, 5000])
    settings = Settings(chunk_bytes=rng.choice([1, 64, 700, 4096, 1 << 20]), max_record_size=limit)
    items, _, read = span_items(path, settings)
    assert items == reader_items(path, limit)
    assert read == len(data)


def test_spans_are_cut_at_about_chunk_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(jsonl([conversation(n) for n in range(400)]))
    items, spans, _ = span_items(path, Settings(chunk_bytes=4096))
    assert len(items) == 400
    size = path.stat().st_size
    assert size // (4096 + 1024 + 300) <= spans <= size // 4096 + 1


def test_what_is_read_line_by_line(tmp_path: Path) -> None:
    settings = Settings()
    array = tmp_path / "a.json"
    array.write_text("\n [1]")
    assert batch_module._plan_plain(str(array), settings) is None
    as_jsonl = tmp_path / "a.jsonl"
    as_jsonl.write_text("[1]\n")
    assert batch_module._plan_plain(str(as_jsonl), settings) is not None
    packed = tmp_path / "p.jsonl"
    packed.write_bytes(gzip.compress(b"{}\n"))
    assert batch_module._plan_plain(str(packed), settings) is None
    empty = tmp_path / "e.jsonl"
    empty.write_bytes(b"")
    assert list(batch_module._plan_plain(str(empty), settings) or [1]) == []


def test_a_file_replaced_while_it_is_read(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(jsonl([conversation(n) for n in range(200)]))
    settings = Settings(chunk_bytes=4096)
    chunks = run(policy, [str(path)], settings, jobs=1)
    first = next(chunks)
    assert isinstance(first, Chunk)
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(path.read_bytes())
    replacement.replace(path)  # the same content, but another file
    rest = list(chunks)
    assert len(rest) == 1 and isinstance(rest[0], ReadFailure)
    assert str(rest[0].error) == "the file changed while it was being read" or (
        rest[0].error.strerror == "the file changed while it was being read"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_named_pipe_is_read_once_and_whole(policy: Policy, tmp_path: Path, jobs: int) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    data = jsonl([conversation(n) for n in range(300)])

    def write() -> None:
        with open(fifo, "wb") as handle:
            handle.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        chunks = [c for c in run(policy, [str(fifo)], SMALL, jobs=jobs) if isinstance(c, Chunk)]
    finally:
        writer.join(timeout=30)
    assert sum(chunk.records for chunk in chunks) == 300
