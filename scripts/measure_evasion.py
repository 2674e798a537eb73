"""Measure what text normalization buys: detection on the evasion suite, and changes on benign text.

Usage (from the repository root, after ``python scripts/make_evasion_suite.py``):

    python scripts/measure_evasion.py policies/default.policy
    python scripts/measure_evasion.py policies/default.policy --suite DIR --corpora DIR

The policy is loaded twice with ``policylang.compiler.load_policy``: as written (every
normalization step on, unless it says otherwise) and as a copy whose categories,
signals and redirects all say ``normalize: { invisible: off confusables: off spacing:
off leetspeak: off }``, i.e. only ``nfkc`` and ``casefold`` (the normalization before
the evasion steps existed). For each transformation of the suite it prints

- how many user messages the policy's categories detect (a category matches the
  message; follow-ups count right after a redirect, as in a real conversation), and
- how many ``end`` conversations are ended where the gold label says (at ``end_at`` or
  within the next two user turns, not before),

and for the benign corpora (hh-benign-dev, xstest-dev, toxicchat-dev) how many
conversations get a different decision (outcome, message, rule or category) with every
step on than with only ``nfkc`` and ``casefold``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Counter as RuntimeCounter
from policylang.runtime import CounterKind, CounterScope, Decision, Outcome, Policy
from policylang.transcripts import Conversation, Record, iter_records

BENIGN = ("hh-benign-dev", "xstest-dev", "toxicchat-dev")
BASICS_ONLY = "normalize: { invisible: off confusables: off spacing: off leetspeak: off }"
_BLOCK = re.compile(r"^((?:category|signal|redirect)\s+[A-Za-z_][\w-]*\s*\{)", re.MULTILINE)


def load(path: Path) -> Policy:
    sink = DiagnosticSink()
    policy = load_policy(str(path), sink)
    if policy is None:
        sys.exit(f"{path}: the policy has errors; run policylang lint")
    return policy


def basics_only(path: Path, folder: Path) -> Policy:
    """The policy with only nfkc and casefold on in every category, signal and redirect."""
    text = path.read_text(encoding="utf-8")
    if "normalize:" in text:
        sys.exit(f"{path} already has normalize blocks; compare by hand")
    copy = folder / path.name
    copy.write_text(_BLOCK.sub(rf"\1 {BASICS_ONLY}", text), encoding="utf-8")
    return load(copy)


def detector(policy: Policy) -> Policy:
    """The policy with nothing but a conversation-wide count of harmful user turns."""
    counter = RuntimeCounter("detected", CounterKind.HARMFUL_TURNS, CounterScope.CONVERSATION)
    return replace(policy, counters=(counter,), protections=(), rules=())


def detected_turns(policy: Policy, conversation: Conversation) -> tuple[int, int]:
    """(user messages, user messages that touch a category)."""
    session = policy.session(conversation.id)
    users = hits = 0
    before = 0
    for message in conversation.messages:
        session.observe(message)
        if message.role == "user":
            users += 1
            now = session.decision().counters.get("detected", 0)
            hits += now > before
            before = now
    return users, hits


def matched_end(conversation: Conversation, decision: Decision, end_at: int) -> bool:
    if decision.outcome is not Outcome.END or decision.message_index is None:
        return False
    at = decision.message_index
    later = sum(
        1
        for i, message in enumerate(conversation.messages)
        if end_at < i <= at and message.role == "user"
    )
    return at >= end_at and later <= 2


def conversations(path: Path) -> list[Conversation]:
    return [r.conversation for r in iter_records(str(path)) if isinstance(r, Record)]


def gold_rows(path: Path) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {str(row["id"]): row for row in rows}


def key(decision: Decision) -> tuple[object, ...]:
    return (decision.outcome, decision.message_index, decision.rule, decision.category)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy")
    parser.add_argument("--suite", default="/tmp/policylang-evasion")
    parser.add_argument("--corpora", default="../shared/corpora")
    args = parser.parse_args()

    path = Path(args.policy)
    suite = Path(args.suite)
    with tempfile.TemporaryDirectory() as folder:
        policies = {"all steps": load(path), "nfkc+casefold": basics_only(path, Path(folder))}
    detectors = {name: detector(policy) for name, policy in policies.items()}

    files = sorted(suite.glob("*.jsonl.gz"))
    if not files:
        sys.exit(f"no suite in {suite}; run scripts/make_evasion_suite.py first")
    transforms: dict[str, list[Path]] = {}
    for file in files:
        stem = file.name.removesuffix(".jsonl.gz")
        source = next(s for s in ("assembled-dev", "hh-redteam-dev") if stem.startswith(s))
        transforms.setdefault(stem.removeprefix(source + "-"), []).append(file)

    print(f"evasion suite {suite} (the `end` conversations of assembled-dev and hh-redteam-dev)")
    print(
        f"{'transformation':<15} {'user msgs':>9}"
        + "".join(f" {'detected, ' + n:>24} {'ends matched, ' + n:>28}" for n in policies)
    )
    for name in ("clean", *sorted(t for t in transforms if t != "clean")):
        totals: Counter[str] = Counter()
        for file in transforms.get(name, []):
            gold = gold_rows(file.parent / "gold" / (file.name.removesuffix(".gz")))
            for conversation in conversations(file):
                end_at = gold[conversation.id]["end_at"]
                assert isinstance(end_at, int)
                totals["users"] += sum(1 for m in conversation.messages if m.role == "user")
                for label, policy in policies.items():
                    _, hits = detected_turns(detectors[label], conversation)
                    totals[f"hits {label}"] += hits
                    decision = policy.evaluate(conversation.messages, conversation.id)
                    totals[f"ends {label}"] += matched_end(conversation, decision, end_at)
                    totals[f"rows {label}"] += 1
        row = f"{name:<15} {totals['users']:>9}"
        for label in policies:
            hits, ends = totals[f"hits {label}"], totals[f"ends {label}"]
            rows = totals[f"rows {label}"]
            share = hits / totals["users"] if totals["users"] else 0.0
            row += f" {hits:>15} ({share:6.1%}) {ends:>20} of {rows:>4}"
        print(row)

    print()
    print("benign corpora: decisions that differ, all steps vs nfkc+casefold only")
    corpora = Path(args.corpora)
    for corpus in BENIGN:
        file = corpora / f"{corpus}.jsonl.gz"
        if not file.exists():
            continue
        differ: list[str] = []
        total = 0
        outcomes: Counter[str] = Counter()
        for conversation in conversations(file):
            total += 1
            full = policies["all steps"].evaluate(conversation.messages, conversation.id)
            basic = policies["nfkc+casefold"].evaluate(conversation.messages, conversation.id)
            outcomes[full.outcome.value] += 1
            if key(full) != key(basic):
                differ.append(
                    f"{conversation.id}: {basic.outcome.value}/{basic.rule} -> "
                    f"{full.outcome.value}/{full.rule}"
                )
        summary = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        print(f"{corpus:<15} {total:>6} conversations, {len(differ)} differ ({summary})")
        for line in differ:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
