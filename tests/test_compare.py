"""scripts/compare.py: two models on one split."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from sentiment_gru.inference.classifier import SentimentClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import compare as compare_script


def test_a_model_compared_with_itself_differs_by_nothing(trained_dir, capsys):
    assert compare_script.main([str(trained_dir), str(trained_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["size"] == 60
    assert result["a"]["accuracy"] == result["b"]["accuracy"] and result["difference"]["accuracy"] == 0.0
    assert result["mcnemar"] == {"a_right_b_wrong": 0, "b_right_a_wrong": 0, "p_value": 1.0}
    assert compare_script.main([str(trained_dir), str(trained_dir)]) == 0
    assert "McNemar (exact)" in capsys.readouterr().out


def test_missing_model_is_one_line_and_exit_2(trained_dir, tmp_path, capsys):
    assert compare_script.main([str(trained_dir), str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_a_two_label_and_a_three_label_model_are_compared_on_the_data_s_two_labels(trained_dir, three_label_dir, capsys):
    assert compare_script.main([str(trained_dir), str(three_label_dir), "--json"]) == 0  # A's data: negative/positive
    result = json.loads(capsys.readouterr().out)
    assert "label_subset" not in result["a"] and result["b"]["label_subset"]["scored_labels"] == ["negative", "positive"]

    # B scored as evaluate scores it: the larger of negative's and positive's probabilities
    test = SentimentClassifier.from_pretrained(trained_dir).folder.data_config().test_file
    with open(test, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    probabilities = SentimentClassifier.from_pretrained(three_label_dir).predict_proba([r["text"] for r in rows])[:, [0, 2]]
    truth = np.array([["negative", "positive"].index(r["label"]) for r in rows])
    assert result["b"]["accuracy"] == float((probabilities.argmax(axis=1) == truth).mean())

    assert compare_script.main([str(trained_dir), str(three_label_dir)]) == 0
    assert "Labels of B: the data has 2 of the model's 3 labels (negative, neutral, positive)" in capsys.readouterr().out


def test_data_with_a_label_model_b_lacks_is_one_line_and_exit_2(trained_dir, three_label_dir, capsys):
    assert compare_script.main([str(three_label_dir), str(trained_dir)]) == 2  # A's data has neutral
    err = capsys.readouterr().err
    assert err.startswith(f"error: Model B ({trained_dir}) does not know the data's label(s) neutral: its labels are "
                          "negative, positive.") and err.count("\n") == 1
