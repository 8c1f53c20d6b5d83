"""A run's stages, each a run of the training loop: the tokenizer and model first (trained from scratch, or a trained
parent's with --init-from), then pretraining (with --pretrain-epochs), each ensemble member, and the student (with
--distill); the best epochs' model at the end."""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import LONG_READING, ModelConfig, RunConfig
from ..data.batching import HeldBatches, StreamBatches, TokenIds, batched_logits
from ..data.load import LoadedData
from ..errors import TrainingError
from ..metrics import accuracy_and_macro_f1
from ..model.classifier import build_model, members, start_from_vectors
from ..model.kernels import reusing_freed_memory
from ..text.lexicon import Lexicon, lexicon_table, load_lexicon
from ..text.tokenizer import PAD_ID, TextEncoder, encode_dataset, for_training, train_tokenizer
from ..text.vectors import token_vectors
from .checkpoint import Checkpoints
from .classify import ClassifierTask, class_weights
from .distill import DistilledBatches, best_member, build_student
from .distributed import SINGLE, Dist, resolve_device
from .loop import Settings, run
from .parent import Parent, child_config, child_tokenizer, start_from
from .precision import resolve_precision
from .pretrain import pretrain
from .state import LoopState, RunState

log = logging.getLogger(__name__)
CUT_WARNING_SHARE = 0.25  # of the training texts cut at the length training reads, when a warning says so


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    model: nn.Module  # the model to ship, in eval mode: a GRUClassifier, an EnsembleClassifier, or a distilled student
    tokenizer: Any
    model_config: ModelConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | list[int] = 0  # one per ensemble member when there are several
    train_seconds: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"  # what training ran in: fp32 or bf16 (autocast)
    encoded: dict[str, TokenIds] = field(default_factory=dict)  # token ids per split held whole (not a streamed train split)
    teacher: nn.Module | None = None  # with distillation: the ensemble the student learned from
    pretraining: list[dict[str, float]] = field(default_factory=list)  # with --pretrain-epochs: one row per epoch
    class_weights: list[float] | None = None  # with --class-weight: each label's weight in the training loss


def train(config: RunConfig, data: LoadedData, progress: bool | None = None, checkpoints: Checkpoints | None = None,
          dist: Dist = SINGLE, device: torch.device | None = None, parent: Parent | None = None) -> TrainResult:
    """Train a tokenizer and a classifier (or an ensemble of them) on `data`; return the best epochs' model.

    With `parent` (--init-from), the tokenizer is the parent's and every classifier, the student too, starts from
    its weights (`parent.start_from`).

    With `checkpoints`, each epoch (and a stop on SIGINT/SIGTERM) saves a resumable
    checkpoint, and a run resumes from `checkpoints.resumed` when it is set. With
    `dist` (several processes), rank 0 trains the tokenizer and the others receive it;
    each rank trains on its shard of the batches and only rank 0 saves checkpoints.
    """
    tcfg = config.train
    set_seed(tcfg.seed)
    device = device if device is not None else resolve_device(tcfg.device)
    started = time.perf_counter()
    resumed = RunState.from_dict(checkpoints.resumed) if checkpoints is not None and checkpoints.resumed is not None else None
    # a missing or changed lexicon fails here, before any training; a parent brings its lexicon tables in its weights
    lexicon = load_lexicon(config.tokenizer.vader_lexicon) if config.tokenizer.lexicon and parent is None else None

    tokenizer = _tokenizer(config, data, dist, resumed, parent)  # cuts texts where evaluation and prediction do
    training_tokenizer = for_training(tokenizer, config.tokenizer)  # where training reads less (--predict-length)
    with dist.main_process_first():  # the first process per machine tokenizes; the others read its datasets cache
        encoded = {split: TokenIds.from_dataset(encode_dataset(training_tokenizer if split == "train" else
                                                               TextEncoder(tokenizer, config.tokenizer.tail_tokens), ds, tcfg.num_proc))
                   for split, ds in data.held_splits().items()}
    labels = {split: np.asarray(ds.with_format("numpy")["label"], dtype=np.int64) for split, ds in data.held_splits().items()}
    if dist.is_main and "train" in encoded:
        _warn_if_cut(encoded["train"].lengths, training_tokenizer.read_length, config.tokenizer.tail_tokens)
    if parent is None:
        model_config, model = _model(config, len(data.label_names), tokenizer, lexicon, encoded.get("train"))
    else:
        model_config, model = _model_from(parent, config, data.label_names)
    model.to(device)
    classifiers = members(model)
    log.info(
        "model: %s parameters%s, vocabulary %d, device %s, GRU path %s, precision %s",
        f"{sum(p.numel() for p in classifiers[0].parameters()):,}",
        f" in each of {len(classifiers)} ensemble members" if len(classifiers) > 1 else "", model_config.vocab_size, device,
        model_config.gru_impl, resolve_precision(tcfg.precision, device),
    )
    batches = _training_batches(data, encoded, labels, training_tokenizer, config, dist)
    weights = class_weights(tcfg.class_weight, data.label_names, labels.get("train"))
    if weights is not None:
        log.info("class weights: %s", ", ".join(f"{name} {w:.3g}" for name, w in zip(data.label_names, weights)))

    student_config, student = build_student(tcfg, model_config, classifiers[0]) if tcfg.distill else (None, None)
    if student is not None:
        if parent is not None:
            start_from(student, parent, data.label_names)
        elif tcfg.word_vectors:
            start_from_vectors(student, token_vectors(tokenizer, student_config.embedding_dim))
        student.to(device)
    stages = classifiers + ([student] if student is not None else [])  # trained one after the other, each checkpointed
    run_state = resumed if resumed is not None else RunState(tokenizer=tokenizer.to_str())

    def saver(stage: str) -> Callable[[LoopState], None] | None:
        """A loop's `save`: the run's state, with the loop's as its `stage` ("pretrain_state" or "fit"); None: nothing saved."""
        if checkpoints is None or not dist.is_main:
            return None
        return lambda state: checkpoints.save(dataclasses.replace(run_state, **{stage: state}).to_dict(), tokenizer)

    if tcfg.pretrain_epochs and (resumed is None or resumed.pretrain_state is not None):  # not yet, or stopped while pretraining
        pretrain_ids = encoded["train"] if data.pretrain is None else TokenIds.from_dataset(
            encode_dataset(training_tokenizer, data.pretrain, tcfg.num_proc))
        with reusing_freed_memory():
            run_state.pretraining = pretrain(classifiers[0], pretrain_ids, encoded["validation"], tcfg, device, dist, progress,
                                             checkpoints=checkpoints, save=saver("pretrain_state"), resume=run_state.pretrain_state,
                                             from_scratch=parent is None)
        run_state.pretrained, run_state.pretrain_state = copy.deepcopy(classifiers[0].state_dict()), None
    if run_state.pretrained is not None:  # every member starts from the pretrained network
        for member in classifiers:
            member.load_state_dict(run_state.pretrained)

    first = run_state.member
    if resumed is not None:
        for member, weights in zip(stages, resumed.finished):
            member.load_state_dict(weights)
        if resumed.fit is not None:
            log.info("resuming from %s/: member %d, %d epochs done", checkpoints.folder, first + 1, resumed.fit.epoch)
    for k, member in enumerate(stages[first:], start=first):
        seed = tcfg.seed + k
        set_seed(seed)
        if dist.enabled:
            torch.manual_seed(seed + 100_003 * dist.rank)  # each rank its own dropout masks; rank 0 keeps a single run's
        resume = resumed.fit if resumed is not None and k == first else None
        stage_tcfg, stage_batches, settings = tcfg, batches, Settings.of(tcfg)
        if member is student:
            model.eval()
            if tcfg.distill_from_member and resume is None:  # a resumed student has its own weights
                best = best_member(run_state.history, len(classifiers))
                student.load_state_dict(classifiers[best].state_dict())
                log.info("the student starts from member %d, the best on validation", best + 1)
            stage_tcfg = dataclasses.replace(tcfg, epochs=tcfg.distill_epochs or tcfg.epochs,
                                             learning_rate=tcfg.distill_learning_rate or tcfg.learning_rate)
            settings = Settings.of(stage_tcfg, rate_option="--distill-learning-rate")
            transfer_ids = None if data.transfer is None else TokenIds.from_dataset(
                encode_dataset(training_tokenizer, data.transfer, tcfg.num_proc))
            stage_batches = DistilledBatches(batches, model, encoded["train"], device, copies=tcfg.distill_copies, seed=seed,
                                             transfer_ids=transfer_ids)
            log.info("student (seed %d): distilled from the ensemble of %d (logit matching, weight %g, %d made-up copies per batch%s)",
                     seed, len(classifiers), tcfg.distill_weight, tcfg.distill_copies,
                     "" if transfer_ids is None else f", {len(transfer_ids):,} unlabelled texts from --distill-file")
        elif len(classifiers) > 1:
            log.info("ensemble member %d/%d (seed %d)", k + 1, len(classifiers), seed)
        run_state.member = k
        task = ClassifierTask(member, stage_batches, encoded["validation"], labels["validation"], stage_tcfg, device, dist, weights)
        try:
            with reusing_freed_memory():
                state = run(task, settings, seed, device, dist, progress, checkpoints, save=saver("fit"), resume=resume)
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"Out of {device.type.upper()} memory with --batch-size {tcfg.batch_size} and --max-length {config.tokenizer.max_length}: "
                "lower one of them (or use --device cpu)."
            ) from None
        member.requires_grad_(True)  # gradual unfreezing leaves the lower groups frozen
        role = {"role": "student"} if member is student else {}
        run_state.history += [{"member": k, **role, **row} if len(stages) > 1 else row for row in state.history]
        run_state.best_epochs.append(state.best_epoch)
        run_state.finished.append(member.state_dict())
    model.eval()
    if len(classifiers) > 1 and dist.is_main:
        val_logits = batched_logits(model, encoded["validation"], batch_size=256, device=device)
        acc, f1 = map(float, accuracy_and_macro_f1(labels["validation"], val_logits.argmax(-1).numpy(), len(data.label_names)))
        log.info("ensemble of %d: val acc %.4f  val macro-F1 %.4f", len(classifiers), acc, f1)
    best_epochs = run_state.best_epochs
    shipped, shipped_config = (student.eval(), student_config) if student is not None else (model, model_config)
    return TrainResult(
        model=shipped, tokenizer=tokenizer, model_config=shipped_config, history=run_state.history,
        best_epoch=best_epochs[0] if len(best_epochs) == 1 else best_epochs,
        train_seconds=time.perf_counter() - started, device=str(device), precision=resolve_precision(tcfg.precision, device),
        encoded=encoded, teacher=model if student is not None else None, pretraining=run_state.pretraining,
        class_weights=None if weights is None else [float(w) for w in weights],
    )


def _tokenizer(config: RunConfig, data: LoadedData, dist: Dist, resumed: RunState | None, parent: Parent | None):
    """The run's tokenizer: the interrupted run's when resuming; the parent's; else trained on rank 0 and sent to the
    other ranks."""
    from tokenizers import Tokenizer

    if resumed is not None:
        return Tokenizer.from_str(resumed.tokenizer)
    if parent is not None:
        return child_tokenizer(parent, config.tokenizer)
    tokenizer = train_tokenizer(data.train_texts(), config.tokenizer) if dist.is_main else None
    if dist.enabled:
        tokenizer = Tokenizer.from_str(dist.broadcast(tokenizer.to_str() if dist.is_main else None))
    return tokenizer


def _model(config: RunConfig, num_classes: int, tokenizer, lexicon: Lexicon | None, train_ids: TokenIds | None) -> tuple[ModelConfig, nn.Module]:
    """The model configuration (the options plus what the tokenizer and data fix) and the untrained model."""
    derived = {"vocab_size": tokenizer.get_vocab_size(), "num_classes": num_classes, "pad_id": PAD_ID}
    table = token_rows = None
    if lexicon is not None:
        ids, offsets = lexicon_table(tokenizer, lexicon)
        table = (torch.from_numpy(ids), torch.from_numpy(offsets))
        derived.update(lexicon_categories=len(lexicon.categories), lexicon_entries=len(ids))
        # a streamed split is not counted, and with word vectors a token training never reaches still has a vector worth
        # keeping (where words of like meaning are): in both cases every token keeps a row of its own
        if train_ids is not None and not config.train.word_vectors:
            rows = _seen_token_rows(train_ids.token_counts(derived["vocab_size"]))
            token_rows = torch.from_numpy(rows)
            derived["embedding_rows"] = int(rows.max()) + 1
    model_config = ModelConfig(**{**config.model.__dict__, **derived})
    model = build_model(model_config, lexicon=table, token_rows=token_rows)
    if config.train.word_vectors:
        start_from_vectors(model, token_vectors(tokenizer, model_config.embedding_dim))
    return model_config, model


def _warn_if_cut(lengths: np.ndarray, read: int | None, tail_tokens: int) -> None:
    """A warning when training reads only the start of many of its texts (a quarter or more at the length it reads):
    on long texts (reviews) their end, where the verdict often is, is worth reading (`--tail-tokens`)."""
    if not read or tail_tokens or not len(lengths):
        return
    share = float(np.mean(lengths >= read))
    if share >= CUT_WARNING_SHARE:
        options = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in LONG_READING.items())
        log.warning("%.0f%% of the training texts are longer than the %d tokens training reads, and only their start is read. "
                    "For long texts, read their end too, as the reviews preset does: %s.", 100 * share, read, options)


def _model_from(parent: Parent, config: RunConfig, label_names: list[str]) -> tuple[ModelConfig, nn.Module]:
    """The parent's model configuration with this run's labels and choices, and the model with the parent's weights."""
    model_config = child_config(parent, config.model, len(label_names))
    model = build_model(model_config)
    for member in members(model):
        start_from(member, parent, label_names)
    return model_config, model


def _training_batches(data: LoadedData, encoded: dict[str, TokenIds], labels: dict[str, np.ndarray], tokenizer, config: RunConfig,
                      dist: Dist) -> HeldBatches | StreamBatches:
    """This rank's batches of the train split: from its token ids, or tokenized from the stream as it is read."""
    tcfg = config.train
    shape = {"batch_size": tcfg.batch_size, "bucket_size": tcfg.bucket_size, "rank": dist.rank, "world_size": dist.world_size,
             "pad_id": PAD_ID}
    if data.streamed:
        stream = data.splits["train"]
        return StreamBatches(stream.epoch, len(stream), lambda texts: tokenizer.encode(texts).ids, **shape)
    return HeldBatches(encoded["train"], labels["train"], **shape)


def _seen_token_rows(counts: np.ndarray) -> np.ndarray:
    """Token id -> learned embedding row: 1, 2, ... for the tokens the training split uses, 0 for the rest.

    A token training never reaches gets no row of its own: a random one would add noise wherever
    the token turns up later. It shares the zero row 0 with [PAD] and is its lexicon categories alone.
    """
    seen = counts > 0
    seen[PAD_ID] = False
    rows = np.zeros(len(counts), dtype=np.int64)
    rows[seen] = np.arange(1, int(seen.sum()) + 1)
    return rows

