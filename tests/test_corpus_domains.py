"""The english-6-domains corpus, read from the real vaderSentiment source archive that `make setup` downloads: its
checksums, rows per domain, label and split, the rating thresholds, splits that share no text and are the same on every
machine, the errors of a missing or altered archive, and a tiny training run and domains benchmark on it."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import write_csv
from sentiment_gru.config import DataConfig, build_data_config
from sentiment_gru.data import domains
from sentiment_gru.data.corpus import load_default_corpus, locate_corpus_file
from sentiment_gru.data.load import load_data
from sentiment_gru.errors import ConfigError, DataError
from sentiment_gru.files import sha256_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import benchmark_accuracy  # noqa: E402

COUNTS = {  # domain -> label -> rows, the three splits together
    "snippets": {"negative": 145, "neutral": 0, "positive": 2153},
    "plots": {"negative": 0, "neutral": 5703, "positive": 0},
    "movies": {"negative": 5060, "neutral": 562, "positive": 4981},
    "tweets": {"negative": 986, "neutral": 837, "positive": 2222},
    "editorials": {"negative": 1661, "neutral": 2370, "positive": 1087},
    "products": {"negative": 1211, "neutral": 758, "positive": 1710},
}
SPLITS = {  # domain -> split -> rows
    "snippets": {"train": 1865, "validation": 223, "test": 210},
    "plots": {"train": 4523, "validation": 555, "test": 625},
    "movies": {"train": 8455, "validation": 1067, "test": 1081},
    "tweets": {"train": 3237, "validation": 405, "test": 403},
    "editorials": {"train": 4095, "validation": 512, "test": 511},
    "products": {"train": 2943, "validation": 368, "test": 368},
}
# sha256 of each split's texts joined by newlines: the split is the same on every machine
TEXTS_SHA256 = {
    "train": "4be091a506b848e1719b5d06a33841e0c85ace62a84c5bd5116d86473859884c",
    "validation": "b5ef61386ec7ad5560f3cc9cb0323cb353879facd9ed9e1423a9afba3640e8f4",
    "test": "0ae1261bba7b88ca417d5a83fd11b1afeb3540a1384c310ebbd5e6430f166d67",
}
TINY = ["--epochs", "1", "--batch-size", "32", "--vocab-size", "200", "--embedding-dim", "16", "--hidden-size", "16",
        "--ensemble", "1", "--max-train-rows", "300"]


@pytest.fixture(scope="module")
def archive() -> Path:
    """The archive `make setup` downloaded. Its absence fails the test with the error's advice (CI runs make setup first)."""
    try:
        return domains.locate_archive()
    except DataError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def corpus(archive):
    return domains.load_domains_corpus()


@pytest.fixture
def every_20th_row(archive, monkeypatch):
    """The real corpus thinned to every 20th row of each split (a few hundred rows), so a training run takes seconds."""
    rows = domains._rows
    monkeypatch.setattr(domains, "_rows", lambda *files: {split: found[::20] for split, found in rows(*files).items()})


def test_the_archive_and_each_file_read_from_it_match_their_pinned_sha256(archive):
    assert sha256_file(archive) == domains.ARCHIVE_SHA256
    with tarfile.open(archive, "r:gz") as outer:
        ratings = outer.extractfile(domains.RATINGS_MEMBER).read()
    assert hashlib.sha256(ratings).hexdigest() == domains.RATINGS_SHA256
    with tarfile.open(fileobj=io.BytesIO(ratings), mode="r:gz") as inner:
        for name, sha256 in domains.RATED.values():
            assert hashlib.sha256(inner.extractfile(name).read()).hexdigest() == sha256
    rated = domains._read_rated(archive)
    assert {d: len(rows) for d, rows in rated.items()} == {"movies": 10605, "tweets": 4200, "editorials": 5190, "products": 3708}
    assert rated["tweets"][2] == ("We were 17 deep last night & the love was so strong everybody felt it. Even the band. "
                                  "I love love love having good ppl in my corner.", 2.873684211)  # &amp; decoded


def test_rows_per_domain_label_and_split_are_pinned(corpus):
    assert corpus["train"].features["label"].names == ["negative", "neutral", "positive"]
    assert corpus["train"].column_names == ["text", "label", "domain"]
    by_label, by_split = collections.Counter(), collections.Counter()
    for split, ds in corpus.items():
        columns = ds[:]
        for domain, label in zip(columns["domain"], columns["label"]):
            by_label[domain, domains.LABEL_NAMES[label]] += 1
            by_split[domain, split] += 1
    assert {d: {name: by_label[d, name] for name in domains.LABEL_NAMES} for d in domains.DOMAINS} == COUNTS
    assert {d: {split: by_split[d, split] for split in ("train", "validation", "test")} for d in domains.DOMAINS} == SPLITS
    assert {split: len(ds) for split, ds in corpus.items()} == {"train": 25118, "validation": 3130, "test": 3198}


@pytest.mark.parametrize(("mean", "label"), [(-0.6, "negative"), (0.0, "neutral"), (0.6, "positive"), (-0.5, "neutral"),
                                             (0.5, "neutral"), (-0.51, "negative"), (0.51, "positive"), (-4.0, "negative"),
                                             (4.0, "positive")])
def test_a_mean_rating_within_half_a_point_of_zero_is_neutral(mean, label):
    assert domains.LABEL_NAMES[domains.rating_label(mean)] == label


def test_a_rated_row_gets_the_label_of_its_mean(corpus):
    labels = {text: label for ds in corpus.values() for text, label in zip(ds[:]["text"], ds[:]["label"])}
    for domain, rows in domains._read_rated(domains.locate_archive()).items():
        seen = set()
        for text, mean in rows[:300]:
            if text in labels and domains.dedup_key(text) not in seen:
                assert labels[text] == domains.rating_label(mean), (domain, text, mean)
            seen.add(domains.dedup_key(text))


def test_no_text_is_in_two_splits_nor_in_two_domains(corpus):
    keys = {split: [domains.dedup_key(t) for t in ds[:]["text"]] for split, ds in corpus.items()}
    every = [key for split in keys.values() for key in split]
    assert len(every) == len(set(every)) == 31446  # each text once, in one domain of one split
    train, validation, test = (set(keys[s]) for s in ("train", "validation", "test"))
    assert not train & validation and not train & test and not validation & test


def test_duplicates_are_kept_once_where_the_rated_sets_have_them(corpus):
    rows = {text: domain for ds in corpus.values() for text, domain in zip(ds[:]["text"], ds[:]["domain"])}
    # a film sentence that is also a Rotten Tomatoes snippet is kept once, in movies, with its rating's label
    assert rows["Effective but too tepid biopic"] == "movies"
    # the contrived tweets differ in case and punctuation only: one is kept
    assert rows["Yay. Another good phone interview."] == "tweets"
    assert "YAY!!! Another good phone interview!!!" not in rows


def test_no_training_text_is_in_the_default_corpus_validation_or_test_split(corpus):
    default = load_default_corpus()
    held_out = {domains.dedup_key(t) for split in ("validation", "test") for t in default[split][:]["text"]}
    assert not held_out & {domains.dedup_key(t) for t in corpus["train"][:]["text"]}
    # and each snippet, where it is kept, is in the split the default corpus gives it
    snippets = {domains.dedup_key(t): split for split, ds in default.items() for t in ds[:]["text"]}
    for split, ds in corpus.items():
        assert all(snippets.get(domains.dedup_key(t), split) == split for t in ds[:]["text"])


def test_the_splits_are_the_same_on_every_machine(corpus):
    domains._rows.cache_clear()
    again = domains.load_domains_corpus()
    for split, ds in corpus.items():
        texts = ds[:]["text"]
        assert texts == again[split][:]["text"]
        assert hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest() == TEXTS_SHA256[split]


def test_the_sentences_of_one_synopsis_are_in_one_split(corpus):
    split_of = {text: split for split, ds in corpus.items() for text, domain in zip(ds[:]["text"], ds[:]["domain"])
                if domain == "plots"}
    synopses = domains._synopses(locate_corpus_file())
    assert len(synopses) == 1083
    spread = [{split_of[s] for s in domains.plot_sentences(synopsis) if s in split_of} for synopsis in synopses]
    assert all(len(splits) <= 1 for splits in spread)
    assert collections.Counter(next(iter(s)) for s in spread if s) == {"train": 866, "validation": 108, "test": 109}


def test_a_synopsis_is_cut_at_sentence_ends_but_not_after_titles_or_initials():
    text = "Mr. Smith goes to Washington. He meets J. R. Jones (Dr. No) in D.C.!\n\nWhat happens next? \"Nothing.\" The end."
    assert domains.plot_sentences(text) == ["Mr. Smith goes to Washington.", "He meets J. R. Jones (Dr. No) in D.C.!",
                                            "What happens next?", "\"Nothing.\"", "The end."]


def test_a_missing_archive_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv(domains.DATA_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"needs vaderSentiment-3\.3\.2\.tar\.gz in .*\. Run: make setup \(or pip download "
                                        r"--no-binary :all: --no-deps vaderSentiment==3\.3\.2 -d "):
        domains.load_domains_corpus()


def test_an_altered_archive_is_refused(archive, tmp_path, monkeypatch):
    altered = tmp_path / domains.ARCHIVE
    altered.write_bytes(archive.read_bytes() + b"\0")
    monkeypatch.setenv(domains.DATA_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"has sha256 [0-9a-f]{16}\.\.\., expected 5d7c06e027fc8b99\.\.\.: not the archive the "
                                        r"english-6-domains corpus was built from\. Delete it, then run: make setup"):
        domains.load_domains_corpus()


def test_a_rated_file_changed_inside_the_archive_is_refused(archive, tmp_path, monkeypatch):
    """Each file read from the archive is checked too, not only the archive: with the archive's and the inner
    archive's sha256 pinned anew, a changed file of ratings is still refused."""
    with tarfile.open(archive, "r:gz") as outer:
        ratings = outer.extractfile(domains.RATINGS_MEMBER).read()
    changed = _replace_in_tar(ratings, domains.RATED["tweets"][0], lambda text: text.replace(b"Yay. Another", b"Boo. Another"))
    altered = tmp_path / domains.ARCHIVE
    altered.write_bytes(_replace_in_tar(archive.read_bytes(), domains.RATINGS_MEMBER, lambda _: changed))
    monkeypatch.setenv(domains.DATA_ENV, str(tmp_path))
    monkeypatch.setattr(domains, "ARCHIVE_SHA256", sha256_file(altered))
    monkeypatch.setattr(domains, "RATINGS_SHA256", hashlib.sha256(changed).hexdigest())
    with pytest.raises(DataError, match=r"hutto_ICWSM_2014/tweets_GroundTruth\.txt has sha256 [0-9a-f]{16}\.\.\., expected "
                                        r"dfbe7102e2f92579\.\.\.: not the archive .* Delete it, then run: make setup"):
        domains.load_domains_corpus()


def _replace_in_tar(archive: bytes, name: str, change) -> bytes:
    """A gzipped tar archive with file `name` changed by `change(bytes) -> bytes`."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as source, tarfile.open(fileobj=out, mode="w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == name:
                data = change(data)
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def test_load_data_names_the_corpus_its_domains_and_their_rows_per_split(archive):
    data = load_data(DataConfig(corpus="english-6-domains", domains=("tweets", "products")))
    assert data.label_names == ["negative", "neutral", "positive"]
    assert data.source["name"] == "english-6-domains" and data.source["kind"] == "built-in corpus"
    assert data.source["description"] == "the english-6-domains corpus (tweets, products)"
    assert data.source["domains"] == {d: SPLITS[d] for d in ("tweets", "products")}
    assert data.source["sizes"] == {split: SPLITS["tweets"][split] + SPLITS["products"][split] for split in SPLITS["tweets"]}
    assert data.splits["train"].column_names == ["text", "domain", "label"]  # the domain column is kept for the report


def test_max_train_rows_keeps_each_label_and_domain_share(archive):
    data = load_data(DataConfig(corpus="english-6-domains", max_train_rows=1000, seed=5))
    assert abs(len(data.splits["train"]) - 1000) <= 10
    assert data.source["domains"]["movies"]["train"] == pytest.approx(1000 * SPLITS["movies"]["train"] / 25118, abs=2)
    assert data.source["sizes"]["validation"] == 3130  # validation and test whole
    assert any("rows used (--max-train-rows 1000" in note for note in data.notes)
    labels = np.bincount(np.asarray(data.splits["train"]["label"]), minlength=3)
    assert labels.tolist() == pytest.approx([1000 * 7262 / 25118, 1000 * 8135 / 25118, 1000 * 9721 / 25118], abs=8)
    again = load_data(DataConfig(corpus="english-6-domains", max_train_rows=1000, seed=5))
    assert data.splits["train"][:]["text"] == again.splits["train"][:]["text"]


@pytest.mark.parametrize("streaming", [False, True])
def test_files_with_a_domain_column_have_their_rows_per_domain_recorded(tmp_path, streaming):
    rows = [{"text": f"text {i} {'good' if i % 2 else 'bad'}", "label": "positive" if i % 2 else "negative",
             "domain": "a" if i < 30 else "b"} for i in range(40)]
    train = write_csv(tmp_path / "train.csv", rows)
    data = load_data(DataConfig(train_file=str(train), streaming=streaming))
    if streaming:  # a stream is not counted before training reads it
        assert "domains" not in data.source
    else:
        assert data.source["domains"] == {"a": {"train": 30}, "b": {"train": 10}}


def test_a_domain_with_two_labels_gives_a_two_label_model_its_data(archive):
    data = load_data(DataConfig(corpus="english-6-domains", domains=("snippets",)))
    assert data.label_names == ["negative", "positive"]


@pytest.mark.parametrize(("given", "message"), [
    ({"domains": ("tweets",)}, r"--domains chooses domains of the english-6-domains corpus: add --corpus english-6-domains"),
    ({"corpus": "english-6-domains", "domains": ("tweets", "blogs")}, r"'domains' parameter of DataConfig must be distinct names"),
    ({"corpus": "english-6-domains", "train_file": "x.csv"}, r"--corpus names a built-in corpus, read when no --dataset or files"),
    ({"corpus": "rotten-tomatoes-snippets", "dataset": "imdb"}, r"--corpus names a built-in corpus"),
    ({"max_train_rows": 10, "streaming": True, "train_file": "x.csv"}, r"--max-train-rows samples a train split held in memory"),
])
def test_corpus_options_that_do_not_fit_are_refused(given, message):
    with pytest.raises(ConfigError, match=message):
        build_data_config(given)


def test_train_on_the_corpus_then_evaluate_one_domain(every_20th_row, tmp_path, capsys):
    from sentiment_gru.cli import evaluate_main, train_main

    out = tmp_path / "model"
    assert train_main(["--corpus", "english-6-domains", *TINY, "--output-dir", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["label_names"] == ["negative", "neutral", "positive"]
    assert config["data"]["corpus"] == "english-6-domains" and config["data"]["max_train_rows"] == 300
    source = config["data"]["source"]
    assert source["name"] == "english-6-domains" and list(source["domains"]) == list(domains.DOMAINS)
    assert sum(d["train"] for d in source["domains"].values()) == source["sizes"]["train"]
    capsys.readouterr()
    assert evaluate_main(["--artifacts", str(out), "--corpus", "english-6-domains", "--domains", "tweets", "--split", "validation",
                          "--no-baseline", "--quiet"]) == 0
    metrics = json.loads((out / "evaluation" / "validation" / "metrics.json").read_text())
    assert metrics["size"] == 20 and metrics["data"]["domains"] == {"tweets": {"train": 161, "validation": 20, "test": 20}}


def test_the_leave_one_domain_out_benchmark_end_to_end(every_20th_row, tmp_path, capsys):
    output = tmp_path / "domains.json"
    assert benchmark_accuracy.main(["--domains", "--seeds", "3", *TINY, "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    results = report["results"]
    assert report["args"]["sections"]["train"] == {"epochs": 1, "batch_size": 32}
    assert report["args"]["data_options"] == {"max_train_rows": 300}
    assert list(results["left_out"]) == ["movies", "tweets", "editorials", "products"] and "in_domain" not in results
    movies = results["left_out"]["movies"]
    assert movies["trained_on"] == ["tweets", "editorials", "products"]
    assert results["left_out"]["tweets"]["trained_on"] == ["snippets", "plots", "movies", "editorials", "products"]
    for r in results["left_out"].values():
        assert [run["seed"] for run in r["runs"]] == [3]
        assert 0.0 <= r["gru"]["accuracy"]["mean"] <= 1.0 and 0.0 <= r["tfidf"]["accuracy"]["mean"] <= 1.0
        assert 0.5 <= r["vader"]["accuracy"] <= 1.0
    assert results["left_out"]["tweets"]["rows"] == {"negative": 9, "neutral": 2, "positive": 9}

    table = output.with_suffix(".md").read_text()
    assert table in capsys.readouterr().out + "\n"
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert "accuracy: VADER" in lines[0] and "accuracy: TF-IDF + LR" in lines[0] and "macro-recall: VADER" in lines[0]
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| movies (and snippets, plots)", "| tweets", "| editorials", "| products"]


def test_the_benchmark_refuses_data_options_other_than_the_row_cap(capsys):
    with pytest.raises(SystemExit):
        benchmark_accuracy.parse_args(["--domains", "--train-file", "x.csv"])
    assert "--domains trains on the english-6-domains corpus: drop --train-file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark_accuracy.parse_args(["--epochs", "1"])
    assert "unrecognized arguments: --epochs 1" in capsys.readouterr().err


def test_vader_figures_follow_its_readme_thresholds():
    from benchmarks import domains as benchmark

    rows = benchmark.Rows(["I love this, it is great!", "The meeting is on Tuesday.", "This is awful and I hate it."],
                          np.array([domains.POSITIVE, domains.NEUTRAL, domains.NEGATIVE]))
    assert benchmark.vader_figures(rows) == {"accuracy": 1.0, "macro_recall": 1.0}
    # a model's probabilities: negative-vs-positive on the larger of the two, three classes on the largest
    found = benchmark.figures(np.array([0, 1, 2, 2]), binary=np.array([0, 0, 2, 0]), three=np.array([0, 2, 2, 1]))
    assert found == {"accuracy": pytest.approx(2 / 3), "macro_recall": pytest.approx((1 + 0 + 0.5) / 3)}


def test_a_copy_of_the_archive_elsewhere_is_found_through_the_environment(archive, tmp_path, monkeypatch):
    shutil.copy(archive, tmp_path / domains.ARCHIVE)
    monkeypatch.setenv(domains.DATA_ENV, str(tmp_path))
    assert domains.locate_archive() == tmp_path / domains.ARCHIVE
