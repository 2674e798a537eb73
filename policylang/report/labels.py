"""Gold label files: one JSON object per line, matched to conversations by id.

The format is that of the shared corpora's ``gold/*.jsonl``::

    {"id": "...", "label": "end|user_request|crisis|continue", "end_at": 6, ...}

``end_at`` is the 0-based index of the first message at which ending is justified;
it is required for ``end`` and ``user_request`` rows and ignored for the others.
Other fields (``category``, ``pushes``, ``note``) are ignored.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from policylang.report.model import GOLD_LABELS, ReportError

__all__ = [
    "AUTO",
    "GoldLabel",
    "LabelError",
    "Labels",
    "corpus_name",
    "discover_labels",
    "read_labels",
]

AUTO: Final = "auto"
"""The ``--labels`` value that looks for ``gold/<corpus>.jsonl`` beside each corpus."""

GOLD_FOLDER: Final = "gold"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_SUFFIXES: Final = (".gz", ".jsonl")


class LabelError(ReportError):
    """A label file cannot be read or holds something that is not a label."""


@dataclass(frozen=True, slots=True)
class GoldLabel:
    """One row of a label file."""

    id: str
    label: str
    end_at: int | None
    source: str
    """``path:line`` of the row."""

    def same_as(self, other: GoldLabel) -> bool:
        """Whether two rows say the same thing (wherever they come from)."""
        return (self.label, self.end_at) == (other.label, other.end_at)


def corpus_name(path: str) -> str:
    """The name a corpus goes by: its file name without ``.gz`` and ``.jsonl``.

    ``../corpora/hh-benign-dev.jsonl.gz`` is ``hh-benign-dev``; standard input
    (``-``) is ``stdin``.
    """
    if path == "-":
        return "stdin"
    name = os.path.basename(path)
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name


def discover_labels(corpus: str) -> str | None:
    """The label file ``--labels auto`` uses for ``corpus``, if there is one.

    It is ``gold/<name>.jsonl`` (or ``.jsonl.gz``) in the corpus's folder, where
    ``<name>`` is :func:`corpus_name`.
    """
    if corpus == "-":
        return None
    folder = os.path.join(os.path.dirname(corpus), GOLD_FOLDER)
    name = corpus_name(corpus)
    for candidate in (f"{name}.jsonl", f"{name}.jsonl.gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as raw:
        head = raw.read(2)
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if head == _GZIP_MAGIC else raw
        yield from enumerate(stream, start=1)


def read_labels(path: str) -> list[GoldLabel]:
    """Every label in ``path`` (plain or gzip JSONL), in file order.

    Blank lines are skipped. Raises :class:`LabelError` with ``path:line: problem``
    for a row that is not a label, and for a file that cannot be read.
    """
    labels: list[GoldLabel] = []
    try:
        for number, raw in _lines(path):
            where = f"{path}:{number}"
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise LabelError(f"{where}: line is not valid UTF-8") from None
            if not text.strip():
                continue
            labels.append(_parse(text, where))
    except OSError as exc:
        detail = exc.strerror or str(exc) or type(exc).__name__
        raise LabelError(f"cannot read labels `{path}`: {detail}") from None
    except EOFError:
        raise LabelError(f"cannot read labels `{path}`: the gzip stream is truncated") from None
    return labels


def _parse(text: str, where: str) -> GoldLabel:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, or a huge number
        raise LabelError(f"{where}: invalid JSON") from None
    if not isinstance(data, dict):
        raise LabelError(f"{where}: a label should be a JSON object")
    raw_id = data.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str):
        raise LabelError(f"{where}: `id` should be a string")
    label = data.get("label")
    if label not in GOLD_LABELS:
        choices = ", ".join(GOLD_LABELS)
        raise LabelError(f"{where}: `label` should be one of {choices}, not {json.dumps(label)}")
    assert isinstance(label, str)
    end_at = data.get("end_at")
    if label in ("end", "user_request"):
        if isinstance(end_at, bool) or not isinstance(end_at, int) or end_at < 0:
            raise LabelError(
                f"{where}: a `{label}` row needs `end_at`, the index of a message (an integer >= 0)"
            )
    else:
        end_at = None
    return GoldLabel(raw_id, label, end_at, where)


class Labels:
    """Gold labels by conversation id, gathered from several files."""

    def __init__(self) -> None:
        """Start with no labels."""
        self._by_id: dict[str, GoldLabel] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, conversation_id: str) -> GoldLabel | None:
        """The label for a conversation, if there is one."""
        return self._by_id.get(conversation_id)

    def ids(self) -> Iterable[str]:
        """Every labelled id, in the order the labels were read."""
        return self._by_id.keys()

    def add(self, labels: Iterable[GoldLabel]) -> int:
        """Add rows; returns how many there were.

        The same id twice with the same label is fine (the first row is kept);
        with a different label or ``end_at`` it raises :class:`LabelError`.
        """
        count = 0
        for label in labels:
            count += 1
            known = self._by_id.get(label.id)
            if known is None:
                self._by_id[label.id] = label
            elif not known.same_as(label):
                raise LabelError(
                    f"{label.source}: id `{label.id}` is labelled `{label.label}` here but "
                    f"`{known.label}` at {known.source}"
                )
        return count
