"""Small labelled corpora made up on the spot: for tests, fault injection and benchmarks.

Each text is filler words with one to three sentiment words of its label mixed in, so
a classifier can learn it in seconds, and lengths vary so padding matters.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

POSITIVE = ["wonderful", "brilliant", "moving", "delightful", "superb", "charming", "gripping", "funny", "beautiful", "smart"]
NEGATIVE = ["tedious", "dull", "clumsy", "boring", "awful", "lifeless", "shallow", "messy", "bland", "tiresome"]
NEUTRAL = ["okay", "fine", "average", "passable", "middling"]
FILLER = ["the", "film", "is", "a", "story", "with", "cast", "and", "its", "plot", "director", "script", "really", "quite", "movie"]
WORDS = {"negative": NEGATIVE, "positive": POSITIVE, "neutral": NEUTRAL}


def make_rows(n: int, seed: int = 0, labels: tuple[str, ...] = ("negative", "positive")) -> list[dict[str, str]]:
    """`n` rows of {"text", "label"}, labels in turn, 4 to 33 words each."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        rows.append({"text": _text(rng, WORDS[label], (3, 30), (1, 3)), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, lines: int, seed: int = 0, noise: float = 0.1) -> Path:
    """`lines` short texts (4-14 words) with integer labels 0/1 as JSON Lines; a share `noise` of labels is flipped."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(lines):
            label = i % 2 if rng.random() >= noise else 1 - i % 2
            text = _text(rng, (NEGATIVE, POSITIVE)[i % 2], (3, 12), (1, 2))
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    return path


def _text(rng: random.Random, words: list[str], filler: tuple[int, int], marked: tuple[int, int]) -> str:
    """Between filler[0] and filler[1] filler words, with marked[0] to marked[1] of `words` inserted at random places."""
    tokens = [rng.choice(FILLER) for _ in range(rng.randint(*filler))]
    for _ in range(rng.randint(*marked)):
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(words))
    return " ".join(tokens)
