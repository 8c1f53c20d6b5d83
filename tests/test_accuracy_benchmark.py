"""scripts/benchmark_accuracy.py: several seeds of a preset against the baseline, on real files."""

import json

import pytest

from conftest import make_rows, write_csv
from benchmarks import accuracy as accuracy_benchmark
from sentiment_gru.errors import DataError

TINY = {
    "tokenizer": {"vocab_size": 200},
    "model": {"ensemble_size": 1, "embedding_dim": 16, "hidden_size": 16},
    "train": {"epochs": 2, "batch_size": 16, "learning_rate": 0.01},
}


@pytest.fixture
def sst2_like(tmp_path):
    folder = tmp_path / "sst2"
    folder.mkdir()
    write_csv(folder / "train.csv", make_rows(200, seed=1))
    write_csv(folder / "validation.csv", make_rows(60, seed=2))
    return folder


def test_each_seed_is_a_run_and_the_baseline_shares_its_split(sst2_like):
    results = accuracy_benchmark.run(["sst2"], [1, 2], str(sst2_like), overrides=TINY)
    r = results["sst2"]
    assert r["split"] == "validation" and r["preset"] == "treebank"
    assert [run["seed"] for run in r["runs"]] == [1, 2]
    assert r["config"]["train"]["seed"] == 2 and r["config"]["model"]["ensemble_size"] == 1
    # The baseline is deterministic on a fixed split: the same figure in every run.
    assert r["runs"][0]["baseline_accuracy"] == r["runs"][1]["baseline_accuracy"]
    assert r["baseline_accuracy"]["std"] == 0.0
    accuracies = [run["accuracy"] for run in r["runs"]]
    assert r["accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2)
    assert r["gain_over_baseline_points"] == pytest.approx(100 * (r["accuracy"]["mean"] - r["baseline_accuracy"]["mean"]))
    table = accuracy_benchmark.format_table(results)
    assert table.count("\n") == 3 and "2 seeds" in table and "Kim 2014" in table
    json.dumps(results)  # the script writes it as JSON


def test_a_folder_without_the_splits_is_refused(tmp_path):
    write_csv(tmp_path / "train.csv", make_rows(10))
    with pytest.raises(DataError, match=r"needs train\.\* and validation\.\* files"):
        accuracy_benchmark.data_config("sst2", str(tmp_path))


def test_the_imdb_row_scores_nbsvm_and_the_blend_on_the_same_carved_split(tmp_path):
    rows = [{"text": r["text"], "label": str(["negative", "positive"].index(r["label"]))} for r in make_rows(300, seed=5)]
    write_csv(tmp_path / "train.csv", rows)
    results = accuracy_benchmark.run(["imdb"], [1], "", overrides=TINY, imdb=str(tmp_path))
    r = results["imdb"]
    assert r["split"] == "validation" and r["preset"] == "reviews" and r["config"]["train"]["blend_nbsvm"] is True
    assert r["config"]["train"]["pretrain_epochs"] == 4  # the preset pretrains
    assert 0.5 <= r["nbsvm_accuracy"]["mean"] <= 1.0 and 0.0 <= r["blend_weight"]["mean"] <= 1.0
    table = accuracy_benchmark.format_table(results)
    assert "NBSVM" in table and "blend of the two" in table and "Wang & Manning" in table
    with pytest.raises(DataError, match=r"--imdb .*: the folder needs train\.csv"):
        accuracy_benchmark.data_config("imdb", "", str(tmp_path / "nowhere"))


def test_the_sst2_student_can_learn_from_unlabelled_sentences(sst2_like, tmp_path):
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("".join(f"{row['text']}\n" for row in make_rows(50, seed=3)), encoding="utf-8")
    overrides = {**TINY, "model": {**TINY["model"], "ensemble_size": 2}, "train": {**TINY["train"], "distill_epochs": 1}}
    r = accuracy_benchmark.run(["sst2"], [1], str(sst2_like), overrides=overrides, sst2_distill_file=str(sentences))["sst2"]
    assert r["config"]["data"]["distill_file"] == str(sentences)
    assert r["config"]["train"]["distill"] and r["config"]["train"]["distill_copies"] == 0
    assert 0.0 <= r["runs"][0]["ensemble_accuracy"] <= 1.0  # a student was distilled, beside its ensemble
