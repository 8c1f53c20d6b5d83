"""The three commands end to end, in-process through main(argv) and as real subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_MODEL_ARGS, make_rows, write_csv
from sentiment_gru import SentimentClassifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import evaluate as evaluate_script  # noqa: E402
import predict as predict_script  # noqa: E402
import train as train_script  # noqa: E402

MODEL_FILES = {
    "model.safetensors", "config.json", "tokenizer.json", "metrics.json", "classification_report.txt",
    "confusion_matrix.png", "confusion_matrix.csv", "history.json", "MANIFEST.json", ".gitignore",
    "report.html", "report.md", "report_roc_pr.png", "report_reliability.png", "report_length_confidence.png",
    "report_training_curves.png", "README.md",
}


def run_script(name: str, *args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args], input=stdin, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_train_evaluate_predict_end_to_end(trained_dir, tmp_path, capsys):
    assert {p.name for p in trained_dir.iterdir()} == MODEL_FILES
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["size"] == 60
    assert metrics["accuracy"] > 0.9, "the tiny corpus is learnable"
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert set(metrics["per_class"]["positive"]) == {"precision", "recall", "f1-score", "support"}
    assert 0.0 <= metrics["baseline"]["accuracy"] <= 1.0 and "macro_f1" in metrics["baseline"]
    config = json.loads((trained_dir / "config.json").read_text())
    assert config["label_names"] == ["negative", "positive"]
    assert config["data"]["source"]["sizes"] == {"train": 240, "validation": 60, "test": 60}
    assert {"torch", "tokenizers", "datasets", "scikit-learn"} <= set(config["versions"])
    assert "precision" in (trained_dir / "classification_report.txt").read_text()

    # evaluate on another file, into a folder of its own
    other = write_csv(tmp_path / "other.csv", make_rows(40, seed=11))
    out = tmp_path / "eval"
    assert evaluate_script.main(["--artifacts", str(trained_dir), "--test-file", str(other), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "macro avg" in printed
    evaluated = json.loads((out / "metrics.json").read_text())
    assert evaluated["size"] == 40 and "baseline" not in evaluated  # no train split given, so no baseline
    assert {"metrics.json", "classification_report.txt", "confusion_matrix.png", "confusion_matrix.csv"} <= {p.name for p in out.iterdir()}

    # evaluate on the model's own data and test split, default output folder
    assert evaluate_script.main(["--artifacts", str(trained_dir)]) == 0
    own = json.loads((trained_dir / "evaluation" / "test" / "metrics.json").read_text())
    assert own["accuracy"] == metrics["accuracy"] and own["baseline"]["accuracy"] == metrics["baseline"]["accuracy"]

    capsys.readouterr()
    assert predict_script.main(["--artifacts", str(trained_dir), "--json", "a wonderful and moving film", "dull, tedious, clumsy"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in lines] == ["positive", "negative"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-6 for r in lines)


def test_same_seed_gives_same_metrics(tiny_files, tmp_path):
    data = [f"--{s}-file={p}" for s, p in tiny_files.items()]
    for name in ("a", "b"):
        assert train_script.main([*data, "--output-dir", str(tmp_path / name), *TINY_MODEL_ARGS, "--epochs", "2"]) == 0
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b"))
    assert a["log_loss"] == b["log_loss"] and a["confusion_matrix"] == b["confusion_matrix"]


def test_predict_subprocess_file_stdin_and_empty_text(trained_dir, tmp_path):
    done = run_script("predict.py", "--artifacts", str(trained_dir), "what a wonderful film")
    assert done.returncode == 0, done.stderr
    label, probability, text = done.stdout.rstrip("\n").split("\t")
    assert label == "positive" and 0.5 < float(probability) <= 1.0 and text == "what a wonderful film"

    lines = tmp_path / "texts.txt"
    lines.write_text("superb and charming\n\n" + "🙂 " * 1000 + "\n" + "x" * 1_000_000 + "\n")
    done = run_script("predict.py", "--artifacts", str(trained_dir), "--json", "--file", str(lines))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 4
    assert rows[0]["label"] == "positive"
    assert rows[1] == {"text": "", "label": None, "error": "empty text"}
    assert rows[2]["label"] in ("negative", "positive") and rows[3]["label"] in ("negative", "positive")

    done = run_script("predict.py", "--artifacts", str(trained_dir), "-", stdin="a dull, tedious mess\nmoving and beautiful\n")
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["negative", "positive"]

    table = write_csv(tmp_path / "table.csv", [{"id": "1", "review": "boring and bland"}])
    done = run_script("predict.py", "--artifacts", str(trained_dir), "--file", str(table))
    assert done.stdout.startswith("negative\t")


def test_predict_without_a_model_says_how_to_train(tmp_path):
    done = run_script("predict.py", "--artifacts", str(tmp_path / "nothing"), "some text")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: No trained model in {tmp_path / 'nothing'}/. Run: make train (or python scripts/train.py --output-dir DIR)"
    assert done.stdout == ""


def test_an_installed_command_names_installed_commands_in_its_hints(tmp_path):
    """Run through the console script that installing the package gives, the hint names that command, not scripts/."""
    installed = Path(sys.executable).with_name("sentiment-gru-predict")
    if not installed.is_file():
        pytest.skip("the package is not installed with its console scripts in this environment")
    done = subprocess.run([str(installed), "--artifacts", str(tmp_path / "nothing"), "some text"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: No trained model in {tmp_path / 'nothing'}/. Run: sentiment-gru-train --output-dir DIR"


def test_evaluate_on_integer_labels_names_the_fix_then_works_with_it(trained_dir, tmp_path):
    rows = [{**r, "label": str(["negative", "positive"].index(r["label"]))} for r in make_rows(30, seed=5)]
    reviews = write_csv(tmp_path / "reviews.csv", rows)
    args = ["--artifacts", str(trained_dir), "--test-file", str(reviews), "--output-dir", str(tmp_path / "eval"), "--quiet"]
    done = run_script("evaluate.py", *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "pass --label-names negative,positive (0 = negative, 1 = positive)" in done.stderr
    done = run_script("evaluate.py", *args, "--label-names", "negative,positive")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["size"] == 30


def test_predict_starts_without_heavy_libraries(trained_dir):
    code = (
        "import runpy, sys\n"
        "script, model = sys.argv[1:]\n"
        "sys.argv = [script, '--artifacts', model, 'fine film']\n"
        "try:\n    runpy.run_path(script, run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('datasets', 'sklearn', 'matplotlib', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts" / "predict.py"), str(trained_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_bad_data_is_one_line_and_exit_2(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [{"body": "good", "y": "positive"}])
    done = run_script("train.py", "--train-file", str(bad), "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "No text column found" in done.stderr and "Pass --text-column NAME" in done.stderr
    assert not (tmp_path / "out").exists()


def test_unreachable_hub_dataset_suggests_local_files(tmp_path):
    done = run_script("train.py", "--dataset", "stanfordnlp/sst2", "--output-dir", str(tmp_path / "out"), env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --dataset stanfordnlp/sst2: cannot be reached on the Hugging Face hub (offline, or no such dataset). "
        "Use local data instead: --train-file/--test-file, or a local dataset folder."
    ]


def test_bad_options_fail_with_the_option_name(tmp_path, capsys):
    assert train_script.main(["--hidden-size", "0", "--output-dir", str(tmp_path / "o")]) == 2
    assert "The 'hidden_size' parameter of ModelConfig must be an int in [1, 4096]. Got 0 instead." in capsys.readouterr().err
    assert predict_script.main(["--artifacts", str(tmp_path), "--batch-size", "0", "x"]) == 2
    assert "--batch-size must be between 1 and" in capsys.readouterr().err


def test_output_dir_with_other_files_is_refused(tmp_path, tiny_files, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert train_script.main([f"--train-file={tiny_files['train']}", "--output-dir", str(mine), *TINY_MODEL_ARGS]) == 2
    assert "holds other files (notes.txt) and no model" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"


@pytest.mark.network
def test_hub_dataset_by_name(tmp_path):
    assert train_script.main(["--dataset", "rotten_tomatoes", "--epochs", "1", "--output-dir", str(tmp_path / "rt"), "--quiet"]) == 0


def test_one_command_dispatches_to_each(trained_dir, capsys):
    from sentiment_gru.cli import main

    assert main(["predict", "--artifacts", str(trained_dir), "a wonderful film"]) == 0
    assert capsys.readouterr().out.startswith("positive\t")
    assert main(["--help"]) == 0 and "serve" in capsys.readouterr().out
    assert main(["fit"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown command 'fit'; choose one of train, evaluate, predict, compare, export, serve."


# ---------------------------------------------------------------- what a newcomer trips over


def test_a_file_that_is_not_utf8_is_one_line_and_exit_2_for_predict_as_for_train(trained_dir, tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label\nTrès bon film,positive\nmauvais,negative\n".encode("latin-1"))
    lines = tmp_path / "latin1.txt"
    lines.write_bytes("Très bon film\n".encode("latin-1"))
    for file, line in ((latin1, 2), (lines, 1)):
        done = run_script("predict.py", "--artifacts", str(trained_dir), "--file", str(file))
        assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
        assert done.stderr == (f"error: --file {file}: 1 line(s) are not valid UTF-8 (lines {line}). "
                               "Save the file as UTF-8, e.g. iconv -f latin1 -t utf-8.\n")


def test_training_on_too_few_usable_rows_says_so(tmp_path):
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("text,label\nfoo,1\nbar,0\n,1\nbaz,\n")
    done = run_script("train.py", "--train-file", str(gaps), "--epochs", "1", "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: The train split of the files (train=gaps.csv) has 2 usable row(s) (skipped 1 row(s) with empty or missing text (rows 3); "
        "skipped 1 row(s) with no label (rows 4)): too few to hold out 10% of each class for validation and train on the rest. "
        "Add rows, or pass --validation-file.")
    assert not (tmp_path / "out").exists()


def test_predict_says_when_a_text_was_cut_and_names_the_score_as_the_api_does(trained_dir, capsys):
    long = "the film is wonderful and moving. " * 200 + "Awful, terrible, a complete waste of time."
    assert predict_script.main(["--artifacts", str(trained_dir), "--json", long, "superb"]) == 0
    captured = capsys.readouterr()
    cut, whole = [json.loads(line) for line in captured.out.splitlines()]
    assert cut["truncated"] is True and "truncated" not in whole
    assert cut["score"] == cut["probability"] == max(cut["probabilities"].values())
    assert captured.err == ("note: 1 of 2 texts were longer than the model reads (256 tokens) and only part of each was read; "
                            "--json marks them \"truncated\": true.\n")


def test_predicts_small_mistakes_get_a_clear_line(trained_dir, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    done = run_script("predict.py", "--artifacts", str(trained_dir), "--file", str(tmp_path / "empty.csv"))
    assert done.returncode == 2 and done.stderr == (f"error: --file {tmp_path / 'empty.csv'} has no columns: it is empty, or its first "
                                                    "line is. A table starts with a header line that names its columns, e.g. text.\n")
    done = run_script("predict.py", "--artifacts", str(trained_dir), "--file", f"{tmp_path}/")
    assert done.returncode == 2 and done.stderr == f"error: --file {tmp_path}/: is a folder; give a file in it.\n"
    done = run_script("predict.py", "--artifacts", str(trained_dir), stdin="a dull, tedious mess\nmoving and beautiful\n")
    assert done.returncode == 0 and [line.split("\t")[0] for line in done.stdout.splitlines()] == ["negative", "positive"]
    done = run_script("predict.py", "--artifacts", str(trained_dir), stdin="")
    assert done.returncode == 2 and done.stderr == "error: Nothing to predict: stdin was empty. Give texts, or --file F.\n"
    done = run_script("predict.py", "--artifacts", str(trained_dir), "--file", str(tmp_path / "empty.csv"), "--output", "x.xlsx")
    assert done.returncode == 2 and "write a .csv, .tsv, .jsonl, .parquet file" in done.stderr


def test_the_one_command_names_its_own_subcommands_in_hints(tmp_path):
    installed = Path(sys.executable).with_name("sentiment-gru")
    if not installed.is_file():
        pytest.skip("the package is not installed with its console scripts in this environment")
    done = subprocess.run([str(installed), "predict", "--artifacts", str(tmp_path / "nothing"), "x"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: No trained model in {tmp_path / 'nothing'}/. Run: sentiment-gru train --output-dir DIR"


def test_bare_number_labels_are_named_in_the_training_log_and_the_card(tmp_path, capsys):
    rows = [{**r, "label": ["negative", "positive"].index(r["label"])} for r in make_rows(60, seed=1)]
    train = write_csv(tmp_path / "train.csv", rows)
    out = tmp_path / "model"
    args = [a for a in TINY_MODEL_ARGS if a != "--quiet"]
    assert train_script.main(["--train-file", str(train), "--output-dir", str(out), *args, "--epochs", "1"]) == 0
    note = ("the labels are bare numbers (0, 1), so predictions will say '1' or '0'; to name them, train with "
            "--label-names negative,positive (one name per number, in the order 0, 1)")
    assert note in capsys.readouterr().err
    assert f"- Note: {note}." in (out / "README.md").read_text()


def test_predict_writes_every_row_with_its_columns_to_a_file(trained_dir, tmp_path, capsys, monkeypatch):
    from sentiment_gru.inference import bulk

    monkeypatch.setattr(bulk, "PROGRESS_LINE_SECONDS", 0)  # a plain progress line after every chunk
    long = "the film is wonderful and moving. " * 200
    rows = [{"id": f"{i:04d}", "review": r["text"] if i != 3 else long, "stars": str(i % 5)} for i, r in enumerate(make_rows(800, seed=4))]
    rows[5]["review"] = ""
    table = write_csv(tmp_path / "reviews.csv", rows)
    for suffix in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"scored{suffix}"
        assert predict_script.main(["--artifacts", str(trained_dir), "--file", str(table), "--output", str(out)]) == 0
        err = capsys.readouterr().err
        assert re.search(rf"wrote 800 predictions to {re.escape(str(out))} in [\d.]+ s \([\d,]+ texts/s\); 1 texts were longer than "
                         r"the model reads and cut \(predicted_truncated\); 1 texts were empty \(no prediction\)", err), err
        assert re.search(r"predicted 800 texts \(100%\), [\d,]+ texts/s", err), "a plain progress line where there is no terminal"
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            scored = pq.read_table(out).to_pylist()
        elif suffix == ".jsonl":
            scored = [json.loads(line) for line in out.read_text().splitlines()]
        else:
            import csv

            with open(out, newline="") as handle:
                scored = list(csv.DictReader(handle))
        assert len(scored) == 800 and [r["id"] for r in scored] == [r["id"] for r in rows], "every row, its id kept as written"
        assert list(scored[0])[:3] == ["id", "review", "stars"] and scored[0]["review"] == rows[0]["review"]
        assert {str(r["predicted_truncated"]) for r in scored[:3]} == {"False"} and str(scored[3]["predicted_truncated"]) == "True"
        assert scored[5]["predicted_label"] in (None, "")
        first = float(scored[0]["predicted_score"])
        assert first == max(float(scored[0]["predicted_score_negative"]), float(scored[0]["predicted_score_positive"]))
    expected = SentimentClassifier.from_pretrained(trained_dir).predict([rows[0]["review"]])[0]
    assert expected["label"] == scored[0]["predicted_label"] and abs(expected["score"] - first) < 1e-12

    # printed to a pipe, each text is whole on its line (not shortened for a terminal)
    done = run_script("predict.py", "--artifacts", str(trained_dir), "--file", str(table), "--quiet")
    printed = done.stdout.splitlines()
    assert done.returncode == 0 and len(printed) == 800 and printed[3].split("\t")[2] == " ".join(long.split())


def test_progress_is_a_bar_on_a_terminal_with_a_total_estimated_from_the_file_read(monkeypatch):
    import io

    from sentiment_gru.data.tables import Chunk
    from sentiment_gru.inference.bulk import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress = Progress()
    assert progress.bar is not None and not progress.lines
    seen = []
    for chunk in progress.track([Chunk(["a"] * 100, None, 0.25), Chunk(["b"] * 100, None, 0.5), Chunk(["c"] * 100, None, 1.0)]):
        seen.append((progress.bar.n, progress.bar.total))  # counted once the caller is done with a chunk
    assert seen == [(0, None), (100, 400), (200, 400)] and progress.texts == 300
    assert progress.bar is None and "predicting" in terminal.getvalue(), "closed at the end"
    assert Progress(enabled=False).bar is None and not Progress(enabled=False).lines
