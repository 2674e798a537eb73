"""The cost of text normalization, as ratios against ``str.lower`` on the same texts.

Usage (from the repository root, with the venv active):

    python benchmarks/bench_normalize.py

Every detector matches on normalized text, so ``normalize`` runs on every message
(once per distinct ``normalize:`` configuration of the policy). For several kinds of
deterministic text (about 200 characters a message), it measures the mean time of one
``normalize`` call with every step on, and with only ``nfkc`` and ``casefold`` (the
normalization before the evasion steps existed), and divides by the mean time of
``str.lower`` on the same messages, measured in the same run. The ASCII rows are the
fast path: most messages are plain ASCII prose.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from policylang.normalize import NormalizationConfig, normalize

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

MESSAGES = 500
REPEATS = 7
BASELINE_ONLY = NormalizationConfig.of(("nfkc", "casefold"))


def prose(rng: random.Random, extra: tuple[str, ...] = ()) -> str:
    words: list[str] = []
    pool = WORDS + extra
    while sum(len(w) + 1 for w in words) < 200:
        words.append(rng.choice(pool))
    return " ".join(words)[:200]


def kinds() -> dict[str, list[str]]:
    rng = random.Random(7)
    return {
        "ascii prose": [prose(rng) for _ in range(MESSAGES)],
        "ascii, numbers": [
            prose(rng, ("10", "2023", "3rd", "10mg", "$5", "mp3", "c4")) for _ in range(MESSAGES)
        ],
        "ascii, evasive": [
            prose(rng, ("k1ll", "b0mb", "n u k e", "b.o.m.b", "@nthr@x")) for _ in range(MESSAGES)
        ],
        "non-ascii prose": [
            prose(rng, ("caf\u00e9", "na\u00efve", "don\u2019t", "\u201cquoted\u201d"))
            for _ in range(MESSAGES)
        ],
        "non-ascii, evasive": [
            prose(rng, ("k\u0456ll", "\uff42\uff4f\uff4d\uff42", "s\u200barin", "\u0430nthrax"))
            for _ in range(MESSAGES)
        ],
        "russian": [
            " ".join(
                rng.choice(
                    (
                        "\u043f\u0440\u0438\u0432\u0435\u0442",
                        "\u043a\u0430\u043a",
                        "\u0434\u0435\u043b\u0430",
                        "\u044d\u0442\u043e",
                        "\u0441\u043e\u0440\u043e\u043a",
                        "\u0440\u0443\u0431\u043b\u0435\u0439",
                    )
                )
                for _ in range(30)
            )[:200]
            for _ in range(MESSAGES)
        ],
    }


def mean_seconds(function: Callable[[str], object], texts: list[str]) -> float:
    best = float("inf")
    clock = time.perf_counter
    for _ in range(REPEATS):
        start = clock()
        for text in texts:
            function(text)
        best = min(best, clock() - start)
    return best / len(texts)


def main() -> int:
    # Build the confusables fold map before timing (it is built once per process).
    normalize("\u0430")
    print(f"{MESSAGES} messages of about 200 characters per kind; best of {REPEATS} runs")
    print(
        f"{'text':<20} {'str.lower us':>13} {'all steps us':>13} {'ratio':>7}"
        f" {'nfkc+casefold us':>17} {'ratio':>7}"
    )
    for kind, texts in kinds().items():
        base = mean_seconds(str.lower, texts)
        full = mean_seconds(normalize, texts)
        old = mean_seconds(lambda text: normalize(text, BASELINE_ONLY), texts)
        print(
            f"{kind:<20} {base * 1e6:>13.2f} {full * 1e6:>13.2f} {full / base:>7.1f}"
            f" {old * 1e6:>17.2f} {old / base:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
