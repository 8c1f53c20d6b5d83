"""Temperature scaling and calibration measures: expected calibration error, Brier score, reliability bins.

Imports only NumPy at the top, so the predict path can use `softmax`; SciPy and scikit-learn are imported where used.
"""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature: [n, classes]."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(labels)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in [0.05, 20] minimising the NLL of softmax(logits / T), by a bounded search on log T."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=np.int64)
    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    found = minimize_scalar(lambda log_t: nll(logits, labels, math.exp(log_t)), bounds=(low, high), method="bounded",
                            options={"xatol": 1e-5})
    return float(math.exp(found.x))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per equal-width bin of top-label confidence (`sklearn.calibration.calibration_curve`): mean confidence,
    accuracy and count; bin b holds confidences in (b/bins, (b+1)/bins]. Empty bins are left out."""
    from sklearn.calibration import calibration_curve

    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    count = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)  # calibration_curve's own binning
    used = count > 0
    return {"edges": edges, "centres": ((edges[:-1] + edges[1:]) / 2)[used], "confidence": mean_confidence, "accuracy": accuracy,
            "count": count[used]}


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the count-weighted mean |accuracy - confidence| over equal-width bins."""
    b = reliability_bins(probabilities, labels, bins)
    return float((b["count"] * np.abs(b["accuracy"] - b["confidence"])).sum() / max(len(labels), 1))


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over texts of the squared distance to the one-hot label (0 is perfect, 2 the worst)."""
    onehot = np.eye(probabilities.shape[1])[np.asarray(labels)]
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean())


def calibration_summary(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict[str, float]:
    """ECE and Brier score before (T = 1) and after scaling by `temperature`."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "temperature": float(temperature),
        "ece_before": expected_calibration_error(before, labels),
        "ece_after": expected_calibration_error(after, labels),
        "brier_before": brier_score(before, labels),
        "brier_after": brier_score(after, labels),
    }
