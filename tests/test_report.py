"""The report shows the numbers of metrics.json, in its sections, with the figures it names."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sentiment_gru.evaluate.statistics import bootstrap, length_buckets, mcnemar

NUMBER = r"([+-]?\d+\.\d{4})"


def row_numbers(markdown: str, first_cell: str) -> list[float]:
    """The 4-decimal numbers of the Markdown table row that starts with `first_cell`."""
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {first_cell}"))
    return [float(x) for x in re.findall(NUMBER, row)]


def test_report_numbers_equal_metrics_json(trained_dir):
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    config = json.loads((trained_dir / "config.json").read_text())
    markdown = (trained_dir / "report.md").read_text()
    page = (trained_dir / "report.html").read_text()

    def close(shown: list[float], expected: list[float]) -> None:
        assert shown == pytest.approx(expected, abs=5e-5)

    ci = metrics["confidence_intervals"]
    close(row_numbers(markdown, "GRU"), [metrics["accuracy"], *ci["accuracy"], metrics["macro_f1"], *ci["macro_f1"]])
    base = metrics["baseline"]
    bci = base["confidence_intervals"]
    close(row_numbers(markdown, "Baseline"), [base["accuracy"], *bci["accuracy"], base["macro_f1"], *bci["macro_f1"]])
    cal = metrics["calibration"]
    assert cal["temperature"] == config["calibration"]["temperature"] and config["calibration"]["fitted_on"] == "validation"
    close(row_numbers(markdown, "Expected calibration error"), [cal["ece_before"], cal["ece_after"]])
    close(row_numbers(markdown, "Brier score"), [cal["brier_before"], cal["brier_after"]])
    for name, per in metrics["per_class"].items():
        close(row_numbers(markdown, name), [per["precision"], per["recall"], per["f1-score"]])
    diff = base["comparison"]
    assert f"accuracy {diff['accuracy_difference']:+.4f}" in markdown
    assert "p = " in markdown and str(diff["mcnemar"]["a_right_b_wrong"]) in markdown

    headings = re.findall(r"^## (\d)\.", markdown, flags=re.M)
    assert headings == [str(i) for i in range(1, 9)]
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (trained_dir / image).is_file()
    # self-contained: every image inline, nothing fetched
    assert page.count("data:image/png;base64,") == markdown.count("![")
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert len(metrics["examples"]["confident_mistakes"]) <= 20 and len(metrics["examples"]["unsure_correct"]) == 20


def test_bootstrap_and_mcnemar_on_known_cases():
    labels = np.array([0, 1] * 50)
    boot = bootstrap(labels, labels.copy(), 2, other=1 - labels)
    assert boot["accuracy"] == [1.0, 1.0] and boot["other"]["accuracy"] == [0.0, 0.0]
    assert boot["difference"]["accuracy"] == [1.0, 1.0]
    test = mcnemar(labels, labels, 1 - labels)
    assert test["a_right_b_wrong"] == 100 and test["b_right_a_wrong"] == 0 and test["p_value"] < 1e-20
    assert mcnemar(labels, labels, labels)["p_value"] == 1.0
    # 6 vs 2 discordant pairs: two-sided exact p = 2 * P(X <= 2 | n=8) = 2 * 37/256
    a = np.array([1] * 6 + [0] * 2)
    assert mcnemar(np.ones(8, dtype=int), a, 1 - a)["p_value"] == pytest.approx(2 * 37 / 256)


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_accuracy_and_macro_f1_are_scikit_learns_to_the_bit(classes):
    """compute_metrics and the baseline score through metrics.accuracy_and_macro_f1; the figures are scikit-learn's exactly,
    a class that is neither true nor predicted included (F1 0 in compute_metrics; left out of the baseline's average)."""
    from sklearn.metrics import accuracy_score, f1_score

    from sentiment_gru.evaluate.scoring import compute_metrics

    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes - 1, 997)  # the last class never true
    predictions = np.where(rng.random(997) < 0.7, labels, rng.integers(0, classes - 1, 997))
    probabilities = np.eye(classes)[predictions] * 0.5 + 0.5 / classes
    found = compute_metrics(labels, probabilities, [f"c{i}" for i in range(classes)], "test")
    assert found["accuracy"] == accuracy_score(labels, predictions)
    assert found["macro_f1"] == f1_score(labels, predictions, labels=list(range(classes)), average="macro", zero_division=0)


def test_the_baseline_scores_as_scikit_learn_did(monkeypatch):
    from sklearn.metrics import accuracy_score, f1_score

    from sentiment_gru.evaluate import baselines

    rng = np.random.default_rng(1)
    eval_labels = rng.integers(0, 3, 200)
    predictions = np.where(rng.random(200) < 0.6, eval_labels, 3)  # class 3 predicted, never true; class 4 neither

    class Fitted:
        classes_ = np.arange(5)

        def predict_proba(self, texts):
            return np.eye(5)[predictions]

    monkeypatch.setattr(baselines, "fit_baseline", lambda kind, texts, labels: Fitted())
    found = baselines.linear_baseline(["a"], np.array([0]), ["b"] * 200, eval_labels).metrics
    assert found["accuracy"] == accuracy_score(eval_labels, predictions)
    assert found["macro_f1"] == f1_score(eval_labels, predictions, average="macro")


def test_one_interval_format_for_the_report_the_comparison_and_the_card():
    from sentiment_gru.evaluate.card import _interval
    from sentiment_gru.evaluate.report import format_interval

    assert format_interval([0.81234, 0.9]) == "[0.8123, 0.9000]"
    assert format_interval([-0.0123, 0.0456]) == "[-0.0123, +0.0456]"  # a difference that reaches below zero: both signed
    assert format_interval([-0.05, -0.01]) == "[-0.0500, -0.0100]"
    assert _interval({"confidence_intervals": {"accuracy": [0.7, 0.75]}}, "accuracy") == "[0.7000, 0.7500]"
    assert _interval({}, "accuracy") == ""


def test_length_buckets_cover_every_text():
    lengths = np.arange(1, 101)
    buckets = length_buckets(lengths, lengths % 2 == 0)
    assert sum(b["size"] for b in buckets) == 100 and len(buckets) == 4
    assert buckets[0]["tokens"].startswith("1-") and buckets[-1]["tokens"].endswith("-100")


def test_three_class_report_without_baseline(tmp_path):
    from sentiment_gru.evaluate.scoring import Scores, evaluate
    from sentiment_gru.evaluate.report import write_reports

    rng = np.random.default_rng(0)
    labels = np.arange(90) % 3
    logits = rng.normal(size=(90, 3)) + 2.0 * np.eye(3)[labels]
    history = {"best_epoch": [2, 3], "epochs": [
        {"member": m, "epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "val_accuracy": 0.5 + e / 10, "val_macro_f1": 0.4 + e / 10}
        for m in range(2) for e in range(1, 4)]}
    scores = Scores(split="test", labels=labels, logits=logits, temperature=1.5, lengths=rng.integers(1, 40, size=90))
    evaluation = evaluate(scores, ["a", "b", "c"], texts=[f"text {i} | with a pipe" for i in range(90)], history=history,
                          config={"label_names": ["a", "b", "c"]})
    metrics = evaluation.metrics
    write_reports(tmp_path, evaluation)
    markdown = (tmp_path / "report.md").read_text()
    assert set(metrics["curves"]["roc_auc"]) == {"a", "b", "c"}
    assert "No baseline" in markdown and "\\| with a pipe" in markdown
    assert (tmp_path / "report_training_curves.png").is_file() and (tmp_path / "report_roc_pr.png").is_file()


def test_mistakes_table_explains_each_error(trained_dir, tmp_path):
    """Labels flipped on purpose: every listed mistake carries the occlusion marks that predict --explain shows."""
    from conftest import make_rows, write_csv

    from sentiment_gru.config import DataConfig
    from sentiment_gru.runs import evaluate_saved

    rows = [{**r, "label": "negative" if r["label"] == "positive" else "positive"} for r in make_rows(30, seed=12)]
    flipped = write_csv(tmp_path / "flipped.csv", rows)
    metrics, out = evaluate_saved(trained_dir, DataConfig(test_file=str(flipped)), None, tmp_path / "eval")
    mistakes = metrics["examples"]["confident_mistakes"]
    assert len(mistakes) >= 10
    assert all("explained" in m for m in mistakes)
    # near-certain (saturated) mistakes barely move when a word is removed, so not every row has marks
    assert sum("[+" in m["explained"] for m in mistakes) >= len(mistakes) // 2
    report = (out / "report.md").read_text()
    assert mistakes[0]["explained"].replace("|", "\\|") in report
