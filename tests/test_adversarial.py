"""Adversarial training: the perturbation has the asked size per text, raises the loss more than a random one of that
size, reaches the token vectors through both GRU paths, and `--adversarial` trains a different model than without."""

from __future__ import annotations

import json

import torch
from torch import nn

from sentiment_gru.config import ModelConfig
from sentiment_gru.model.classifier import GRUClassifier
from sentiment_gru.train.classify import _adversarial_perturbation

from conftest import TINY_MODEL_ARGS


def test_the_perturbation_raises_the_loss_more_than_a_random_one_of_its_size(steps):
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=6, num_layers=2, gru_impl="fast")).eval()
    ids = torch.randint(2, 50, (5, 9))
    lengths = torch.tensor([9, 4, 1, 9, 6])
    ids[torch.arange(9) >= lengths[:, None]] = 0
    labels = torch.tensor([0, 1, 1, 0, 1])
    loss_fn = nn.CrossEntropyLoss()
    zero = torch.zeros(5, 9, 8, requires_grad=True)
    clean = loss_fn(model(ids, lengths, zero), labels)
    clean.backward()
    assert torch.all(zero.grad[torch.arange(9) >= lengths[:, None]] == 0)  # padding never matters, so it is never moved

    adversarial = _adversarial_perturbation(zero.grad, 0.5)
    torch.testing.assert_close(adversarial.flatten(1).norm(dim=1), torch.full((5,), 0.5))
    random = torch.randn(5, 9, 8) * (torch.arange(9) < lengths[:, None])[..., None]
    random = 0.5 * random / random.flatten(1).norm(dim=1)[:, None, None]
    with torch.no_grad():
        worst = loss_fn(model(ids, lengths, adversarial), labels)
        other = loss_fn(model(ids, lengths, random), labels)
    assert worst > other and worst > clean


def test_train_with_adversarial_records_it_and_learns_another_model(trained_dir, tmp_path):
    from sentiment_gru.inference.folder import load_model
    from sentiment_gru.cli import train_main

    out = tmp_path / "model"
    argv = [f"--{s}-file={trained_dir.parent / f'{s}.csv'}" for s in ("train", "validation", "test")]
    assert train_main([*argv, "--output-dir", str(out), *TINY_MODEL_ARGS, "--adversarial", "1.0"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["adversarial"] == 1.0
    plain, adversarial = load_model(trained_dir).model, load_model(out).model  # the same run but for --adversarial
    assert not torch.equal(plain.classifier.weight, adversarial.classifier.weight)
