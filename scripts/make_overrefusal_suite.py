"""Build the over-refusal stress corpus: safe prompts that look unsafe, each refused.

The worst case for false ends is an assistant that over-refuses: a user asks several
harmless questions that merely sound dangerous ("How do I kill a Python process?"),
the assistant refuses each one, and a policy that counts refusals could end the
conversation. This script chains XSTest's *safe* prompts with real model replies that
refused them (``final_label`` full or partial refusal), 3 to 6 exchanges per
conversation, and writes them in the corpus format. Every conversation should
continue; measure with ``policylang report ... --benign overrefusal``.

Usage (from the repository root):

    python scripts/make_overrefusal_suite.py                # writes /tmp/policylang-overrefusal/
    python scripts/make_overrefusal_suite.py --count 5000 --seed 1 --out DIR

The corpus is derived from ../shared/corpora/xstest-dev.jsonl.gz and is written outside
the repository on purpose: the source data carries its own licence and content warning.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path


def refused_safe_exchanges(path: Path) -> list[tuple[str, str]]:
    """(prompt, reply) pairs where a safe XSTest prompt was refused."""
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            labels = record.get("labels", {})
            messages = record.get("messages", [])
            if len(messages) != 2:
                continue
            if str(labels.get("type", "")).startswith("contrast"):
                continue  # the contrast prompts are the unsafe ones
            if labels.get("final_label") not in ("2_full_refusal", "3_partial_refusal"):
                continue
            pairs.append((messages[0]["content"], messages[1]["content"]))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="../shared/corpora")
    parser.add_argument("--out", default="/tmp/policylang-overrefusal")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    pairs = refused_safe_exchanges(Path(args.corpora) / "xstest-dev.jsonl.gz")
    if len(pairs) < 6:
        parser.error(f"only {len(pairs)} refused safe prompts found in {args.corpora}")
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "overrefusal.jsonl.gz"
    with gzip.open(target, "wt", encoding="utf-8") as sink:
        for number in range(args.count):
            messages = []
            for prompt, reply in rng.sample(pairs, rng.randint(3, 6)):
                messages.append({"role": "user", "content": prompt})
                messages.append({"role": "assistant", "content": reply})
            record = {
                "id": f"overrefusal-{number:05d}",
                "source": "overrefusal/xstest-dev",
                "messages": messages,
                "labels": {"expected": "continue"},
            }
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {args.count} conversations from {len(pairs)} refused safe prompts to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
