"""Memory: does ``policylang check`` stay small on a large input?

Usage (from the repository root, with the venv active):

    python benchmarks/make_synthetic_corpus.py          # once
    python benchmarks/bench_memory.py [--size 2G] [--jobs 1 2] [--policy P]

It writes a file of about ``--size`` bytes (default 2 GiB) by repeating the
synthetic corpus (``/tmp/policylang-synthetic/corpus.jsonl``) next to it, then runs
``policylang check POLICY BIG --jobs N --output /dev/null`` for each ``--jobs`` value
and samples, every 50 ms, the resident memory of the whole process tree (the main
process and its workers, summed, from ``/proc``). The baseline, measured in the same
run, is the peak of ``policylang check`` on the 112 MiB corpus itself: memory that
does not grow with the input shows as a ratio near 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CORPUS = Path("/tmp/policylang-synthetic/corpus.jsonl")
PAGE = os.sysconf("SC_PAGE_SIZE")


def policylang_command() -> list[str]:
    script = Path(sys.executable).with_name("policylang")
    return [str(script)] if script.exists() else [sys.executable, "-m", "policylang"]


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The parent pid is the 2nd field after the command name in parentheses.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append(int(entry.name))
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/statm").read_text().split()
        except OSError:
            continue
        total += int(fields[1]) * PAGE
        stack.extend(children(current))
    return total


def peak_rss(command: list[str]) -> tuple[float, int]:
    """Seconds taken and the peak summed RSS of the process tree running ``command``."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
    return time.perf_counter() - start, peak


def build(corpus: Path, size: int) -> Path:
    big = corpus.with_name(f"big-{size >> 20}M.jsonl")
    if big.exists() and big.stat().st_size >= size:
        return big
    with big.open("wb") as out:
        while out.tell() < size:
            with corpus.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
    return big


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G")
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--policy", default="policies/default.policy")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        print(f"{args.corpus}: run benchmarks/make_synthetic_corpus.py first", file=sys.stderr)
        return 2
    big = build(args.corpus, parse_size(args.size))
    base = [*policylang_command(), "check", args.policy]
    print(f"input: {big} ({big.stat().st_size / (1 << 30):.2f} GiB); baseline: {args.corpus}")
    print(f"{'run':<28} {'seconds':>8} {'peak RSS MiB':>13} {'/ baseline':>11}")
    for jobs in args.jobs:
        flags = ["--jobs", str(jobs), "--output", os.devnull, "--quiet"]
        _, baseline = peak_rss([*base, str(args.corpus), *flags])
        seconds, peak = peak_rss([*base, str(big), *flags])
        print(f"{'baseline --jobs ' + str(jobs):<28} {'':>8} {baseline / (1 << 20):>13.0f}")
        print(
            f"{'large input --jobs ' + str(jobs):<28} {seconds:>8.1f} {peak / (1 << 20):>13.0f}"
            f" {peak / baseline:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
