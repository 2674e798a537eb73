"""Batch throughput: how fast is ``policylang check`` next to merely parsing the corpus?

Usage (from the repository root, with the venv active):

    python benchmarks/make_synthetic_corpus.py          # once; see its --help
    python benchmarks/bench_check.py [CORPUS] [--policy POLICY] [--repeats N]

``CORPUS`` defaults to ``/tmp/policylang-synthetic/corpus.jsonl``. In one run, on the
same file, it measures messages per second of:

* the floor: read every line and ``json.loads`` it, counting messages (plain or gzip);
  no matcher can be faster than this;
* ``policylang check POLICY CORPUS --output /dev/null`` as a subprocess (the whole
  CLI: start-up, policy compilation, reading, validation, evaluation, JSON output),
  and the peak resident memory of that subprocess;
* the same work in-process through the library: ``load_policy``, ``iter_records``
  and ``Policy.evaluate`` on every branch, without writing results;
* ``check --jobs 2`` against ``--jobs 1``, when ``check`` has a ``--jobs`` option;
* start-up: ``check --jobs 1`` on an empty file (imports and compiling the policy),
  so that the same ratios can also be given for the work that grows with the input.

Figures are reported as ratios against the floor measured in the same run (and
``--jobs 2`` against ``--jobs 1``), so they can be compared across machines. Each
measurement is the best of ``--repeats`` runs (default 1).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.transcripts import Record, iter_records

DEFAULT_CORPUS = "/tmp/policylang-synthetic/corpus.jsonl"
GZIP_MAGIC = b"\x1f\x8b"


def policylang_command() -> list[str]:
    """The CLI next to this interpreter (the venv's), else ``python -m policylang``."""
    script = Path(sys.executable).with_name("policylang")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "policylang"]


def floor(path: str) -> int:
    """Read and ``json.loads`` every line; return the number of messages."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
    opener = gzip.open if gzipped else open
    messages = 0
    with opener(path, "rb") as stream:
        for line in stream:
            if line.strip():
                messages += len(json.loads(line)["messages"])
    return messages


def in_process(policy_path: str, path: str) -> int:
    """Load the policy and evaluate every branch of every record; return messages evaluated."""
    policy = load_policy(policy_path, DiagnosticSink())
    if policy is None:
        raise SystemExit(f"{policy_path}: policy has errors")
    messages = 0
    for result in iter_records(path):
        if not isinstance(result, Record):
            continue
        conversation = result.conversation
        for _, indices in conversation.paths():
            branch = [conversation.messages[i] for i in indices]
            policy.evaluate(branch, conversation.id)
            messages += len(branch)
    return messages


def run_check(policy_path: str, path: str, extra: list[str]) -> None:
    """Run ``policylang check`` with its output discarded; fail loudly on exit code 2 or 3."""
    command = [*policylang_command(), "check", policy_path, path, "--output", os.devnull, *extra]
    completed = subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    if completed.returncode not in (0, 1):
        sys.stderr.write(completed.stderr.decode("utf-8", "replace"))
        raise SystemExit(f"{' '.join(command)}: exit {completed.returncode}")


def best_of(repeats: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def has_jobs_option() -> bool:
    completed = subprocess.run(
        [*policylang_command(), "check", "--help"], capture_output=True, text=True, check=False
    )
    return "--jobs" in completed.stdout


def peak_rss_mib() -> float:
    """Largest peak RSS of any child waited for so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=DEFAULT_CORPUS)
    parser.add_argument("--policy", default="policies/default.policy")
    parser.add_argument("--repeats", type=int, default=1, metavar="N")
    args = parser.parse_args(argv)
    corpus: str = args.corpus
    policy_path: str = args.policy
    repeats: int = args.repeats
    if not os.path.exists(corpus):
        print(f"{corpus}: not found; run make_synthetic_corpus.py first", file=sys.stderr)
        return 2

    total = floor(corpus)  # also warms the page cache
    size_mib = os.path.getsize(corpus) / (1024 * 1024)
    print(
        f"corpus: {corpus} ({size_mib:.1f} MiB, {total} messages); policy: {policy_path};"
        f" best of {repeats}; {os.cpu_count()} CPUs; Python {platform.python_version()}"
    )

    rows: list[tuple[str, float]] = []
    floor_s = best_of(repeats, lambda: floor(corpus))
    rows.append(("floor: read + json.loads", floor_s))

    check_s = best_of(repeats, lambda: run_check(policy_path, corpus, []))
    peak = peak_rss_mib()  # only the plain check has run as a child so far
    rows.append(("policylang check (subprocess)", check_s))

    evaluated: list[int] = []
    library_s = best_of(repeats, lambda: evaluated.append(in_process(policy_path, corpus)))
    if evaluated[0] != total:
        print(f"note: {evaluated[0]} messages evaluated (branches) for {total} in the file")
    rows.append(("library: iter_records + evaluate", library_s))

    jobs = has_jobs_option()
    if jobs:
        jobs1_s = best_of(repeats, lambda: run_check(policy_path, corpus, ["--jobs", "1"]))
        jobs2_s = best_of(repeats, lambda: run_check(policy_path, corpus, ["--jobs", "2"]))
        rows.append(("policylang check --jobs 1", jobs1_s))
        rows.append(("policylang check --jobs 2", jobs2_s))
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as empty:
            startup_s = best_of(
                repeats, lambda: run_check(policy_path, empty.name, ["--jobs", "1"])
            )

    print(f"{'measurement':<34} {'seconds':>9} {'messages/s':>12} {'/ floor':>8}")
    for name, seconds in rows:
        print(f"{name:<34} {seconds:>9.2f} {total / seconds:>12,.0f} {floor_s / seconds:>8.3f}")
    print(f"peak RSS of policylang check: {peak:.0f} MiB")
    print(f"library / floor: {floor_s / library_s:.3f}")
    if jobs:
        print(f"start-up (check --jobs 1 on an empty file): {startup_s:.2f} s")
        print(
            f"check --jobs 1 / floor: {floor_s / jobs1_s:.3f} (target >= 0.15);"
            f" without start-up: {floor_s / (jobs1_s - startup_s):.3f}"
        )
        print(
            f"--jobs 2 / --jobs 1 speed-up: {jobs1_s / jobs2_s:.2f}x (target >= 1.7x);"
            f" without start-up: {(jobs1_s - startup_s) / (jobs2_s - startup_s):.2f}x"
        )
    else:
        print(f"check / floor: {floor_s / check_s:.3f} (target >= 0.15)")
        print("--jobs: not available (policylang check has no --jobs option)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
