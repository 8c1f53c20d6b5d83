"""Tokenizer round trip, padding invariance, determinism and save -> load parity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sentiment_gru.inference.folder import load_model, save_atomically, write_model_files
from sentiment_gru.data.batching import batched_logits, bucketed_batches, collate
from sentiment_gru.config import CONFIG_FORMAT_VERSION, ModelConfig, TokenizerConfig
from sentiment_gru.errors import ConfigError
from sentiment_gru.model.classifier import GRUClassifier
from sentiment_gru.inference.classifier import SentimentClassifier
from sentiment_gru.text.tokenizer import PAD_ID, UNK_ID, TextEncoder, load_tokenizer, train_tokenizer

from conftest import make_rows


def test_tokenizer_round_trip(tmp_path):
    texts = [r["text"] for r in make_rows(200)] + ["Ünïcödé Café résumé"]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=300, max_length=12))
    assert tokenizer.to_str() == train_tokenizer(texts, TokenizerConfig(vocab_size=300, max_length=12)).to_str(), "deterministic"
    assert tokenizer.token_to_id("[PAD]") == PAD_ID and tokenizer.token_to_id("[UNK]") == UNK_ID
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(str(tmp_path / "tokenizer.json"))
    sample = ["The film is WONDERFUL and moving", "a dull, clumsy script", "cafe resume"]
    assert TextEncoder(loaded).encode(sample).ids == TextEncoder(tokenizer).encode(sample).ids
    assert loaded.decode(TextEncoder(loaded).encode(sample[:1]).ids[0]).replace(" ", "") == "thefilmiswonderfulandmoving"
    long_text = " ".join(["film"] * 100)
    assert len(TextEncoder(loaded).encode([long_text]).ids[0]) == 12  # truncated to max_length
    assert TextEncoder(loaded).encode(["", "   ", "🙂"]).ids == [[UNK_ID], [UNK_ID], [UNK_ID]]  # never an empty sequence


def test_wordpiece_tokenizer_trains_too():
    tokenizer = train_tokenizer([r["text"] for r in make_rows(100)], TokenizerConfig(kind="wordpiece", vocab_size=300))
    assert tokenizer.token_to_id("[PAD]") == PAD_ID
    assert tokenizer.decode(TextEncoder(tokenizer).encode(["the film is superb"]).ids[0]) == "the film is superb"


def test_bucketed_batches_cover_every_row_once_with_little_padding():
    import random

    lengths = [random.Random(i).randint(1, 200) for i in range(1000)]
    batches = bucketed_batches(lengths, batch_size=32, bucket_size=10, rng=random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    def padding_ratio(bs):
        return sum(max(lengths[i] for i in b) * len(b) for b in bs) / sum(lengths)

    unbucketed = bucketed_batches(lengths, batch_size=32, bucket_size=1, rng=random.Random(0))
    assert padding_ratio(batches) < 1.15 < 1.5 < padding_ratio(unbucketed)


def test_collate_pads_and_keeps_lengths():
    ids, lengths = collate([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    assert ids.dtype == torch.int64 and lengths.device.type == "cpu"


@pytest.mark.parametrize("impl", ["packed", "fast"])
@pytest.mark.parametrize("pooling", [("last",), ("max",), ("mean",), ("last", "max", "mean")])
def test_padding_never_leaks(impl, pooling):
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=8, num_layers=2, pooling=pooling, gru_impl=impl)).eval()
    short = [3, 4, 5]
    others = [list(range(2, 40)), list(range(7, 30)), [9] * 45]
    alone = batched_logits(model, [short], batch_size=8, device="cpu")
    batched = batched_logits(model, [short, *others], batch_size=8, device="cpu")
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-5, atol=1e-6)


def test_both_gru_paths_give_the_same_logits():
    torch.manual_seed(1)
    model = GRUClassifier(ModelConfig(vocab_size=60, embedding_dim=8, hidden_size=8, num_layers=3)).eval()
    sequences = [list(range(2, 2 + n)) for n in (1, 5, 17, 40)]
    model.encoder.impl = "packed"
    packed = batched_logits(model, sequences, batch_size=4, device="cpu")
    model.encoder.impl = "fast"
    fast = batched_logits(model, sequences, batch_size=4, device="cpu")
    torch.testing.assert_close(fast, packed, rtol=1e-5, atol=1e-6)


def test_model_config_errors_name_the_parameter():
    with pytest.raises(ConfigError, match=r"The 'hidden_size' parameter of ModelConfig must be an int in \[1, 4096\]\. Got 0 instead\."):
        ModelConfig(hidden_size=0)
    with pytest.raises(ConfigError, match=r"The 'pooling' parameter of ModelConfig must be distinct names from last, max, mean"):
        ModelConfig(pooling=("last", "attention"))


def test_save_then_load_gives_identical_logits(tmp_path):
    texts = [r["text"] for r in make_rows(100)]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=200))
    torch.manual_seed(2)
    config = ModelConfig(vocab_size=tokenizer.get_vocab_size(), embedding_dim=8, hidden_size=8)
    model = GRUClassifier(config).eval()
    facts = {"format_version": CONFIG_FORMAT_VERSION, "label_names": ["negative", "positive"], "model": dataclasses.asdict(config)}
    save_atomically(tmp_path / "model", lambda folder: write_model_files(folder, model, tokenizer, facts))
    loaded = load_model(tmp_path / "model")
    ids = TextEncoder(tokenizer).encode(texts).ids
    torch.testing.assert_close(
        batched_logits(loaded.model, ids, batch_size=32, device="cpu"), batched_logits(model, ids, batch_size=32, device="cpu"),
        rtol=0, atol=0,
    )
    assert TextEncoder(loaded.tokenizer).encode(texts).ids == ids


def test_trained_model_predicts(trained_dir):
    predictor = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    texts = ["the film is wonderful", "a dull and clumsy script", "superb"]
    probs = predictor.predict_proba(texts)
    np.testing.assert_allclose(probs.sum(-1), np.ones(3), rtol=0, atol=1e-6)
    assert [r["label"] for r in predictor.predict(texts)] == ["positive", "negative", "positive"]


def test_ensemble_averages_member_probabilities_and_survives_save_load(tmp_path):
    from sentiment_gru.model.classifier import EnsembleClassifier, build_model

    torch.manual_seed(3)
    config = ModelConfig(vocab_size=40, embedding_dim=8, hidden_size=8, ensemble_size=3)
    model = build_model(config).eval()
    assert isinstance(model, EnsembleClassifier) and len(model.members) == 3
    ids, lengths = collate([[3, 4, 5], [6, 7, 8, 9, 10]])
    with torch.no_grad():
        mean = torch.stack([m(ids, lengths).softmax(-1) for m in model.members]).mean(0)
        torch.testing.assert_close(model(ids, lengths).softmax(-1), mean)


def test_presets_sit_between_defaults_and_explicit_options():
    from sentiment_gru.config import DataConfig, build_run_config

    plain = build_run_config(DataConfig())
    assert plain.model.ensemble_size == 1 and plain.preset is None
    snippets = build_run_config(DataConfig(), preset="snippets", model={"hidden_size": 64})
    assert snippets.model.ensemble_size == 7 and snippets.model.hidden_size == 64 and snippets.preset == "snippets"
    assert snippets.tokenizer.lexicon and not plain.tokenizer.lexicon
    overridden = build_run_config(DataConfig(), preset="treebank", model={"ensemble_size": 1}, train={"epochs": 2})
    assert overridden.model.ensemble_size == 1 and overridden.train.epochs == 2
    general = build_run_config(DataConfig(), preset="general")
    assert general.tokenizer.vader_lexicon and general.tokenizer.web_text and general.train.word_vectors
    assert (general.model.embedding_dim, general.train.epochs, general.model.ensemble_size) == (64, 4, 1)
    spelled_out = build_run_config(DataConfig(), tokenizer={"lexicon": True, "vader_lexicon": True, "web_text": True},
                                   model={"embedding_dim": 64}, train={"epochs": 4, "word_vectors": True})
    assert dataclasses.replace(general, preset=None) == spelled_out  # the options docs/results.md measured, nothing else
    with pytest.raises(ConfigError, match=r"Unknown preset 'imdb'; choose one of snippets, treebank, reviews, general"):
        build_run_config(DataConfig(), preset="imdb")


def test_rules_that_join_options_are_checked_by_the_run_config():
    import re

    from sentiment_gru.config import DataConfig, ModelConfig, RunConfig, TrainConfig, build_data_config, build_run_config

    streamed = DataConfig(train_file="t.csv", streaming=True)
    refused = [
        (dict(data=streamed, model=ModelConfig(ensemble_size=2), train=TrainConfig(distill=True)),
         "--distill needs the train split held in memory to label it with the ensemble: drop --streaming or --distill."),
        (dict(train=TrainConfig(distill=True)),
         "--distill trains a student on an ensemble's probabilities: add --ensemble N (N >= 2), or drop --distill."),
        (dict(model=ModelConfig(ensemble_size=2), train=TrainConfig(distill=True, distill_from_member=True, student_num_layers=1,
                                                                    student_embedding_dim=8)),
         "--distill-from-member starts the student from a member, so it has the members' sizes: drop --student-embedding-dim, "
         "--student-num-layers or --distill-from-member."),
        (dict(data=DataConfig(distill_file="d.txt")),
         "--distill-file holds texts for the distilled student: add --distill (with --ensemble N, N >= 2), or drop --distill-file."),
        (dict(data=DataConfig(pretrain_file="p.txt")),
         "--pretrain-file holds texts for pretraining: add --pretrain-epochs N (N >= 1), or drop --pretrain-file."),
        (dict(data=streamed, train=TrainConfig(pretrain_epochs=1)),
         "--pretrain-epochs pretrains on the train split held in memory: with --streaming, give the texts to pretrain on with "
         "--pretrain-file F, or drop --pretrain-epochs."),
    ]
    for sections, message in refused:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            RunConfig(**sections)
    run = RunConfig(data=streamed)
    run.validate()
    with pytest.raises(ConfigError, match=r"^--resume cannot continue a --streaming run: a stream has no saved position\. "
                                          r"Run it again without --resume\.$"):
        run.validate(resume=True)
    RunConfig().validate(resume=True)
    with pytest.raises(ConfigError, match=r"^--stream-sample-size only applies with --streaming\. Add --streaming or drop it\.$"):
        build_data_config({"train_file": "t.csv", "stream_sample_size": 10})
    assert build_data_config({"train_file": "t.csv", "streaming": True, "stream_sample_size": 10}, seed=5).seed == 5
    # a preset's distillation applies to its own ensemble: dropped, not refused, when the run cannot have one
    assert not build_run_config(streamed, preset="snippets").train.distill
    assert not build_run_config(DataConfig(), preset="snippets", model={"ensemble_size": 1}).train.distill
