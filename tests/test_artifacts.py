"""The artifacts folder is replaced whole or not at all, and validated on load."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import relist

from sentiment_gru.inference.folder import load_model, save_atomically
from sentiment_gru.errors import ArtifactsError


def test_a_crash_while_saving_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    save_atomically(target, lambda folder: (folder / "config.json").write_text('{"v": "old"}'))

    def crash(folder):
        (folder / "config.json").write_text('{"v": "new"}')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_atomically(target, crash)
    assert json.loads((target / "config.json").read_text()) == {"v": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "no staging folder is left behind"

    save_atomically(target, lambda folder: (folder / "config.json").write_text('{"v": "new"}'))
    assert json.loads((target / "config.json").read_text()) == {"v": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    manifest = json.loads((target / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"config.json"}


def test_a_folder_with_foreign_files_is_never_replaced(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ArtifactsError, match=r"holds other files \(thesis\.tex\) and no model; choose a new or empty folder"):
        save_atomically(tmp_path, lambda folder: None)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def _copy(trained_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_dir, copy)
    return copy


def test_missing_file_is_named(trained_dir, tmp_path):
    copy = _copy(trained_dir, tmp_path)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ArtifactsError, match=r"is incomplete: tokenizer\.json missing"):
        load_model(copy)


def test_changed_file_fails_its_checksum(trained_dir, tmp_path):
    copy = _copy(trained_dir, tmp_path)
    with open(copy / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ArtifactsError, match=r"model\.safetensors: checksum does not match MANIFEST\.json"):
        load_model(copy)


def test_config_is_checked_against_the_tokenizer_and_labels(trained_dir, tmp_path):
    copy = _copy(trained_dir, tmp_path)
    config = json.loads((copy / "config.json").read_text())

    def rewrite(cfg):  # as anyone who edits a folder can: the new file's checksum goes into the manifest
        (copy / "config.json").write_text(json.dumps(cfg))
        relist(copy, "config.json")

    rewrite({**config, "format_version": 99})
    with pytest.raises(ArtifactsError, match=r"format_version 99 is not 1"):
        load_model(copy)
    rewrite({**config, "model": {**config["model"], "vocab_size": config["model"]["vocab_size"] + 1}})
    with pytest.raises(ArtifactsError, match=r"tokenizer\.json: vocabulary of \d+ tokens, but the model's embedding has \d+ rows"):
        load_model(copy)
    rewrite({**config, "label_names": ["a", "b", "c"]})
    with pytest.raises(ArtifactsError, match=r"3 label names for 2 classes"):
        load_model(copy)
    rewrite({**config, "model": {**config["model"], "layers": 3}})
    with pytest.raises(ArtifactsError, match=r"Unknown ModelConfig option\(s\): layers"):
        load_model(copy)
