#!/usr/bin/env python3
"""Coverage-guided fuzzing of the transcript readers with atheris (see fuzz/README.md).

Each input is the bytes of a JSONL transcript file. It is read as ``check`` reads it
(the fast native reader, then the full reader for every other line) and evaluated with
the default policy; the invariants are those of tests/fuzz/transcript_invariants.py:
nothing raises, every non-blank line gives exactly one record or one located error,
and the two readers agree.

    python fuzz/fuzz_transcript.py fuzz/corpus/transcript -dict=fuzz/transcript.dict \\
        -max_total_time=600 -timeout=20 -artifact_prefix=fuzz/crashes/
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris
from _target import run  # also puts tests/fuzz on the import path

with atheris.instrument_imports(include=["policylang"]):
    import fuzz_helpers
    import transcript_invariants

PATH = str(Path(tempfile.mkdtemp(prefix="policylang-fuzz-")) / "input.jsonl")
fuzz_helpers.EXAMPLE_SECONDS = 0
transcript_invariants.default_policy()


def test_one_input(data: bytes) -> None:
    """Check one transcript file; raise on any broken invariant."""
    transcript_invariants.check_transcript_bytes(PATH, data)


if __name__ == "__main__":
    run(test_one_input)
