"""A model folder is untrusted input: every file it names is a regular file inside it and listed with its checksum,
config.json is read into the typed `SavedConfig` and checked field by field, and the tokenizer holds no regular
expression training does not write. Each edit here recomputes the checksums in MANIFEST.json, as anyone who publishes
a folder can. Training holds a lock on its output folder, and a full disk leaves the old model as it was."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import TINY_MODEL_ARGS, make_rows, relist, write_csv
from sentiment_gru import SentimentClassifier
from sentiment_gru.cli import predict_main, train_main
from sentiment_gru.config import MAX_MODEL_VALUES, ModelConfig, SavedConfig
from sentiment_gru.errors import ArtifactsError
from sentiment_gru.inference.folder import load_model, read_folder
from sentiment_gru.serve.command import serve_main

ROOT = Path(__file__).resolve().parent.parent
SECRET = "AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HOSTILE_REGEX = "(a|a)*$|(a|aa)*b"


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside any model folder that must never be read: YAML front matter, as a model card has."""
    path = tmp_path / "outside" / "credentials.md"
    path.parent.mkdir()
    path.write_text(f"---\n{SECRET}\nlicense: mit\n---\nprivate\n")
    return path


@pytest.fixture
def folder(exported_dir, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(exported_dir, copy)
    return copy


def _edit_json(folder: Path, name: str, edit) -> None:
    value = json.loads((folder / name).read_text())
    edit(value)
    (folder / name).write_text(json.dumps(value))
    relist(folder, name)


def _one_line_error(argv: list[str], capsys) -> str:
    assert predict_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------- 1-3: files outside the folder


def test_a_card_linked_to_an_outside_file_is_refused(folder, secret, capsys):
    """Issue case 1: README.md a link to a file outside; listed with that file's checksum."""
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(secret)
    relist(folder, "README.md")
    for backend in ("onnx", "torch"):
        with pytest.raises(ArtifactsError, match=r"README\.md: links outside the model folder; the folder is not safe to read"):
            SentimentClassifier.from_pretrained(folder, backend=backend)
    assert serve_main(["--artifacts", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "README.md: links outside the model folder" in err and err.count("\n") == 1 and "AWS_SECRET" not in err


def test_an_unlisted_link_is_never_read_nor_copied(folder, secret, tmp_path):
    """Issue cases 1 and 2: a link the manifest does not list loads (it is not part of the model), is never read, and
    save_pretrained copies only what the manifest lists, as regular files."""
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    del manifest["files"]["README.md"]
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(secret)
    (folder / "notes.txt").symlink_to(secret)
    (folder / "private").symlink_to(secret.parent, target_is_directory=True)
    clf = SentimentClassifier.from_pretrained(folder)
    assert clf.folder.checked_file("README.md") is None and clf.folder.checked_file("notes.txt") is None
    out = tmp_path / "published"
    clf.save_pretrained(out)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert files == set(json.loads((out / "MANIFEST.json").read_text())["files"]) | {"MANIFEST.json", ".gitignore"}
    assert "notes.txt" not in files and "README.md" not in files and not any(f.startswith("private") for f in files)
    for path in out.rglob("*"):
        assert not path.is_symlink() and path.is_file()
        assert b"AWS_SECRET" not in path.read_bytes()
    assert SentimentClassifier.from_pretrained(out)("a wonderful film") == clf("a wonderful film")


def test_save_pretrained_refuses_a_listed_link(folder, secret, tmp_path):
    """Issue case 2: `ln -s ~/.ssh/id_rsa DIR/notes.txt`, listed: the folder does not load, so nothing is written."""
    (folder / "notes.txt").symlink_to(secret)
    relist(folder, "notes.txt")
    with pytest.raises(ArtifactsError, match=r"notes\.txt: links outside the model folder"):
        SentimentClassifier.from_pretrained(folder).save_pretrained(tmp_path / "published")
    assert not (tmp_path / "published").exists()


def test_a_link_inside_the_folder_is_read_as_its_target(folder, tmp_path):
    """A link that stays inside the folder resolves there, and a copy holds a regular file."""
    (folder / "card.md").symlink_to("README.md")
    relist(folder, "card.md")
    SentimentClassifier.from_pretrained(folder).save_pretrained(tmp_path / "published")
    copied = tmp_path / "published" / "card.md"
    assert not copied.is_symlink() and copied.read_text() == (folder / "README.md").read_text()


@pytest.mark.parametrize("name", ["/etc/passwd", "../../x", "/proc/self/pagemap", "sub/../../x", "./config.json", "C:/x",
                                  "sub\\..\\x", "", "nul\0byte"])
def test_manifest_paths_never_leave_the_folder(folder, name):
    """Issue case 3: paths in MANIFEST.json are refused before anything is opened (`/proc/self/pagemap` hung the load)."""
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["files"][name] = "0" * 64
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    for backend in ("torch", "onnx"):
        with pytest.raises(ArtifactsError, match=r"MANIFEST\.json: .* is not a path inside the folder; the folder is not safe"):
            SentimentClassifier.from_pretrained(folder, backend=backend)


def test_special_files_and_linked_folders_are_refused(folder, secret):
    """Issue case 3: a pipe (whose opening would block) and a folder are not regular files; a linked folder leaves."""
    os.mkfifo(folder / "pipe")
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["files"]["pipe"] = "0" * 64
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    outcome = []
    loading = threading.Thread(target=lambda: outcome.append(_error(lambda: read_folder(folder))), daemon=True)
    loading.start()
    loading.join(30)
    assert outcome and "pipe: not a regular file; the folder is not safe to read" in outcome[0]

    del manifest["files"]["pipe"]
    (folder / "sub").symlink_to(secret.parent, target_is_directory=True)
    manifest["files"]["sub/credentials.md"] = hashlib.sha256(secret.read_bytes()).hexdigest()
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactsError, match=r"sub/credentials\.md: links outside the model folder"):
        read_folder(folder)


def _error(call) -> str:
    try:
        call()
    except ArtifactsError as exc:
        return str(exc)
    return "no error"


@pytest.mark.parametrize("manifest, message", [
    ({"files": ["config.json"]}, r"\"files\" must map each file's path to its sha256"),
    ({"files": {"config.json": 5}}, r"\"files\" must map each file's path to its sha256"),
    ([], r"MANIFEST\.json: expected a JSON object"),
])
def test_a_malformed_manifest_is_one_clear_error(folder, manifest, message, capsys):
    """Issue case 6: MANIFEST "files" as a list ended in a traceback."""
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    assert re.search(message, _one_line_error(["--artifacts", str(folder), "fine"], capsys))


def test_an_empty_manifest_does_not_vouch_for_damaged_weights(folder):
    """Issue case 7: `{"files": {}}` with damaged weights loaded silently on torch."""
    (folder / "MANIFEST.json").write_text('{"files": {}}')
    with open(folder / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ArtifactsError, match=r"model\.safetensors: not listed in MANIFEST\.json, so it cannot be checked"):
        load_model(folder)
    with pytest.raises(ArtifactsError, match=r"model\.safetensors: not listed in MANIFEST\.json"):
        SentimentClassifier.from_pretrained(folder, backend="onnx")


def test_a_hub_download_links_into_its_own_blobs(folder, tmp_path):
    """The hub's cache keeps a snapshot's files as links into the repository's blobs/: those stay allowed."""
    repo = tmp_path / "hub" / "models--someone--model"
    snapshot = repo / "snapshots" / "0123abc"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    assert SentimentClassifier.from_pretrained(snapshot).backend_name == "onnx"
    (snapshot / "README.md").unlink()
    (snapshot / "README.md").symlink_to(tmp_path / "elsewhere.md")
    (tmp_path / "elsewhere.md").write_text((folder / "README.md").read_text())
    with pytest.raises(ArtifactsError, match=r"README\.md: links outside the model folder"):
        SentimentClassifier.from_pretrained(snapshot)


# ---------------------------------------------------------------- 4 and 6: config.json, a typed record


def _set(section: str | None, key: str, value):
    def edit(config):
        (config if section is None else config[section])[key] = value
    return edit


BIG = {"hidden_size": 4096, "num_layers": 16, "ensemble_size": 32}


@pytest.mark.parametrize("edit, message", [
    (_set(None, "label_names", [0, 1]),  # issue case 4: every request answered a plain-text 500
     r"The 'label_names' field of SavedConfig must be distinct, non-empty strings, one per class\. Got \[0, 1\] instead\."),
    (_set(None, "label_names", ["good", "good"]), r"The 'label_names' field of SavedConfig must be distinct"),
    (_set("calibration", "temperature", 0),  # issue case 6: every text became "empty text"
     r"The 'temperature' parameter of Calibration must be a number in \[0\.01, 100\.0\]\. Got 0 instead\."),
    (_set("calibration", "temperature", -1),  # issue case 6: the labels were silently inverted
     r"The 'temperature' parameter of Calibration must be a number in \[0\.01, 100\.0\]\. Got -1 instead\."),
    (_set("calibration", "temperature", "hot"), r"The 'temperature' parameter of Calibration must be a number .* Got 'hot' instead\."),
    (_set(None, "calibration", [1]), r"The 'calibration' section of SavedConfig must be a JSON object\. Got \[1\] instead\."),
    (_set("tokenizer", "tail_tokens", "many"),
     r"The 'tail_tokens' parameter of TokenizerConfig must be an int in \[0, 10000\]\. Got 'many' instead\."),
    (_set(None, "tokenizer", None), r"The 'tokenizer' section of SavedConfig must be a JSON object\. Got None instead\."),
    (lambda config: config["model"].update(BIG),  # issue case 6: torch tried to allocate hundreds of GB
     rf"This ModelConfig makes a model of [\d,]+ numbers \([\d,.]+ GiB in float32\); the limit is {MAX_MODEL_VALUES:,}"),
    (_set("model", "hidden_size", "64"), r"The 'hidden_size' parameter of ModelConfig must be an int in \[1, 4096\]\. Got '64'"),
    (_set("model", "pooling", 7), r"The 'pooling' parameter of ModelConfig must be a list of strings\. Got 7 instead\."),
    (_set("tokenizer", "lowercase", "yes"), r"The 'lowercase' parameter of TokenizerConfig must be true or false\. Got 'yes'"),
    (_set("data", "text_column", 3), r"The 'text_column' parameter of DataConfig must be a string or null\. Got 3 instead\."),
    (_set(None, "versions", ["torch"]), r"The 'versions' parameter of SavedConfig must be a JSON object\. Got \['torch'\]"),
    (_set(None, "processes", 0), r"The 'processes' parameter of SavedConfig must be an int >= 1\. Got 0 instead\."),
    (_set(None, "evil", 1), r"Unknown field\(s\) evil\. Known: label_names, model, data, "),
    (lambda config: config.pop("model"), r"No 'model' field: this is not a complete model configuration\."),
])
def test_config_json_is_a_checked_record(folder, edit, message, capsys):
    """Each wrong value is one line naming the file and the field: a typed error from the API, exit 2 from a command."""
    _edit_json(folder, "config.json", edit)
    for backend in ("onnx", "torch"):
        with pytest.raises(ArtifactsError, match=re.escape(str(folder / "config.json")) + ": " + message):
            SentimentClassifier.from_pretrained(folder, backend=backend)
    assert re.search(message, _one_line_error(["--artifacts", str(folder), "fine"], capsys))
    assert serve_main(["--artifacts", str(folder)]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_the_record_reads_back_what_training_wrote(trained_dir):
    written = json.loads((trained_dir / "config.json").read_text())
    record = SavedConfig.from_dict(written)
    assert json.loads(json.dumps(record.to_dict())) == written
    assert list(record.to_dict()) == list(written)  # the same fields in the same order
    folder = read_folder(trained_dir)
    assert folder.config == record and folder.label_names == ["negative", "positive"]
    assert folder.temperature == written["calibration"]["temperature"] and folder.data_config() == record.data


@pytest.mark.parametrize("sizes", [
    {},
    {"pooling": ("max",), "num_layers": 3, "num_classes": 3},
    {"ensemble_size": 3, "hidden_size": 8, "embedding_dim": 5},
    {"lexicon_categories": 11, "lexicon_entries": 40, "embedding_rows": 50, "vocab_size": 300},
])
def test_the_size_budget_counts_what_build_model_allocates(sizes):
    from sentiment_gru.model.classifier import build_model

    config = ModelConfig(**{"vocab_size": 200, "embedding_dim": 16, "hidden_size": 12, **sizes})
    assert config.state_values() == sum(v.numel() for v in build_model(config).state_dict().values())


# ---------------------------------------------------------------- 5 and 6: the tokenizer and the graph


def test_a_tokenizer_with_a_foreign_regular_expression_is_refused(folder, capsys):
    """Issue case 5: a normalizer whose expression backtracks made the tokenizers library panic on a short text."""
    from tokenizers import Tokenizer

    def hostile(tokenizer):
        tokenizer["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": HOSTILE_REGEX}, "content": " "}, tokenizer["normalizer"]]}

    _edit_json(folder, "tokenizer.json", hostile)
    with pytest.raises(BaseException, match="retry-limit-in-match"):  # what it did: a PanicException
        Tokenizer.from_file(str(folder / "tokenizer.json")).encode("a" * 24 + "!")
    with pytest.raises(ArtifactsError, match=r"tokenizer\.json: holds the regular expression '\(a\|a\)\*\$\|\(a\|aa\)\*b', "
                                             r"which sentiment-gru does not write"):
        SentimentClassifier.from_pretrained(folder)
    assert "holds the regular expression" in _one_line_error(["--artifacts", str(folder), "a" * 24 + "!"], capsys)


def test_a_tokenizer_that_cuts_texts_elsewhere_is_refused(folder):
    _edit_json(folder, "tokenizer.json", lambda tokenizer: tokenizer["truncation"].update(max_length=10**9))
    with pytest.raises(ArtifactsError, match=r"tokenizer\.json: cuts texts at 1000000000 tokens, but config\.json says \d+"):
        SentimentClassifier.from_pretrained(folder)
    _edit_json(folder, "config.json", lambda config: config.pop("tokenizer"))  # a folder made by hand: nothing to compare
    with pytest.raises(ArtifactsError, match=r"tokenizer\.json: cuts texts at 1000000000 tokens; a model reads at most 10,000"):
        SentimentClassifier.from_pretrained(folder)


def test_a_graph_without_its_configuration_is_refused(folder, capsys):
    """Issue case 6: a model.onnx without its `config` metadata ended in a traceback."""
    import onnx

    graph = onnx.load(str(folder / "model.onnx"))
    config = json.loads(next(p.value for p in graph.metadata_props if p.key == "config"))
    del graph.metadata_props[:]
    onnx.save(graph, str(folder / "model.onnx"))
    relist(folder, "model.onnx")
    with pytest.raises(ArtifactsError, match=r"model\.onnx: has no model configuration in its metadata \(\"config\"\)"):
        SentimentClassifier.from_pretrained(folder, backend="onnx")
    assert "has no model configuration" in _one_line_error(["--artifacts", str(folder), "--backend", "onnx", "fine"], capsys)

    onnx.helper.set_model_props(graph, {"config": json.dumps({**config, "num_layers": config["num_layers"] + 1})})
    onnx.save(graph, str(folder / "model.onnx"))
    relist(folder, "model.onnx")
    with pytest.raises(ArtifactsError, match=r"model\.onnx: exported from another model than config\.json describes \(num_layers differ\)"):
        SentimentClassifier.from_pretrained(folder, backend="onnx")


# ---------------------------------------------------------------- 11: training's output folder


def _data_args(tmp_path: Path) -> list[str]:
    files = {"train": write_csv(tmp_path / "train.csv", make_rows(240, seed=1)),
             "validation": write_csv(tmp_path / "validation.csv", make_rows(60, seed=2)),
             "test": write_csv(tmp_path / "test.csv", make_rows(60, seed=3))}
    return [f"--{s}-file={p}" for s, p in files.items()]


def test_a_second_training_into_the_same_folder_fails_naming_the_first(tmp_path, capsys):
    """Issue case 11: two trainings into one --output-dir both reported "model written"."""
    data, out = _data_args(tmp_path), tmp_path / "model"
    first = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *data, *TINY_MODEL_ARGS, "--output-dir", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".model.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text()) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert train_main([*data, *TINY_MODEL_ARGS, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out}/ is being written by another run (pid {first.pid}, started " in err
    assert "scripts/train.py" in err and "Wait for it to finish, or choose another --output-dir." in err
    assert first.wait(300) == 0, first.stderr.read()
    assert not lock.exists() and SentimentClassifier.from_pretrained(out, backend="torch")("fine")


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_old_model(trained_dir, tmp_path, monkeypatch, capsys):
    """Issue case 11: OSError 28 during the save ended in a traceback."""
    from safetensors import torch as safetensors_torch

    out = tmp_path / "model"
    shutil.copytree(trained_dir, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def full(state, path, metadata=None):
        Path(path).write_bytes(b"\x00" * 1024)  # part of the weights, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(safetensors_torch, "save_file", full)
    assert train_main([*_data_args(tmp_path), *TINY_MODEL_ARGS, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: No space left on the disk of {tmp_path}/ while writing model/ (No space left on device); the previous " \
           f"{out}/ is unchanged. Free some space and add --resume to the same command: the trained model is kept in " \
           f"{out}.checkpoint/ and is saved without training again." in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model")) == []  # no staging folder, no lock
    monkeypatch.undo()
    assert train_main([*_data_args(tmp_path), *TINY_MODEL_ARGS, "--output-dir", str(out), "--resume"]) == 0
    assert not (tmp_path / "model.checkpoint").exists()
    assert read_folder(out).manifest != json.loads(before[Path("MANIFEST.json")])["files"]  # the new model, saved

