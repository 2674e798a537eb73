"""Limits on transcripts: messages per conversation (PL811) and characters per message (PL812).

Every reader honours them the same way: the full reader, the fast native reader, JSON
arrays, gzip files, standard input, ``--jobs`` workers and the Dask engine. Beyond a
limit a record is a located error record and the run goes on, so records in =
decisions + errors still holds. Limits are passed small, so the files stay tiny.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from policylang.batch import Chunk, ReadFailure, Settings, Summary, evaluate_lines, run
from policylang.cli import main
from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.fastread import decode_native
from policylang.limits import DEFAULT_MAX_MESSAGE_LENGTH, NO_MESSAGE_LIMITS, MessageLimits
from policylang.runtime import Policy
from policylang.transcripts import (
    BranchError,
    Conversation,
    Record,
    RecordError,
    iter_records,
    parse_line,
)

REPO = Path(__file__).resolve().parents[2]
POLICY = str(REPO / "tests" / "cli" / "fixtures" / "clean.policy")
LIMITS = MessageLimits(max_messages=4, max_message_length=10)


def linear(record_id: str, *contents: str) -> dict[str, object]:
    roles = ("user", "assistant")
    return {
        "id": record_id,
        "messages": [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)],
    }


# Four messages, but two branches of three messages each: six messages to evaluate.
TREE: dict[str, object] = {
    "id": "tree",
    "messages": [
        {"id": "1", "role": "user", "content": "hi"},
        {"id": "2", "parent_id": "1", "role": "assistant", "content": "hello"},
        {"id": "3a", "parent_id": "2", "role": "user", "content": "a"},
        {"id": "3b", "parent_id": "2", "role": "user", "content": "b"},
    ],
}

RECORDS: list[dict[str, object] | str] = [
    linear("ok", "one", "two", "three", "four"),  # at the message limit
    linear("many", "1", "2", "3", "4", "5"),  # one message too many
    linear("wide", "\u00e9" * 10, "ok"),  # 10 characters (20 bytes): at the length limit
    linear("long", "fine", "x" * 11),  # one character too many
    TREE,
    {"messages": [{"role": "user", "content": "12345678901"}]},  # OpenAI-style, no id
    "{not json",
]


def write_jsonl(path: Path) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in RECORDS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def policy() -> Policy:
    loaded = load_policy(POLICY, DiagnosticSink())
    assert loaded is not None
    return loaded


# ---------------------------------------------------------------- one record


def parse(record: dict[str, object], limits: MessageLimits = LIMITS) -> Record | RecordError:
    result = parse_line(json.dumps(record).encode(), "t.jsonl", 3, limits=limits)
    assert result is not None
    return result


def test_a_conversation_at_the_limits_is_read() -> None:
    assert isinstance(parse(linear("ok", "one", "two", "three", "four")), Record)
    assert isinstance(parse(linear("wide", "\u00e9" * 10)), Record)


def test_one_message_too_many_points_at_the_first_beyond_the_limit() -> None:
    error = parse(linear("many", "1", "2", "3", "4", "5"))
    assert isinstance(error, RecordError)
    assert (error.code, error.name) == ("PL811", "transcript-too-many-messages")
    assert error.located() == (
        "t.jsonl:3:1: error[PL811] conversation has 5 messages, over the limit of 4;"
        " raise --max-messages to read it"
    )
    assert error.pointer == "messages/4"
    assert error.conversation_id == "many"


def test_every_branch_counts_its_own_messages() -> None:
    error = parse(TREE)
    assert isinstance(error, RecordError)
    assert error.code == "PL811"
    assert error.reason == (
        "the 2 branches of the conversation hold 6 messages in all (each branch is evaluated"
        " on its own), over the limit of 4; raise --max-messages to read it"
    )
    assert error.pointer == "messages"
    assert isinstance(parse(TREE, MessageLimits(max_messages=6)), Record)


def test_one_character_too_many_points_at_the_message() -> None:
    error = parse(linear("long", "fine", "\u00e9" * 11))
    assert isinstance(error, RecordError)
    assert (error.code, error.name) == ("PL812", "transcript-message-too-long")
    assert error.reason == (
        "messages/1/content: message is 11 characters long, over the limit of 10;"
        " raise --max-message-length to read it"
    )
    assert error.pointer == "messages/1/content"
    assert error.to_json()["pointer"] == "messages/1/content"


def test_no_limit_reads_anything() -> None:
    assert isinstance(parse(TREE, NO_MESSAGE_LIMITS), Record)
    assert isinstance(parse(linear("x", "y" * 100), NO_MESSAGE_LIMITS), Record)


def test_the_fast_reader_leaves_a_record_beyond_the_limits_to_the_full_reader() -> None:
    def fast(record: dict[str, object]) -> object:
        return decode_native(json.dumps(record).encode(), LIMITS)

    assert fast(linear("ok", "one", "two", "three", "four")) is not None
    assert fast(linear("wide", "\u00e9" * 10)) is not None
    assert fast(linear("many", "1", "2", "3", "4", "5")) is None
    assert fast(linear("long", "x" * 11)) is None


@pytest.mark.parametrize("input_format", ["auto", "native"])
def test_the_fast_and_the_full_path_give_the_same_rows(policy: Policy, input_format: str) -> None:
    lines = [
        (number, json.dumps(record).encode())
        for number, record in enumerate(RECORDS[:5], start=1)
        if not isinstance(record, str)
    ]
    fast = evaluate_lines(policy, "t.jsonl", lines, input_format, limits=LIMITS)  # type: ignore[arg-type]
    # ShareGPT input goes the full way only; the records are the same conversations.
    sharegpt = [
        (
            number,
            json.dumps(
                {
                    "id": record["id"],
                    "conversations": [
                        {"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]}
                        for m in record["messages"]
                    ],
                }
            ).encode(),
        )
        for number, raw in lines
        for record in [json.loads(raw)]
        if record["id"] != "tree"
    ]
    full = evaluate_lines(policy, "t.jsonl", sharegpt, "sharegpt", limits=LIMITS)
    assert [row.document for row in full] == [
        row.document for row in fast if row.document["line"] != 5
    ]
    assert [row.code for row in fast] == [None, "PL811", None, "PL812", "PL811"]


# ---------------------------------------------------------------- runs


def check_counts(items: list[Chunk | ReadFailure]) -> tuple[str, Summary]:
    text = ""
    summary = Summary()
    for item in items:
        assert isinstance(item, Chunk)
        text += item.text
        summary.merge(item.summary)
    assert summary.balanced
    return text, summary


def test_every_kind_of_input_applies_the_limits(
    policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = write_jsonl(tmp_path / "a.jsonl")
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    array = tmp_path / "c.json"
    array.write_text(json.dumps([r for r in RECORDS if not isinstance(r, str)]), "utf-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(plain.read_bytes())))
    settings = Settings(max_messages=4, max_message_length=10, chunk_lines=2, chunk_bytes=64)
    paths = [str(plain), str(packed), str(array), "-"]
    text, summary = check_counts(list(run(policy, paths, settings, jobs=1)))
    # Per file: 7 records, of which 4 beyond a limit and 1 invalid JSON (none in the array).
    assert summary.records == 7 + 7 + 6 + 7
    assert summary.codes == {"PL811": 2 * 4, "PL812": 2 * 4, "PL801": 3}
    assert summary.evaluated == 2 * 4
    errors = [json.loads(line)["error"] for line in text.splitlines() if '"error"' in line]
    assert [e["conversation_id"] for e in errors if e["code"] != "PL801"][:4] == [
        "many",
        "long",
        "tree",
        "a.jsonl:6".replace("a.jsonl", str(plain)),
    ]


def test_workers_apply_the_same_limits(policy: Policy, tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "a.jsonl")
    settings = Settings(max_messages=4, max_message_length=10, chunk_lines=2, chunk_bytes=64)
    one = check_counts(list(run(policy, [str(plain)], settings, jobs=1)))
    two = check_counts(list(run(policy, [str(plain)], settings, jobs=2)))
    assert one[0] == two[0]
    assert one[1].codes["PL811"] == 2


def test_the_dask_engine_applies_the_same_limits(policy: Policy, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    from policylang.engines.dask import run_on_dask

    plain = write_jsonl(tmp_path / "a.jsonl")
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    paths = [str(plain), str(packed)]
    settings = Settings(max_messages=4, max_message_length=10)
    expected = check_counts(list(run(policy, paths, settings, jobs=1)))
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as cluster:
        items = run_on_dask(
            policy, paths, settings, scheduler=cluster.scheduler_address, partition_size=100
        )
        got = check_counts(list(items))
    assert got[0] == expected[0]
    assert got[1].codes == {"PL811": 4, "PL812": 4, "PL801": 2}


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, ["check", POLICY, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result


def test_check_options_give_located_errors_and_the_run_goes_on(tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "a.jsonl")
    result = invoke(str(plain), "--max-messages", "4", "--max-message-length", "10", "-j", "1")
    assert result.exit_code == 1
    located = [line for line in result.stderr.splitlines() if "error[PL81" in line]
    assert located == [
        f"{plain}:2:1: error[PL811] conversation has 5 messages, over the limit of 4;"
        " raise --max-messages to read it",
        f"{plain}:4:1: error[PL812] messages/1/content: message is 11 characters long,"
        " over the limit of 10; raise --max-message-length to read it",
        f"{plain}:5:1: error[PL811] the 2 branches of the conversation hold 6 messages in all"
        " (each branch is evaluated on its own), over the limit of 4; raise --max-messages"
        " to read it",
        f"{plain}:6:1: error[PL812] messages/0/content: message is 11 characters long,"
        " over the limit of 10; raise --max-message-length to read it",
    ]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 7  # one row per record: 2 decisions + 5 errors
    assert "all 7 records accounted for: 2 evaluated (2 decisions) + 5 invalid" in result.stderr
    assert "invalid records: PL811 2, PL812 2, PL801 1" in result.stderr
    # With the defaults every record but the bad JSON line is read.
    default = invoke(str(plain), "-j", "1")
    assert "all 7 records accounted for: 6 evaluated (7 decisions) + 1 invalid" in default.stderr


@pytest.mark.parametrize("option", ["--max-messages", "--max-message-length"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_limit_must_be_a_positive_number(tmp_path: Path, option: str, value: str) -> None:
    plain = write_jsonl(tmp_path / "a.jsonl")
    result = invoke(str(plain), option, value)
    assert result.exit_code == 2
    assert option in result.stderr


# ---------------------------------------------------------------- other readers


def test_other_readers_apply_the_default_limits(tmp_path: Path) -> None:
    long = linear("long", "x" * (DEFAULT_MAX_MESSAGE_LENGTH + 1))
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(long) + "\n" + json.dumps(linear("ok", "hi")) + "\n", "utf-8")
    first, second = iter_records(str(path))
    assert isinstance(first, RecordError) and first.code == "PL812"
    assert isinstance(second, Record)
    # explain reads through the same reader: the record is skipped with a located warning.
    result = CliRunner().invoke(main, ["explain", POLICY, str(path), "--id", "long"])
    assert result.exit_code == 1
    assert f"{path}:1:1: warning[PL812] messages/0/content: message is 1,000,001" in (result.stderr)


# ---------------------------------------------------------------- message trees


def reference_paths(messages: list[dict[str, object]]) -> list[tuple[str, list[int]]]:
    """The straightforward quadratic split of a message tree, to compare against."""
    if not any("id" in m or "parent_id" in m for m in messages):
        return [("", list(range(len(messages))))]
    by_id: dict[object, int] = {}
    for index, message in enumerate(messages):
        if message.get("id") is None:
            continue
        if message["id"] in by_id:
            raise BranchError(index, "id", "duplicate")
        by_id[message["id"]] = index
    parents: list[int | None] = []
    for index, message in enumerate(messages):
        parent = message.get("parent_id")
        if parent is None:
            parents.append(index - 1 if index else None)
        elif parent not in by_id:
            raise BranchError(index, "parent_id", "unknown")
        else:
            parents.append(by_id[parent])
    has_child = {p for p in parents if p is not None}
    out = []
    for leaf in range(len(messages)):
        if leaf in has_child:
            continue
        path: list[int] = []
        seen: set[int] = set()
        node: int | None = leaf
        while node is not None:
            if node in seen:
                raise BranchError(node, "parent_id", "cycle")
            seen.add(node)
            path.append(node)
            node = parents[node]
        out.append((str(messages[leaf].get("id") or f"#{leaf}"), path[::-1]))
    reached = {i for _, p in out for i in p}
    for index in range(len(messages)):
        if index not in reached:
            raise BranchError(index, "parent_id", "cycle")
    return out


@pytest.mark.parametrize("seed", range(300))
def test_trees_split_as_the_reference_does(seed: int) -> None:
    chooser = random.Random(seed)
    size = chooser.randint(1, 12)
    messages: list[dict[str, object]] = []
    for index in range(size):
        message: dict[str, object] = {"role": "user", "content": "x"}
        if chooser.random() < 0.9:
            # Mostly unique ids, now and then a duplicate.
            message["id"] = str(chooser.randrange(size) if chooser.random() < 0.03 else index)
        draw = chooser.random()
        if draw < 0.6:
            if index:
                message["parent_id"] = str(chooser.randrange(index))  # an earlier message
        elif draw < 0.63:
            message["parent_id"] = str(chooser.randrange(size))  # perhaps a cycle
        elif draw < 0.64:
            message["parent_id"] = "unknown"
        messages.append(message)
    conversation = Conversation.model_validate({"id": "c", "messages": messages})
    try:
        paths = reference_paths(messages)
        expected: object = paths
        total: object = sum(len(path) for _, path in paths)
    except BranchError as exc:
        expected = total = (exc.index, exc.pointer)
    try:
        got: object = conversation.paths()
        counted: object = conversation.evaluated_messages()
    except BranchError as exc:
        got = counted = (exc.index, exc.pointer)
    assert got == expected
    assert counted == total
