"""Temperature scaling recovers a known over-confidence factor; ECE and Brier behave as defined."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment_gru.evaluate.calibration import brier_score, calibration_summary, expected_calibration_error, fit_temperature, softmax


def calibrated_logits(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a calibrated model: each label is drawn from softmax(logits) itself."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, classes))
    probabilities = softmax(logits)
    labels = np.array([rng.choice(classes, p=p) for p in probabilities])
    return logits, labels


@pytest.mark.parametrize("classes", [2, 3])
def test_fitted_temperature_undoes_a_known_scaling(classes):
    logits, labels = calibrated_logits(20000, classes, seed=classes)
    over_confident = logits * 3.0
    temperature = fit_temperature(over_confident, labels)
    assert temperature == pytest.approx(3.0, rel=0.05)
    summary = calibration_summary(over_confident, labels, temperature)
    assert summary["ece_after"] < summary["ece_before"] / 2
    assert summary["brier_after"] < summary["brier_before"]


def test_ece_and_brier_of_simple_cases():
    labels = np.array([0, 1, 0, 1])
    perfect = np.eye(2)[labels]
    assert expected_calibration_error(perfect, labels) == 0.0 and brier_score(perfect, labels) == 0.0
    wrong = np.eye(2)[1 - labels]
    assert expected_calibration_error(wrong, labels) == pytest.approx(1.0) and brier_score(wrong, labels) == pytest.approx(2.0)
    # confidence 0.8 everywhere, 3 of 4 right: |0.75 - 0.8| = 0.05
    probs = np.array([[0.8, 0.2], [0.2, 0.8], [0.8, 0.2], [0.8, 0.2]])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.05)
