"""How sure a figure is: bootstrap intervals of accuracy and macro-F1, McNemar's test of two models, and
accuracy by length bucket.

The intervals resample `metrics.accuracy_and_macro_f1`, the computation every reported figure comes from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics import accuracy_and_macro_f1

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_BLOCK_ELEMENTS = 4_000_000  # resampled texts drawn at once, so a split of millions needs no [resamples, n] array
BOOTSTRAP_SEED = 0
LENGTH_BUCKETS = 4


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
