"""`evaluate` on data with fewer labels than the model (a negative/positive file, a negative/neutral/positive model)
scores the larger of the data's labels' probabilities, and says so; a label the model does not know is an error."""

from __future__ import annotations

import json

import numpy as np

from conftest import make_rows, write_csv
from sentiment_gru.cli import evaluate_main
from sentiment_gru.config import DataConfig
from sentiment_gru.inference.classifier import SentimentClassifier
from sentiment_gru.runs import evaluate_saved


def test_a_two_label_file_is_scored_on_its_two_labels(three_label_dir, tmp_path):
    rows = make_rows(80, seed=31)
    files = {"train": write_csv(tmp_path / "train.csv", make_rows(120, seed=30)), "test": write_csv(tmp_path / "test.csv", rows)}
    metrics, out = evaluate_saved(three_label_dir, DataConfig(train_file=str(files["train"]), test_file=str(files["test"])), "test",
                                  tmp_path / "eval")

    clf = SentimentClassifier.from_pretrained(three_label_dir, backend="torch")
    assert clf.label_names == ["negative", "neutral", "positive"]
    probabilities = clf.predict_proba([r["text"] for r in rows])[:, [0, 2]]  # negative, positive
    truth = np.array([["negative", "positive"].index(r["label"]) for r in rows])
    assert metrics["label_names"] == ["negative", "positive"]
    assert metrics["accuracy"] == float((probabilities.argmax(axis=1) == truth).mean())
    assert np.asarray(metrics["confusion_matrix"]).shape == (2, 2) and set(metrics["per_class"]) == {"negative", "positive"}
    expected_loss = -np.mean(np.log(probabilities[np.arange(len(rows)), truth] / probabilities.sum(axis=1)))
    assert abs(metrics["log_loss"] - expected_loss) < 1e-5
    assert metrics["label_subset"] == {
        "model_labels": ["negative", "neutral", "positive"], "scored_labels": ["negative", "positive"],
        "rule": "the data has 2 of the model's 3 labels (negative, neutral, positive): each text is given the larger of the "
                "probabilities of negative, positive, renormalised over them"}
    comparison = metrics["baseline"]["comparison"]["mcnemar"]  # the baseline learned the same two labels
    assert comparison["a_right_b_wrong"] + comparison["b_right_a_wrong"] <= len(rows)
    assert f"Labels: {metrics['label_subset']['rule']}." in (out / "report.md").read_text()
    assert (out / "classification_report.txt").read_text().startswith("Labels: the data has 2 of the model's 3 labels")
    assert json.loads((out / "metrics.json").read_text())["label_subset"] == metrics["label_subset"]


def test_a_label_the_model_does_not_know_is_a_one_line_error(three_label_dir, tmp_path, capsys):
    rows = make_rows(20, seed=32) + [{"text": "a film about nothing much", "label": "mixed"}]
    test = write_csv(tmp_path / "test.csv", rows)
    assert evaluate_main(["--artifacts", str(three_label_dir), "--test-file", str(test), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == ("error: The test split of the files (test=test.csv) has labels the model does not know: 'mixed'. "
                   "Known labels: negative, neutral, positive.\n")
