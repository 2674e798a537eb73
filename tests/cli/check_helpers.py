"""Helpers for the ``policylang check`` tests: a mixed corpus big enough for several chunks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent
POLICY = HERE / "fixtures" / "clean.policy"


def conversation(number: int) -> dict[str, object]:
    """A record whose outcome depends on its number: continue, end, escalate or two branches."""
    kind = number % 5
    if kind == 3:
        return {
            "id": f"tree-{number}",
            "messages": [
                {"id": "1", "role": "user", "content": "Hello there"},
                {"id": "2", "parent_id": "1", "role": "assistant", "content": "Hi!"},
                {"id": "3a", "parent_id": "2", "role": "user", "content": "Please end this chat."},
                {"id": "3b", "parent_id": "2", "role": "user", "content": "Tell me a joke."},
            ],
        }
    texts = {
        1: ["Can you suggest a name for my cat?", "How about Miso?", "Please end this chat."],
        2: ["I am in danger right now.", "Please call emergency services."],
    }.get(kind, [f"What is {number} + {number}?", f"{2 * number}."])
    roles = ["user", "assistant"]
    return {
        "id": f"c-{number}",
        "messages": [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)],
    }


def jsonl(records: list[object]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def write_corpus(directory: Path, records: int = 600) -> list[Path]:
    """Plain JSONL with invalid, non-UTF-8 and blank lines; gzip JSONL; a JSON array.

    ``records`` is large enough for several chunks of the plain file, so that
    ``--jobs 2`` starts worker processes.
    """
    body = bytearray()
    for number in range(records):
        body += jsonl([conversation(number)])
        if number % 97 == 5:
            body += b'{"id": "cut", "messages": [\n'
        if number % 101 == 7:
            body += b"\n\xff\xfe\n"
    plain = directory / "a.jsonl"
    plain.write_bytes(bytes(body))
    packed = directory / "b.jsonl.gz"
    packed.write_bytes(
        gzip.compress(jsonl([conversation(n) for n in range(records, records + 300)]))
    )
    array = directory / "c.json"
    array.write_text(json.dumps([conversation(1), 7, conversation(3)], indent=1), encoding="utf-8")
    return [plain, packed, array]
