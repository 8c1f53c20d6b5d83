"""Text preparation for long reviews: HTML tags stripped in the tokenizer, and head + tail truncation."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_MODEL_ARGS, make_rows
from sentiment_gru import SentimentClassifier
from sentiment_gru.cli import train_main
from sentiment_gru.config import TokenizerConfig
from sentiment_gru.errors import ConfigError
from sentiment_gru.text.tokenizer import CHARS_PER_TOKEN_BOUND, TextEncoder, for_training, train_tokenizer

TEXTS = [r["text"] for r in make_rows(200, seed=4)] + ["good bad " * 50]


def tokenizer(**options):
    return train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300, **options))


def test_head_and_tail_keep_the_start_and_the_end_with_their_offsets():
    tok = tokenizer(max_length=40, tail_tokens=10)
    text = " ".join(["good"] * 300 + ["bad"] * 300)
    tail, head_only = TextEncoder(tok, tail_tokens=10), TextEncoder(tok)
    found = tail.encode_with_offsets([text])
    (ids,), (offsets,) = found.ids, found.offsets
    assert len(ids) == 40 and found.truncated == [True]
    assert [text[a:b] for a, b in offsets] == ["good"] * 30 + ["bad"] * 10
    assert tail.encode([text]).ids == [ids]
    assert head_only.encode([text]).ids == head_only.encode(["good " * 40]).ids, "without tail_tokens: the start only"
    short = "good bad good"
    assert tail.encode([short]) == head_only.encode([short]), "short texts are read whole either way"
    assert tail.encode([short]).truncated == [False]


def test_a_megabyte_text_is_read_from_both_ends_only():
    tok = tokenizer(max_length=40, tail_tokens=10)
    text = "good " * 200_000 + "bad " * 200_000
    found = TextEncoder(tok, tail_tokens=10).encode_with_offsets([text])
    (offsets,) = found.offsets
    assert [text[a:b] for a, b in offsets] == ["good"] * 30 + ["bad"] * 10 and found.truncated == [True]
    assert offsets[-1][1] == len(text) - 1 and len(text) > 40 * CHARS_PER_TOKEN_BOUND


def test_html_tags_are_stripped_by_the_tokenizer_itself():
    tok = tokenizer(strip_html=True)
    assert tok.encode("a good film<br /><br />a bad end").tokens == tok.encode("a good film a bad end").tokens
    assert tok.normalizer.normalize_str("<i>Good</i> film<BR/>I <3 it") == " good  film i <3 it", "tags go, a heart stays"
    plain = tokenizer()
    assert plain.encode("film<br />end").tokens != plain.encode("film end").tokens


def test_tail_tokens_cannot_exceed_the_maximum():
    with pytest.raises(ConfigError, match=r"'tail_tokens' parameter of TokenizerConfig must be at most max_length \(20\)\. Got 30"):
        TokenizerConfig(max_length=20, tail_tokens=30)


def test_a_model_trained_with_tail_tokens_predicts_with_them(tiny_files, tmp_path):
    out = tmp_path / "model"
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + TINY_MODEL_ARGS + [
        "--output-dir", str(out), "--max-length", "16", "--tail-tokens", "6", "--strip-html"]
    assert train_main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer"]["tail_tokens"] == 6 and config["tokenizer"]["strip_html"] is True
    clf = SentimentClassifier.from_pretrained(out, backend="torch")
    assert clf.encoder.tail_tokens == 6 and clf.encoder.read_length == 16
    text = "the film is quite the story " * 20 + "and it is wonderful"
    ids, end = clf.encode([text])[0], clf.encode(["and it is wonderful"])[0]
    assert len(ids) == 16 and len(end) < 6 and ids[-len(end):] == end
    explained = clf.explain_details(text)["explanation"]
    assert [e["token"] for e in explained][-2:] == ["is", "wonderful"]


def test_predict_length_cannot_be_shorter_than_the_training_length():
    with pytest.raises(ConfigError, match=r"'predict_length' parameter of TokenizerConfig must be 0 or at least max_length \(20\)\. Got 10"):
        TokenizerConfig(max_length=20, predict_length=10)


def test_training_cuts_texts_shorter_than_prediction_reads_them():
    config = TokenizerConfig(vocab_size=300, max_length=20, predict_length=40, tail_tokens=5)
    tok = train_tokenizer(TEXTS, config)
    text = " ".join(["good"] * 300 + ["bad"] * 300)
    assert tok.truncation["max_length"] == 40, "the saved tokenizer reads what prediction reads"
    training = for_training(tok, config)
    assert [len(ids) for ids in training.encode([text]).ids + TextEncoder(tok, 5).encode([text]).ids] == [20, 40]
    assert training.tail_tokens == 5 and training.read_length == 20
    assert tok.truncation["max_length"] == 40, "the copy leaves the tokenizer as it was"
    plain = TokenizerConfig(vocab_size=300, max_length=20)
    assert for_training(tok, plain).tokenizer is tok


def test_a_model_trained_on_cut_texts_reads_whole_ones_when_predicting(tiny_files, tmp_path):
    out = tmp_path / "model"
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + TINY_MODEL_ARGS + [
        "--output-dir", str(out), "--max-length", "8", "--predict-length", "16", "--tail-tokens", "4"]
    assert train_main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer"]["max_length"] == 8 and config["tokenizer"]["predict_length"] == 16
    clf = SentimentClassifier.from_pretrained(out, backend="torch")
    text = "the film is quite the story " * 20 + "and it is wonderful"
    ids, end = clf.encode([text])[0], clf.encode(["it is wonderful"])[0]
    assert len(ids) == 16 and ids[-len(end):] == end
    assert "texts are cut at 16 tokens, a longer text's first 12 and last 4 (trained on texts cut at 8)" in (out / "README.md").read_text()
    assert train_main([f"--{s}-file={p}" for s, p in tiny_files.items()] + TINY_MODEL_ARGS + [
        "--output-dir", str(tmp_path / "bad"), "--max-length", "8", "--predict-length", "4"]) == 2
    assert not (tmp_path / "bad").exists()


def test_training_says_when_it_reads_only_the_start_of_many_texts(tiny_files, tmp_path, capsys):
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + TINY_MODEL_ARGS + ["--epochs", "1", "--quiet"]
    assert train_main([*argv, "--output-dir", str(tmp_path / "cut"), "--max-length", "4"]) == 0
    err = capsys.readouterr().err
    assert "of the training texts are longer than the 4 tokens training reads" in err
    assert "--max-length 512 --tail-tokens 128 --predict-length 1024" in err
    assert train_main([*argv, "--output-dir", str(tmp_path / "tail"), "--max-length", "4", "--tail-tokens", "2"]) == 0
    assert train_main([*argv, "--output-dir", str(tmp_path / "whole")]) == 0  # 256 tokens: every text whole
    assert "training reads" not in capsys.readouterr().err
