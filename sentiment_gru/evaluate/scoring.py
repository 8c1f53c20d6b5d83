"""Every number of an evaluation, from one model's scores on one split.

`score` runs a saved or just-trained model over a split's token ids; evaluating a saved model, comparing two
and the evaluation at the end of a training run all call it. (The per-epoch validation inside training does
not: it scores through `metrics.accuracy_and_macro_f1` and chooses by `metrics.better`.) `evaluate` turns
one model's scores into every number a report shows (metrics, intervals, the baseline comparison, curves,
calibration, length buckets, examples), and `compare` two models' scores into a paired test. Accuracy
and macro-F1 come from `metrics.accuracy_and_macro_f1` everywhere, training's validation included. The
intervals and tests are in `statistics.py`, the linear baselines in `baselines.py`. Nothing here draws or
writes: `report.py` renders what `evaluate` returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.batching import TokenIds
from ..data.tables import shorten
from ..metrics import accuracy_and_macro_f1
from .calibration import calibration_summary, reliability_bins, softmax
from .statistics import bootstrap, length_buckets, mcnemar

EXAMPLES = 20
EXAMPLE_CHARS = 400


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

    `logits_of(sequences, batch_size)` is a backend's `logits` (torch or onnxruntime):
    [len(sequences), classes] before temperature scaling.
    """
    logits = np.asarray(logits_of(sequences, batch_size), dtype=np.float32)
    lengths = sequences.lengths if isinstance(sequences, TokenIds) else np.array([len(s) for s in sequences])
    return Scores(split=split, labels=np.asarray(labels, dtype=np.int64), logits=logits, temperature=float(temperature),
                  lengths=np.asarray(lengths))


def on_labels(scores: Scores, columns: list[int]) -> Scores:
    """A model's scores on the labels its logit columns `columns` are, in that order (its labels reordered, or a subset
    of them): each text is predicted the largest of those labels' probabilities, and the probabilities are renormalised
    over them. `scores.labels` must already index `columns`."""
    return dataclasses.replace(scores, logits=scores.logits[:, columns])


def label_subset(model_labels: list[str], labels: list[str]) -> dict[str, Any] | None:
    """What `on_labels` did when the data has fewer labels than the model, for metrics.json and the report; None when not."""
    if len(labels) == len(model_labels):
        return None
    return {"model_labels": list(model_labels), "scored_labels": list(labels),
            "rule": f"the data has {len(labels)} of the model's {len(model_labels)} labels ({', '.join(model_labels)}): each text "
                    f"is given the larger of the probabilities of {', '.join(labels)}, renormalised over them"}


@dataclass
class Baseline:
    """A linear baseline (`baselines.linear_baseline`) scored on the same split as the model."""

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
    """Accuracy and macro-F1 (`metrics.accuracy_and_macro_f1`, as training's validation computes them), and
    scikit-learn's per-class precision/recall/F1/support, weighted F1, log-loss and confusion matrix."""
    from sklearn.metrics import classification_report, confusion_matrix, log_loss

    predictions = probabilities.argmax(axis=1)
    classes = list(range(len(label_names)))
    accuracy, macro_f1 = accuracy_and_macro_f1(labels, predictions, len(label_names))
    report = classification_report(labels, predictions, labels=classes, target_names=label_names, output_dict=True, zero_division=0)
    return {
        "split": split,
        "size": int(len(labels)),
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "weighted_f1": float(report["weighted avg"]["f1-score"]),
        "log_loss": float(log_loss(labels, np.clip(probabilities, 1e-12, 1.0), labels=classes)),
        "per_class": {
            name: {k: float(report[name][k]) if k != "support" else int(report[name][k]) for k in ("precision", "recall", "f1-score", "support")}
            for name in label_names
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
        "label_names": list(label_names),
    }


def text_report(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> str:
    from sklearn.metrics import classification_report

    return classification_report(labels, predictions, labels=list(range(len(label_names))), target_names=label_names, digits=4, zero_division=0)


# ---------------------------------------------------------------- one model, one split


def evaluate(scores: Scores, label_names: list[str], texts: list[str], baseline: Baseline | None = None,
             explain: Callable[[str], str] | None = None, history: dict[str, Any] | None = None,
             config: dict[str, Any] | None = None, domains: list[str] | None = None) -> Evaluation:
    """Every number of a report on `scores`: metrics, calibration, intervals, the baseline comparison, ROC/PR curves,
    length buckets, the scores per domain (`domains`: one per text, where the data has a domain column) and the
    examples (the confident mistakes explained with `explain`)."""
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
    if domains is not None and len(set(domains)) > 1:
        metrics["by_domain"] = by_domain(labels, predictions, domains, label_names, other)
    confidence = probabilities.max(axis=1)
    wrong, right = np.flatnonzero(~correct), np.flatnonzero(correct)
    metrics["examples"] = {
        "confident_mistakes": _examples(wrong[np.argsort(-confidence[wrong], kind="stable")], scores, texts, label_names, explain),
        "unsure_correct": _examples(right[np.argsort(confidence[right], kind="stable")], scores, texts, label_names),
    }
    reliability = {"before": reliability_bins(softmax(scores.logits), labels), "after": reliability_bins(probabilities, labels)}
    return Evaluation(metrics=metrics, scores=scores, text_report=_text_report(metrics, labels, predictions, label_names),
                      curves=curves, reliability=reliability, history=history, config=config or {})


def by_domain(labels: np.ndarray, predictions: np.ndarray, domains: list[str], label_names: list[str],
              other: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per domain, in order of first appearance: its texts, accuracy, and macro-F1 over the labels its rows have (a
    domain without neutral rows is not marked down for a label it cannot have); with `other` (the baseline's
    predictions), the baseline's accuracy on the same rows."""
    from sklearn.metrics import f1_score

    names = np.asarray(domains)
    rows = []
    for domain in dict.fromkeys(domains):
        mask = names == domain
        present = sorted(set(labels[mask].tolist()))
        row = {"domain": domain, "size": int(mask.sum()), "labels": [label_names[c] for c in present],
               "accuracy": float((predictions[mask] == labels[mask]).mean()),
               "macro_f1": float(f1_score(labels[mask], predictions[mask], labels=present, average="macro", zero_division=0))}
        if other is not None:
            row["baseline_accuracy"] = float((other[mask] == labels[mask]).mean())
        rows.append(row)
    return rows


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
        row = {"text": shorten(texts[i], EXAMPLE_CHARS), "true": names[int(scores.labels[i])], "predicted": names[int(predictions[i])],
               "probability": float(probabilities[i, predictions[i]])}
        if explain is not None:
            row["explained"] = shorten(explain(texts[i]), EXAMPLE_CHARS)
        rows.append(row)
    return rows


def _curve_classes(classes: int) -> list[int]:
    """The positive class of a two-class problem; every class (one-vs-rest) otherwise."""
    return [1] if classes == 2 else list(range(classes))


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
