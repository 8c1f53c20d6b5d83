"""Whole runs: train and save a model folder; evaluate a saved model on a split or file."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .artifacts import check_output_dir, load_model, save_atomically, write_json, write_model_files
from .config import CONFIG_FORMAT_VERSION, DataConfig, RunConfig, from_dict
from .data import LoadedData, describe_sizes, load_data
from .errors import DataError
from .evaluation import compute_metrics, tfidf_baseline, write_reports
from .predict import batched_logits
from .tokenization import encode
from .training import TrainResult, train

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"


def library_versions() -> dict[str, str]:
    import datasets
    import sklearn
    import tokenizers

    return {
        "sentiment_gru": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "tokenizers": tokenizers.__version__, "datasets": datasets.__version__, "scikit-learn": sklearn.__version__,
    }


def train_and_save(config: RunConfig, output_dir: str | Path, progress: bool | None = None) -> dict[str, Any]:
    """Train on the configured data, evaluate, compare with the baseline and write the model folder."""
    output_dir = Path(output_dir)
    check_output_dir(output_dir)  # fail before training, not after
    data = load_data(config.data)
    log.info("data: %s (%s); labels: %s", data.source["description"], describe_sizes(data), ", ".join(data.label_names))
    result = train(config, data, progress=progress)

    split = data.eval_split
    metrics = _score(result, data, split, temperature=1.0)
    metrics["validation"] = _score(result, data, "validation", temperature=1.0, details=False)
    metrics["baseline"] = _baseline(data, split)
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
        "versions": library_versions(),
    }
    labels = np.asarray(data.splits[split]["label"])
    probabilities = metrics.pop("_probabilities")
    metrics["validation"].pop("_probabilities")

    def write(folder: Path) -> None:
        write_model_files(folder, result.model, result.tokenizer, run_facts)
        write_json(folder / HISTORY_FILE, {"best_epoch": result.best_epoch, "epochs": result.history})
        metrics["report"] = write_reports(folder, metrics, labels, probabilities)

    save_atomically(output_dir, write)
    return metrics


def _score(result: TrainResult, data: LoadedData, split: str, temperature: float, details: bool = True) -> dict[str, Any]:
    logits = batched_logits(result.model, result.encoded[split], batch_size=256, device=result.device)
    probabilities = torch.softmax(logits / temperature, dim=-1).numpy()
    labels = np.asarray(data.splits[split]["label"])
    metrics = compute_metrics(labels, probabilities, data.label_names, split)
    if not details:
        metrics = {k: metrics[k] for k in ("split", "size", "accuracy", "macro_f1", "log_loss")}
    metrics["_probabilities"] = probabilities
    return metrics


def _baseline(data: LoadedData, split: str) -> dict[str, Any]:
    train = data.splits["train"]
    target = data.splits[split]
    baseline = tfidf_baseline(train["text"], np.asarray(train["label"]), target["text"], np.asarray(target["label"]))
    baseline.pop("predictions")
    return baseline


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
    logits = batched_logits(loaded.model, encode(loaded.tokenizer, target["text"]), batch_size=256, device="cpu")
    probabilities = torch.softmax(logits / temperature, dim=-1).numpy()
    labels = np.asarray(target["label"])
    metrics = compute_metrics(labels, probabilities, loaded.label_names, split)
    metrics["seconds"] = time.perf_counter() - started
    metrics["data"] = data.source
    metrics["artifacts"] = str(artifacts)
    if baseline and "train" in data.splits and split != "train":
        metrics["baseline"] = _baseline(data, split)
    out = Path(output_dir) if output_dir is not None else Path(artifacts) / "evaluation" / split

    def write(folder: Path) -> None:
        metrics["report"] = write_reports(folder, metrics, labels, probabilities)

    save_atomically(out, write)
    return metrics, out
