"""Shared fixtures: small labelled corpora written to real files in tmp_path."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

POSITIVE = ["wonderful", "brilliant", "moving", "delightful", "superb", "charming", "gripping", "funny", "beautiful", "smart"]
NEGATIVE = ["tedious", "dull", "clumsy", "boring", "awful", "lifeless", "shallow", "messy", "bland", "tiresome"]
FILLER = ["the", "film", "is", "a", "story", "with", "cast", "and", "its", "plot", "director", "script", "really", "quite", "movie"]


def make_rows(n: int, seed: int = 0, labels: tuple[str, ...] = ("negative", "positive")) -> list[dict[str, str]]:
    """Texts whose label is carried by a few sentiment words among filler, of varied lengths."""
    rng = random.Random(seed)
    words = {"negative": NEGATIVE, "positive": POSITIVE, "neutral": ["okay", "fine", "average", "passable", "middling"]}
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        length = rng.randint(3, 30)
        tokens = [rng.choice(FILLER) for _ in range(length)]
        for _ in range(rng.randint(1, 3)):
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(words[label]))
        rows.append({"text": " ".join(tokens), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def tiny_files(tmp_path: Path) -> dict[str, Path]:
    """train/validation/test CSV files of a small, learnable two-class corpus."""
    return {
        "train": write_csv(tmp_path / "train.csv", make_rows(240, seed=1)),
        "validation": write_csv(tmp_path / "validation.csv", make_rows(60, seed=2)),
        "test": write_csv(tmp_path / "test.csv", make_rows(60, seed=3)),
    }


TINY_MODEL_ARGS = [
    "--epochs", "4", "--batch-size", "8", "--vocab-size", "200", "--embedding-dim", "16", "--hidden-size", "16",
    "--learning-rate", "0.01", "--dropout", "0.1", "--embedding-dropout", "0.1", "--quiet",
]


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory) -> Path:
    """A small model trained once through the real train command, shared by read-only tests."""
    from sentiment_gru.cli import train_main

    root = tmp_path_factory.mktemp("trained")
    files = {
        "train": write_csv(root / "train.csv", make_rows(240, seed=1)),
        "validation": write_csv(root / "validation.csv", make_rows(60, seed=2)),
        "test": write_csv(root / "test.csv", make_rows(60, seed=3)),
    }
    out = root / "model"
    argv = [f"--{s}-file={p}" for s, p in files.items()] + ["--output-dir", str(out), *TINY_MODEL_ARGS]
    assert train_main(argv) == 0
    return out


def pytest_addoption(parser):
    parser.addoption("--run-network", action="store_true", help="run tests that need the Hugging Face hub")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-network"):
        return
    skip = pytest.mark.skip(reason="needs the Hugging Face hub; pass --run-network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
