"""The training loop: AdamW, warm-up then linear decay, clipping, early stopping on validation."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .batching import bucketed_batches, collate
from .checkpoint import STATE_FILE, Checkpoints, random_state, rng_states, set_random_state, set_rng_states
from .config import ModelConfig, RunConfig
from .data import LoadedData
from .errors import ConfigError, TrainingError
from .model import EnsembleClassifier, GRUClassifier, build_model
from .predict import batched_logits
from .tokenization import PAD_ID, encode, train_tokenizer

log = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was given but no CUDA device is available. Use --device cpu.")
    return torch.device(name)


@dataclass
class TrainResult:
    model: nn.Module  # GRUClassifier or EnsembleClassifier, in eval mode
    tokenizer: Any
    model_config: ModelConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | list[int] = 0  # one per ensemble member when there are several
    train_seconds: float = 0.0
    device: str = "cpu"
    encoded: dict[str, list[list[int]]] = field(default_factory=dict)  # token ids per split


def accuracy_and_macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> tuple[float, float]:
    """Accuracy and macro-F1 without scikit-learn, for per-epoch validation."""
    accuracy = float((labels == predictions).mean())
    f1s = []
    for c in range(num_classes):
        tp = float(((predictions == c) & (labels == c)).sum())
        denom = float((predictions == c).sum() + (labels == c).sum())
        f1s.append(2 * tp / denom if denom else 0.0)
    return accuracy, float(np.mean(f1s))


def warmup_linear(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def train(config: RunConfig, data: LoadedData, progress: bool | None = None, checkpoints: Checkpoints | None = None) -> TrainResult:
    """Train a tokenizer and a classifier (or an ensemble of them) on `data`; return the best epochs' model.

    With `checkpoints`, each epoch (and a stop on SIGINT/SIGTERM) saves a resumable
    checkpoint, and a run resumes from `checkpoints.resumed` when it is set.
    """
    tcfg = config.train
    set_seed(tcfg.seed)
    device = resolve_device(tcfg.device)
    started = time.perf_counter()
    resumed = checkpoints.resumed if checkpoints is not None else None

    if resumed is not None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(resumed["tokenizer"])
    else:
        tokenizer = train_tokenizer(data.splits["train"]["text"], config.tokenizer)
    encoded = {split: encode(tokenizer, ds["text"]) for split, ds in data.splits.items()}
    labels = {split: np.asarray(ds["label"], dtype=np.int64) for split, ds in data.splits.items()}
    model_config = ModelConfig(
        **{**config.model.__dict__, "vocab_size": tokenizer.get_vocab_size(), "num_classes": len(data.label_names), "pad_id": PAD_ID}
    )
    model = build_model(model_config).to(device)
    members = list(model.members) if isinstance(model, EnsembleClassifier) else [model]
    log.info(
        "model: %s parameters%s, vocabulary %d, device %s, GRU path %s",
        f"{sum(p.numel() for p in members[0].parameters()):,}",
        f" in each of {len(members)} ensemble members" if len(members) > 1 else "", model_config.vocab_size, device, model_config.gru_impl,
    )
    history: list[dict[str, float]] = []
    best_epochs = []
    first = 0
    if resumed is not None:
        first, history, best_epochs = resumed["member"], resumed["history"], resumed["best_epochs"]
        for member, state in zip(members, resumed["finished"]):
            member.load_state_dict(state)
        log.info("resuming from %s/: member %d, %d epochs done", checkpoints.folder, first + 1, resumed["fit"]["epoch"])
    for k, member in enumerate(members[first:], start=first):
        seed = tcfg.seed + k
        set_seed(seed)
        if len(members) > 1:
            log.info("ensemble member %d/%d (seed %d)", k + 1, len(members), seed)
        save = None
        if checkpoints is not None:
            def save(fit_state: dict, k: int = k) -> None:
                run_state = {"member": k, "finished": [m.state_dict() for m in members[:k]], "history": history, "best_epochs": best_epochs}
                checkpoints.save({**run_state, "tokenizer": tokenizer.to_str(), "fit": fit_state}, tokenizer)
        resume = resumed["fit"] if resumed is not None and k == first else None
        try:
            member_history, best_epoch = _fit(member, encoded, labels, tcfg, seed, device, progress, save, resume, checkpoints)
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"Out of {device.type.upper()} memory with --batch-size {tcfg.batch_size} and --max-length {config.tokenizer.max_length}: "
                "lower one of them (or use --device cpu)."
            ) from None
        history += [{"member": k, **row} if len(members) > 1 else row for row in member_history]
        best_epochs.append(best_epoch)
    model.eval()
    if len(members) > 1:
        val_logits = batched_logits(model, encoded["validation"], batch_size=256, device=device)
        acc, f1 = accuracy_and_macro_f1(labels["validation"], val_logits.argmax(-1).numpy(), len(data.label_names))
        log.info("ensemble of %d: val acc %.4f  val macro-F1 %.4f", len(members), acc, f1)
    return TrainResult(
        model=model, tokenizer=tokenizer, model_config=model_config, history=history,
        best_epoch=best_epochs[0] if len(best_epochs) == 1 else best_epochs,
        train_seconds=time.perf_counter() - started, device=str(device), encoded=encoded,
    )


def _fit(model: GRUClassifier, encoded: dict[str, list[list[int]]], labels: dict[str, np.ndarray], tcfg, seed: int,
         device: torch.device, progress: bool | None, save=None, resume: dict | None = None,
         checkpoints: Checkpoints | None = None) -> tuple[list[dict[str, float]], int]:
    """Fine-tune one classifier with early stopping; leave it at its best validation epoch.

    `save(state)` is called at the end of each epoch, and after the current step when a
    stop was asked for; `resume` is such a state to continue from.
    """
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and not n.startswith("embedding")]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and not n.startswith("embedding"))]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tcfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=tcfg.learning_rate
    )
    train_ids, train_labels = encoded["train"], torch.from_numpy(labels["train"])
    train_lengths = [len(s) for s in train_ids]
    steps_per_epoch = math.ceil(len(train_ids) / tcfg.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(steps_per_epoch * tcfg.epochs, tcfg.warmup_fraction))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=tcfg.label_smoothing)
    rng = random.Random(seed)
    num_classes = model.config.num_classes

    history: list[dict[str, float]] = []
    best = {"epoch": 0, "accuracy": -1.0, "loss": math.inf}
    best_state = None
    stale = 0
    epoch, step, totals = 0, 0, [0.0, 0, 0]  # epochs done; steps done in the next one; its loss sum, texts, tokens
    epoch_rng = random_state(rng)  # the bucketing RNG at the start of the next epoch
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        history, best, best_state, stale = resume["history"], resume["best"], resume["best_state"], resume["stale"]
        epoch, step, totals, epoch_rng = resume["epoch"], resume["step"], resume["totals"], resume["bucket_rng"]
        set_rng_states(resume["rng"])

    def checkpoint(where: str) -> None:
        if save is None:
            return
        save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "history": history, "best": best, "best_state": best_state, "stale": stale,
            "epoch": epoch, "step": step, "totals": totals, "bucket_rng": epoch_rng, "rng": rng_states(),
        })
        checkpoints.check_stop(where)

    while epoch < tcfg.epochs and stale < tcfg.patience:
        model.train()
        epoch_start = time.perf_counter()
        set_random_state(rng, epoch_rng)
        batches = bucketed_batches(train_lengths, tcfg.batch_size, tcfg.bucket_size, rng)
        bar = _progress(len(batches) - step, f"epoch {epoch + 1}/{tcfg.epochs}", progress)
        for rows in batches[step:]:
            ids, lengths = collate([train_ids[i] for i in rows], PAD_ID)
            target = train_labels[rows].to(device)
            logits = model(ids.to(device, non_blocking=True), lengths)
            loss = loss_fn(logits, target)
            value = loss.item()
            if not math.isfinite(value):
                raise _diverged(f"the training loss became {value}", step + 1, epoch + 1, tcfg, checkpoints)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.clip_norm > 0:
                norm = float(nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_norm))
                if not math.isfinite(norm):
                    raise _diverged(f"the gradient norm became {norm}", step + 1, epoch + 1, tcfg, checkpoints)
            optimizer.step()
            scheduler.step()
            step += 1
            totals = [totals[0] + value * len(rows), totals[1] + len(rows), totals[2] + int(lengths.sum())]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{totals[0] / totals[1]:.4f}", tok_s=f"{totals[2] / (time.perf_counter() - epoch_start):,.0f}")
            if checkpoints is not None and checkpoints.stop_signal is not None:
                checkpoint(f"after step {step} of epoch {epoch + 1}")
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - epoch_start

        val_logits = batched_logits(model, encoded["validation"], batch_size=256, device=device)
        val_loss = float(loss_fn(val_logits, torch.from_numpy(labels["validation"])).item())
        if not math.isfinite(val_loss):
            raise _diverged(f"the validation loss became {val_loss}", step, epoch + 1, tcfg, checkpoints)
        val_acc, val_f1 = accuracy_and_macro_f1(labels["validation"], val_logits.argmax(-1).numpy(), num_classes)
        epoch += 1
        row = {
            "epoch": epoch, "train_loss": totals[0] / totals[1], "val_loss": val_loss, "val_accuracy": val_acc, "val_macro_f1": val_f1,
            "seconds": train_seconds, "tokens_per_second": totals[2] / train_seconds, "learning_rate": scheduler.get_last_lr()[0],
        }
        history.append(row)
        improved = val_acc > best["accuracy"] or (val_acc == best["accuracy"] and val_loss < best["loss"])
        log.info(
            "epoch %d/%d  train loss %.4f  val loss %.4f  val acc %.4f  val macro-F1 %.4f  %.1fs  %s tok/s%s",
            epoch, tcfg.epochs, row["train_loss"], val_loss, val_acc, val_f1, train_seconds, f"{row['tokens_per_second']:,.0f}",
            "  *best" if improved else "",
        )
        if improved:
            best = {"epoch": epoch, "accuracy": val_acc, "loss": val_loss}
            best_state = copy.deepcopy(model.state_dict())
            stale = 0
        else:
            stale += 1
            if stale >= tcfg.patience:
                log.info("stopping early: no validation gain for %d epochs", stale)
        step, totals, epoch_rng = 0, [0.0, 0, 0], random_state(rng)
        checkpoint(f"at the end of epoch {epoch}")
    model.load_state_dict(best_state)
    return history, best["epoch"]


def _diverged(what: str, step: int, epoch: int, tcfg, checkpoints: Checkpoints | None) -> TrainingError:
    kept = ""
    if checkpoints is not None and (checkpoints.folder / STATE_FILE).is_file():
        kept = f" The last good checkpoint is kept in {checkpoints.folder}/; delete it before retrying with other options."
    return TrainingError(
        f"Training diverged: {what} at step {step} of epoch {epoch}. "
        f"Lower --learning-rate (now {tcfg.learning_rate:g}), e.g. to {tcfg.learning_rate / 10:g}.{kept}"
    )


def _progress(total: int, desc: str, enabled: bool | None):
    if enabled is False:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=None if enabled is None else not enabled)
