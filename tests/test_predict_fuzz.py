"""Predict never crashes on text: property tests over arbitrary Unicode."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiment_gru.inference.classifier import EMPTY_TEXT_ERROR, SentimentClassifier

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ODD = st.sampled_from([
    "", " ", "\t\n\r", "\x00", "\x1b[31m", "\u200b\u200f", "\ufeff", "שלום עולם", "مرحبا بالعالم", "😀🔥👍🏽", "🇺🇳",
    "e\u0301" * 50, "\ud800", "\udfff lone", "ﷺ", "\U0010ffff", "a" * 300_000, "wonderful " * 5000,
])
TEXTS = st.lists(st.one_of(st.text(max_size=200), ODD, st.text(alphabet=st.characters(), max_size=20)), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def predictor(trained_dir):
    return SentimentClassifier.from_pretrained(trained_dir, backend="torch")


def _check(texts, results, label_names):
    assert len(results) == len(texts)
    for text, result in zip(texts, results):
        if not text.strip():
            assert result == {"label": None, "error": EMPTY_TEXT_ERROR}
            continue
        assert result["label"] in label_names
        probabilities = list(result["probabilities"].values())
        assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities)
        assert abs(sum(probabilities) - 1.0) < 1e-5
        assert result["score"] == max(probabilities)


@FUZZ
@given(texts=TEXTS)
def test_predict_returns_one_result_per_text(predictor, texts):
    _check(texts, predictor.predict(texts, batch_size=3), predictor.label_names)


@FUZZ
@given(texts=TEXTS)
def test_predict_survives_json_escaped_input(predictor, texts):
    # JSON input may carry lone surrogates ("\ud800"), which Python decodes into str but UTF-8 cannot hold.
    decoded = [json.loads(json.dumps(t)) for t in texts]
    streamed = [result for _, result in predictor.predict_stream(iter(decoded), batch_size=2)]
    _check(decoded, streamed, predictor.label_names)
