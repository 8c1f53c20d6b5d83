"""Linear models to measure the GRU against: TF-IDF + logistic regression (every report's baseline), NBSVM, and the
GRU blended with one of them.

Each is fitted on the train split and scored on the split the model is evaluated on.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..metrics import accuracy_and_macro_f1
from .scoring import Baseline, Scores, compute_metrics

BASELINE_NAME = "TF-IDF (word 1-2 grams) + LogisticRegression(C=4)"
BASELINES = {
    "tfidf": BASELINE_NAME,
    "nbsvm": "NBSVM: NB-weighted binary word 1-2 grams + LogisticRegression(C=4) (Wang & Manning 2012)",
}
BLEND_WEIGHTS = np.linspace(0.0, 1.0, 21)  # the GRU's share in a blend, tried in steps of 0.05


class NBLogisticRegression:
    """NBSVM in its logistic-regression form (Wang & Manning 2012): binary word 1-2 gram features, each scaled by its
    naive-Bayes log-count ratio, then logistic regression; one classifier per class, probabilities normalised."""

    def __init__(self, C: float = 4.0, alpha: float = 1.0) -> None:
        self.C, self.alpha = C, alpha

    def fit(self, texts: list[str], labels: np.ndarray) -> NBLogisticRegression:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels)
        self.vectorizer = CountVectorizer(ngram_range=(1, 2), binary=True)
        features = self.vectorizer.fit_transform(texts).tocsr()
        self.classes_ = np.unique(labels)
        self.ratios, self.classifiers = [], []
        for c in (self.classes_[1:] if len(self.classes_) == 2 else self.classes_):  # two classes: one classifier suffices
            positive = labels == c
            p = np.asarray(features[positive].sum(axis=0)).ravel() + self.alpha
            q = np.asarray(features[~positive].sum(axis=0)).ravel() + self.alpha
            ratio = np.log((p / p.sum()) / (q / q.sum()))
            self.ratios.append(ratio)
            self.classifiers.append(LogisticRegression(C=self.C, max_iter=2000).fit(features.multiply(ratio).tocsr(), positive))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """[len(texts), classes] probabilities, columns in `classes_` order."""
        features = self.vectorizer.transform(texts).tocsr()
        scores = np.stack([clf.predict_proba(features.multiply(r).tocsr())[:, 1] for clf, r in zip(self.classifiers, self.ratios)], 1)
        if len(self.classes_) == 2:
            return np.concatenate([1 - scores, scores], axis=1)
        return scores / scores.sum(axis=1, keepdims=True)


def fit_baseline(kind: str, texts: list[str], labels: np.ndarray):
    """A fitted linear baseline with `predict_proba`: "tfidf" (TF-IDF word 1-2 grams + LogisticRegression(C=4)) or "nbsvm"."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if kind == "nbsvm":
        return NBLogisticRegression().fit(texts, labels)
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                         LogisticRegression(C=4.0, max_iter=2000)).fit(texts, labels)


def linear_baseline(train_texts: list[str], train_labels: np.ndarray, eval_texts: list[str], eval_labels: np.ndarray,
                    kind: str = "tfidf") -> Baseline:
    """A linear baseline (TF-IDF + LogisticRegression(C=4) by default) trained on train, scored on the eval split."""
    started = time.perf_counter()
    model = fit_baseline(kind, train_texts, train_labels)
    predictions = model.classes_[model.predict_proba(eval_texts).argmax(axis=1)]
    present = np.union1d(eval_labels, predictions)  # macro-F1 over the classes that are true or predicted here
    accuracy, macro_f1 = accuracy_and_macro_f1(np.searchsorted(present, eval_labels), np.searchsorted(present, predictions), len(present))
    metrics = {
        "name": BASELINES[kind],
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "train_seconds": time.perf_counter() - started,
        "train_rows": len(train_texts),
    }
    return Baseline(metrics=metrics, predictions=predictions)


def blend(scores: Scores, linear: np.ndarray, label_names: list[str], fit: tuple[Scores, np.ndarray] | None = None,
          seed: int = 0) -> dict[str, Any]:
    """The GRU's calibrated probabilities mixed with a linear model's, w * gru + (1 - w) * linear, scored on `scores`' split.

    w minimises the log-loss on `fit` (validation scores and the linear model's probabilities there). Without `fit`
    (the scored split is the validation split itself), the split is halved at random and each half is scored with the
    weight fitted on the other, so no text is scored by a weight it helped to choose.
    linear: [n, classes] the linear model's probabilities on `scores`' texts.
    """
    def best_weight(gru: np.ndarray, other: np.ndarray, labels: np.ndarray) -> float:
        losses = [_log_loss(w * gru + (1 - w) * other, labels) for w in BLEND_WEIGHTS]
        return float(BLEND_WEIGHTS[int(np.argmin(losses))])

    gru = scores.probabilities
    if fit is not None:
        weights = np.full(len(gru), best_weight(fit[0].probabilities, fit[1], fit[0].labels))
    else:
        half = np.random.default_rng(seed).permutation(len(gru)) % 2 == 0
        weights = np.empty(len(gru))
        for scored in (half, ~half):
            weights[scored] = best_weight(gru[~scored], linear[~scored], scores.labels[~scored])
    mixed = weights[:, None] * gru + (1 - weights[:, None]) * linear
    found = compute_metrics(scores.labels, mixed, label_names, scores.split)
    return {"weight": float(weights.mean()), "fitted_on": "validation" if fit is not None else "the other half of the split",
            **{k: found[k] for k in ("accuracy", "macro_f1", "log_loss")}}


def _log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())
