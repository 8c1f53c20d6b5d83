"""Language-model pretraining: each direction sees only its own side, the classifier starts from the pretrained
network exactly, the loss falls, and ULMFiT's discriminative rates and gradual unfreezing do what they say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sentiment_gru.data.batching import TokenIds
from sentiment_gru.config import DataConfig, ModelConfig, TrainConfig, build_run_config
from sentiment_gru.model.encoder import BiGRUEncoder
from sentiment_gru.errors import ConfigError
from sentiment_gru.model.classifier import GRUClassifier
from sentiment_gru.train.pretrain import LanguageModel, _zero_cross_direction_inputs, language_model_loss, layer_groups, pretrain
from sentiment_gru.train.classify import _optimizer_groups

from conftest import TINY_MODEL_ARGS, make_rows

TOL = dict(atol=1e-5, rtol=1e-5)


def test_each_direction_sees_only_its_own_side(steps):
    torch.manual_seed(0)
    encoder = BiGRUEncoder(6, 5, num_layers=3).eval()
    lengths = torch.tensor([7, 4, 7])
    x = torch.randn(3, 7, 6)
    changed = x.clone()
    changed[:, 3] += torch.randn(3, 6)  # position 3 of every text (the second has 4 tokens: its last)
    H = 5
    a, b = encoder.forward_directions(x, lengths), encoder.forward_directions(changed, lengths)
    torch.testing.assert_close(a[:, :3, :H], b[:, :3, :H], **TOL)  # forward states before the change
    torch.testing.assert_close(a[:, 4:, H:], b[:, 4:, H:], **TOL)  # backward states after it
    assert not torch.allclose(a[0, 3:, :H], b[0, 3:, :H]) and not torch.allclose(a[0, :4, H:], b[0, :4, H:])
    # the bidirectional classifier's encoder mixes the directions: its forward half does see the future
    assert not torch.allclose(encoder(x, lengths)[0][0, :3, :H], encoder(changed, lengths)[0][0, :3, :H])


def test_with_the_cross_direction_inputs_zeroed_the_classifier_encoder_is_the_pretrained_one(steps):
    """Outputs and gradients: the fine-tuned classifier starts from exactly what pretraining trained."""
    torch.manual_seed(1)
    classifier = GRUClassifier(ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=6, num_layers=2, dropout=0.0))
    _zero_cross_direction_inputs(classifier)
    encoder = classifier.encoder.train()
    lengths = torch.tensor([5, 2, 5, 3])
    x = torch.randn(4, 5, 8)
    weights = torch.randn(4, 5, 12)
    results = []
    for run in (encoder.forward_directions, lambda x, lengths: encoder(x, lengths)[0]):
        encoder.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = run(xi, lengths)
        (out * weights).sum().backward()
        results.append((out.detach(), xi.grad, {n: p.grad.clone() for n, p in encoder.named_parameters()}))
    (out_a, dx_a, grads_a), (out_b, dx_b, grads_b) = results
    torch.testing.assert_close(out_a, out_b, **TOL)
    torch.testing.assert_close(dx_a, dx_b, **TOL)
    H = 6
    for name, grad in grads_a.items():
        if name == "gru.weight_ih_l1":
            torch.testing.assert_close(grad[:, :H], grads_b[name][:, :H], **TOL)
            assert not grad[:, H:].any()  # the columns pretraining never uses get no gradient...
            assert grads_b[name][:, H:].abs().sum() > 0  # ...and the classifier learns them
        elif name == "gru.weight_ih_l1_reverse":
            torch.testing.assert_close(grad[:, H:], grads_b[name][:, H:], **TOL)
            assert not grad[:, :H].any()
        else:
            torch.testing.assert_close(grad, grads_b[name], **TOL, msg=name)


def _corpus(rows: int = 300) -> TokenIds:
    """Token ids with structure to learn: each text counts up from a random start, modulo 40, ids 2..41."""
    rng = np.random.default_rng(0)
    return TokenIds.from_lists([[2 + (start + i) % 40 for i in range(int(rng.integers(2, 15)))]
                                for start in rng.integers(0, 40, rows)])


def test_pretraining_lowers_the_language_model_loss_and_changes_only_the_network_below_the_classifier():
    torch.manual_seed(2)
    classifier = GRUClassifier(ModelConfig(vocab_size=60, embedding_dim=16, hidden_size=16, num_layers=2, dropout=0.0,
                                           embedding_dropout=0.0))
    head_before = classifier.classifier.weight.clone()
    ids, held_out = _corpus(300), _corpus(60)
    untrained = language_model_loss(LanguageModel(classifier, ids.token_counts(60)), held_out, torch.device("cpu"))
    tcfg = TrainConfig(pretrain_epochs=8, batch_size=16, learning_rate=0.02, seed=3)
    history = pretrain(classifier, ids, held_out, tcfg, torch.device("cpu"), progress=False)
    assert [row["pretrain_epoch"] for row in history] == list(range(1, 9))
    assert history[-1]["val_loss"] < 0.25 * untrained  # counting is predictable both ways
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    torch.testing.assert_close(classifier.classifier.weight, head_before)


def test_the_language_model_predicts_over_frequency_ranked_clusters_and_small_vocabularies_whole():
    big = GRUClassifier(ModelConfig(vocab_size=9000, embedding_dim=8, hidden_size=16, num_layers=1))
    counts = np.arange(9000)[::-1].copy()
    lm = LanguageModel(big, counts)
    assert lm.head.cutoffs[:-1] == [2000, 8000] and int(lm.rank[0]) == 0 and int(lm.rank[8999]) == 8999
    small = LanguageModel(GRUClassifier(ModelConfig(vocab_size=300, embedding_dim=8, hidden_size=8, num_layers=1)), np.ones(300))
    assert small.head is None and small.full.out_features == 300
    loss, predictions = small(torch.tensor([[5], [7]]), torch.tensor([1, 1]))  # one-token texts: nothing to predict
    assert predictions == 0 and loss.item() == 0.0
    narrow = LanguageModel(GRUClassifier(ModelConfig(vocab_size=9000, embedding_dim=8, hidden_size=8, num_layers=1)), counts)
    assert narrow.head.cutoffs[:-1] == [2000]  # a second cluster would have vectors of 8 // 16 = 0 units


def test_discriminative_rates_fall_by_the_factor_per_group_down():
    classifier = GRUClassifier(ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=6, num_layers=2))
    groups = layer_groups(classifier)
    assert len(groups) == 4 and sum(len(g) for g in groups) == len(list(classifier.parameters()))
    assert groups[0] == [classifier.embedding.weight] and groups[-1] == list(classifier.classifier.parameters())
    rates = {}
    for group in _optimizer_groups(classifier, groups[::-1], TrainConfig(learning_rate=1.0, discriminative_lr=2.0)):
        for param in group["params"]:
            rates[id(param)] = group["lr"]
    assert rates[id(classifier.classifier.weight)] == 1.0
    assert rates[id(classifier.encoder.gru.weight_hh_l1)] == 0.5 and rates[id(classifier.encoder.gru.bias_ih_l0_reverse)] == 0.25
    assert rates[id(classifier.embedding.weight)] == 0.125


def _train_argv(files, out, *extra):
    return [f"--{s}-file={p}" for s, p in files.items()] + ["--output-dir", str(out), *TINY_MODEL_ARGS, *extra]


def test_train_pretrains_on_a_text_file_and_records_it(tiny_files, tmp_path):
    from sentiment_gru.cli import train_main

    texts = tmp_path / "unlabelled.txt"
    texts.write_text("\n".join(row["text"] for row in make_rows(120, seed=9)) + "\n\n", encoding="utf-8")
    out = tmp_path / "model"
    assert train_main(_train_argv(tiny_files, out, "--pretrain-epochs", "2", "--pretrain-file", str(texts),
                                  "--discriminative-lr", "2.6", "--gradual-unfreezing")) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["pretraining"]["epochs"] == 2 and config["pretraining"]["texts"]["texts"] == 120
    history = json.loads((out / "history.json").read_text())
    assert len(history["pretraining"]) == 2 and all("val_loss" in row for row in history["pretraining"])
    assert f"language models on the 120 texts of {texts}, 2 epochs" in (out / "README.md").read_text()


def test_gradual_unfreezing_trains_only_the_classifier_in_the_first_epoch(tiny_files, tmp_path):
    from sentiment_gru.cli import train_main
    from sentiment_gru.inference.folder import load_model

    out = tmp_path / "model"
    argv = _train_argv(tiny_files, out, "--gradual-unfreezing", "--seed", "5")
    argv[argv.index("--epochs") + 1] = "1"
    assert train_main(argv) == 0
    trained = load_model(out).model
    torch.manual_seed(5)  # the member's initial weights: drawn after the seed is set, as training does
    fresh = GRUClassifier(trained.config)
    for name, value in trained.state_dict().items():
        if name.startswith(("embedding", "encoder")):
            torch.testing.assert_close(value, fresh.state_dict()[name], msg=name)
    assert not torch.equal(trained.classifier.weight, fresh.classifier.weight)


@pytest.mark.parametrize("extra, message", [
    (["--pretrain-file", "x.txt"], "add --pretrain-epochs N"),
    (["--pretrain-epochs", "1", "--pretrain-file", "missing.txt"], "--pretrain-file missing.txt: no such file"),
    (["--pretrain-epochs", "1", "--pretrain-file", "blank.txt"], "holds no texts"),
    (["--pretrain-epochs", "1", "--pretrain-file", "unlabelled.xml"], "unsupported file type"),
])
def test_bad_pretraining_options_fail_in_one_line_with_exit_2(tiny_files, tmp_path, monkeypatch, capsys, extra, message):
    from sentiment_gru.cli import train_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    (tmp_path / "unlabelled.xml").write_text("<a/>", encoding="utf-8")
    out = tmp_path / "model"
    assert train_main(_train_argv(tiny_files, out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_pretraining_a_streamed_split_needs_a_file():
    with pytest.raises(ConfigError, match="--pretrain-file"):
        build_run_config(DataConfig(train_file="t.csv", streaming=True), train={"pretrain_epochs": 1})


def test_sentences_script_cuts_texts_into_sentences_for_distill_file(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("sentences_script", Path(__file__).resolve().parent.parent / "scripts" / "sentences.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    reviews = tmp_path / "reviews.csv"
    reviews.write_text('text,label\n"A slow start.<br /><br />Then it   soars, and the cast is superb! Why? Too short.",1\n'
                       '"Dull from the first scene to the last one here.",0\n', encoding="utf-8")
    out = tmp_path / "sentences.txt"
    assert script.main([str(reviews), str(out), "--min-words", "3", "--max-words", "6"]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == ["A slow start."]  # HTML gone; 1, 2, 8 and 10 words dropped
    assert script.main([str(reviews), str(out), "--min-words", "1"]) == 0
    assert sorted(out.read_text(encoding="utf-8").splitlines()) == sorted([
        "A slow start.", "Then it soars, and the cast is superb!", "Why?", "Too short.", "Dull from the first scene to the last one here."])
    assert script.main([str(reviews), str(out), "--min-words", "1", "--limit", "2", "--seed", "3"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2

    good = out.read_text(encoding="utf-8")
    assert script.main([str(tmp_path / "missing.txt"), str(out)]) == 2
    assert script.main([str(tmp_path / "missing.csv"), str(out)]) == 2
    assert script.main([str(reviews), str(out), "--min-words", "40"]) == 2
    err = capsys.readouterr().err
    assert "missing.txt: no such file" in err and "holds no sentence of 40-50 words" in err
    assert f"error: source {tmp_path / 'missing.csv'}: no such file." in err  # named as the script's argument, not a flag
    assert out.read_text(encoding="utf-8") == good  # a failed run leaves the earlier file as it was
