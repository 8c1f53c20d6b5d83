"""--web-text: the rules of text/normalize.py, applied by the tokenizer's own normalizer, saved in tokenizer.json and
read alike by the torch and ONNX paths; without the option the tokenizer is what it was."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_rows, write_csv
from sentiment_gru import SentimentClassifier
from sentiment_gru.cli import export_main, predict_main, run_config_from, train_main, train_parser
from sentiment_gru.config import DataConfig, TokenizerConfig, build_run_config
from sentiment_gru.errors import ConfigError
from sentiment_gru.text.normalize import RULES
from sentiment_gru.text.tokenizer import UNK_TOKEN, train_tokenizer

WEB = ["SOOOO good!!! http://t.co/x @bob #love :) 😍", "nooooo :( 😡😡 www.example.com/a?b=1 #fail",
       "I HATE it :'( <3 xD 👍🙄😂 🎬🎬🎬 🤔"] * 3
TEXTS = [r["text"] for r in make_rows(120, seed=4)] + WEB


@pytest.fixture(scope="module")
def web():
    return train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300, web_text=True))


def normalized(tokenizer, text: str) -> str:
    return " ".join(tokenizer.normalizer.normalize_str(text).split())


@pytest.mark.parametrize("rule, text, expected", [(r.name, text, out) for r in RULES for text, out in r.examples])
def test_each_rule_does_what_its_examples_show(web, rule, text, expected):
    assert normalized(web, text) == expected


def test_the_rules_run_after_nfkc_and_before_lowercasing(web):
    steps = [step["type"] for step in json.loads(web.to_str())["normalizer"]["normalizers"]]
    assert steps == ["NFKC", "Prepend", *["Replace"] * len(RULES), "BertNormalizer"]
    assert normalized(web, "ＨＡＴＥ！！！ ＠ｂｏｂ") == "allcaps hate!! @user", "full-width forms are folded first"
    html = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300, web_text=True, strip_html=True))
    assert normalized(html, "<b>LOVE</b> it<br/>:)") == "allcaps love it emosmile", "HTML goes before the faces are read"


@pytest.mark.parametrize("text, expected", [
    ("go to http://example.com now", "go to httpurl now"),
    ("HTTPS://Example.COM/Path?q=1&r=2#frag", "httpurl"),
    ("www.imdb.com/title/tt0111161/ is it", "httpurl is it"),
    ("loved it (https://t.co/abc)!", "loved it ( httpurl )!"),
    ("read https://medium.com/@bob/post-1, then", "read httpurl , then"),
    ("https://en.wikipedia.org/wiki/Film_(1999)", "httpurl )"),
    ("@bob @Alice_1: hi", "@user @user : hi"),
    ("mail me at bob@example.com", "mail me at bob@example.com"),
    ("meet @ 5", "meet @ 5"),
    ("#Best #movie_ever #1", "best movie_ever #1"),
    ("C#D", "c#d"),
])
def test_urls_mentions_and_hashtags_in_their_variants(web, text, expected):
    assert normalized(web, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("hmmm zzz brrrr", "hmm zz brr"),
    ("good cool too see", "good cool too see"),
    ("yessss Noooo", "yess noo"),
    ("cooooooool", "cool"),
    ("ok!!!!!!!!!! ok?? ok?!?!!! ok!", "ok!! ok?? ok?! ok!"),
    ("wait..... what...", "wait... what..."),
])
def test_elongations_and_punctuation_runs_are_shortened(web, text, expected):
    assert normalized(web, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("HATE", "allcaps hate"),
    ("I hate it OK", "i hate it allcaps ok"),
    ("A B C", "a b c"),
    ("MP3 iPHONE McDONALD", "mp3 iphone mcdonald"),
    ("(ÉTÉ)", "( allcaps ete)"),
    ("DON'T", "allcaps don't"),
])
def test_all_caps_words_of_two_letters_or_more_are_marked(web, text, expected):
    assert normalized(web, text) == expected


@pytest.mark.parametrize("text", ["0xDEAD", "C:/Users", "note:Paris", "x<30", "10:00 and 3:0", "a=)b"])
def test_text_that_only_looks_like_a_face_is_left_alone(web, text):
    assert "emo" not in normalized(web, text)


def test_emoji_are_tokens_of_their_own_never_unknown(web):
    vocab = web.get_vocab()
    assert "🎬" in vocab and "🤔" in vocab, "an emoji seen in training is in the vocabulary"
    assert web.encode("great🎬film").tokens[-2:] == ["🎬", "film"], "set apart from the words around it"
    assert web.encode("😍 😂 😡 👍 🙄").tokens == web.encode("emolove emolaugh emoangry emothumbsup emoannoyed").tokens
    assert UNK_TOKEN not in web.encode("😍😂😡👍🙄 🥰🤣🤬👌😒").tokens, "the table's emoji are words, seen or not"
    assert web.encode("👍🏽").ids == web.encode("👍").ids and web.encode("❤️").ids == web.encode("❤").ids
    plain = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300, kind="wordpiece"))
    wordpiece = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300, kind="wordpiece", web_text=True))
    assert plain.encode("film🦄").tokens == [UNK_TOKEN], "without: an unseen emoji makes its whole word unknown"
    assert wordpiece.encode("film🦄").tokens == ["film", UNK_TOKEN], "with: it is unknown alone"


# Words of web text, some glued as people write them. Glued in other ways, two rules can meet where one's insertion
# makes room for the other (":)HATE" gains its face only once "allcaps" stands between), so those are left out.
WORDS = ["HATE", "I", "OK", "good", "soooo", "😍", "🎬", "👍🏽", "❤️", ":)", ":(", ">:(", "xD", "<3", "-_-", "#love", "#",
         "@bob", "@", "http://x.y/z", "www.a.b", "!", "?", ".", "É", "Ｈ", "！", "\u200d", "🇺🇸", "ß", "great:)", "HATE!!!",
         "LOVE😍", "😂😂😂", "so!!!?", "#LOVE:)", "@bob:", "(http://x.y/z).", "(HATE)", "nooo...", "é\u0301", "<b>OK</b>"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=12), st.sampled_from([" ", "\n", "  "]))
def test_normalizing_twice_reads_the_same_tokens(web, words, space):
    text = space.join(words)
    once = web.normalizer.normalize_str(text)
    assert web.encode(once).tokens == web.encode(text).tokens


def test_without_web_text_the_tokenizer_is_as_before():
    plain = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300))
    assert json.loads(plain.to_str())["normalizer"] == {"type": "Sequence", "normalizers": [
        {"type": "NFKC"},
        {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": True, "lowercase": True}]}
    if tokenizers.__version__ != "0.23.3":
        pytest.skip("the sha256 below is tokenizer.json as tokenizers 0.23.3 writes it")
    digest = hashlib.sha256(plain.to_str().encode()).hexdigest()
    assert digest == "20aa2038874700bb7bcda83739cec989500609086c9598f6c1c170fd84fdc833", "the same bytes as before --web-text"
    html = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300, strip_html=True))
    assert hashlib.sha256(html.to_str().encode()).hexdigest() == "34b8056e8d13642437477ad2385039a2755b8d7cba869e04e733305a32720715"


def test_the_flag_parses_and_a_parent_model_passes_it_on():
    parser = train_parser()
    assert "--web-text" in parser.format_help() and "@mentions" in parser.format_help()
    assert run_config_from(parser.parse_args(["--web-text"])).tokenizer.web_text is True
    assert run_config_from(parser.parse_args(["--no-web-text"])).tokenizer.web_text is False
    assert run_config_from(parser.parse_args([])).tokenizer.web_text is False
    with pytest.raises(ConfigError, match=r"^The 'web_text' parameter of TokenizerConfig must be true or false\. Got 'yes' instead\.$"):
        TokenizerConfig(web_text="yes")
    parent = {"tokenizer": {"web_text": True}, "model": {"embedding_dim": 16}}
    assert build_run_config(DataConfig(), parent=parent, train={"init_from": "p"}).tokenizer.web_text is True
    with pytest.raises(ConfigError, match=r"^--no-web-text conflicts with the parent model \(--init-from p\), which has --web-text"):
        build_run_config(DataConfig(), parent=parent, train={"init_from": "p"}, tokenizer={"web_text": False})


def _web_rows(n: int, seed: int) -> list[dict[str, str]]:
    """make_rows with web text added to each text by its label."""
    rng = random.Random(seed)
    extra = {"positive": ["SOOOO", ":)", "😍", "#love", "👍", "!!!"], "negative": ["NOOOO", ":(", "😡", "#fail", "🙄", "???"]}
    return [{"text": f"@fan {row['text']} {' '.join(rng.sample(extra[row['label']], 2))} https://t.co/{i}", "label": row["label"]}
            for i, row in enumerate(make_rows(n, seed=seed))]


def test_a_model_trained_with_web_text_reads_alike_in_torch_and_onnx_and_predicts(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    files = {split: write_csv(tmp_path / f"{split}.csv", _web_rows(n, seed))
             for split, n, seed in (("train", 160, 1), ("validation", 40, 2), ("test", 40, 3))}
    out = tmp_path / "model"
    assert train_main([f"--{s}-file={p}" for s, p in files.items()] + [
        "--output-dir", str(out), "--web-text", "--epochs", "1", "--batch-size", "16", "--vocab-size", "200",
        "--embedding-dim", "8", "--hidden-size", "8", "--num-layers", "1", "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["tokenizer"]["web_text"] is True
    assert "web text normalised (`--web-text`" in (out / "README.md").read_text()
    assert export_main(["--artifacts", str(out), "--quiet"]) == 0
    torch_clf = SentimentClassifier.from_pretrained(out, backend="torch")
    onnx_clf = SentimentClassifier.from_pretrained(out, backend="onnx")
    assert normalized(onnx_clf.tokenizer, "SOOO good :) @bob http://x.co") == "allcaps soo good emosmile @user httpurl"
    texts = ["SOOOO good!!! http://t.co/x @bob #love :) 😍", "I HATE it :'( 😡😡😡 www.example.com", "plain text"]
    ids = torch_clf.encode(texts)
    assert onnx_clf.encode(texts) == ids
    assert ids[0] == torch_clf.encode(["allcaps soo good!! httpurl @user love emosmile emolove"])[0]
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), torch_clf.predict_proba(texts), atol=1e-5)
    capsys.readouterr()
    assert predict_main(["--artifacts", str(out), "--backend", "onnx", "--json", "LOVED it :) 😍"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["label"] in ("negative", "positive")


def test_the_training_page_lists_each_face_with_its_emoji():
    page = (Path(__file__).resolve().parent.parent / "docs" / "training.md").read_text(encoding="utf-8")
    rows = {line.split("`")[1]: line for line in page.splitlines() if line.startswith("| `emo")}
    faces = {rule.replacement.strip(): rule.pattern for rule in RULES if rule.replacement.strip().startswith("emo")}
    assert set(rows) == set(faces)
    for word, pattern in faces.items():
        assert {c for c in pattern if ord(c) > 0x2000} == {c for c in rows[word] if ord(c) > 0x2000}, word
