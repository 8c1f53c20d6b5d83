"""A negative/neutral/positive model end to end: exported to ONNX with parity, then through predict (the real command),
the Python API, evaluate and the real service, where neutral is a label like the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.server import ServerProcess
from conftest import exported_copy
from sentiment_gru import SentimentClassifier
from sentiment_gru.config import DataConfig
from sentiment_gru.runs import evaluate_saved


ROOT = Path(__file__).resolve().parent.parent
LABELS = ["negative", "neutral", "positive"]
TEXTS = ["a wonderful and moving film", "an okay, average and middling film", "a dull and tedious script"]


@pytest.fixture(scope="module")
def exported_three(three_label_dir, tmp_path_factory) -> Path:
    return exported_copy(three_label_dir, tmp_path_factory, "three-exported")


def test_onnx_gives_the_three_probabilities_torch_gives(exported_three):
    torch_clf = SentimentClassifier.from_pretrained(exported_three, backend="torch")
    onnx_clf = SentimentClassifier.from_pretrained(exported_three, backend="onnx")
    assert torch_clf.label_names == onnx_clf.label_names == LABELS
    expected, found = torch_clf.predict_proba(TEXTS), onnx_clf.predict_proba(TEXTS)
    assert found.shape == (3, 3)
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(found.sum(axis=1), 1.0, atol=1e-6)


def test_the_api_ranks_all_three_labels_and_says_neutral(exported_three):
    clf = SentimentClassifier.from_pretrained(exported_three, backend="onnx")
    ranked = clf(TEXTS[1], top_k=None)
    assert sorted(r["label"] for r in ranked) == LABELS
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert [r["label"] for r in clf(TEXTS)] == ["positive", "neutral", "negative"]  # the synthetic words of each label


def test_predict_prints_neutral_and_every_probability(exported_three):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "predict.py"), "--artifacts", str(exported_three), "--json",
                           *TEXTS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [set(r["probabilities"]) for r in rows] == [set(LABELS)] * 3
    assert rows[1]["label"] == "neutral"


def test_evaluate_scores_three_labels_with_a_row_per_class(three_label_dir, tmp_path):
    data = DataConfig(train_file=str(three_label_dir.parent / "train.csv"), test_file=str(three_label_dir.parent / "test.csv"))
    metrics, out = evaluate_saved(three_label_dir, data, "test", tmp_path / "eval", baseline=False)
    assert set(metrics["per_class"]) == set(LABELS)
    assert "label_subset" not in metrics  # the data has every label of the model: nothing to say
    assert "neutral" in (out / "report.md").read_text()


def test_the_service_answers_with_neutral_like_any_label(exported_three):
    with ServerProcess(["--artifacts", str(exported_three), "--backend", "onnx"]) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            info = http.get("/info").json()
            assert info["labels"] == LABELS
            best = http.post("/predict", json={"inputs": TEXTS}).json()
            assert best[1]["label"] == "neutral"
            ranked = http.post("/predict", json={"inputs": TEXTS[1], "parameters": {"top_k": None}}).json()
            assert sorted(r["label"] for r in ranked) == LABELS
