"""Helpers for the batch library tests: a small mixed corpus of transcript files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "tests" / "cli" / "fixtures" / "clean.policy"


def conversation(number: int) -> dict[str, object]:
    """A record whose outcome depends on its number: continue, end, escalate or branches."""
    kind = number % 5
    if kind == 1:
        texts = ["Can you suggest a name for my cat?", "How about Miso?", "Please end this chat."]
    elif kind == 2:
        texts = ["I am in danger right now.", "Please call emergency services."]
    elif kind == 3:
        return {
            "id": f"tree-{number}",
            "messages": [
                {"id": "1", "role": "user", "content": "Hello there"},
                {"id": "2", "parent_id": "1", "role": "assistant", "content": "Hi!"},
                {"id": "3a", "parent_id": "2", "role": "user", "content": "Please end this chat."},
                {"id": "3b", "parent_id": "2", "role": "user", "content": "Tell me a joke."},
            ],
        }
    else:
        texts = [f"What is {number} + {number}?", f"{2 * number}."]
    roles = ["user", "assistant"]
    return {
        "id": f"c-{number}",
        "messages": [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)],
    }


def jsonl(records: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


BAD_LINES = [
    b'{"id": "cut", "messages": [\n',
    b'{"id": "norole", "messages": [{"content": "x"}]}\n',
]


def write_corpus(directory: Path, records: int = 120) -> list[Path]:
    """Plain JSONL with invalid and blank lines, the same gzip-compressed, and a JSON array."""
    body = bytearray()
    for number in range(records):
        body += jsonl([conversation(number)])
        if number % 37 == 5:
            body += BAD_LINES[number % 2]
        if number % 41 == 7:
            body += b"\n"
    plain = directory / "a.jsonl"
    plain.write_bytes(bytes(body))
    packed = directory / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(jsonl([conversation(n) for n in range(records, 2 * records)])))
    array = directory / "c.json"
    array.write_text(
        json.dumps([conversation(1), 7, conversation(3)], indent=1) + "\n", encoding="utf-8"
    )
    return [plain, packed, array]
