"""Write the atheris seed corpora from the bundled files and the hand-written seeds.

    python fuzz/make_corpus.py     # fills fuzz/corpus/policy, .../tenant and .../transcript

The corpora are generated, never committed (fuzz/.gitignore). libFuzzer adds the inputs
it finds interesting to the same folders as it runs.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

from fuzz_seeds import CYCLES, EXTENSIONS, TENANTS  # noqa: E402


def _put(folder: Path, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    """Fill ``fuzz/corpus/{policy,tenant,transcript}`` (or the same in the folder given)."""
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus"
    policies = sorted((ROOT / "policies").glob("*.policy"))
    tenants = sorted((ROOT / "policies" / "tenants").glob("*.tenant"))
    for data in [*(p.read_bytes() for p in policies), *EXTENSIONS, *CYCLES.values()]:
        _put(corpus / "policy", data)
    for data in [*(p.read_bytes() for p in tenants), *TENANTS]:
        _put(corpus / "tenant", data)
    # Transcripts: each bundled sample file whole, and each of its lines on its own.
    samples = [
        *sorted((ROOT / "samples").glob("*.jsonl")),
        *sorted((ROOT / "tests" / "transcripts" / "fixtures").rglob("*.jsonl")),
    ]
    for path in samples:
        data = path.read_bytes()
        _put(corpus / "transcript", data)
        for line in data.splitlines(keepends=True):
            if line.strip():
                _put(corpus / "transcript", line)
    for kind in ("policy", "tenant", "transcript"):
        count = len(list((corpus / kind).iterdir()))
        print(f"{corpus / kind}: {count} files")


if __name__ == "__main__":
    main()
