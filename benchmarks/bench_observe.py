"""Streaming cost: does ``Session.observe`` cost the same per message at any conversation length?

Usage (from the repository root, with the venv active):

    python benchmarks/bench_observe.py [policies/default.policy]

For conversations of 10, 100 and 1000 messages (alternating user and assistant,
about 200 characters each, deterministic text), it measures the mean time of one
``observe`` call on a user message, in the first and in the second half of the
conversation, for two kinds of text:

* ``prose``: sentences from the synthetic corpus's word bank
  (``make_synthetic_corpus.words``), as most logged messages read;
* ``dense``: words drawn from a bank where one word in five is a policy keyword
  ("kill", "bomb", "children", "you"...), so nearly every message makes several
  detectors look closer: a worst case for the prefilter.

Figures are
reported as ratios against a baseline measured in the same run on the same
messages: one pass of text normalization (``normalize``), the least any matcher
must do. A per-message cost that does not grow with length shows as the same
ratio at every length.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.normalize import normalize
from policylang.runtime import Message, Policy

WORDS = tuple(
    " ".join(
        (
            "the of and to a in is it you that he was for on are with as his they be at one",
            "have this from or had by word but what some we can out other were all there when",
            "up use your how said an each she which do their time if will way about many then",
            "them write would like so these her long make thing see him two has look more day",
            "could go come process kill bomb history weather recipe garden school children",
            "help please thanks",
        )
    ).split(" ")
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_synthetic_corpus import words as prose_words  # noqa: E402

LENGTHS = (10, 100, 1000)
KINDS = ("prose", "dense")
REPEATS = 5


def message_text(rng: random.Random, kind: str = "dense") -> str:
    if kind == "prose":
        return prose_words(rng, 200)[:200]
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < 200:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:200]


def conversation(length: int, seed: int, kind: str = "dense") -> list[Message]:
    rng = random.Random(seed)
    roles = ("user", "assistant")
    return [Message(roles[i % 2], message_text(rng, kind)) for i in range(length)]


def time_observe(policy: Policy, messages: list[Message]) -> tuple[float, float]:
    """Mean seconds per observe of a user message, in the first and in the second half."""
    session = policy.session("bench")
    timings: list[tuple[int, float]] = []
    clock = time.perf_counter
    for index, message in enumerate(messages):
        start = clock()
        session.observe(message)
        elapsed = clock() - start
        if message.role == "user":
            timings.append((index, elapsed))
    half = len(messages) // 2
    first = [t for i, t in timings if i < half]
    second = [t for i, t in timings if i >= half]
    return statistics.fmean(first), statistics.fmean(second)


def time_baseline(messages: list[Message]) -> float:
    clock = time.perf_counter
    start = clock()
    for message in messages:
        normalize(message.content)
    return (clock() - start) / len(messages)


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "policies/default.policy"
    sink = DiagnosticSink()
    policy = load_policy(path, sink)
    if policy is None:
        print(f"{path}: policy has errors", file=sys.stderr)
        return 1
    print(f"policy: {path}; {REPEATS} repeats, best of each; about 200 characters per message")
    print(
        f"{'text':>6} {'length':>7} {'1st half us':>12} {'2nd half us':>12} {'baseline us':>12}"
        f" {'ratio':>7} {'2nd/1st':>8}"
    )
    for kind in KINDS:
        ratios: list[float] = []
        for length in LENGTHS:
            messages = conversation(length, seed=length, kind=kind)
            best_first = best_second = best_base = float("inf")
            for _ in range(REPEATS):
                first, second = time_observe(policy, messages)
                best_first = min(best_first, first)
                best_second = min(best_second, second)
                best_base = min(best_base, time_baseline(messages))
            ratios.append(best_second / best_first)
            print(
                f"{kind:>6} {length:>7} {best_first * 1e6:>12.2f} {best_second * 1e6:>12.2f}"
                f" {best_base * 1e6:>12.2f} {best_second / best_base:>7.1f}"
                f" {best_second / best_first:>8.2f}"
            )
        print(
            f"{kind}: 2nd/1st half: "
            + ", ".join(f"{n}: {r:.2f}" for n, r in zip(LENGTHS, ratios, strict=True))
            + " (1.0 means the cost of a message does not grow with the conversation)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
