"""Shared fixtures: small labelled corpora written to real files in tmp_path, trained and exported models, the GRU recurrence paths."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from sentiment_gru.model import encoder as encoder_module
from sentiment_gru.model import kernels
from sentiment_gru.data.synthetic import make_rows, write_csv  # noqa: F401 (tests import them from here)

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


@pytest.fixture(scope="session")
def three_label_dir(tmp_path_factory) -> Path:
    """A small negative/neutral/positive model trained once through the real train command, shared by read-only tests."""
    from sentiment_gru.cli import train_main

    root = tmp_path_factory.mktemp("three")
    labels = ("negative", "neutral", "positive")
    files = {split: write_csv(root / f"{split}.csv", make_rows(n, seed=seed, labels=labels))
             for split, n, seed in (("train", 240, 11), ("validation", 60, 12), ("test", 60, 13))}
    out = root / "model"
    assert train_main([f"--{s}-file={p}" for s, p in files.items()] + ["--output-dir", str(out), *TINY_MODEL_ARGS]) == 0
    return out


def exported_copy(trained: Path, tmp_path_factory, name: str = "exported") -> Path:
    """A copy of the model folder `trained` with model.onnx written by the export command."""
    from sentiment_gru.cli import export_main

    folder = tmp_path_factory.mktemp(name) / "model"
    shutil.copytree(trained, folder)
    assert export_main(["--artifacts", str(folder), "--quiet"]) == 0
    return folder


@pytest.fixture(scope="session")
def exported_dir(trained_dir, tmp_path_factory) -> Path:
    """A copy of `trained_dir` with model.onnx, shared by read-only tests."""
    return exported_copy(trained_dir, tmp_path_factory)


@pytest.fixture(params=["kernels", "torch-ops"])
def steps(request, monkeypatch):
    """The fast path's recurrence: the compiled C kernels, or torch operations (the fallback)."""
    if request.param == "kernels":
        if kernels._compiler() is None:
            pytest.skip("no C compiler here")
        assert kernels.load() is not None, "the C kernels did not build with this machine's compiler"
    else:
        monkeypatch.setattr(encoder_module, "_kernels_for", lambda gi, w_hh: None)
    return request.param


def relist(folder: Path, *names: str) -> None:
    """Put each named file's current sha256 into the folder's MANIFEST.json (what a publisher who edits a folder does)."""
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    for name in names:
        manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))


def pytest_addoption(parser):
    parser.addoption("--run-network", action="store_true", help="run tests that need the Hugging Face hub")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-network"):
        return
    skip = pytest.mark.skip(reason="needs the Hugging Face hub; pass --run-network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
