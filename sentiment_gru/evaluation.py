"""Metrics and reports made with scikit-learn, and the TF-IDF + logistic-regression baseline."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import write_json

log = logging.getLogger(__name__)

REPORT_FILE = "classification_report.txt"
METRICS_FILE = "metrics.json"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, label_names: list[str], split: str) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
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


def text_report(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> str:
    from sklearn.metrics import classification_report

    return classification_report(labels, predictions, labels=list(range(len(label_names))), target_names=label_names, digits=4, zero_division=0)


def tfidf_baseline(train_texts: list[str], train_labels: np.ndarray, eval_texts: list[str], eval_labels: np.ndarray) -> dict[str, Any]:
    """TF-IDF over word 1-2 grams + LogisticRegression(C=4), trained on train, scored on the eval split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    features = vectorizer.fit_transform(train_texts)
    classifier = LogisticRegression(C=4.0, max_iter=2000)
    classifier.fit(features, train_labels)
    predictions = classifier.predict(vectorizer.transform(eval_texts))
    return {
        "name": "TF-IDF (word 1-2 grams) + LogisticRegression(C=4)",
        "accuracy": float(accuracy_score(eval_labels, predictions)),
        "macro_f1": float(f1_score(eval_labels, predictions, average="macro")),
        "train_seconds": time.perf_counter() - started,
        "predictions": predictions,
    }


def write_reports(folder: Path, metrics: dict[str, Any], labels: np.ndarray, probabilities: np.ndarray) -> str:
    """Write metrics.json, the text report and the confusion matrix (CSV and PNG); return the text report."""
    names = metrics["label_names"]
    report = text_report(labels, probabilities.argmax(axis=1), names)
    header = f"{metrics['split']} split, {metrics['size']:,} texts\n\n"
    baseline = metrics.get("baseline")
    footer = ""
    if baseline:
        footer = (
            f"\nGRU:      accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}\n"
            f"baseline: accuracy {baseline['accuracy']:.4f}  macro-F1 {baseline['macro_f1']:.4f}  ({baseline['name']})\n"
        )
    (folder / REPORT_FILE).write_text(header + report + footer, encoding="utf-8")
    write_json(folder / METRICS_FILE, metrics)
    matrix = np.asarray(metrics["confusion_matrix"])
    with open(folder / CONFUSION_CSV, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, matrix):
            writer.writerow([name, *row.tolist()])
    plot_confusion_matrix(matrix, names, folder / CONFUSION_PNG, title=f"Confusion matrix ({metrics['split']}, n={metrics['size']:,})")
    return header + report + footer


def plot_confusion_matrix(matrix: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """A heatmap with counts and row-normalised rates in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.2 + 1.1 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=120)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), labels=names, rotation=30 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            color = "white" if rates[i, j] > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]:,}\n{rates[i, j]:.1%}", ha="center", va="center", color=color, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Share of the true label's texts")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
