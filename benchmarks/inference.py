"""Prediction throughput through the Python API: the ensemble and the shipped model on each backend, and the baseline.

The texts are the default corpus's test split repeated (16 times: 20,416 texts), predicted with
`SentimentClassifier.predict_proba` in batches, after a warm-up on the first batch; the TF-IDF +
LogisticRegression baseline is fit on the same corpus's train split and timed on `predict_proba` of
the same texts. Everything runs in one process, one after the other, so the ratios hold on a busy machine.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def default_corpus_texts(repeat: int) -> tuple[list[str], list[str], list[int]]:
    """The default corpus's test texts repeated `repeat` times, and its train texts and labels (for the baseline)."""
    from sentiment_gru.config import DataConfig
    from sentiment_gru.data.load import load_data

    data = load_data(DataConfig())
    return list(data.splits["test"]["text"]) * repeat, list(data.splits["train"]["text"]), list(data.splits["train"]["label"])


def _timed(predict, texts: list[str], batch_size: int) -> dict[str, float]:
    predict(texts[:batch_size])  # warm-up: first-call allocations, onnxruntime's graph preparation
    started = time.perf_counter()
    predict(texts)
    seconds = time.perf_counter() - started
    return {"texts": len(texts), "seconds": seconds, "texts_per_second": len(texts) / seconds}


def inference_throughput(models: list[tuple[str, Path, str]], repeat: int = 16, batch_size: int = 256) -> list[dict[str, Any]]:
    """texts/s of each (name, model folder, backend) through SentimentClassifier.predict_proba, then of the baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sentiment_gru import SentimentClassifier

    texts, train_texts, train_labels = default_corpus_texts(repeat)
    rows = []
    for name, folder, backend in models:
        clf = SentimentClassifier.from_pretrained(folder, backend=backend)
        row = {"model": name, "artifacts": str(folder), "backend": clf.backend_name,
               **_timed(lambda t: clf.predict_proba(t, batch_size=batch_size), texts, batch_size)}
        log.info("%s (%s): %.0f texts/s", name, row["backend"], row["texts_per_second"])
        rows.append(row)
    baseline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=4.0, max_iter=2000))
    baseline.fit(train_texts, train_labels)
    rows.append({"model": "TF-IDF (word 1-2 grams) + LogisticRegression(C=4)", "artifacts": None, "backend": "scikit-learn",
                 **_timed(baseline.predict_proba, texts, batch_size)})
    return rows


def format_inference(rows: list[dict[str, Any]]) -> str:
    reference = next((r for r in rows if "ensemble" in r["model"]), None)
    lines = [f"{'model':<52} {'backend':<13} {'texts/s':>9}  {'vs ensemble':>11}"]
    for r in rows:
        ratio = f"{r['texts_per_second'] / reference['texts_per_second']:>10.1f}x" if reference else ""
        lines.append(f"{r['model']:<52} {r['backend']:<13} {r['texts_per_second']:>9,.0f}  {ratio}")
    return "\n".join(lines)
