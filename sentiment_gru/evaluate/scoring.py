"""Every number of an evaluation, from one scoring function.

`score` runs a model over a split's token ids; training, `evaluate` and `compare` all
call it, so a model is scored one way everywhere. `evaluate` turns one model's scores
into every number a report shows (metrics, intervals, the baseline comparison, curves,
calibration, length buckets, examples), and `compare` two models' scores into a paired
test. Nothing here draws or writes: `report.py` renders what `evaluate` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.batching import TokenIds
from ..metrics import accuracy_and_macro_f1
from .calibration import calibration_summary, reliability_bins, softmax

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_BLOCK_ELEMENTS = 4_000_000  # resampled texts drawn at once, so a split of millions needs no [resamples, n] array
BOOTSTRAP_SEED = 0
EXAMPLES = 20
EXAMPLE_CHARS = 400
LENGTH_BUCKETS = 4
BASELINE_NAME = "TF-IDF (word 1-2 grams) + LogisticRegression(C=4)"


@dataclass
class Scores:
    """One model's outputs on one split: what every number of its evaluation is computed from."""

    split: str
    labels: np.ndarray  # [n] true class ids
    logits: np.ndarray  # [n, classes] before temperature scaling
    temperature: float
    lengths: np.ndarray  # [n] tokens the model read per text

    @property
    def probabilities(self) -> np.ndarray:
        """Calibrated class probabilities: softmax(logits / temperature), [n, classes]."""
        return softmax(self.logits, self.temperature)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def score(logits_of: Callable[[Any, int], np.ndarray], sequences: TokenIds | list[list[int]], labels: np.ndarray, split: str,
          temperature: float = 1.0, batch_size: int = 256) -> Scores:
    """Run a model over token id sequences and keep what evaluating it needs.

    `logits_of(sequences, batch_size)` is a backend's `logits` (predict.TorchBackend, predict.OnnxBackend):
    [len(sequences), classes] before temperature scaling.
    """
    logits = np.asarray(logits_of(sequences, batch_size), dtype=np.float32)
    lengths = sequences.lengths if isinstance(sequences, TokenIds) else np.array([len(s) for s in sequences])
    return Scores(split=split, labels=np.asarray(labels, dtype=np.int64), logits=logits, temperature=float(temperature),
                  lengths=np.asarray(lengths))


@dataclass
class Baseline:
    """The TF-IDF + logistic-regression baseline scored on the same split as the model."""

    metrics: dict[str, Any]  # name, accuracy, macro_f1, train_seconds, train_rows
    predictions: np.ndarray  # [n] class ids


@dataclass
class Evaluation:
    """Everything a report shows: `metrics` (written as metrics.json) and the arrays its figures draw."""

    metrics: dict[str, Any]
    scores: Scores
    text_report: str  # scikit-learn's classification report, with the baseline's figures when there is one
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # label -> fpr, tpr, precision, recall, base_rate
    reliability: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # "before", "after" -> reliability bins
    history: dict[str, Any] | None = None  # history.json: {"best_epoch", "epochs": [...]}
    config: dict[str, Any] = field(default_factory=dict)  # the model's config.json


# ---------------------------------------------------------------- metrics


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, label_names: list[str], split: str) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, log-loss and the confusion matrix."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, log_loss

    predictions = probabilities.argmax(axis=1)
    classes = list(range(len(label_names)))
    report = classification_report(labels, predictions, labels=classes, target_names=label_names, output_dict=True, zero_division=0)
    return {
        "split": split,
        "size": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "weighted_f1": float(report["weighted avg"]["f1-score"]),
        "log_loss": float(log_loss(labels, np.clip(probabilities, 1e-12, 1.0), labels=classes)),
        "per_class": {
            name: {k: float(report[name][k]) if k != "support" else int(report[name][k]) for k in ("precision", "recall", "f1-score", "support")}
            for name in label_names
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
        "label_names": list(label_names),
    }


def bootstrap(labels: np.ndarray, predictions: np.ndarray, classes: int, other: np.ndarray | None = None,
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """95% percentile intervals of accuracy and macro-F1 (`scipy.stats.bootstrap`, texts resampled);
    with `other` predictions also of theirs and of the paired differences, from the same resamples."""
    from scipy.stats import bootstrap as scipy_bootstrap

    data = (labels, predictions) if other is None else (labels, predictions, other)

    def statistic(y, *predicted, axis=-1):
        ours = accuracy_and_macro_f1(y, predicted[0], classes)
        if other is None:
            return np.stack(ours)
        theirs = accuracy_and_macro_f1(y, predicted[1], classes)
        return np.stack([*ours, *theirs, ours[0] - theirs[0], ours[1] - theirs[1]])

    if len(labels) < 2:  # one text: no spread to resample; the interval is the value itself
        values = statistic(*(np.asarray(d)[None] for d in data))[:, 0]
        low = high = values
    else:
        found = scipy_bootstrap(data, statistic, n_resamples=resamples, paired=True, vectorized=True, method="percentile",
                                batch=max(1, BOOTSTRAP_BLOCK_ELEMENTS // len(labels)), rng=np.random.default_rng(seed))
        low, high = found.confidence_interval
    pairs = [[float(lo), float(hi)] for lo, hi in zip(low, high)]
    out: dict[str, Any] = {"resamples": resamples, "seed": seed, "accuracy": pairs[0], "macro_f1": pairs[1]}
    if other is not None:
        out["other"] = {"accuracy": pairs[2], "macro_f1": pairs[3]}
        out["difference"] = {"accuracy": pairs[4], "macro_f1": pairs[5]}
    return out


def mcnemar(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of two classifiers' paired right/wrong outcomes: a two-sided binomial test of the discordant pairs."""
    from scipy.stats import binomtest

    a_only = int(((a == labels) & (b != labels)).sum())
    b_only = int(((a != labels) & (b == labels)).sum())
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(binomtest(min(a_only, b_only), discordant, 0.5).pvalue)
    return {"a_right_b_wrong": a_only, "b_right_a_wrong": b_only, "p_value": p}


def length_buckets(lengths: np.ndarray, correct: np.ndarray, buckets: int = LENGTH_BUCKETS) -> list[dict[str, Any]]:
    """Accuracy per token-length quantile bucket."""
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, buckets + 1)).round().astype(np.int64))
    inner = edges[1:-1]
    which = np.searchsorted(inner, lengths, side="right")  # bucket k holds lengths in [edges[k], edges[k+1])
    out = []
    for k in range(len(inner) + 1):
        mask = which == k
        if not mask.any():
            continue
        low, high = int(lengths[mask].min()), int(lengths[mask].max())
        out.append({"tokens": f"{low}-{high}", "size": int(mask.sum()), "accuracy": float(correct[mask].mean())})
    return out


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


BASELINES = {
    "tfidf": BASELINE_NAME,
    "nbsvm": "NBSVM: NB-weighted binary word 1-2 grams + LogisticRegression(C=4) (Wang & Manning 2012)",
}


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
    from sklearn.metrics import accuracy_score, f1_score

    started = time.perf_counter()
    model = fit_baseline(kind, train_texts, train_labels)
    predictions = model.classes_[model.predict_proba(eval_texts).argmax(axis=1)]
    metrics = {
        "name": BASELINES[kind],
        "accuracy": float(accuracy_score(eval_labels, predictions)),
        "macro_f1": float(f1_score(eval_labels, predictions, average="macro")),
        "train_seconds": time.perf_counter() - started,
        "train_rows": len(train_texts),
    }
    return Baseline(metrics=metrics, predictions=predictions)


BLEND_WEIGHTS = np.linspace(0.0, 1.0, 21)  # the GRU's share in a blend, tried in steps of 0.05


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


def text_report(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> str:
    from sklearn.metrics import classification_report

    return classification_report(labels, predictions, labels=list(range(len(label_names))), target_names=label_names, digits=4, zero_division=0)


# ---------------------------------------------------------------- one model, one split


def evaluate(scores: Scores, label_names: list[str], texts: list[str], baseline: Baseline | None = None,
             explain: Callable[[str], str] | None = None, history: dict[str, Any] | None = None,
             config: dict[str, Any] | None = None) -> Evaluation:
    """Every number of a report on `scores`: metrics, calibration, intervals, the baseline comparison, ROC/PR curves,
    length buckets and the examples (the confident mistakes explained with `explain`)."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    labels, probabilities, predictions = scores.labels, scores.probabilities, scores.predictions
    metrics = compute_metrics(labels, probabilities, label_names, scores.split)
    metrics["calibration"] = calibration_summary(scores.logits, labels, scores.temperature)
    if baseline is not None:
        metrics["baseline"] = dict(baseline.metrics)
    other = baseline.predictions if baseline is not None else None
    boot = bootstrap(labels, predictions, len(label_names), other=other)
    metrics["confidence_intervals"] = {k: boot[k] for k in ("resamples", "seed", "accuracy", "macro_f1")}
    if baseline is not None:
        metrics["baseline"]["confidence_intervals"] = boot["other"]
        metrics["baseline"]["comparison"] = {
            "accuracy_difference": metrics["accuracy"] - baseline.metrics["accuracy"],
            "macro_f1_difference": metrics["macro_f1"] - baseline.metrics["macro_f1"],
            "difference_intervals": boot["difference"],
            "mcnemar": mcnemar(labels, predictions, other),
        }
    areas: dict[str, Any] = {"roc_auc": {}, "average_precision": {}}
    curves = {}
    for c in _curve_classes(len(label_names)):
        positive = labels == c
        if positive.all() or not positive.any():
            continue  # undefined with one class only
        name = label_names[c]
        fpr, tpr, _ = roc_curve(positive, probabilities[:, c])
        precision, recall, _ = precision_recall_curve(positive, probabilities[:, c])
        areas["roc_auc"][name] = float(roc_auc_score(positive, probabilities[:, c]))
        areas["average_precision"][name] = float(average_precision_score(positive, probabilities[:, c]))
        curves[name] = {"fpr": fpr, "tpr": tpr, "roc_auc": auc(fpr, tpr), "precision": precision, "recall": recall,
                        "average_precision": areas["average_precision"][name], "base_rate": float(positive.mean())}
    metrics["curves"] = areas
    correct = predictions == labels
    metrics["by_length"] = length_buckets(np.asarray(scores.lengths), correct)
    confidence = probabilities.max(axis=1)
    wrong, right = np.flatnonzero(~correct), np.flatnonzero(correct)
    metrics["examples"] = {
        "confident_mistakes": _examples(wrong[np.argsort(-confidence[wrong], kind="stable")], scores, texts, label_names, explain),
        "unsure_correct": _examples(right[np.argsort(confidence[right], kind="stable")], scores, texts, label_names),
    }
    reliability = {"before": reliability_bins(softmax(scores.logits), labels), "after": reliability_bins(probabilities, labels)}
    return Evaluation(metrics=metrics, scores=scores, text_report=_text_report(metrics, labels, predictions, label_names),
                      curves=curves, reliability=reliability, history=history, config=config or {})


def _text_report(metrics: dict[str, Any], labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> str:
    header = f"{metrics['split']} split, {metrics['size']:,} texts\n\n"
    footer = ""
    baseline = metrics.get("baseline")
    if baseline:
        footer = (
            f"\nGRU:      accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}\n"
            f"baseline: accuracy {baseline['accuracy']:.4f}  macro-F1 {baseline['macro_f1']:.4f}  ({baseline['name']})\n"
        )
    return header + text_report(labels, predictions, label_names) + footer


def _examples(order: np.ndarray, scores: Scores, texts: list[str], names: list[str],
              explain: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    probabilities, predictions = scores.probabilities, scores.predictions
    rows = []
    for i in order[:EXAMPLES]:
        row = {"text": _clip(texts[i]), "true": names[int(scores.labels[i])], "predicted": names[int(predictions[i])],
               "probability": float(probabilities[i, predictions[i]])}
        if explain is not None:
            row["explained"] = _clip(explain(texts[i]))
        rows.append(row)
    return rows


def _curve_classes(classes: int) -> list[int]:
    """The positive class of a two-class problem; every class (one-vs-rest) otherwise."""
    return [1] if classes == 2 else list(range(classes))


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXAMPLE_CHARS else flat[: EXAMPLE_CHARS - 3] + "..."


# ---------------------------------------------------------------- two models, one split


def compare(a: Scores, b: Scores, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and log-loss of two models on the same texts, a paired bootstrap of their difference and
    McNemar's test. Keys "a" and "b" hold each model's figures and intervals."""
    if not np.array_equal(a.labels, b.labels):
        raise ValueError("compare() needs both models' scores on the same texts, in the same order")
    scored = {}
    for name, s in (("a", a), ("b", b)):
        metrics = compute_metrics(s.labels, s.probabilities, label_names, s.split)
        scored[name] = {k: metrics[k] for k in ("accuracy", "macro_f1", "log_loss")}
    boot = bootstrap(a.labels, a.predictions, len(label_names), other=b.predictions)
    scored["a"]["intervals"] = {k: boot[k] for k in ("accuracy", "macro_f1")}
    scored["b"]["intervals"] = boot["other"]
    return {
        "split": a.split, "size": int(len(a.labels)), **scored,
        "difference": {"accuracy": scored["a"]["accuracy"] - scored["b"]["accuracy"], "macro_f1": scored["a"]["macro_f1"] - scored["b"]["macro_f1"],
                       "intervals": boot["difference"], "bootstrap_resamples": boot["resamples"]},
        "mcnemar": mcnemar(a.labels, a.predictions, b.predictions),
    }
