"""Interrupted training resumes; diverged training stops cleanly; unsafe checkpoints are refused."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import make_rows, write_csv
from sentiment_gru.train import classify as training
from sentiment_gru.inference.folder import write_model_files
from sentiment_gru.train.checkpoint import load_checkpoint_file
from sentiment_gru.cli import train_main
from sentiment_gru.errors import ArtifactsError, CheckpointError

ROOT = Path(__file__).resolve().parent.parent
RUN_ARGS = [
    "--epochs", "4", "--patience", "4", "--batch-size", "8", "--vocab-size", "200", "--embedding-dim", "16",
    "--hidden-size", "16", "--learning-rate", "0.01", "--quiet",
]


@pytest.fixture
def data_args(tmp_path):
    files = {
        "train": write_csv(tmp_path / "train.csv", make_rows(240, seed=1)),
        "validation": write_csv(tmp_path / "validation.csv", make_rows(60, seed=2)),
        "test": write_csv(tmp_path / "test.csv", make_rows(60, seed=3)),
    }
    return [f"--{s}-file={p}" for s, p in files.items()]


def _train(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same threads in every run, so the same floats
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _scores(folder: Path) -> tuple:
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics["accuracy"], metrics["log_loss"], metrics["confusion_matrix"]


def test_sigterm_then_resume_gives_the_uninterrupted_result(data_args, tmp_path, capsys):
    reference = _train(*data_args, *RUN_ARGS, "--output-dir", str(tmp_path / "reference"))
    out, checkpoint = tmp_path / "model", tmp_path / "model.checkpoint" / "checkpoint.pt"
    run = _train(*data_args, *RUN_ARGS, "--output-dir", str(out))
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    assert "SIGTERM received: stopped" in err and "Traceback" not in err
    assert "Resume with: python scripts/train.py " in err and err.rstrip().endswith("--resume")
    assert not out.exists(), "the model folder is written only when training ends"

    assert train_main([*data_args, *RUN_ARGS, "--output-dir", str(out)]) == 2
    assert "holds the checkpoint of an interrupted run. Add --resume" in capsys.readouterr().err
    assert train_main([*data_args, *RUN_ARGS, "--output-dir", str(out), "--learning-rate", "0.02", "--resume"]) == 2
    assert "--resume: the options differ from the interrupted run's (train.learning_rate)" in capsys.readouterr().err

    resumed = _train(*data_args, *RUN_ARGS, "--output-dir", str(out), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    assert _scores(out) == _scores(tmp_path / "reference")
    assert not checkpoint.parent.exists(), "the checkpoint is removed after success"


class _Evil:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))  # unpickling this creates the file


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_malicious_checkpoint_is_refused(data_args, tmp_path, capsys, writer):
    marker = tmp_path / "pwned"
    folder = tmp_path / "model.checkpoint"
    folder.mkdir()
    if writer == "torch.save":
        torch.save({"format_version": 1, "model": _Evil(marker)}, folder / "checkpoint.pt")
    else:
        (folder / "checkpoint.pt").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: refused: it holds objects other than tensors and plain values"):
        load_checkpoint_file(folder / "checkpoint.pt")
    assert train_main([*data_args, *RUN_ARGS, "--output-dir", str(tmp_path / "model"), "--resume"]) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_resume_without_a_checkpoint_says_so(data_args, tmp_path, capsys):
    assert train_main([*data_args, *RUN_ARGS, "--output-dir", str(tmp_path / "model"), "--resume"]) == 2
    assert "--resume: no checkpoint in" in capsys.readouterr().err


def test_a_non_finite_loss_stops_with_advice_and_keeps_the_last_checkpoint(data_args, tmp_path, capsys, monkeypatch):
    calls = 0

    class NaNLoss(nn.CrossEntropyLoss):
        def forward(self, logits, target):
            nonlocal calls
            calls += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if calls == 40 else loss  # a step of epoch 2 (30 steps + validation each)

    monkeypatch.setattr(training.nn, "CrossEntropyLoss", NaNLoss)
    out = tmp_path / "model"
    assert train_main([*data_args, *RUN_ARGS, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: Training diverged: the training loss became nan at step 9 of epoch 2. Lower --learning-rate (now 0.01)" in err
    assert "The last good checkpoint is kept in" in err
    assert not out.exists()
    state = load_checkpoint_file(tmp_path / "model.checkpoint" / "checkpoint.pt")
    assert state["fit"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["fit"]["model"].values() if v.is_floating_point())


def test_non_finite_weights_are_never_written(tmp_path):
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(ArtifactsError, match=r"Refusing to save non-finite weights \(weight\)"):
        write_model_files(tmp_path, model, tokenizer=None, config={})
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_suggests_smaller_batches(data_args, tmp_path, capsys, monkeypatch):
    def oom(self, ids, lengths):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training.GRUClassifier, "forward", oom)
    assert train_main([*data_args, *RUN_ARGS, "--output-dir", str(tmp_path / "model")]) == 2
    assert "Out of CPU memory with --batch-size 8 and --max-length 256: lower one of them" in capsys.readouterr().err


def test_sigterm_while_pretraining_then_resume_gives_the_uninterrupted_result(data_args, tmp_path):
    args = [*data_args, *RUN_ARGS, "--pretrain-epochs", "12"]
    reference = _train(*args, "--output-dir", str(tmp_path / "reference"))
    out, checkpoint = tmp_path / "model", tmp_path / "model.checkpoint" / "checkpoint.pt"
    run = _train(*args, "--output-dir", str(out))
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:  # saved before pretraining starts
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    assert "SIGTERM received: stopped in pretraining epoch" in err and err.rstrip().endswith("--resume")
    assert load_checkpoint_file(checkpoint)["pretrain_state"]["epoch"] < 12

    resumed = _train(*args, "--output-dir", str(out), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    assert _scores(out) == _scores(tmp_path / "reference")
    history = [json.loads((folder / "history.json").read_text())["pretraining"] for folder in (out, tmp_path / "reference")]
    assert [row["train_loss"] for row in history[0]] == [row["train_loss"] for row in history[1]]
