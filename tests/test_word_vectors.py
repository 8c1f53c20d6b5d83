"""--word-vectors: WordLlama's token embeddings from the wordllama wheel, checked by sha256, as the embedding's start."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL_ARGS, make_rows, write_csv

from sentiment_gru.config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from sentiment_gru.data import domains
from sentiment_gru.errors import ConfigError, DataError
from sentiment_gru.model.classifier import build_model, start_from_vectors
from sentiment_gru.text import vectors
from sentiment_gru.text.tokenizer import PAD_ID, UNK_ID, train_tokenizer

WORDS = ["excellent", "great", "wonderful", "awful", "terrible", "horrible", "table", "chair"]


@pytest.fixture(scope="module")
def word_tokenizer():
    texts = [" ".join(WORDS)] * 5 + ["the film was great and the food was awful"] * 5
    return train_tokenizer(texts, TokenizerConfig(vocab_size=300, min_frequency=1))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_token_vectors_put_words_of_like_meaning_together(word_tokenizer):
    table = vectors.token_vectors(word_tokenizer, 64)
    assert table.shape == (word_tokenizer.get_vocab_size(), 64) and table.dtype == np.float32
    assert not table[PAD_ID].any() and not table[UNK_ID].any()
    assert abs(float(table[2:].std()) - vectors.SCALE) < 0.05
    row = {w: table[word_tokenizer.token_to_id(w)] for w in WORDS}
    for good, bad in (("excellent", "awful"), ("great", "terrible"), ("wonderful", "horrible")):
        assert cosine(row[good], row["great" if good != "great" else "excellent"]) > cosine(row[good], row[bad])
    assert cosine(row["table"], row["chair"]) > cosine(row["table"], row["awful"])


def test_a_missing_or_altered_wheel_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(domains.DATA_ENV, str(tmp_path))
    vectors.load_vectors.cache_clear()
    try:
        with pytest.raises(DataError, match=r"^--word-vectors needs the wordllama==0.4.0.post1 wheel in .*Run: make setup"):
            vectors.load_vectors()
        fake = tmp_path / "wordllama-0.4.0.post1-cp311-cp311-manylinux2014_x86_64.whl"
        with zipfile.ZipFile(fake, "w") as wheel:
            wheel.writestr(vectors.WEIGHTS_MEMBER, b"not the weights")
        with pytest.raises(DataError, match=r"l2_supercat_256.safetensors has sha256 .*expected 64b47a2dc493cb8e.*Delete it"):
            vectors.load_vectors()
    finally:
        vectors.load_vectors.cache_clear()


def test_start_from_vectors_fills_each_learned_row_with_its_tokens_vector():
    config = ModelConfig(vocab_size=6, embedding_dim=4, hidden_size=4, num_layers=1, embedding_rows=3)
    rows = torch.tensor([0, 1, 0, 2, 0, 0])  # tokens 1 and 3 were seen in training
    model = build_model(config, token_rows=rows)
    table = np.arange(24, dtype=np.float32).reshape(6, 4)
    start_from_vectors(model, table)
    assert torch.equal(model.embedding.weight.detach(), torch.tensor(np.stack([np.zeros(4), table[1], table[3]]), dtype=torch.float32))
    plain = build_model(ModelConfig(vocab_size=6, embedding_dim=4, hidden_size=4, num_layers=1))
    start_from_vectors(plain, table)
    assert not plain.embedding.weight[PAD_ID].any() and torch.equal(plain.embedding.weight[1:].detach(), torch.from_numpy(table[1:]))


def test_word_vectors_conflict_with_a_parent_and_with_wide_embeddings():
    with pytest.raises(ConfigError, match=r"^--word-vectors starts the embedding from word vectors, --init-from .*drop one\.$"):
        RunConfig(train=TrainConfig(word_vectors=True, init_from="artifacts"))
    with pytest.raises(ConfigError, match=r"^--word-vectors gives 256 dimensions: set --embedding-dim to 256 or less\.$"):
        RunConfig(model=ModelConfig(embedding_dim=300), train=TrainConfig(word_vectors=True))


def test_a_model_trained_with_word_vectors_starts_from_them_and_says_so(tmp_path, monkeypatch):
    from sentiment_gru.cli import train_main
    from sentiment_gru.train import fit

    started = {}
    build = fit.start_from_vectors

    def spy(model, table):  # the real function, its arguments kept
        started["table"] = table
        build(model, table)
        started["weights"] = model.embedding.weight.detach().clone()

    monkeypatch.setattr(fit, "start_from_vectors", spy)
    rows = make_rows(120, seed=3)
    out = tmp_path / "model"
    argv = [f"--train-file={write_csv(tmp_path / 'train.csv', rows)}", "--output-dir", str(out), "--word-vectors", *TINY_MODEL_ARGS]
    assert train_main(argv) == 0
    assert started["table"].shape[1] == 16 and torch.equal(started["weights"], torch.from_numpy(started["table"]).masked_fill(
        torch.arange(len(started["table"]))[:, None] == PAD_ID, 0.0))
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["word_vectors"] is True
    assert "Token vectors started from WordLlama's 256-d token embeddings" in (out / "README.md").read_text()


def test_with_word_vectors_a_lexicon_word_training_never_reaches_keeps_its_own_vector(tmp_path):
    from sentiment_gru.cli import train_main
    from sentiment_gru.inference.folder import load_model

    rows = make_rows(120, seed=4)
    out = {}
    for flag in ("--no-word-vectors", "--word-vectors"):
        out[flag] = tmp_path / flag.strip("-")
        argv = [f"--train-file={write_csv(tmp_path / 'train.csv', rows)}", "--output-dir", str(out[flag]), "--lexicon", flag,
                *TINY_MODEL_ARGS]
        assert train_main(argv) == 0
    plain, started = load_model(out["--no-word-vectors"]), load_model(out["--word-vectors"])
    assert plain.model.config.embedding_rows > 0 and started.model.config.embedding_rows == 0
    unseen = started.tokenizer.token_to_id("magnificent")  # a lexicon word the made-up rows never use
    assert unseen is not None and "magnificent" not in " ".join(r["text"] for r in rows)
    assert int(plain.model.token_rows[unseen]) == 0
    table = vectors.token_vectors(started.tokenizer, 16)
    assert torch.allclose(started.model.embedding.weight[unseen], torch.from_numpy(table[unseen]))
