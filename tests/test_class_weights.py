"""--class-weight: balanced or named weights, checked against the data's labels, in the training loss, recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TINY_MODEL_ARGS, make_rows, write_csv
from sentiment_gru.cli import train_main
from sentiment_gru.config import ModelConfig, TrainConfig, class_weight_spec
from sentiment_gru.data.batching import Batch, TokenIds
from sentiment_gru.errors import ConfigError
from sentiment_gru.model.classifier import GRUClassifier
from sentiment_gru.train.classify import ClassifierTask, class_weights

LABELS = ["negative", "neutral", "positive"]


def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 50 + [1] * 10 + [2] * 40)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(class_weights("balanced", LABELS, labels), expected)
    assert class_weights(None, LABELS, labels) is None


def test_named_weights_leave_the_other_labels_at_one_and_unknown_names_are_refused():
    np.testing.assert_allclose(class_weights("positive=2.5, negative=0.5", LABELS, None), [0.5, 1.0, 2.5])
    with pytest.raises(ConfigError, match=r"^--class-weight names labels the data does not have: postive\. "
                                          r"Its labels are: negative, neutral, positive\.$"):
        class_weights("postive=2", LABELS, None)


@pytest.mark.parametrize("value", ["positive", "positive=0", "positive=-1", "positive=x", "=2", "a=1,a=2", "positive=inf"])
def test_a_malformed_class_weight_names_the_option(value):
    with pytest.raises(ConfigError, match=r"^--class-weight must be balanced or label=weight,\.\.\. .* Got "):
        TrainConfig(class_weight=value)
    assert class_weight_spec("balanced") == "balanced"


def test_the_weights_change_the_training_loss_as_computed_by_hand():
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=50, num_classes=3, embedding_dim=8, hidden_size=8, num_layers=1, dropout=0.0,
                                      embedding_dropout=0.0)).eval()
    ids = TokenIds.from_lists([[3, 4, 5], [6, 7], [8, 9, 10, 11], [12]])
    batch_ids, lengths = ids.batch([0, 1, 2, 3])
    labels = torch.tensor([0, 2, 2, 1])
    batch = Batch(ids=batch_ids, lengths=lengths, labels=labels, rows=None)
    weights = np.array([0.5, 1.0, 4.0])
    task = ClassifierTask(model, None, ids, np.array([0, 2, 2, 1]), TrainConfig(), torch.device("cpu"), class_weights=weights)
    plain = ClassifierTask(model, None, ids, np.array([0, 2, 2, 1]), TrainConfig(), torch.device("cpu"))

    with torch.no_grad():
        logits = model(batch_ids, lengths)
        per_text = nn.functional.cross_entropy(logits, labels, reduction="none")
        w = torch.tensor(weights, dtype=torch.float32)[labels]
        by_hand = float((w * per_text).sum() / w.sum())
        weighted, unweighted = float(task.loss(model, batch).value), float(plain.loss(model, batch).value)
    assert weighted == pytest.approx(by_hand, rel=1e-6)
    assert unweighted == pytest.approx(float(per_text.mean()), rel=1e-6)
    assert abs(weighted - unweighted) > 1e-3


def test_a_run_records_the_weights_and_an_extreme_weight_moves_the_predictions(tmp_path):
    # four negative texts to one positive, and a third of them without a sentiment word: those a plain model calls negative
    rows = [r for i, r in enumerate(make_rows(300, seed=1)) if r["label"] == "negative" or i % 8 == 1]
    train = [{**r, "text": BLAND} if k % 3 == 0 else r for k, r in enumerate(rows)]
    test = make_rows(40, seed=3) + [{"text": BLAND, "label": "positive"}] * 20
    files = {"train": write_csv(tmp_path / "train.csv", train), "test": write_csv(tmp_path / "test.csv", test)}
    data = [f"--{s}-file={p}" for s, p in files.items()]
    runs = {}
    for name, extra in (("plain", []), ("weighted", ["--class-weight", "positive=50"])):
        assert train_main([*data, "--output-dir", str(tmp_path / name), *TINY_MODEL_ARGS, *extra]) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    config = json.loads((tmp_path / "weighted" / "config.json").read_text())
    assert config["train"]["class_weight"] == "positive=50" and config["class_weights"] == {"negative": 1.0, "positive": 50.0}
    recall = {name: m["per_class"]["positive"]["recall"] for name, m in runs.items()}
    assert recall["weighted"] > recall["plain"] + 0.3, recall  # measured: 0.275 plain, 0.825 weighted
    assert "Trained with class weights in the loss (--class-weight positive=50): negative 1, positive 50" in \
        (tmp_path / "weighted" / "report.md").read_text()


BLAND = "the film is a story with a cast"
