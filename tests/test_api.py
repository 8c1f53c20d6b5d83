"""The Python API (SentimentClassifier) on both backends, the ONNX export, the model card and distillation."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_MODEL_ARGS
from sentiment_gru import SentimentClassifier
from sentiment_gru.cli import export_main, predict_main, train_main
from sentiment_gru.errors import ArtifactsError, ConfigError
from sentiment_gru.inference.classifier import TruncationWarning

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["the film is wonderful and moving", "a dull, clumsy and tedious script", "superb", "boring " * 400]


def test_results_have_the_pipeline_shape(trained_dir):
    clf = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    one = clf("the film is wonderful")
    assert isinstance(one, list) and len(one) == 1 and set(one[0]) == {"label", "score"} and one[0]["label"] == "positive"
    many = clf(["the film is wonderful", "a dull script"])
    assert [r["label"] for r in many] == ["positive", "negative"] and all(isinstance(r, dict) for r in many)
    every = clf("a dull script", top_k=None)
    assert [r["label"] for r in every] == ["negative", "positive"] and every[0]["score"] >= every[1]["score"]
    assert sum(r["score"] for r in every) == pytest.approx(1.0)
    nested = clf(["great", "awful"], top_k=2)
    assert len(nested) == 2 and all(len(r) == 2 for r in nested)
    assert clf("") == [{"label": None, "score": None, "error": "empty text"}]
    with pytest.raises(ConfigError, match="top_k must be a positive int or None. Got 0"):
        clf("fine", top_k=0)



@pytest.mark.parametrize("threads", [0, -1, 2.5, "2", True])
def test_threads_must_be_a_positive_int(trained_dir, threads):
    with pytest.raises(ConfigError, match=re.escape(f"threads must be a positive int, or None for the backend's own choice. "
                                                    f"Got {threads!r}.")):
        SentimentClassifier.from_pretrained(trained_dir, threads=threads)


@pytest.mark.parametrize(("inputs", "message"), [
    (None, "Give a text (str) or a list of texts. Got NoneType instead."),
    (b"great", "Give a text (str) or a list of texts. Got bytes instead."),
    (["great", None], "Text 1 is NoneType (None), not str: give every text as a string"),
    (["great", float("nan")], "Text 1 is float (nan), not str"),
    ([b"great"], "Text 0 is bytes (b'great'), not str"),
])
def test_what_is_not_a_text_is_named(trained_dir, inputs, message):
    clf = SentimentClassifier.from_pretrained(trained_dir)
    for call in (clf, clf.predict_proba, clf.predict, clf.explain):
        with pytest.raises(TypeError, match=re.escape(message)):
            call(inputs)


def test_predict_proba_and_explain(trained_dir):
    clf = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    probabilities = clf.predict_proba(TEXTS + ["  "])
    assert probabilities.shape == (5, 2) and isinstance(probabilities, np.ndarray)
    np.testing.assert_allclose(probabilities[:4].sum(axis=1), 1.0, atol=1e-9)
    assert np.isnan(probabilities[4]).all()
    assert clf.label_names == ["negative", "positive"] and probabilities[0, 1] > 0.5
    pairs = clf.explain("a dull and tedious story")
    assert [token for token, _ in pairs] == ["a", "dull", "and", "tedious", "story"]
    assert all(isinstance(score, float) for _, score in pairs)
    assert max(pairs, key=lambda p: p[1])[0] in ("dull", "tedious")
    assert clf.explain("") == []


def test_onnx_backend_matches_torch_and_is_chosen_by_default(exported_dir):
    manifest = json.loads((exported_dir / "MANIFEST.json").read_text())
    assert "model.onnx" in manifest["files"] and "README.md" in manifest["files"]
    torch_clf = SentimentClassifier.from_pretrained(exported_dir, backend="torch")
    onnx_clf = SentimentClassifier.from_pretrained(exported_dir)
    assert onnx_clf.backend_name == "onnx" and torch_clf.backend_name == "torch"
    np.testing.assert_allclose(onnx_clf.predict_proba(TEXTS), torch_clf.predict_proba(TEXTS), rtol=0, atol=1e-5)
    alone = onnx_clf.predict_proba(["superb"])
    batched = onnx_clf.predict_proba(["superb", "boring " * 400, "a long and tedious and dull story " * 20])
    np.testing.assert_allclose(alone[0], batched[0], rtol=0, atol=1e-6)
    for (t1, s1), (t2, s2) in zip(onnx_clf.explain(TEXTS[1]), torch_clf.explain(TEXTS[1])):
        assert t1 == t2 and s1 == pytest.approx(s2, abs=1e-5)


def test_the_onnx_path_imports_neither_torch_nor_the_training_libraries(exported_dir):
    code = (
        "import runpy, sys\n"
        "script, model = sys.argv[1:]\n"
        "sys.argv = [script, '--artifacts', model, '--backend', 'onnx', '--explain', 'a wonderful film']\n"
        "try:\n    runpy.run_path(script, run_name='__main__')\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(sorted(m for m in ('torch', 'datasets', 'sklearn', 'matplotlib', 'pandas', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts" / "predict.py"), str(exported_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("positive\t") and lines[-1] == "[]"


def test_save_pretrained_writes_a_folder_that_loads_the_same(exported_dir, tmp_path):
    clf = SentimentClassifier.from_pretrained(exported_dir)
    clf.save_pretrained(tmp_path / "copy")
    again = SentimentClassifier.from_pretrained(tmp_path / "copy")
    assert again.backend_name == "onnx"
    np.testing.assert_array_equal(again.predict_proba(TEXTS), clf.predict_proba(TEXTS))
    assert (tmp_path / "copy" / "README.md").read_text() == (exported_dir / "README.md").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactsError, match="holds other files"):
        clf.save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_hub_id_that_cannot_be_reached_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArtifactsError, match=r"the Hugging Face hub model 'someone/no-such-model' could not be downloaded .*"
                                             r"pass a local model folder"):
        SentimentClassifier.from_pretrained("someone/no-such-model")


def test_backend_errors_are_one_line_with_the_fix(trained_dir, exported_dir, tmp_path, capsys):
    assert predict_main(["--artifacts", str(trained_dir), "--backend", "onnx", "fine"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no model.onnx. Write it with: " in err and "--backend torch" in err
    with pytest.raises(ConfigError, match="--backend must be one of auto, torch, onnx. Got 'tf'"):
        SentimentClassifier.from_pretrained(trained_dir, backend="tf")
    broken = tmp_path / "broken"
    shutil.copytree(exported_dir, broken)
    with open(broken / "model.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01")
    with pytest.raises(ArtifactsError, match=r"model\.onnx: checksum does not match MANIFEST\.json"):
        SentimentClassifier.from_pretrained(broken)
    assert export_main(["--artifacts", str(tmp_path / "nothing")]) == 2
    assert "No trained model in" in capsys.readouterr().err


def test_model_card_loads_with_huggingface_hub_and_matches_the_metrics(trained_dir):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained_dir / "README.md")
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    data = card.data
    assert data.library_name == "sentiment-gru" and data.pipeline_tag == "text-classification" and data.license == "mit"
    results = {r.metric_type: r for r in data.eval_results}
    assert results["accuracy"].metric_value == round(metrics["accuracy"], 4)
    assert results["f1"].metric_value == round(metrics["macro_f1"], 4) and results["f1"].dataset_split == "test"
    assert results["accuracy"].dataset_name == "train.csv"
    text = card.text
    for heading in ("## Training", "## Results", "## Calibration", "## Limits", "## How to use"):
        assert heading in text
    assert f"{metrics['baseline']['accuracy']:.4f}" in text and "texts are cut at" in text


def test_model_card_says_which_part_of_a_long_text_is_read(trained_dir):
    from sentiment_gru.evaluate.card import card_text

    config = json.loads((trained_dir / "config.json").read_text())
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    length = config["tokenizer"]["max_length"]
    assert f"texts are cut at {length} tokens, a longer text's first {length};" in card_text(config, metrics, "m")
    config["tokenizer"]["tail_tokens"] = 2
    text = card_text(config, metrics, "m")
    assert f"texts are cut at {length} tokens, a longer text's first {length - 2} and last 2;" in text
    assert "only their start is read" not in text


@pytest.mark.network
def test_model_card_passes_the_hubs_validation(trained_dir):
    from huggingface_hub import ModelCard

    ModelCard.load(trained_dir / "README.md").validate()


def test_distillation_ships_one_network_and_reports_the_ensemble(tiny_files, tmp_path):
    out = tmp_path / "student"
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + TINY_MODEL_ARGS + [
        "--output-dir", str(out), "--ensemble", "2", "--distill", "--student-hidden-size", "8", "--distill-epochs", "2"]
    assert train_main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["ensemble_size"] == 1 and config["model"]["hidden_size"] == 8
    assert config["distillation"] == {"teacher_members": 2, "loss": "logit matching", "weight": 0.9, "copies": 2}
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert not any(key.startswith("members.") for key in weights.keys())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ensemble"]["members"] == 2 and 0.0 <= metrics["ensemble"]["accuracy"] <= 1.0
    assert "Ensemble of 2 this model was distilled from" in (out / "report.md").read_text()
    history = json.loads((out / "history.json").read_text())
    assert [r["role"] for r in history["epochs"] if "role" in r] == ["student", "student"]
    assert history["epochs"][-1]["member"] == 2
    with pytest.raises(ConfigError, match="--distill trains a student on an ensemble's probabilities: add --ensemble N"):
        from sentiment_gru.config import DataConfig, build_run_config

        build_run_config(DataConfig(), train={"distill": True})


def test_made_up_texts_are_windows_of_the_batch_labelled_by_the_teacher():
    import random

    import torch

    from sentiment_gru.data.batching import HeldBatches, TokenIds
    from sentiment_gru.config import ModelConfig
    from sentiment_gru.model.classifier import GRUClassifier
    from sentiment_gru.text.tokenizer import UNK_ID
    from sentiment_gru.train.distill import DistilledBatches

    torch.manual_seed(0)
    teacher = GRUClassifier(ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=6, num_layers=1)).eval()
    rng = np.random.default_rng(0)
    ids = TokenIds.from_lists([rng.integers(2, 50, n).tolist() for n in rng.integers(6, 12, 40)])
    batches = HeldBatches(ids, np.zeros(40, dtype=np.int64), batch_size=8, bucket_size=5)

    def made_up(**shares):
        """Each batch's texts and its one made-up variant's, with the teacher's logits of the variant."""
        steps = list(DistilledBatches(batches, teacher, ids, torch.device("cpu"), copies=1, **shares).epoch(0, random.Random(0)))
        texts = [[row[:n].tolist() for row, n in zip(b.ids, b.lengths)] for b in steps]
        for variant in steps[1::2]:
            with torch.no_grad():
                torch.testing.assert_close(variant.teacher, teacher(variant.ids, variant.lengths))
        return list(zip(texts[0::2], texts[1::2]))

    windowed = made_up(ngram_p=1.0)
    assert windowed == made_up(ngram_p=1.0)  # an epoch's variants are made again exactly
    for originals, windows in windowed:
        for text, window in zip(originals, windows):
            assert 1 <= len(window) <= 5 and any(text[i:i + len(window)] == window for i in range(len(text)))
    for originals, masked in made_up(ngram_p=0.0, mask_p=0.5):  # no lexicon: tokens kept or [UNK], never moved
        for text, variant in zip(originals, masked):
            assert len(variant) == len(text) and all(v in (t, UNK_ID) for t, v in zip(text, variant))


def test_the_default_backend_without_onnxruntime_is_torch(exported_dir):
    """A folder with model.onnx still loads where onnxruntime is missing: auto falls back to torch."""
    code = ("import sys\nsys.modules['onnxruntime'] = None\nimport importlib.util\n"
            "importlib.util.find_spec = (lambda find: lambda name, *a: None if name == 'onnxruntime' else find(name, *a))"
            "(importlib.util.find_spec)\n"
            "from sentiment_gru import SentimentClassifier\n"
            f"print(SentimentClassifier.from_pretrained({str(exported_dir)!r}).backend_name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torch"


def test_blend_with_nbsvm_is_reported_beside_the_model(tiny_files, tmp_path):
    out = tmp_path / "blended"
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + TINY_MODEL_ARGS + ["--output-dir", str(out), "--blend-nbsvm"]
    assert train_main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    mixed = metrics["blend"]
    assert 0.0 <= mixed["weight"] <= 1.0 and mixed["fitted_on"] == "validation"
    assert mixed["nbsvm"]["name"].startswith("NBSVM") and 0.5 <= mixed["nbsvm"]["accuracy"] <= 1.0
    assert f"{mixed['accuracy']:.4f}" in (out / "report.md").read_text()


def test_a_blend_scored_on_validation_never_uses_a_weight_fitted_on_the_same_text():
    from sentiment_gru.evaluate.baselines import blend
    from sentiment_gru.evaluate.scoring import Scores

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    logits = np.stack([np.zeros(400), np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 2, 400)], axis=1)
    linear = np.eye(2)[labels] * 0.6 + 0.2  # a linear model that is right everywhere, confidently
    found = blend(Scores("validation", labels, logits, 1.0, np.ones(400)), linear, ["negative", "positive"])
    assert found["fitted_on"] == "the other half of the split" and found["weight"] < 0.5 and found["accuracy"] == 1.0


def test_a_student_can_start_from_the_best_member(tiny_files, tmp_path, capsys):
    out = tmp_path / "warm"
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + [a for a in TINY_MODEL_ARGS if a != "--quiet"] + [
        "--output-dir", str(out), "--ensemble", "2", "--distill", "--distill-from-member", "--distill-epochs", "1",
        "--distill-learning-rate", "0.001", "--distill-copies", "1"]
    assert train_main(argv) == 0
    assert "the student starts from member" in capsys.readouterr().err
    from sentiment_gru.config import DataConfig, build_run_config

    with pytest.raises(ConfigError, match="--distill-from-member starts the student from a member, so it has the members' sizes: "
                                          "drop --student-hidden-size"):
        build_run_config(DataConfig(), model={"ensemble_size": 2},
                         train={"distill": True, "distill_from_member": True, "student_hidden_size": 8})


def test_transfer_texts_are_mixed_in_with_the_teachers_labels_and_made_again_exactly():
    import random

    import torch

    from sentiment_gru.data.batching import HeldBatches, TokenIds
    from sentiment_gru.config import ModelConfig
    from sentiment_gru.model.classifier import GRUClassifier
    from sentiment_gru.train.distill import DistilledBatches

    torch.manual_seed(0)
    teacher = GRUClassifier(ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=6, num_layers=1)).eval()
    rng = np.random.default_rng(0)
    ids = TokenIds.from_lists([rng.integers(2, 50, n).tolist() for n in rng.integers(3, 8, 40)])
    extra_texts = [rng.integers(2, 50, n).tolist() for n in rng.integers(15, 25, 24)]
    extra = TokenIds.from_lists(extra_texts)
    batches = HeldBatches(ids, np.ones(40, dtype=np.int64), batch_size=8, bucket_size=5)
    distilled = DistilledBatches(batches, teacher, ids, torch.device("cpu"), copies=1, transfer_ids=extra)
    assert distilled.steps == 5 * 2 + 3

    steps = list(distilled.epoch(0, random.Random(0)))
    assert len(steps) == distilled.steps
    transfer = [b for b in steps if int(b.lengths.min()) >= 15]  # the training texts are under 8 tokens
    assert len(transfer) == 3
    assert sorted(row[:n].tolist() for b in transfer for row, n in zip(b.ids, b.lengths)) == sorted(extra_texts)
    for batch in transfer:  # labelled by the teacher alone: no rows, so no true label enters the loss
        assert batch.rows is None
        with torch.no_grad():
            torch.testing.assert_close(batch.teacher, teacher(batch.ids, batch.lengths))
    place = {id(b): i for i, b in enumerate(steps)}
    own = [b for b in steps if int(b.lengths.max()) < 15]
    for original, variant in zip(own[0::2], own[1::2]):  # each training batch is still followed by its variant
        assert original.rows is not None and variant.rows is None and place[id(variant)] == place[id(original)] + 1

    again = list(distilled.epoch(0, random.Random(0), skip=4))  # a resumed epoch: the same batches from step 4 on
    assert [b.ids.tolist() for b in again] == [b.ids.tolist() for b in steps[4:]]
    assert [b.ids.tolist() for b in distilled.epoch(1, random.Random(1))] != [b.ids.tolist() for b in steps]


def test_distill_file_adds_unlabelled_texts_for_the_student(tiny_files, tmp_path, capsys):
    texts = tmp_path / "unlabelled.txt"
    texts.write_text("a quietly moving film with a fine cast\n\nthe plot drags and the jokes fall flat\n" * 20)
    out = tmp_path / "transfer"
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + [a for a in TINY_MODEL_ARGS if a != "--quiet"] + [
        "--output-dir", str(out), "--ensemble", "2", "--distill", "--distill-epochs", "1", "--distill-copies", "0",
        "--distill-file", str(texts)]
    assert train_main(argv) == 0
    assert "40 unlabelled texts from --distill-file" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["distillation"]["unlabelled_texts"] == {"file": str(texts), "texts": 40}
    assert "on 40 unlabelled texts (unlabelled.txt)" in (out / "README.md").read_text()

    bad = tmp_path / "bad"
    for extra, message in [([], "--distill-file holds texts for the distilled student: add --distill"),
                           (["--ensemble", "2", "--distill"], "--distill-file missing.txt: no such file")]:
        argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + TINY_MODEL_ARGS + [
            "--output-dir", str(bad), *extra, "--distill-file", "missing.txt"]
        assert train_main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not bad.exists()


# ---------------------------------------------------------------- what a newcomer trips over


def test_explain_takes_a_list_as_calling_does(trained_dir):
    clf = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    both = clf.explain(["a wonderful film", "a dull script"])
    assert both == [clf.explain("a wonderful film"), clf.explain("a dull script")]
    assert "".join(token for token, _ in both[1]) == "adullscript"


def test_a_text_longer_than_the_model_reads_is_reported_as_cut(trained_dir):
    clf = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    long = "the film is wonderful and moving. " * 200 + "Awful, terrible, a complete waste of time."
    assert len(clf.encoder.whole().encode([long]).ids[0]) > clf.encoder.read_length == 256
    with pytest.warns(TruncationWarning, match=r"^1 of 2 texts were longer than the model reads \(256 tokens\): of each, only its "
                                               r"first 256 tokens were read.*Pass truncation=True .* truncation=False"):
        short, cut = clf(["a dull script", long])
    assert "truncated" not in short and cut["truncated"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # truncation=True asks for the cut: no warning
        assert clf(long, truncation=True, top_k=None)[0]["truncated"] is True
        whole = clf(long, truncation=False)
    assert "truncated" not in whole[0]
    assert whole[0]["score"] != clf(long, truncation=True)[0]["score"], "read whole, the end counts"
    assert clf.predict([long, "superb"])[0]["truncated"] is True and "truncated" not in clf.predict(["superb"])[0]
    probabilities, cut_rows = clf.predict_proba([long, "superb", ""], return_truncated=True)
    assert cut_rows.tolist() == [True, False, False] and probabilities.shape == (3, 2)
    assert clf.explain_details(long)["truncated"] is True and len(clf.explain_details(long)["explanation"]) == 256


def test_the_pipeline_keyword_arguments_work_as_in_transformers(trained_dir):
    clf = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    text = "a dull script"
    every = clf(text, top_k=None)
    logits = clf.backend.logits(clf.encode([text]), 1)[0] / clf.temperature
    by_label = {r["label"]: r["score"] for r in clf(text, top_k=None, function_to_apply="none")}
    assert by_label == pytest.approx(dict(zip(clf.label_names, logits.tolist())))
    sigmoid = {r["label"]: r["score"] for r in clf(text, top_k=None, function_to_apply="sigmoid")}
    assert sigmoid == pytest.approx({name: 1 / (1 + np.exp(-x)) for name, x in zip(clf.label_names, logits)})
    assert clf(text, function_to_apply="softmax") == clf(text) == every[:1]
    with pytest.warns(UserWarning, match="`return_all_scores` is deprecated"):
        legacy = clf(text, return_all_scores=True)
    assert legacy == [sorted(every, key=lambda r: clf.label_names.index(r["label"]))], "transformers' old shape: label order, nested"
    with pytest.warns(UserWarning, match="deprecated"):
        assert clf([text, "superb"], return_all_scores=False) == clf([text, "superb"])
    for keyword in ({"padding": True}, {"max_length": 10}):
        with pytest.raises(TypeError, match=rf"unexpected keyword argument '{next(iter(keyword))}'\. It takes top_k, truncation, "
                                            r"function_to_apply, return_all_scores \(deprecated: top_k\) and batch_size"):
            clf(text, **keyword)
    with pytest.raises(ConfigError, match="function_to_apply must be one of softmax, sigmoid, none. Got 'relu'"):
        clf(text, function_to_apply="relu")
    with pytest.raises(ConfigError, match="truncation must be True, False or one of 'longest_first'"):
        clf(text, truncation="yes")


def test_a_hub_id_without_its_owner_is_not_taken_for_a_missing_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArtifactsError, match=r"^No trained model in distilbert-base-uncased-finetuned-sst-2-english/ \(no such folder\)\. "
                                             r"Run: sentiment-gru-train --output-dir DIR\. A model on the Hugging Face hub is named "
                                             r"with its owner: owner/name\.$"):
        SentimentClassifier.from_pretrained("distilbert-base-uncased-finetuned-sst-2-english")


def test_one_result_key_for_the_probability_with_the_old_one_kept(trained_dir):
    clf = SentimentClassifier.from_pretrained(trained_dir, backend="torch")
    result = clf.predict(["superb"])[0]
    assert result["score"] == result["probability"] == clf("superb")[0]["score"] == max(result["probabilities"].values())
    details = clf.explain_details("superb")
    assert details["score"] == details["probability"] == pytest.approx(result["score"], abs=1e-9)
