"""The one accuracy and macro-F1 computation, and the one rule that says which of two models is better.

Training's per-epoch validation, the ensemble's figures, evaluation and its bootstrap intervals all score through
`accuracy_and_macro_f1`; early stopping and the choice of the best ensemble member both go by `better`.
"""

from __future__ import annotations

import numpy as np


def accuracy_and_macro_f1(labels: np.ndarray, predictions: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of one label/prediction row [n], or of many at once [..., n] -> [...] each.

    A class that is neither predicted nor present scores an F1 of 0, as scikit-learn's `zero_division=0` does.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    shape = labels.shape[:-1]
    labels, predictions = labels.reshape(-1, labels.shape[-1]), predictions.reshape(-1, labels.shape[-1])
    rows = labels.shape[0]
    codes = labels * classes + predictions + (np.arange(rows) * classes * classes)[:, None]
    matrices = np.bincount(codes.ravel(), minlength=rows * classes * classes).reshape(rows, classes, classes)
    tp = np.diagonal(matrices, axis1=1, axis2=2).astype(np.float64)
    denominator = matrices.sum(axis=1) + matrices.sum(axis=2)  # support + predicted = 2tp + fn + fp
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return (tp.sum(axis=1) / matrices.sum(axis=(1, 2))).reshape(shape), f1.mean(axis=1).reshape(shape)


def better(accuracy: float, loss: float, than_accuracy: float, than_loss: float) -> bool:
    """Whether a model with validation `accuracy` and `loss` beats one with `than_accuracy` and `than_loss`:
    higher accuracy, or the same accuracy and a lower loss."""
    return accuracy > than_accuracy or (accuracy == than_accuracy and loss < than_loss)
