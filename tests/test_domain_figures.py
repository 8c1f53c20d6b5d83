"""Data with a `domain` column (the english-6-domains corpus, or a user's file): the metrics, the report and the model
card give each domain's figures, computed on its own rows, and the card its share of the training rows."""

from __future__ import annotations

import json

import numpy as np

from conftest import TINY_MODEL_ARGS, make_rows, write_csv
from sentiment_gru.cli import evaluate_main, train_main
from sentiment_gru.evaluate.scoring import by_domain

DOMAINS = ("tweets", "reviews")


def _with_domains(rows: list[dict], seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{**row, "domain": DOMAINS[int(rng.integers(2))]} for row in rows]


def test_each_domain_is_scored_on_its_own_rows_over_the_labels_it_has():
    labels = np.array([0, 1, 0, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0])
    rows = by_domain(labels, predictions, ["a", "a", "a", "a", "b", "b"], ["negative", "positive", "neutral"],
                     other=np.array([0, 0, 0, 0, 2, 2]))
    assert [r["domain"] for r in rows] == ["a", "b"]
    a, b = rows
    assert (a["size"], a["accuracy"], a["labels"], a["baseline_accuracy"]) == (4, 0.75, ["negative", "positive"], 0.5)
    # a: negative F1 2/3, positive F1 0.8; neutral is not a label of a's rows, so it does not pull the mean down
    assert a["macro_f1"] == (2 / 3 + 0.8) / 2
    assert (b["size"], b["accuracy"], b["labels"], b["baseline_accuracy"]) == (2, 0.5, ["neutral"], 1.0)


def test_a_file_with_a_domain_column_gets_figures_per_domain_in_metrics_report_and_card(tmp_path):
    files = {split: write_csv(tmp_path / f"{split}.csv", _with_domains(make_rows(n, seed=seed), seed))
             for split, n, seed in (("train", 160, 41), ("validation", 40, 42), ("test", 60, 43))}
    out = tmp_path / "model"
    assert train_main([f"--{s}-file={p}" for s, p in files.items()] + ["--output-dir", str(out), *TINY_MODEL_ARGS]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    test_rows = _with_domains(make_rows(60, seed=43), 43)
    sizes = {d: sum(r["domain"] == d for r in test_rows) for d in DOMAINS}
    found = {r["domain"]: r for r in metrics["by_domain"]}
    assert {d: found[d]["size"] for d in DOMAINS} == sizes
    overall = sum(found[d]["accuracy"] * found[d]["size"] for d in DOMAINS) / 60
    assert abs(overall - metrics["accuracy"]) < 1e-9  # the domains' figures add up to the whole split's
    assert all("baseline_accuracy" in r for r in metrics["by_domain"])

    report = (out / "report.md").read_text()
    assert "By domain" in report and all(f"| {d} |" in report for d in DOMAINS)
    card = (out / "README.md").read_text()
    assert "Domains (training rows, share):" in card and "By domain" in card

    assert evaluate_main(["--artifacts", str(out), f"--test-file={files['test']}", "--output-dir", str(tmp_path / "eval"), "--quiet"]) == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [(r["domain"], r["size"], r["accuracy"]) for r in again["by_domain"]] == \
        [(r["domain"], r["size"], r["accuracy"]) for r in metrics["by_domain"]]


def test_data_without_a_domain_column_has_no_domain_figures(trained_dir):
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert "by_domain" not in metrics
