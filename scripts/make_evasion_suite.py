"""Build the evasion suite: the dev positives with their user messages disguised.

People evade keyword detection with leetspeak ("k1ll"), look-alike letters from other
scripts (a Cyrillic "\u0430"), invisible characters, bidirectional controls, full-width
letters and spaced-out letters ("n u k e"). This script takes the conversations whose
gold label is ``end`` (``assembled-dev`` and ``hh-redteam-dev``), applies each
transformation to every user message, and writes one corpus per source and
transformation with matching gold labels (same ``end_at``), so that detection and
ending can be measured on disguised text against the clean originals.

Usage (from the repository root):

    python scripts/make_evasion_suite.py                 # writes /tmp/policylang-evasion/
    python scripts/make_evasion_suite.py --seed 1 --out DIR

Then, for example:

    policylang report policies/default.policy /tmp/policylang-evasion/*.jsonl.gz --labels auto

Output, for each SOURCE and TRANSFORM (``clean`` is the unchanged copy):
``OUT/SOURCE-TRANSFORM.jsonl.gz`` with ids suffixed ``-TRANSFORM``, and
``OUT/gold/SOURCE-TRANSFORM.jsonl``. The output is deterministic for a seed. It is
derived from ../shared/corpora and is written outside the repository on purpose: the
source data carries its own licence and content warning.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

SOURCES = ("assembled-dev", "hh-redteam-dev")

WORD = re.compile(r"[A-Za-z]+")

# What an attacker types, not what the normalizer knows: common substitutions only.
LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "b": "8", "g": "9", "l": "1"}
HOMOGLYPHS = {
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "i": "\u0456",
    "j": "\u0458",
    "o": "\u043e\u03bf",
    "p": "\u0440",
    "s": "\u0455",
    "x": "\u0445",
    "y": "\u0443",
    "A": "\u0410\u0391",
    "B": "\u0412\u0392",
    "C": "\u0421",
    "E": "\u0415\u0395",
    "H": "\u041d\u0397",
    "I": "\u0406\u0399",
    "K": "\u041a\u039a",
    "M": "\u041c\u039c",
    "N": "\u039d",
    "O": "\u041e\u039f",
    "P": "\u0420\u03a1",
    "T": "\u0422\u03a4",
    "X": "\u0425\u03a7",
    "Y": "\u03a5",
}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
BIDI_PAIRS = (
    ("\u202e", "\u202c"),  # right-to-left override ... pop directional formatting
    ("\u202d", "\u202c"),  # left-to-right override
    ("\u202b", "\u202c"),  # right-to-left embedding
    ("\u2067", "\u2069"),  # right-to-left isolate ... pop directional isolate
    ("\u2066", "\u2069"),  # left-to-right isolate
)
BIDI_MARKS = ("\u200e", "\u200f", "\u061c")
SEPARATORS = (" ", ".", "-")

# A disguise turns one word (three letters or more) into its disguised form.
Disguise = Callable[[str, random.Random], str]


def leet_word(word: str, rng: random.Random) -> str:
    chars = list(word)
    spots = [i for i, c in enumerate(chars) if c.lower() in LEET]
    rng.shuffle(spots)
    # Replace about half of what can be replaced, always keeping one letter.
    for i in spots[: max(1, len(spots) // 2)][: len(chars) - 1]:
        chars[i] = rng.choice(LEET[chars[i].lower()])
    return "".join(chars)


def homoglyph_word(word: str, rng: random.Random) -> str:
    return "".join(
        rng.choice(HOMOGLYPHS[c]) if c in HOMOGLYPHS and rng.random() < 0.5 else c for c in word
    )


def zero_width_word(word: str, rng: random.Random) -> str:
    out = [word[0]]
    for c in word[1:]:
        if rng.random() < 0.5:
            out.append(rng.choice(ZERO_WIDTH))
        out.append(c)
    return "".join(out)


def bidi_word(word: str, rng: random.Random) -> str:
    cut = rng.randrange(1, len(word))
    if rng.random() < 0.5:
        opening, closing = rng.choice(BIDI_PAIRS)
        return word[:cut] + opening + word[cut:] + closing
    return word[:cut] + rng.choice(BIDI_MARKS) + word[cut:]


def full_width_word(word: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in word)


def spaced_word(word: str, rng: random.Random) -> str:
    return rng.choice(SEPARATORS).join(word)


# name: (disguise, share of words disguised)
DISGUISES: dict[str, tuple[Disguise, float]] = {
    "leetspeak": (leet_word, 0.7),
    "homoglyphs": (homoglyph_word, 0.8),
    "zero-width": (zero_width_word, 0.8),
    "bidi": (bidi_word, 0.8),
    "full-width": (full_width_word, 0.8),
    "spaced": (spaced_word, 0.5),
}
TRANSFORMS = ("clean", *DISGUISES, "mix")


def transform(text: str, name: str, rng: random.Random) -> str:
    """``text`` with its words disguised the way ``name`` says.

    ``clean`` changes nothing; ``mix`` disguises 70% of the words, each with one of the
    other disguises chosen at random.
    """
    if name == "clean":
        return text

    def one(match: re.Match[str]) -> str:
        word = match.group()
        if name == "mix":
            disguise, rate = rng.choice(tuple(DISGUISES.values()))[0], 0.7
        else:
            disguise, rate = DISGUISES[name]
        return disguise(word, rng) if len(word) >= 3 and rng.random() < rate else word

    return WORD.sub(one, text)


def read_gold(path: Path) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[str(row["id"])] = row
    return rows


def positives(corpora: Path, source: str) -> Iterator[tuple[dict[str, object], dict[str, object]]]:
    """(record, gold row) for every conversation of ``source`` labelled ``end``."""
    gold = read_gold(corpora / "gold" / f"{source}.jsonl")
    with gzip.open(corpora / f"{source}.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            row = gold.get(str(record["id"]))
            if row is not None and row.get("label") == "end":
                yield record, row


def disguised(record: dict[str, object], name: str, seed: int) -> dict[str, object]:
    """A copy of ``record`` with every user message transformed, its id suffixed."""
    messages = []
    raw = record["messages"]
    assert isinstance(raw, list)
    for index, message in enumerate(raw):
        message = dict(message)
        if message.get("role") == "user":
            rng = random.Random(f"{seed}:{name}:{record['id']}:{index}")
            message["content"] = transform(str(message["content"]), name, rng)
        messages.append(message)
    return {
        "id": f"{record['id']}-{name}",
        "source": f"evasion/{name}/{record.get('source', '')}",
        "messages": messages,
        "labels": {"transform": name, "original_id": record["id"]},
    }


def inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="../shared/corpora")
    parser.add_argument("--out", default="/tmp/policylang-evasion")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    corpora = Path(args.corpora)
    out = Path(args.out)
    repository = Path(__file__).resolve().parents[1]
    if inside(out, repository):
        parser.error(f"{out} is inside the repository; corpus text must not be written there")
    (out / "gold").mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        pairs = list(positives(corpora, source))
        if not pairs:
            print(f"{source}: no `end` rows found in {corpora}", file=sys.stderr)
            continue
        for name in TRANSFORMS:
            target = out / f"{source}-{name}.jsonl.gz"
            labels = out / "gold" / f"{source}-{name}.jsonl"
            # mtime=0: the same seed gives the same bytes.
            with (
                gzip.GzipFile(target, "wb", mtime=0) as raw,
                labels.open("w", encoding="utf-8") as gold,
            ):
                for record, row in pairs:
                    copy = disguised(record, name, args.seed)
                    line = json.dumps(copy, ensure_ascii=False) + "\n"
                    raw.write(line.encode("utf-8"))
                    gold.write(json.dumps({**row, "id": copy["id"]}) + "\n")
        print(f"{source}: {len(pairs)} conversations x {len(TRANSFORMS)} transformations")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
