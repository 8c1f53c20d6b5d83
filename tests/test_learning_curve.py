"""scripts/benchmark_accuracy.py --learning-curve: every model at every size on the same scored rows, end to end."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_rows, write_csv

from benchmarks import learning_curve
from sentiment_gru.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import benchmark_accuracy


def test_draws_are_stratified_seeded_and_keep_every_label():
    labels = np.array([0] * 300 + [1] * 100 + [2] * 4)
    rows = learning_curve.draw(labels, 40, seed=1)
    assert len(rows) == len(set(rows)) == 40
    assert np.bincount(labels[rows]).tolist() == [29, 9, 2]  # 29.7 and 9.9 rounded so that the rare label keeps two
    np.testing.assert_array_equal(rows, learning_curve.draw(labels, 40, seed=1))
    assert set(rows) != set(learning_curve.draw(labels, 40, seed=2))


def test_the_recipe_is_chosen_by_the_training_set_size():
    assert learning_curve.recipe(250, "scratch")["train"] == {"batch_size": 32}
    assert learning_curve.recipe(500, "vectors")["train"] == {"batch_size": 32, "word_vectors": True}
    assert learning_curve.recipe(5000, "fine_tuned")["train"] == {"batch_size": 64, "learning_rate": 1e-3}
    assert "tokenizer" not in learning_curve.recipe(500, "scratch")  # the train command's reading: 256 tokens from the start


def test_long_texts_are_read_as_the_reviews_preset_reads_them():
    reviews = ["a long review " * 60 + "and the verdict at the end"] * 3  # 186 words each
    assert learning_curve.reads_long(reviews) and not learning_curve.reads_long(["short and sweet"] * 3 + reviews[:2])
    assert not learning_curve.reads_long([])
    for start in learning_curve.STARTS:
        assert learning_curve.recipe(1000, start, long_texts=True)["tokenizer"] == {"max_length": 512, "tail_tokens": 128,
                                                                                    "predict_length": 1024}
    assert learning_curve.recipe(1000, "fine_tuned", long_texts=True)["train"] == {"batch_size": 64}  # 3e-3, as train


def test_the_learning_curve_command_end_to_end(trained_dir, tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=learning_curve.__name__)
    recipe = learning_curve.recipe
    monkeypatch.setattr(learning_curve, "recipe",
                        lambda size, start, long_texts: {"train": {**recipe(size, start, long_texts)["train"], "epochs": 2}})
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "train.csv", make_rows(160, seed=41))
    write_csv(folder / "test.csv", make_rows(50, seed=42))
    output = tmp_path / "curve" / "curve.json"
    argv = ["--learning-curve", str(folder), "--sizes", "40", "80", "--seeds", "7", "--init-from", str(trained_dir),
            "--output", str(output)]
    assert benchmark_accuracy.main(argv) == 0
    results = json.loads(output.read_text())["results"]
    assert results["sizes"] == [40, 80] and results["seeds"] == [7] and results["scored"] == {"split": "test", "size": 50}
    assert results["pool"] == 160  # train, with the validation split load_data carved from it
    assert set(results["summary"]) == {"scratch", "vectors", "fine_tuned", "tfidf", "nbsvm"}
    assert sorted((r["model"], r["size"]) for r in results["runs"]) == sorted(
        (m, s) for m in ("scratch", "vectors", "fine_tuned", "tfidf", "nbsvm") for s in (40, 80))
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in results["runs"])
    first = next(r for r in results["runs"] if r["model"] == "vectors")
    assert (f"learning curve: BiGRU from word vectors (--word-vectors), {first['size']} texts, seed 7: accuracy "
            f"{first['accuracy']:.4f}") in caplog.text
    assert results["parent"]["name"] == trained_dir.name and 0.5 <= results["parent"]["accuracy"] <= 1.0
    assert results["recipes"]["40"]["fine_tuned"]["train"] == {"batch_size": 32, "learning_rate": 1e-3, "epochs": 2}
    assert results["recipes"]["40"]["vectors"]["train"] == {"batch_size": 32, "word_vectors": True, "epochs": 2}
    assert results["long_texts"] is False

    table = output.with_suffix(".md").read_text()
    assert "| model | 40 texts | 80 texts |" in table and "| BiGRU started from the parent |" in table
    assert "| BiGRU from word vectors (--word-vectors) |" in table
    assert f"| the parent alone ({trained_dir.name}), no training |" in table
    assert "Accuracy on the same 50 rows (test split of" in table and table in capsys.readouterr().out + "\n"
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_a_folder_without_a_train_file_is_refused(tmp_path, capsys):
    assert benchmark_accuracy.main(["--learning-curve", str(tmp_path), "--no-parent", "--output", str(tmp_path / "x.json")]) == 2
    assert "the folder needs a train.* file" in capsys.readouterr().err


@pytest.mark.parametrize("sizes", [["ten"], ["40", "some"]])
def test_sizes_are_whole_numbers_or_all(sizes, capsys):
    with pytest.raises(SystemExit):
        benchmark_accuracy.parse_args(["--learning-curve", "x.csv", "--sizes", *sizes])
    assert "--sizes takes whole numbers or 'all'" in capsys.readouterr().err


def test_carved_rows_are_scored_and_never_drawn():
    texts = [f"text {i}" for i in range(100)]
    pool = learning_curve.Pool(texts, np.arange(100) % 2, ["held"], np.array([0]), "test", ["a", "b"], "toy")
    carved = learning_curve.carve(pool, 30)
    assert len(carved.scored_texts) == 30 and len(carved.texts) == 70 and carved.scored_split == learning_curve.CARVED
    assert not set(carved.scored_texts) & set(carved.texts) and set(carved.scored_texts) | set(carved.texts) == set(texts)
    assert carved.labels.tolist() == [int(t.split()[1]) % 2 for t in carved.texts]  # labels travel with their texts
    assert carved.scored_texts == learning_curve.carve(pool, 30).scored_texts  # seeded: the same rows every time
    with pytest.raises(DataError, match="--validation-rows 100: give a number of rows between 1 and 99"):
        learning_curve.carve(pool, 100)


def test_a_recipe_is_tried_on_carved_rows_with_training_options_over_it(trained_dir, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "train.csv", make_rows(160, seed=41))
    write_csv(folder / "test.csv", make_rows(50, seed=42))
    output = tmp_path / "curve.json"
    argv = ["--learning-curve", str(folder), "--sizes", "40", "--seeds", "7", "--init-from", str(trained_dir), "--output", str(output),
            "--validation-rows", "30", "--starts", "fine_tuned", "--epochs", "1", "--learning-rate", "2e-3"]
    assert benchmark_accuracy.main(argv) == 0
    results = json.loads(output.read_text())["results"]
    assert results["scored"] == {"split": "carved", "size": 30} and results["pool"] == 130  # the test split is not read
    assert sorted(r["model"] for r in results["runs"]) == ["fine_tuned", "nbsvm", "tfidf"]
    assert results["options"] == {"train": {"epochs": 1, "learning_rate": 2e-3}}
    table = output.with_suffix(".md").read_text()
    assert "30 rows (rows carved from the pool of" in table and "Every GRU run with epochs=1, learning_rate=0.002 over the recipe." in table
    capsys.readouterr()

    # the options reach the fine-tune: one it cannot take stops the run
    argv = [*argv[:argv.index("--epochs")], "--word-vectors"]
    assert benchmark_accuracy.main(argv) == 2
    assert "--word-vectors starts the embedding from word vectors, --init-from from the parent's: drop one." in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--preset", "snippets"], "drop --preset"),
    (["--max-train-rows", "50"], "drop --max-train-rows"),
    (["--hidden-sizes", "3"], "unrecognized arguments: --hidden-sizes"),
])
def test_the_curve_refuses_options_it_cannot_pass_on(extra, message, capsys):
    with pytest.raises(SystemExit):
        benchmark_accuracy.parse_args(["--learning-curve", "x.csv", *extra])
    assert message in capsys.readouterr().err


def test_validation_rows_go_with_the_learning_curve(capsys):
    with pytest.raises(SystemExit):
        benchmark_accuracy.parse_args(["--validation-rows", "30"])
    assert "--validation-rows and --starts go with --learning-curve." in capsys.readouterr().err


def test_a_fine_tune_alone_needs_a_parent(capsys):
    with pytest.raises(SystemExit):
        benchmark_accuracy.parse_args(["--learning-curve", "x.csv", "--starts", "fine_tuned", "--no-parent"])
    assert "--starts fine_tuned trains from a parent: give --init-from" in capsys.readouterr().err
