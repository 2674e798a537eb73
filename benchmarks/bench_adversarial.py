"""Adversarial messages up to 1 MB: evaluation time must grow linearly with message size.

For each attack (a text built to make a backtracking matcher, the normalizer or the
keyword matcher do as much work per character as possible) and each size (128 KiB to
1 MiB by doubling), the benchmark evaluates one user message with the policy and
reports:

* the time for the message, and its ratio to a linear baseline measured in the same
  run on the same text (``str.lower`` plus one RE2 scan, both linear);
* the growth exponent ``k`` of time ~ size**k fitted over the sizes: 1.0 is linear, 2.0
  quadratic;
* the cost per character at the largest size over that at the smallest: about 1 when
  linear, 8 when quadratic (sizes 128 KiB to 1 MiB). Sub-millisecond timings are noisy
  on a shared machine, so the run fails only when this exceeds 2.

Usage::

    python benchmarks/bench_adversarial.py [--policy policies/default.policy] [--max-size 1M]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import re2

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Message, Policy

ROOT = Path(__file__).resolve().parents[1]


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


def _prefixed(prefix: str, fill: str) -> Callable[[int], str]:
    return lambda size: prefix + (fill * size)[: max(size - len(prefix), 0)]


#: name -> builder of a message of about ``size`` characters.
ATTACKS: dict[str, Callable[[int], str]] = {
    "one long word": _repeat("a"),
    "harm intent, then a story's long words": _prefixed("i will kill him in the ", "a"),
    "end request, then open quotes": _prefixed("please end this chat ", '"how to end this chat '),
    "long word after a trigger": _prefixed("in the ", "a"),
    "quote marks with end requests": _repeat('" end this chat '),
    "open quote then text": _prefixed('"', "end this chat and "),
    "kill all, no plural": _repeat("kill all thing "),
    "repeated first-person prefixes": _repeat("i want to i am going to "),
    "harm intent prefixes": _repeat("i will kill my "),
    "dense keywords": _repeat("bomb sarin nerve agent how to make "),
    "spaced letters": _repeat("b o m b "),
    "leetspeak": _repeat("b0mb 5ar1n "),
    "fullwidth confusables": _repeat("\uff42\uff4f\uff4d\uff42 "),
    "combining marks": _repeat("b\u0301o\u0301m\u0301b\u0301 "),
    "no spaces, mixed": _repeat("bombkillsarin"),
    "punctuation runs": _repeat("!?.,;:-_" * 4 + " "),
}

SIZES_KIB = (128, 256, 512, 1024)


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024 * 1024}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def _time(function: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _exponent(sizes: list[int], seconds: list[float]) -> float:
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(t, 1e-9)) for t in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def main(argv: list[str] | None = None) -> int:
    """Run every attack at every size and print a table; exit 1 if any grows superlinearly."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=str(ROOT / "policies" / "default.policy"))
    parser.add_argument("--max-size", default="1M", help="largest message (default 1M)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="run only attacks whose name contains this")
    args = parser.parse_args(argv)

    sink = DiagnosticSink()
    policy = load_policy(args.policy, sink)
    if policy is None:
        print(f"{args.policy} does not compile", file=sys.stderr)
        return 2
    largest = _size(args.max_size)
    sizes = [k * 1024 for k in SIZES_KIB if k * 1024 <= largest] or [largest]
    scan = re2.compile(r"\b(?:bomb|sarin|end)\b")

    def evaluate(p: Policy, text: str) -> None:
        p.evaluate([Message("user", text)], "bench")

    def baseline(text: str) -> None:
        scan.search(text.lower())

    shown = ", ".join(f"{s // 1024} KiB" for s in sizes)
    print(f"policy {policy.name} {policy.version}; sizes {shown}")
    print(f"{'attack':40} {'1 MiB time':>11} {'x baseline':>11} {'exponent':>9} {'per char':>9}")
    worst = 0.0
    worst_growth = 0.0
    for name, build in ATTACKS.items():
        if args.only and args.only not in name:
            continue
        times: list[float] = []
        ratios: list[float] = []
        for size in sizes:
            text = build(size)
            spent = _time(lambda: evaluate(policy, text), args.repeats)  # noqa: B023
            base = _time(lambda: baseline(text), args.repeats)  # noqa: B023
            times.append(spent)
            ratios.append(spent / max(base, 1e-9))
        exponent = _exponent(sizes, times)
        growth = (times[-1] / sizes[-1]) / (times[0] / sizes[0])
        worst = max(worst, exponent)
        worst_growth = max(worst_growth, growth)
        print(
            f"{name:40} {times[-1] * 1000:9.1f}ms {ratios[-1]:10.1f}x {exponent:9.2f}"
            f" {growth:8.2f}x"
        )
    print(f"worst growth exponent: {worst:.2f} (1.0 linear, 2.0 quadratic)")
    print(f"worst cost per character, largest over smallest size: {worst_growth:.2f}x")
    _what_pl315_prevents(sizes, args.repeats)
    return 0 if worst_growth < 2 else 1


def _what_pl315_prevents(sizes: list[int], repeats: int) -> None:
    """The same search with an unbounded gap (refused by PL315) and a bounded one."""
    print("\nwhat PL315 prevents: `how .* make` against `how .{0,80} make` on 'how how how ...'")
    for label, pattern in (("unbounded", r"\bhow .* make\b"), ("bounded", r"\bhow .{0,80} make\b")):
        compiled = re.compile(pattern)
        times = []
        for size in sizes:
            text = _repeat("how ")(size // 16)  # smaller: the unbounded one is quadratic
            times.append(_time(lambda: compiled.search(text), repeats))  # noqa: B023
        exponent = _exponent(sizes, times)
        at = sizes[-1] // 16 // 1024
        print(f"  {label:10} {times[-1] * 1000:9.1f}ms at {at} KiB, exponent {exponent:.2f}")


if __name__ == "__main__":
    sys.exit(main())
