"""Whole runs: train and save a model folder; evaluate a saved model on a split or file."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, distributed
from .artifacts import check_output_dir, load_model, save_atomically, write_json, write_model_files
from .calibration import calibration_summary, fit_temperature, softmax
from .checkpoint import Checkpoints, checkpoint_dir
from .config import CONFIG_FORMAT_VERSION, DataConfig, RunConfig, from_dict
from .data import LoadedData, StreamedSplit, describe_sizes, load_data
from .errors import ConfigError, DataError
from .evaluation import compute_metrics, tfidf_baseline, write_reports
from .predict import Predictor, batched_logits
from .report import ReportInputs, add_report_metrics, write_report
from .tokenization import encode
from .training import TrainResult, train

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
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
    Started by torchrun, every process trains its shard and rank 0 alone evaluates and
    writes; the other ranks return None.
    """
    output_dir = Path(output_dir)
    if config.data.streaming and resume:
        raise ConfigError("--resume cannot continue a --streaming run: a stream has no saved position. Run it again without --resume.")
    check_output_dir(output_dir)  # fail before training, not after
    dist, device = distributed.setup(config.train.device)
    try:
        return _train_and_save(config, output_dir, progress, resume, dist, device)
    finally:
        distributed.teardown(dist)


def _train_and_save(config: RunConfig, output_dir: Path, progress: bool | None, resume: bool, dist: distributed.Dist,
                    device: torch.device) -> dict[str, Any] | None:
    # a streamed split is not checkpointed: it has no position to resume from
    checkpoints = None if config.data.streaming else Checkpoints(checkpoint_dir(output_dir), config.to_dict(), resume=resume)
    if config.data.streaming:
        data = dist.broadcast(load_data(config.data) if dist.is_main else None)  # one pass over the stream, on rank 0
    else:
        with dist.main_process_first():  # the first process per machine fills the datasets cache; the others reuse it
            data = load_data(config.data)
    log.info("data: %s (%s); labels: %s", data.source["description"], describe_sizes(data), ", ".join(data.label_names))
    with checkpoints.watch_signals() if checkpoints is not None else contextlib.nullcontext():
        result = train(config, data, progress=progress, checkpoints=checkpoints, dist=dist, device=device)
    if not dist.is_main:
        return None

    split = data.eval_split
    # The temperature is fitted on validation logits. Reported probabilities and log-loss use it, as predict
    # and evaluate do; accuracy and F1 do not depend on it. metrics["calibration"] shows before and after.
    val_labels = np.asarray(data.splits["validation"].with_format("numpy")["label"])
    val_logits = _logits(result, "validation")
    temperature = fit_temperature(val_logits, val_labels)
    logits = val_logits if split == "validation" else _logits(result, split)
    labels = np.asarray(data.splits[split].with_format("numpy")["label"])
    probabilities = softmax(logits, temperature)
    metrics = compute_metrics(labels, probabilities, data.label_names, split)
    metrics["calibration"] = calibration_summary(logits, labels, temperature)
    validation = compute_metrics(val_labels, softmax(val_logits, temperature), data.label_names, "validation")
    metrics["validation"] = {k: validation[k] for k in ("split", "size", "accuracy", "macro_f1", "log_loss")}
    baseline_predictions = None
    if isinstance(data.splits["train"], StreamedSplit):
        log.info("no TF-IDF baseline: the train split was streamed, not held in memory")
    else:
        metrics["baseline"], baseline_predictions = _baseline(data, split)
    run_facts = {
        "format_version": CONFIG_FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "preset": config.preset,
        "label_names": data.label_names,
        "data": {**dataclasses.asdict(config.data), "source": data.source, "notes": data.notes},
        "tokenizer": dataclasses.asdict(config.tokenizer),
        "model": dataclasses.asdict(result.model_config),
        "train": dataclasses.asdict(config.train),
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.train_seconds, 2),
        "device": result.device,
        "precision": result.precision,
        "processes": dist.world_size,  # the global batch is processes x train.batch_size
        "calibration": {"temperature": temperature, "fitted_on": "validation"},
        "versions": library_versions(),
    }
    history = {"best_epoch": result.best_epoch, "epochs": result.history}
    inputs = ReportInputs(
        labels=labels, logits=logits, temperature=temperature, texts=list(data.splits[split]["text"]),
        lengths=result.encoded[split].lengths, baseline_predictions=baseline_predictions,
        history=history, config=run_facts,
        explain=_explainer(Predictor(result.model, result.tokenizer, data.label_names, temperature, device=result.device)),
    )
    add_report_metrics(metrics, inputs)

    def write(folder: Path) -> None:
        write_model_files(folder, result.model, result.tokenizer, run_facts)
        write_json(folder / HISTORY_FILE, history)
        metrics["report"] = write_reports(folder, metrics, labels, probabilities)
        log.info("report.html and report.md written in %.1f s", write_report(folder, metrics, inputs))

    save_atomically(output_dir, write)
    if checkpoints is not None:
        checkpoints.remove()
    return metrics


def _explainer(predictor: Predictor):
    """A text with the words that decided its prediction marked, as `predict --explain` shows it."""
    from .explain import explain, mark

    return lambda text: mark(text, explain(predictor, text)["explanation"])


def _logits(result: TrainResult, split: str) -> np.ndarray:
    """Logits of a split before temperature scaling: [n, num_classes]."""
    return batched_logits(result.model, result.encoded[split], batch_size=256, device=result.device).numpy()


def _baseline(data: LoadedData, split: str) -> tuple[dict[str, Any], np.ndarray]:
    """The baseline's metrics and its per-text predictions on `split`; fit on at most BASELINE_MAX_ROWS training rows."""
    train = data.splits["train"]
    if len(train) > BASELINE_MAX_ROWS:
        train = train.shuffle(seed=0).select(range(BASELINE_MAX_ROWS))
    target = data.splits[split]
    baseline = tfidf_baseline(list(train["text"]), np.asarray(train["label"]), list(target["text"]), np.asarray(target["label"]))
    baseline["train_rows"] = len(train)
    return baseline, baseline.pop("predictions")


def evaluate_saved(artifacts: str | Path, data_config: DataConfig | None, split: str | None, output_dir: str | Path | None,
                   baseline: bool = True) -> tuple[dict[str, Any], Path]:
    """Score a saved model on a split of its own data or of the given data; write the reports."""
    loaded = load_model(artifacts)
    if data_config is None:
        saved = {k: v for k, v in loaded.config["data"].items() if k not in ("source", "notes")}
        data_config = from_dict(DataConfig, saved)
    data = load_data(data_config, label_names=loaded.label_names, need_train=False)
    split = split or ("test" if "test" in data.splits else next(iter(data.splits)))
    if split not in data.splits:
        raise DataError(f"--split {split}: the data has only {', '.join(data.splits)}.")
    target = data.splits[split]
    started = time.perf_counter()
    temperature = float(loaded.config.get("calibration", {}).get("temperature", 1.0))
    sequences = encode(loaded.tokenizer, target["text"])
    logits = batched_logits(loaded.model, sequences, batch_size=256, device="cpu").numpy()
    probabilities = softmax(logits, temperature)
    labels = np.asarray(target["label"])
    metrics = compute_metrics(labels, probabilities, loaded.label_names, split)
    metrics["calibration"] = calibration_summary(logits, labels, temperature)  # the saved T, not refitted here
    metrics["seconds"] = time.perf_counter() - started
    metrics["data"] = data.source
    metrics["artifacts"] = str(artifacts)
    baseline_predictions = None
    if baseline and "train" in data.splits and split != "train":
        metrics["baseline"], baseline_predictions = _baseline(data, split)
    history_file = Path(artifacts) / HISTORY_FILE
    inputs = ReportInputs(
        labels=labels, logits=logits, temperature=temperature, texts=list(target["text"]),
        lengths=np.array([len(ids) for ids in sequences]), baseline_predictions=baseline_predictions,
        history=json.loads(history_file.read_text(encoding="utf-8")) if history_file.is_file() else None, config=loaded.config,
        explain=_explainer(Predictor(loaded.model, loaded.tokenizer, loaded.label_names, temperature)),
    )
    add_report_metrics(metrics, inputs)
    out = Path(output_dir) if output_dir is not None else Path(artifacts) / "evaluation" / split

    def write(folder: Path) -> None:
        metrics["report"] = write_reports(folder, metrics, labels, probabilities)
        log.info("report.html and report.md written in %.1f s", write_report(folder, metrics, inputs))

    save_atomically(out, write)
    return metrics, out
