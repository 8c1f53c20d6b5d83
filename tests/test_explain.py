"""Occlusion explanations: faithful on a trained model, and shown by predict --explain."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from conftest import make_rows
from sentiment_gru.cli import predict_main
from sentiment_gru.data.batching import batched_logits
from sentiment_gru.inference.explain import mark, occlusion
from sentiment_gru.inference.classifier import SentimentClassifier


def probability_without(predictor: SentimentClassifier, ids: list[int], removed: set[int], label: int) -> float:
    """The probability of `label` with the tokens at `removed` taken out, straight from the torch model."""
    kept = [t for i, t in enumerate(ids) if i not in removed]
    logits = batched_logits(predictor.backend.model, [kept], batch_size=1, device="cpu")
    return float(torch.softmax(logits / predictor.temperature, dim=-1)[0, label])


def test_removing_top_tokens_moves_the_prediction_more_than_random_tokens(trained_dir):
    predictor = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    rng = random.Random(0)
    k = 2
    top_drops, random_drops = [], []
    for row in make_rows(40, seed=7):
        ids = predictor.encode([row["text"]])[0]
        if len(ids) <= k:
            continue
        probabilities, drops = occlusion(predictor.probabilities_of_ids, ids)
        label = int(probabilities.argmax())
        base = float(probabilities[label])
        top = set(np.argsort(-drops[:, label], kind="stable")[:k].tolist())
        top_drops.append(base - probability_without(predictor, ids, top, label))
        random_drops.append(np.mean([base - probability_without(predictor, ids, set(rng.sample(range(len(ids)), k)), label)
                                     for _ in range(5)]))
    assert len(top_drops) >= 30
    assert np.mean(top_drops) > np.mean(random_drops) + 0.05, (np.mean(top_drops), np.mean(random_drops))


def test_explanation_covers_the_tokens_and_marks_sentiment_words(trained_dir):
    predictor = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    text = "the plot is wonderful and the cast brilliant"
    result = predictor.explain_details(text)
    assert result["label"] == "positive"
    assert [t["token"] for t in result["explanation"]] == [text[t["start"]:t["end"]] for t in result["explanation"]]
    top = max(result["explanation"], key=lambda t: t["score"])
    assert top["token"] in ("wonderful", "brilliant") or top["token"] in "wonderful brilliant"
    marked = mark(text, result["explanation"])
    assert "[+" in marked and marked.replace("[+", "").replace("[-", "").replace("]", "") == text


def test_mark_merges_word_pieces_but_not_punctuation():
    text = "wonderful, dull"
    explanation = [{"token": "wonder", "score": 0.2, "start": 0, "end": 6}, {"token": "ful", "score": 0.1, "start": 6, "end": 9},
                   {"token": ",", "score": 0.0, "start": 9, "end": 10}, {"token": "dull", "score": -0.2, "start": 11, "end": 15}]
    assert mark(text, explanation) == "[+wonderful], [-dull]"
    assert mark(text, explanation, colour=True) == "\033[1;32mwonderful\033[0m, \033[1;31mdull\033[0m"


def test_predict_explain_cli(trained_dir, capsys):
    assert predict_main(["--artifacts", str(trained_dir), "--explain", "a dull and tedious story", ""]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("negative\t") and "[+" in lines[0] and "\033[" not in lines[0]
    assert "no prediction" in lines[1]
    assert predict_main(["--artifacts", str(trained_dir), "--explain", "--json", "a dull story"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label"] == "negative" and set(record["probabilities"]) == {"negative", "positive"}
    assert [t["token"] for t in record["explanation"]] == ["a", "dull", "story"]
    assert all(set(t) == {"token", "score"} for t in record["explanation"])
