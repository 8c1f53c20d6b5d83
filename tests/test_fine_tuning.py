"""--init-from: a run starts from a trained model (its tokenizer, weights and, by label name, its head), keeps its
architecture, names it in the model card, scores it beside the fine-tuned model, and resumes, exports and runs under
torchrun like any other run."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL_ARGS, make_rows, write_csv
from sentiment_gru.cli import run_config_from, train_main, train_parser
from sentiment_gru.config import DataConfig, build_run_config
from sentiment_gru.data.batching import batched_logits
from sentiment_gru.data.load import load_data
from sentiment_gru.inference.classifier import SentimentClassifier
from sentiment_gru.inference.folder import rewrite_folder
from sentiment_gru.runs import evaluate_saved, parent_config
from sentiment_gru.train import fit
from sentiment_gru.train.classify import ClassifierTask
from sentiment_gru.train.parent import HEAD, Parent
from sentiment_gru.train.state import LoopState

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["a wonderful film", "a dull and tedious story", "the plot is okay", "brilliant cast, clumsy script"]


def _files(folder: Path, labels=("negative", "positive"), sizes=(120, 40, 60), seed=20) -> list[str]:
    """train/validation/test CSV files of `labels`, as data options."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {split: write_csv(folder / f"{split}.csv", make_rows(n, seed=seed + k, labels=labels))
             for k, (split, n) in enumerate(zip(("train", "validation", "test"), sizes))}
    return [f"--{split}-file={path}" for split, path in files.items()]


def _relabelled(source: Path, target: Path, order: list[str]) -> Path:
    """A copy of the model folder `source` with its labels in `order` and its head's rows permuted to match: the same
    model under another label order."""
    from safetensors.torch import load_file, save_file

    def write(staging: Path) -> None:
        config = json.loads((staging / "config.json").read_text())
        rows = [config["label_names"].index(name) for name in order]
        config["label_names"] = list(order)
        (staging / "config.json").write_text(json.dumps(config))
        state = load_file(str(staging / "model.safetensors"))
        for key in (HEAD + "weight", HEAD + "bias"):
            state[key] = state[key][rows].contiguous()
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})

    rewrite_folder(source, target, write)
    return target


def _parent(folder: Path) -> tuple[SentimentClassifier, Parent]:
    clf = SentimentClassifier.from_pretrained(folder, backend="torch")
    return clf, Parent(folder.name, clf.backend.model, clf.tokenizer, clf.label_names)


def _starting_models(monkeypatch) -> list[torch.nn.Module]:
    """Make `fit.train` run no training step; return the list it fills with each stage's model as its loop got it."""
    seen = []

    def no_steps(task, *args, **kwargs) -> LoopState:
        seen.append(copy.deepcopy(task.model).eval())
        return LoopState()

    monkeypatch.setattr(fit, "run", no_steps)
    return seen


def _logits(model, clf: SentimentClassifier) -> np.ndarray:
    return batched_logits(model, clf.encode(TEXTS), batch_size=8, device=torch.device("cpu")).numpy()


def _body(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD)}


# ---------------------------------------------------------------- the parent's weights, its head matched by label name


def test_a_parent_with_its_labels_in_another_order_gives_the_same_logits_per_label_before_any_step(trained_dir, tmp_path, monkeypatch):
    reordered = _relabelled(trained_dir, tmp_path / "reordered", ["positive", "negative"])
    clf, parent = _parent(reordered)
    assert clf.label_names == ["positive", "negative"]
    data_args = _files(tmp_path / "data")
    data = load_data(data_config_of(data_args))
    assert data.label_names == ["negative", "positive"]
    config = build_run_config(data_config_of(data_args), parent=clf.folder.config, train={"init_from": str(reordered)})

    seen = _starting_models(monkeypatch)
    fit.train(config, data, progress=False, parent=parent)
    child = _logits(seen[0], clf)
    np.testing.assert_allclose(child[:, [1, 0]], _logits(parent.model, clf), rtol=0, atol=1e-6)


def test_the_ensemble_and_the_student_start_from_the_parent_and_other_labels_get_a_new_head(trained_dir, tmp_path, monkeypatch):
    clf, parent = _parent(trained_dir)
    data_args = _files(tmp_path / "data", labels=("negative", "neutral", "positive"))
    data = load_data(data_config_of(data_args))
    config = build_run_config(data_config_of(data_args), parent=clf.folder.config, model={"ensemble_size": 2},
                              train={"init_from": str(trained_dir), "distill": True})
    seen = _starting_models(monkeypatch)
    fit.train(config, data, progress=False, parent=parent)
    assert len(seen) == 3  # two members, then the student
    for model in seen:
        for key, value in _body(parent.model).items():
            torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
        assert model.classifier.weight.shape == (3, parent.model.classifier.weight.shape[1])
    assert not torch.equal(seen[0].classifier.weight, seen[1].classifier.weight)  # each member's new head, from its seed


def test_options_that_conflict_with_the_parent_are_one_line_errors(trained_dir, tmp_path, capsys):
    data = _files(tmp_path / "data")
    where = f"the parent model (--init-from {trained_dir})"
    cases = [
        (["--hidden-size", "256"], f"error: --hidden-size 256 conflicts with {where}, which has --hidden-size 16: a model started "
                                   "from another keeps its tokenizer and the shapes of its weights. Drop --hidden-size."),
        (["--lexicon"], f"error: --lexicon conflicts with {where}, which has --no-lexicon"),
        (["--vocab-size", "300"], f"error: --vocab-size 300 conflicts with {where}, which has --vocab-size 200"),
        (["--num-layers", "1"], f"error: --num-layers 1 conflicts with {where}, which has --num-layers 2"),
        (["--embedding-dim", "32"], f"error: --embedding-dim 32 conflicts with {where}, which has --embedding-dim 16"),
        (["--predict-length", "100"], "must be 0 or at least max_length (256). Got 100 instead. With --init-from, --max-length 256, "
                                      "--tail-tokens 0 came from the parent model: give the options that go with it."),
        (["--ensemble", "2", "--distill", "--student-hidden-size", "8"],
         "error: With --init-from the student starts from the parent, so it has the parent's sizes: drop --student-hidden-size."),
    ]
    for extra, message in cases:
        assert train_main([*data, "--init-from", str(trained_dir), "--output-dir", str(tmp_path / "out"), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_preset_gives_way_to_the_parents_architecture(trained_dir, tmp_path):
    args = train_parser().parse_args([*_files(tmp_path / "data"), "--preset", "snippets", "--init-from", str(trained_dir)])
    config = run_config_from(args)
    assert config.tokenizer.lexicon is False and config.tokenizer.vocab_size == 200  # the parent's, not the preset's
    assert (config.model.hidden_size, config.model.embedding_dim, config.model.dropout) == (16, 16, 0.1)
    assert config.model.ensemble_size == 7 and config.train.distill and config.train.student_hidden_size == 0
    assert parent_config(str(trained_dir))["model"]["hidden_size"] == 16



def test_a_preset_s_word_vectors_give_way_to_the_parent_s_given_ones_do_not(trained_dir, tmp_path, capsys):
    data = _files(tmp_path / "data")
    config = run_config_from(train_parser().parse_args([*data, "--preset", "general", "--init-from", str(trained_dir)]))
    assert not config.train.word_vectors and config.train.epochs == 4  # the parent's vectors; the preset's training options
    assert config.model.embedding_dim == 16 and config.tokenizer.vader_lexicon is False  # the parent's architecture
    assert train_main([*data, "--word-vectors", "--init-from", str(trained_dir), "--output-dir", str(tmp_path / "out")]) == 2
    assert "--word-vectors starts the embedding from word vectors, --init-from from the parent's: drop one." in capsys.readouterr().err


# ---------------------------------------------------------------- a fine-tuned model folder


@pytest.fixture(scope="module")
def fine_tuned(three_label_dir, tmp_path_factory) -> tuple[Path, list[str]]:
    """The three-label model fine-tuned on negative/positive files for 2 epochs, and those files as data options."""
    root = tmp_path_factory.mktemp("fine_tuned")
    data = _files(root / "data")
    out = root / "tuned"
    assert train_main([*data, "--init-from", str(three_label_dir), "--output-dir", str(out), "--epochs", "2", "--quiet"]) == 0
    return out, data


def test_the_parents_score_on_the_same_split_is_in_the_metrics_and_the_report(fine_tuned, three_label_dir, tmp_path):
    out, data = fine_tuned
    metrics = json.loads((out / "metrics.json").read_text())
    parent = metrics["parent"]
    # the parent scored by the larger of the data's labels' probabilities, as `evaluate` scores it on that file
    alone, _ = evaluate_saved(three_label_dir, data_config_of(data[2:]), "test", tmp_path / "eval", baseline=False)
    assert (parent["accuracy"], parent["macro_f1"]) == (alone["accuracy"], alone["macro_f1"])
    assert parent["label_subset"]["scored_labels"] == ["negative", "positive"]
    assert parent["gain"]["accuracy"] == pytest.approx(metrics["accuracy"] - parent["accuracy"])
    config = json.loads((out / "config.json").read_text())
    assert config["parent"]["head"] == "the parent's rows for negative, positive (of negative, neutral, positive)"
    assert config["label_names"] == ["negative", "positive"] and config["model"]["num_classes"] == 2
    assert config["model"]["hidden_size"] == 16 and config["tokenizer"]["vocab_size"] == 200  # the parent's, not the defaults
    report = (out / "report.md").read_text()
    assert f"| Parent model before fine-tuning ({three_label_dir.name}) | {parent['accuracy']:.4f} |" in report
    assert f"Started from {three_label_dir.name}: on this split the parent alone scores accuracy {parent['accuracy']:.4f}" in report
    assert "each text is given the larger of the probabilities of negative, positive" in report


def test_the_model_card_names_the_parent_as_base_model(fine_tuned, three_label_dir):
    from huggingface_hub import ModelCard

    out, _ = fine_tuned
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == three_label_dir.name
    assert f"- Started from: {three_label_dir.name} (`--init-from {three_label_dir}`)" in card.text
    assert "classifier head: the parent's rows for negative, positive" in card.text
    assert "| the parent model before fine-tuning" in card.text


def test_a_fine_tuned_model_exports_to_onnx_with_parity(fine_tuned, tmp_path):
    pytest.importorskip("onnxruntime")
    from sentiment_gru.cli import export_main

    folder = tmp_path / "tuned"
    SentimentClassifier.from_pretrained(fine_tuned[0], backend="torch").save_pretrained(folder)
    assert export_main(["--artifacts", str(folder), "--quiet"]) == 0  # checks parity itself
    torch_probabilities = SentimentClassifier.from_pretrained(folder, backend="torch").predict_proba(TEXTS)
    onnx_probabilities = SentimentClassifier.from_pretrained(folder, backend="onnx").predict_proba(TEXTS)
    np.testing.assert_allclose(onnx_probabilities, torch_probabilities, atol=1e-5)


def test_a_hub_id_is_loaded_as_from_pretrained_loads_it_and_named_as_base_model(trained_dir, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import ModelCard

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, revision=None: str(trained_dir))
    out = tmp_path / "tuned"
    assert train_main([*_files(tmp_path / "data"), "--init-from", "someone/tiny-sentiment", "--output-dir", str(out),
                       "--epochs", "1", "--quiet"]) == 0
    assert ModelCard.load(out / "README.md").data.base_model == "someone/tiny-sentiment"
    config, metrics = (json.loads((out / name).read_text()) for name in ("config.json", "metrics.json"))
    assert config["train"]["init_from"] == "someone/tiny-sentiment" and config["parent"]["head"] == "the parent's"
    assert "label_subset" not in metrics["parent"] and 0.5 <= metrics["parent"]["accuracy"] <= 1.0


# ---------------------------------------------------------------- resume and torchrun


def test_a_fine_tune_stopped_after_a_step_resumes_to_the_uninterrupted_result(trained_dir, tmp_path, monkeypatch):
    args = [*_files(tmp_path / "data"), "--init-from", str(trained_dir), *TINY_MODEL_ARGS, "--epochs", "2", "--patience", "2"]
    assert train_main([*args, "--output-dir", str(tmp_path / "reference")]) == 0

    loss, steps = ClassifierTask.loss, []

    def sigterm_at_step_20(task, net, batch):
        steps.append(1)
        if len(steps) == 20:  # step 5 of epoch 2 (of 15 steps each)
            os.kill(os.getpid(), signal.SIGTERM)
        return loss(task, net, batch)

    out = tmp_path / "tuned"
    monkeypatch.setattr(ClassifierTask, "loss", sigterm_at_step_20)
    assert train_main([*args, "--output-dir", str(out)]) == 143
    monkeypatch.setattr(ClassifierTask, "loss", loss)
    assert not out.exists() and (tmp_path / "tuned.checkpoint" / "checkpoint.pt").is_file()
    assert train_main([*args, "--output-dir", str(out), "--resume"]) == 0
    reference, resumed = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("reference", "tuned"))
    for key in ("accuracy", "log_loss", "confusion_matrix"):
        assert resumed[key] == reference[key]
    assert resumed["parent"] == reference["parent"]
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "reference" / "model.safetensors").read_bytes()


def test_two_torchrun_processes_fine_tune_from_a_parent(trained_dir, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out, logs = tmp_path / "tuned", tmp_path / "logs"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", "--log-dir", str(logs),
         "--redirects", "3", str(ROOT / "scripts" / "train.py"), *_files(tmp_path / "data"), "--init-from", str(trained_dir),
         "--output-dir", str(out), "--batch-size", "4", "--epochs", "2", "--quiet"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=180,
    )
    assert done.returncode == 0, done.stderr + "".join(p.read_text() for p in logs.rglob("*.log"))
    config, metrics = (json.loads((out / name).read_text()) for name in ("config.json", "metrics.json"))
    assert config["processes"] == 2 and config["parent"]["name"] == trained_dir.name
    assert metrics["accuracy"] >= 0.8 and "accuracy" in metrics["parent"]


def data_config_of(args: list[str]) -> DataConfig:
    """The DataConfig of `--SPLIT-file=PATH` options."""
    return DataConfig(**{arg.split("=")[0][2:].replace("-", "_"): arg.split("=", 1)[1] for arg in args})
