"""Whole runs: train and save a model folder; evaluate a saved model on a split or file; compare two saved models.

Each scores its model through `evaluate.scoring.score` and hands the result to `evaluate.scoring.evaluate` (or
`evaluate.scoring.compare`); `evaluate.report.write_reports` renders it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import Calibration, DataConfig, RunConfig, SavedConfig, check_parent
from .data.load import DOMAIN_COLUMN, LoadedData, describe_sizes, keep_used_labels, load_data
from .errors import DataError
from .evaluate.baselines import BASELINES, blend, fit_baseline, linear_baseline
from .evaluate.calibration import fit_temperature
from .evaluate.card import write_card
from .evaluate.report import write_reports
from .evaluate.scoring import Baseline, Scores, compare, compute_metrics, evaluate, label_subset, on_labels, score
from .files import HISTORY_FILE, write_json
from .inference.backends import TorchBackend
from .inference.classifier import SentimentClassifier
from .inference.folder import check_output_dir, output_lock, save_atomically, write_model_files
from .text.tokenizer import TextEncoder
from .train import distributed
from .train.checkpoint import Checkpoints, checkpoint_dir
from .train.fit import TrainResult, train
from .train.parent import Parent, describe_head

log = logging.getLogger(__name__)

BASELINE_MAX_ROWS = 500_000  # the TF-IDF baseline holds its texts in memory; larger train splits are sampled


def library_versions() -> dict[str, str]:
    import datasets
    import sklearn
    import tokenizers

    return {
        "sentiment_gru": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "tokenizers": tokenizers.__version__, "datasets": datasets.__version__, "scikit-learn": sklearn.__version__,
    }


def train_and_save(config: RunConfig, output_dir: str | Path, progress: bool | None = None, resume: bool = False) -> dict[str, Any] | None:
    """Train on the configured data, evaluate, compare with the baseline and write the model folder.

    Training state is checkpointed beside the output folder (`OUTPUT.checkpoint/`) every
    epoch and on SIGINT/SIGTERM; `resume` continues from it. It is removed on success.
    With `config.train.init_from`, training starts from that model (build `config` with
    `build_run_config(parent=parent_config(...))` so its architecture is the parent's).
    Started by torchrun, every process trains its shard and rank 0 alone evaluates and
    writes; the other ranks return None. Rank 0 holds a lock on the output folder from
    start to end, so a second run into it fails at once.
    """
    output_dir = Path(output_dir)
    config.validate(resume=resume)
    check_output_dir(output_dir)  # fail before training, not after
    dist, device = distributed.setup(config.train.device)
    try:
        with output_lock(output_dir) if dist.is_main else contextlib.nullcontext():
            return _train_and_save(config, output_dir, progress, resume, dist, device)
    finally:
        distributed.teardown(dist)


def _train_and_save(config: RunConfig, output_dir: Path, progress: bool | None, resume: bool, dist: distributed.Dist,
                    device: torch.device) -> dict[str, Any] | None:
    # a streamed split is not checkpointed: it has no position to resume from
    checkpoints = None if config.data.streaming else Checkpoints(checkpoint_dir(output_dir), config.to_dict(), resume=resume)
    parent, start = _load_parent(config, dist) if config.train.init_from is not None else (None, None)
    if config.data.streaming:
        data = dist.broadcast(load_data(config.data) if dist.is_main else None)  # one pass over the stream, on rank 0
    else:
        with dist.main_process_first():  # the first process per machine fills the datasets cache; the others reuse it
            data = load_data(config.data)
    log.info("data: %s (%s); labels: %s", data.source["description"], describe_sizes(data), ", ".join(data.label_names))
    with checkpoints.watch_signals() if checkpoints is not None else contextlib.nullcontext():
        result = train(config, data, progress=progress, checkpoints=checkpoints, dist=dist, device=device, parent=start)
    if not dist.is_main:
        return None

    split = data.eval_split
    # The temperature is fitted on validation logits. Reported probabilities and log-loss use it, as predict
    # and evaluate do; accuracy and F1 do not depend on it. metrics["calibration"] shows before and after.
    validation = _score(result.model, result.encoded["validation"], data, "validation", 1.0, result.device)
    validation.temperature = fit_temperature(validation.logits, validation.labels)
    scores = validation if split == "validation" else _score(result.model, result.encoded[split], data, split,
                                                             validation.temperature, result.device)
    baseline = None
    if data.streamed:
        log.info("no TF-IDF baseline: the train split was streamed, not held in memory")
    else:
        baseline = _baseline(data, split)
    record = SavedConfig(
        label_names=tuple(data.label_names), data=config.data, source=data.source, notes=list(data.notes),
        tokenizer=config.tokenizer, model=result.model_config, train=config.train,
        calibration=Calibration(temperature=validation.temperature, fitted_on="validation"),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), preset=config.preset,
        best_epoch=result.best_epoch, train_seconds=round(result.train_seconds, 2), device=result.device,
        precision=result.precision, processes=dist.world_size, versions=library_versions(),
    )
    if result.class_weights is not None:
        record.class_weights = dict(zip(data.label_names, result.class_weights))
    if start is not None:
        record.parent = {"init_from": config.train.init_from, "name": start.name, "label_names": start.label_names,
                         "head": describe_head(start.label_names, data.label_names)}
    if result.teacher is not None:
        record.distillation = {"teacher_members": result.teacher.config.ensemble_size, "loss": "logit matching",
                               "weight": config.train.distill_weight, "copies": config.train.distill_copies,
                               **({"unlabelled_texts": data.source["distill"]} if "distill" in data.source else {})}
    if result.pretraining:
        record.pretraining = {"epochs": len(result.pretraining), "seconds": round(sum(r["seconds"] for r in result.pretraining), 2),
                              "texts": data.source.get("pretrain", "the train split")}
    run_facts = record.to_dict()
    history = {"best_epoch": result.best_epoch, "epochs": result.history,
               **({"pretraining": result.pretraining} if result.pretraining else {})}
    classifier = SentimentClassifier(TorchBackend(result.model, result.device), TextEncoder(result.tokenizer, config.tokenizer.tail_tokens),
                                     data.label_names, validation.temperature)
    evaluation = evaluate(scores, data.label_names, texts=list(data.splits[split]["text"]), baseline=baseline,
                          explain=_explainer(classifier), history=history, config=run_facts, domains=_domains(data, split))
    on_validation = compute_metrics(validation.labels, validation.probabilities, data.label_names, "validation")
    evaluation.metrics["validation"] = {k: on_validation[k] for k in ("split", "size", "accuracy", "macro_f1", "log_loss")}
    if result.teacher is not None:
        evaluation.metrics["ensemble"] = _ensemble_figures(result, data, split)
    if config.train.blend_nbsvm and not data.streamed:
        evaluation.metrics["blend"] = _blend(data, scores, validation)
    if parent is not None:
        evaluation.metrics["parent"] = _parent_figures(parent, start.name, data, split, evaluation.metrics)
    metrics = evaluation.metrics

    def write(folder: Path) -> None:
        write_model_files(folder, result.model, result.tokenizer, record)
        write_json(folder / HISTORY_FILE, history)
        metrics["report"] = write_reports(folder, evaluation)
        write_card(folder, run_facts, metrics, name=output_dir.name)

    again = "run again" if checkpoints is None else ("add --resume to the same command: the trained model is kept in "
                                                     f"{checkpoint_dir(output_dir)}/ and is saved without training again")
    save_atomically(output_dir, write, again=again)
    if checkpoints is not None:
        checkpoints.remove()
    return metrics


def _domains(data: LoadedData, split: str) -> list[str] | None:
    """Each text's domain, where the split has a domain column (the english-6-domains corpus, or a file with one)."""
    rows = data.splits[split]
    return list(rows[DOMAIN_COLUMN]) if DOMAIN_COLUMN in getattr(rows, "column_names", []) else None


def parent_config(init_from: str) -> dict[str, Any]:
    """The config.json of the model `init_from` names (a model folder or a hub id), for `build_run_config(parent=...)`."""
    return SentimentClassifier.from_pretrained(init_from, backend="torch").folder.config.to_dict()


def _load_parent(config: RunConfig, dist: distributed.Dist) -> tuple[SentimentClassifier, Parent]:
    """The model --init-from names, loaded as `from_pretrained` loads it on torch and checked against `config`; and what
    training takes of it. Its name, the model card's `base_model`, is a local folder's name or the hub id."""
    with dist.main_process_first():  # a hub repository is downloaded once per machine
        parent = SentimentClassifier.from_pretrained(config.train.init_from, backend="torch")
    check_parent(config, parent.folder.config.to_dict())
    path = Path(config.train.init_from)
    name = path.resolve().name if path.exists() else config.train.init_from
    return parent, Parent(name, parent.backend.model, parent.tokenizer, parent.label_names)


def _parent_figures(parent: SentimentClassifier, name: str, data: LoadedData, split: str, tuned: dict[str, Any]) -> dict[str, Any]:
    """The parent's own accuracy, macro-F1 and log-loss on the report's split, its labels matched to the data's by name (by
    the larger of the data's labels' probabilities where it has more), and what fine-tuning changed (`tuned`: the
    fine-tuned model's metrics); not scored where the data has labels it lacks."""
    figures: dict[str, Any] = {"name": name, "label_names": parent.label_names}
    unknown = [n for n in data.label_names if n not in parent.label_names]
    if unknown:
        return {**figures, "not_scored": f"the data has labels the parent does not know ({', '.join(unknown)})"}
    scores = _saved_scores(parent, data, split)
    found = compute_metrics(scores.labels, scores.probabilities, data.label_names, split)
    subset = label_subset(parent.label_names, data.label_names)
    log.info("the parent %s on the %s split: accuracy %.4f, macro-F1 %.4f", name, split, found["accuracy"], found["macro_f1"])
    return {**figures, **{k: found[k] for k in ("accuracy", "macro_f1", "log_loss")},
            "gain": {k: tuned[k] - found[k] for k in ("accuracy", "macro_f1")}, **({"label_subset": subset} if subset else {})}


def _ensemble_figures(result: TrainResult, data: LoadedData, split: str) -> dict[str, Any]:
    """The distilled-from ensemble's accuracy and macro-F1 on the report's split and on validation, for comparison."""
    figures: dict[str, Any] = {"members": result.teacher.config.ensemble_size}
    for name, prefix in ((split, ""), ("validation", "validation_")):
        scores = _score(result.teacher, result.encoded[name], data, name, 1.0, result.device)
        found = compute_metrics(scores.labels, scores.probabilities, data.label_names, name)
        figures.update({f"{prefix}accuracy": found["accuracy"], f"{prefix}macro_f1": found["macro_f1"]})
    return figures


def _score(model, ids, data: LoadedData, split: str, temperature: float, device: str) -> Scores:
    labels = np.asarray(data.splits[split].with_format("numpy")["label"])
    return score(TorchBackend(model, device).logits, ids, labels, split, temperature)


def _explainer(classifier: SentimentClassifier):
    """A text with the words that decided its prediction marked, as `predict --explain` shows it."""
    from .inference.explain import mark

    return lambda text: mark(text, classifier.explain_details(text)["explanation"])


def _baseline(data: LoadedData, split: str) -> Baseline:
    """The baseline fit on at most BASELINE_MAX_ROWS training rows, scored on `split`."""
    train = data.splits["train"]
    if len(train) > BASELINE_MAX_ROWS:
        train = train.shuffle(seed=0).select(range(BASELINE_MAX_ROWS))
    target = data.splits[split]
    return linear_baseline(list(train["text"]), np.asarray(train["label"]), list(target["text"]), np.asarray(target["label"]))


def _blend(data: LoadedData, scores: Scores, validation: Scores) -> dict[str, Any]:
    """NBSVM fitted on the train split, scored alone and blended with the model on `scores`' split."""
    started = time.perf_counter()
    train = data.splits["train"]
    nbsvm = fit_baseline("nbsvm", list(train["text"]), np.asarray(train["label"]))
    seconds = time.perf_counter() - started
    linear = nbsvm.predict_proba(list(data.splits[scores.split]["text"]))
    alone = compute_metrics(scores.labels, linear, data.label_names, scores.split)
    fit = None if scores.split == "validation" else (validation, nbsvm.predict_proba(list(data.splits["validation"]["text"])))
    return {**blend(scores, linear, data.label_names, fit),
            "nbsvm": {"name": BASELINES["nbsvm"], "train_seconds": seconds, **{k: alone[k] for k in ("accuracy", "macro_f1", "log_loss")}}}


def _saved_scores(classifier: SentimentClassifier, data: LoadedData, split: str) -> Scores:
    """A saved model's scores on `split`, with the temperature it was saved with (never refitted here), on the data's
    labels (`on_labels`: its own reordered, or those of them the data has; each must be one of the model's)."""
    target = data.splits[split]
    found = score(classifier.backend.logits, classifier.encode(target["text"]), np.asarray(target["label"]), split, classifier.temperature)
    return on_labels(found, [classifier.label_names.index(name) for name in data.label_names])


def evaluate_saved(artifacts: str | Path, data_config: DataConfig | None, split: str | None, output_dir: str | Path | None,
                   baseline: bool = True, backend: str = "auto") -> tuple[dict[str, Any], Path]:
    """Score a saved model on a split of its own data or of the given data; write the reports."""
    classifier = SentimentClassifier.from_pretrained(artifacts, backend=backend)
    folder = classifier.folder
    # data with fewer labels than the model (a negative/positive file, a negative/neutral/positive model) is scored on its own
    data = keep_used_labels(load_data(data_config or folder.data_config(), label_names=folder.label_names, need_train=False))
    split = data.split_to_score(split)
    started = time.perf_counter()
    scores = _saved_scores(classifier, data, split)
    seconds = time.perf_counter() - started
    history_file = folder.checked_file(HISTORY_FILE)  # listed and unchanged, or not read
    evaluation = evaluate(
        scores, data.label_names, texts=list(data.splits[split]["text"]),
        baseline=_baseline(data, split) if baseline and "train" in data.splits and split != "train" else None,
        explain=_explainer(classifier),
        history=json.loads(history_file.read_text(encoding="utf-8")) if history_file else None, config=folder.config.to_dict(),
        domains=_domains(data, split),
    )
    metrics = evaluation.metrics
    metrics.update(seconds=seconds, data=data.source, artifacts=str(artifacts), backend=classifier.backend_name)
    subset = label_subset(folder.label_names, data.label_names)
    if subset:
        metrics["label_subset"] = subset
        evaluation.text_report = f"Labels: {subset['rule']}.\n\n{evaluation.text_report}"
    out = Path(output_dir) if output_dir is not None else Path(artifacts) / "evaluation" / split

    def write(folder: Path) -> None:
        metrics["report"] = write_reports(folder, evaluation)

    save_atomically(out, write)
    return metrics, out


def compare_saved(dir_a: str | Path, dir_b: str | Path, data_config: DataConfig | None = None, split: str | None = None,
                  backend: str = "auto") -> dict[str, Any]:
    """Score two saved models on one split (of model A's data unless `data_config` is given) and test the difference.
    The models may have different labels when the data's are among both (a negative/positive file, a two-label and a
    three-label model): each is scored on the data's labels as `evaluate` scores it (`label_subset`)."""
    a, b = (SentimentClassifier.from_pretrained(d, backend=backend) for d in (dir_a, dir_b))
    data = keep_used_labels(load_data(data_config or a.folder.data_config(), label_names=a.label_names, need_train=False))
    unknown = [name for name in data.label_names if name not in b.label_names]
    if unknown:
        raise DataError(f"Model B ({dir_b}) does not know the data's label(s) {', '.join(unknown)}: its labels are "
                        f"{', '.join(b.label_names)}. Compare on data whose labels both models have (--test-file FILE).")
    split = data.split_to_score(split)
    result = compare(_saved_scores(a, data, split), _saved_scores(b, data, split), data.label_names)
    for key, model in (("a", a), ("b", b)):
        result[key]["artifacts"] = str(model.folder.path)
        subset = label_subset(model.label_names, data.label_names)
        if subset:
            result[key]["label_subset"] = subset
    return {**result, "data": data.source["description"]}
