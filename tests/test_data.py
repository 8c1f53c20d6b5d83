"""Data sources, column and label detection, and the text of every bad-data error."""

from __future__ import annotations

import hashlib
import json

import datasets
import pytest

from sentiment_gru.config import DataConfig
from sentiment_gru.data.corpus import stratified_split
from sentiment_gru.data.load import EMPTY, NAMED, NUMERIC, UNLABELLED, classify_row, load_data, load_unlabelled_texts
from sentiment_gru.data.tables import FILE_FORMATS, OUTPUT_FORMATS, TableWriter, read_rows, read_texts, shorten
from sentiment_gru.errors import ConfigError, DataError

from conftest import make_rows, write_csv


def test_default_corpus_split_is_fixed():
    data = load_data(DataConfig())
    assert data.label_names == ["negative", "positive"]
    assert {s: len(ds) for s, ds in data.splits.items()} == {"train": 10201, "validation": 1275, "test": 1276}
    total = sum(len(ds) for ds in data.splits.values())
    assert total == 12752
    positives = sum(sum(ds["label"]) for ds in data.splits.values())
    assert 0.57 < positives / total < 0.59
    # the same texts land in the same split on every machine and with every library version
    digest = hashlib.sha256("\n".join(data.splits["test"]["text"]).encode()).hexdigest()
    assert digest[:16] == "1a0f35cf40513a67", digest
    texts = [set(ds["text"]) for ds in data.splits.values()]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_stratified_split_keeps_class_shares():
    labels = [0] * 100 + [1] * 300
    parts = stratified_split(labels, [str(i) for i in range(400)], {"train": 0.8, "validation": 0.1, "test": 0.1})
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [320, 40, 40]
    assert sum(labels[i] for i in parts["test"]) == 30


def _write_table(path, rows) -> None:
    """`rows` in the format `path`'s suffix names."""
    if path.suffix == ".csv":
        write_csv(path, rows)
    elif path.suffix == ".tsv":
        write_csv(path, rows, delimiter="\t")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        datasets.Dataset.from_list(rows).to_parquet(str(path))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_each_file_format(tmp_path, suffix):
    rows = make_rows(50, seed=4)
    path = tmp_path / f"train{suffix}"
    _write_table(path, rows)
    data = load_data(DataConfig(train_file=str(path)))
    assert data.label_names == ["negative", "positive"]
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 50
    assert any("no validation split" in n for n in data.notes)
    assert any("no test split" in n for n in data.notes)
    assert data.eval_split == "validation"


@pytest.mark.parametrize("suffix", list(FILE_FORMATS))
def test_predicts_streaming_reader_and_the_datasets_loader_read_the_same_texts(tmp_path, suffix):
    rows = [{"id": i, "Review": r["text"], "label": r["label"]} for i, r in enumerate(make_rows(20, seed=2))]
    path = tmp_path / f"texts{suffix}"
    _write_table(path, rows)
    streamed = list(read_texts(str(path), None))  # the column found as "review", case aside
    assert streamed == [r["Review"] for r in rows]
    assert list(load_unlabelled_texts(str(path), None, "pretrain")["text"]) == streamed
    assert list(read_texts(str(path), "Review")) == streamed


def test_predicts_reader_errors_name_the_file_option(tmp_path):
    with pytest.raises(DataError, match=r"^--file .*missing\.csv: no such file\.$"):
        read_texts(str(tmp_path / "missing.csv"), None)
    table = write_csv(tmp_path / "t.csv", [{"body": "fine", "label": "positive"}])
    with pytest.raises(DataError, match=r"No text column found in --file .*t\.csv \(looked for text, sentence, review, content\); "
                                        r"its columns are: body, label\. Pass --text-column NAME\."):
        read_texts(str(table), None)
    lines = tmp_path / "lines.txt"
    lines.write_text("good\nbad\n")
    assert list(read_texts(str(lines), None)) == ["good", "bad"]
    with pytest.raises(ConfigError, match=r"--text-column needs a table file \(\.csv, \.tsv, \.json, \.jsonl, \.parquet\); "):
        read_texts(str(lines), "text")
    with pytest.raises(ConfigError, match=r"; --file - reads plain lines from stdin\. Give the file's path, or drop --text-column\.$"):
        read_texts("-", "text")


def test_shorten_puts_a_text_on_one_line_within_its_width():
    assert shorten("  a\n fine\tfilm ", 80) == "a fine film"
    assert shorten("x" * 80, 80) == "x" * 80
    assert shorten("x" * 81, 80) == "x" * 77 + "..."


def test_local_dataset_folder_through_load_dataset(tmp_path):
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_csv(folder / "train.csv", make_rows(80, seed=5))
    write_csv(folder / "test.csv", make_rows(20, seed=6))
    data = load_data(DataConfig(dataset=str(folder)))
    assert set(data.splits) == {"train", "validation", "test"}
    assert len(data.splits["test"]) == 20
    assert data.source["kind"] == "dataset folder"


def test_saved_dataset_folder_with_class_labels_and_hidden_test_labels(tmp_path):
    """A hub-style DatasetDict: ClassLabel names, a `sentence` column, test labels hidden as -1 (like SST-2)."""
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    rows = make_rows(60, seed=7)

    def as_split(rs, hide=False):
        return datasets.Dataset.from_dict(
            {"sentence": [r["text"] for r in rs], "label": [-1 if hide else int(r["label"] == "positive") for r in rs]}, features=features
        )

    dd = datasets.DatasetDict({"train": as_split(rows[:40]), "validation": as_split(rows[40:50]), "test": as_split(rows[50:], hide=True)})
    dd.save_to_disk(str(tmp_path / "saved"))
    data = load_data(DataConfig(dataset=str(tmp_path / "saved")))
    assert data.label_names == ["neg", "pos"]
    assert set(data.splits) == {"train", "validation"}
    assert any("test split has no labelled rows" in n for n in data.notes)


def test_detects_columns_and_string_labels_with_three_classes(tmp_path):
    rows = [{"id": i, "review": r["text"], "sentiment": r["label"]} for i, r in enumerate(make_rows(90, seed=8, labels=("negative", "neutral", "positive")))]
    data = load_data(DataConfig(train_file=str(write_csv(tmp_path / "t.csv", rows))))
    assert data.label_names == ["negative", "neutral", "positive"]
    assert data.source["text_column"] == "review" and data.source["label_column"] == "sentiment"


def test_integer_labels_are_named_by_flag_or_by_value(tmp_path):
    rows = [{"text": r["text"], "label": int(r["label"] == "positive")} for r in make_rows(40, seed=9)]
    path = str(write_csv(tmp_path / "t.csv", rows))
    assert load_data(DataConfig(train_file=path)).label_names == ["0", "1"]
    named = load_data(DataConfig(train_file=path, label_names=("negative", "positive")))
    assert named.label_names == ["negative", "positive"]
    assert set(named.splits["train"]["label"]) == {0, 1}


def test_explicit_columns(tmp_path):
    rows = [{"body": r["text"], "y": r["label"]} for r in make_rows(40, seed=10)]
    path = str(write_csv(tmp_path / "t.csv", rows))
    data = load_data(DataConfig(train_file=path, text_column="body", label_column="y"))
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 40


# ---------------------------------------------------------------- errors


def test_missing_column_lists_the_columns(tmp_path):
    path = str(write_csv(tmp_path / "t.csv", [{"body": "good", "y": "positive"}]))
    with pytest.raises(DataError, match=r"No text column found .*looked for text, sentence, review, content.*its columns are: body, y\. Pass --text-column NAME"):
        load_data(DataConfig(train_file=path))
    with pytest.raises(DataError, match=r"Column 'words' \(--text-column\) not found .*its columns are: body, y"):
        load_data(DataConfig(train_file=path, text_column="words"))


def test_empty_split(tmp_path):
    train = str(write_csv(tmp_path / "train.csv", make_rows(30)))
    empty = tmp_path / "test.csv"
    empty.write_text("text,label\n")
    with pytest.raises(DataError, match=r"The test split \(--test-file .*test\.csv\) has no usable rows"):
        load_data(DataConfig(train_file=train, test_file=str(empty)))


def test_single_class(tmp_path):
    rows = [{"text": f"good film {i}", "label": "positive"} for i in range(20)]
    with pytest.raises(DataError, match=r"single class \('positive'\); a classifier needs at least two"):
        load_data(DataConfig(train_file=str(write_csv(tmp_path / "t.csv", rows))))


def test_rows_with_empty_text_or_missing_label_are_counted_and_skipped(tmp_path):
    rows = make_rows(30)
    rows[3]["text"] = "   "
    rows[7]["text"] = ""
    rows[11]["label"] = ""
    data = load_data(DataConfig(train_file=str(write_csv(tmp_path / "t.csv", rows))))
    note = next(n for n in data.notes if n.startswith("train:"))
    assert "skipped 2 row(s) with empty or missing text (rows 4, 8)" in note
    assert "skipped 1 row(s) with no label (rows 12)" in note
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 27


def test_one_rule_classifies_a_row():
    assert classify_row("fine", "positive", None, None) == (NAMED, "positive")
    assert classify_row("fine", " 1 ", None, None) == (NUMERIC, "1")
    assert classify_row("fine", 1.0, None, None) == (NUMERIC, "1")
    assert classify_row("fine", 1, None, ("negative", "positive")) == (NAMED, "positive")
    assert classify_row("fine", 1, ["neg", "pos"], None) == (NAMED, "pos")
    assert classify_row("fine", -1, ["neg", "pos"], None) == (UNLABELLED, None)  # a hidden test label
    for label in (None, float("nan"), "  "):
        assert classify_row("fine", label, None, None) == (UNLABELLED, None)
    for text in (None, "", " \t"):
        assert classify_row(text, "positive", None, None) == (EMPTY, None)
    with pytest.raises(DataError, match=r"Label 2 has no name: --label-names gives 2 names for labels 0\.\.1\."):
        classify_row("", 2, None, ("negative", "positive"))  # even on a row that is skipped


def test_streamed_and_held_splits_skip_the_same_rows_with_the_same_note(tmp_path):
    rows = make_rows(60)
    for i in (3, 7, 20, 21, 22, 23, 24):
        rows[i]["text"] = " "
    rows[11]["label"] = ""
    path = str(write_csv(tmp_path / "t.csv", rows))
    held = next(n for n in load_data(DataConfig(train_file=path)).notes if n.startswith("train:"))
    streamed = next(n for n in load_data(DataConfig(train_file=path, streaming=True)).notes if n.startswith("train:"))
    assert held == streamed == ("train: skipped 7 row(s) with empty or missing text (rows 4, 8, 21, 22, 23, ...); "
                                "skipped 1 row(s) with no label (rows 12)")


def test_a_streamed_label_column_mixing_numbers_and_names_stops(tmp_path):
    rows = make_rows(40)
    rows[4]["label"] = "1"
    with pytest.raises(DataError, match=r"The label column 'label' of the train split of the files \(train=t\.csv\) mixes numbers "
                                        r"and names \(1, negative, positive\)\. Make the labels consistent"):
        load_data(DataConfig(train_file=str(write_csv(tmp_path / "t.csv", rows)), streaming=True))


def test_unreadable_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match=r"--train-file .*missing\.csv: no such file"):
        load_data(DataConfig(train_file=str(tmp_path / "missing.csv")))
    xlsx = tmp_path / "data.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'; use one of \.csv, \.tsv, \.json, \.jsonl, \.parquet"):
        load_data(DataConfig(train_file=str(xlsx)))
    broken = tmp_path / "broken.parquet"
    broken.write_text("text,label\nnot parquet,1\n")
    with pytest.raises(DataError, match=r"broken\.parquet: cannot be read as PARQUET .*Check its format"):
        load_data(DataConfig(train_file=str(broken)))


def test_unknown_labels_at_evaluation(tmp_path):
    rows = make_rows(20, labels=("negative", "neutral"))
    path = str(write_csv(tmp_path / "t.csv", rows))
    with pytest.raises(DataError, match=r"labels the model does not know: 'neutral'\. Known labels: negative, positive"):
        load_data(DataConfig(test_file=path), label_names=["negative", "positive"], need_train=False)


def test_integer_labels_for_a_named_model_say_how_to_name_them(tmp_path):
    rows = [{**r, "label": str(["negative", "positive"].index(r["label"]))} for r in make_rows(20)]
    path = str(write_csv(tmp_path / "reviews.csv", rows))
    with pytest.raises(DataError, match=r"does not know: '0', '1'\. Known labels: negative, positive\. If the numbers stand for "
                                        r"these names, pass --label-names negative,positive \(0 = negative, 1 = positive\)\."):
        load_data(DataConfig(test_file=path), label_names=["negative", "positive"], need_train=False)
    named = load_data(DataConfig(test_file=path, label_names=("negative", "positive")), label_names=["negative", "positive"],
                      need_train=False)
    assert named.splits["test"]["label"] == [["negative", "positive"].index(r["label"]) for r in make_rows(20)]


def test_dataset_and_files_together_is_refused():
    with pytest.raises(ValueError, match="either --dataset or --train-file"):
        DataConfig(dataset="imdb", train_file="x.csv")


def test_non_utf8_lines_are_counted_and_named(tmp_path):
    path = tmp_path / "latin1.csv"
    rows = ["text,label"] + [f"fine film {i},positive" for i in range(20)] + ["caf\xe9 cr\xe8me,negative", "d\xe9j\xe0 vu,negative"]
    path.write_bytes("\n".join(rows).encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: 2 line\(s\) are not valid UTF-8 \(lines 22, 23\)\. Save the file as UTF-8"):
        load_data(DataConfig(train_file=str(path)))


def test_label_column_mixing_numbers_and_names_stops(tmp_path):
    rows = make_rows(40)
    rows[4]["label"] = "1"
    rows[9]["label"] = "0"
    with pytest.raises(DataError, match=r"mixes numbers and names: 2 numeric label\(s\) \(rows 5, 10\) among 40\. Make the labels consistent"):
        load_data(DataConfig(train_file=str(write_csv(tmp_path / "t.csv", rows))))


# ---------------------------------------------------------------- what a newcomer trips over


def test_too_few_usable_rows_to_hold_out_validation_is_said(tmp_path):
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("text,label\nfoo,1\nbar,0\n,1\nbaz,\n")
    with pytest.raises(DataError, match=r"^The train split of the files \(train=gaps\.csv\) has 2 usable row\(s\) \(skipped 1 row\(s\) "
                                        r"with empty or missing text \(rows 3\); skipped 1 row\(s\) with no label \(rows 4\)\): too few "
                                        r"to hold out 10% of each class for validation and train on the rest\. Add rows, or pass "
                                        r"--validation-file\.$"):
        load_data(DataConfig(train_file=str(gaps)))


def test_bare_number_labels_get_a_note_that_says_how_to_name_them(tmp_path):
    rows = [{**r, "label": ["negative", "positive"].index(r["label"])} for r in make_rows(40)]
    data = load_data(DataConfig(train_file=str(write_csv(tmp_path / "t.csv", rows))))
    assert data.label_names == ["0", "1"]
    assert ("the labels are bare numbers (0, 1), so predictions will say '1' or '0'; to name them, train with "
            "--label-names negative,positive (one name per number, in the order 0, 1)") in data.notes
    named = load_data(DataConfig(train_file=str(tmp_path / "t.csv"), label_names=("negative", "positive")))
    assert not any("bare numbers" in n for n in named.notes)
    stars = [{**r, "label": r["label"] + 1} for r in rows]  # 1 and 2: --label-names names 0..n-1, so it cannot help
    notes = load_data(DataConfig(train_file=str(write_csv(tmp_path / "s.csv", stars)))).notes
    assert any(n.endswith("(1, 2), so predictions will say '2' or '1'; to have them say names, write the names in the label column")
               for n in notes)


def test_numbered_labels_that_cannot_be_the_models_names_are_not_offered_as_them(tmp_path):
    three = tmp_path / "three.csv"
    three.write_text("text,label\ngood,0\nbad,1\nmeh,2\n")
    with pytest.raises(DataError, match=r"has labels the model does not know: '0', '1', '2'\. Known labels: negative, positive\. Its labels "
                                        r"are the numbers 0, 1, 2, which cannot stand for the 2 labels the model knows: score it on data "
                                        r"labelled negative, positive\.$"):
        load_data(DataConfig(test_file=str(three)), label_names=["negative", "positive"], need_train=False)


def test_predicts_reader_names_what_is_wrong_with_the_file(tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label\nTrès bon film,positive\nmauvais,negative\n".encode("latin-1"))
    plain = tmp_path / "latin1.txt"
    plain.write_bytes("good\nTrès bon\n".encode("latin-1"))
    for file, line in ((latin1, 2), (plain, 2)):
        with pytest.raises(DataError, match=rf"^--file .*{file.name}: 1 line\(s\) are not valid UTF-8 \(lines {line}\)\. Save the file as "
                                            r"UTF-8, e\.g\. iconv -f latin1 -t utf-8\.$"):
            list(read_texts(str(file), None))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"^--file .*empty\.csv has no columns: it is empty, or its first line is\. A table starts with a "
                                        r"header line that names its columns, e\.g\. text\.$"):
        read_texts(str(tmp_path / "empty.csv"), None)
    with pytest.raises(DataError, match=rf"^--file {tmp_path}/: is a folder; give a file in it\.$"):
        read_texts(f"{tmp_path}/", None)
    numbers = tmp_path / "numbers.parquet"
    _write_table(numbers, [{"text": 1, "review": "fine"}])
    with pytest.raises(DataError, match=r"numbers\.parquet: column 'text' holds int64, not text\. Pass --text-column NAME"):
        read_texts(str(numbers), None)
    blank = tmp_path / "blank.csv"
    blank.write_text("text,label\ngood,1\n\nbad,0\n")
    assert list(read_texts(str(blank), None)) == ["good", "bad"], "a blank line is no row"


@pytest.mark.parametrize("source", [".csv", ".tsv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("target", OUTPUT_FORMATS)
def test_predicts_rows_go_out_with_every_input_column(tmp_path, source, target):
    """Every input column (an id the reader must not turn into a number) comes back, in order, with the added ones."""
    rows = [{"id": f"{i:03d}", "Review": r["text"], "stars": str(i % 5)} for i, r in enumerate(make_rows(30, seed=2))]
    path = tmp_path / f"in{source}"
    _write_table(path, rows)
    found = read_rows(str(path), None, chunk_rows=7)
    assert found.columns == ["id", "Review", "stars"] and found.text_column == "Review"
    out = tmp_path / f"out{target}"
    writer = TableWriter(str(out), found.columns, ["p", "ok"], schema=found.schema, added_types={"p": "float64", "ok": "bool"})
    for chunk in found.chunks:
        writer.write(chunk.rows, {"p": [len(t) / 100 for t in chunk.texts], "ok": [True] * len(chunk.texts)})
    writer.commit()
    back = [{"id": r["id"], "Review": r["Review"], "stars": r["stars"], "p": float(r["p"]), "ok": r["ok"] in (True, "True")}
            for r in _read_back(out)]
    assert back == [{**r, "p": len(r["Review"]) / 100, "ok": True} for r in rows]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging file left behind"


def _read_back(path) -> list[dict]:
    import csv

    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


def test_predicts_writer_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ConfigError, match=r"--output .*out\.xlsx: write a \.csv, \.tsv, \.jsonl, \.parquet file \(the suffix picks the format\)"):
        TableWriter(str(tmp_path / "out.xlsx"), ["text"], ["p"])
    with pytest.raises(ConfigError, match=r"The input already has the column\(s\) p that predict adds \(a file scored before\?\)"):
        TableWriter(str(tmp_path / "out.csv"), ["text", "p"], ["p"])
    writer = TableWriter(str(tmp_path / "out.csv"), ["text"], ["p"])
    writer.write([{"text": "a"}], {"p": [1.0]})
    writer.discard()
    assert list(tmp_path.iterdir()) == [], "a run that fails leaves no file"
