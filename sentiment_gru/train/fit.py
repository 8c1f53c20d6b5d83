"""The training loop: AdamW, warm-up then linear decay, clipping, early stopping on validation."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, RunConfig, TrainConfig
from ..data.batching import Batch, HeldBatches, StreamBatches, TokenIds, batched_logits, collate
from ..data.load import LoadedData
from ..errors import TrainingError
from ..metrics import accuracy_and_macro_f1, better
from ..model.classifier import GRUClassifier, build_model, members
from ..model.kernels import reusing_freed_memory
from ..text.lexicon import Lexicon, lexicon_table, load_lexicon
from ..text.tokenizer import PAD_ID, UNK_ID, TextEncoder, encode_dataset, for_training, train_tokenizer
from .checkpoint import STATE_FILE, Checkpoints, agreed_signal, random_state, rng_states, set_random_state, set_rng_states, stop_flags
from .distributed import SINGLE, Dist, resolve_device
from .precision import autocast, resolve_precision
from .pretrain import layer_groups, pretrain
from .schedule import Progress, warmup_linear

log = logging.getLogger(__name__)


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


@dataclass
class Loop:
    """What every classifier's training loop shares within one run."""

    batches: HeldBatches | StreamBatches | DistilledBatches  # this rank's training batches, epoch after epoch
    val_ids: TokenIds
    val_labels: np.ndarray  # [n] class ids
    tcfg: TrainConfig
    device: torch.device
    dist: Dist = SINGLE
    progress: bool | None = None  # None: a progress bar on a terminal; False: none
    checkpoints: Checkpoints | None = None


def train(config: RunConfig, data: LoadedData, progress: bool | None = None, checkpoints: Checkpoints | None = None,
          dist: Dist = SINGLE, device: torch.device | None = None) -> TrainResult:
    """Train a tokenizer and a classifier (or an ensemble of them) on `data`; return the best epochs' model.

    With `checkpoints`, each epoch (and a stop on SIGINT/SIGTERM) saves a resumable
    checkpoint, and a run resumes from `checkpoints.resumed` when it is set. With
    `dist` (several processes), rank 0 trains the tokenizer and the others receive it;
    each rank trains on its shard of the batches and only rank 0 saves checkpoints.
    """
    tcfg = config.train
    set_seed(tcfg.seed)
    device = device if device is not None else resolve_device(tcfg.device)
    started = time.perf_counter()
    resumed = checkpoints.resumed if checkpoints is not None else None
    lexicon = load_lexicon() if config.tokenizer.lexicon else None  # a missing or changed lexicon fails here, before any training

    tokenizer = _tokenizer(config, data, dist, resumed)  # cuts texts where evaluation and prediction do
    training_tokenizer = for_training(tokenizer, config.tokenizer)  # where training reads less (--predict-length)
    with dist.main_process_first():  # the first process per machine tokenizes; the others read its datasets cache
        encoded = {split: TokenIds.from_dataset(encode_dataset(training_tokenizer if split == "train" else
                                                               TextEncoder(tokenizer, config.tokenizer.tail_tokens), ds, tcfg.num_proc))
                   for split, ds in data.held_splits().items()}
    labels = {split: np.asarray(ds.with_format("numpy")["label"], dtype=np.int64) for split, ds in data.held_splits().items()}
    model_config, model = _model(config, len(data.label_names), tokenizer, lexicon, encoded.get("train"))
    model.to(device)
    classifiers = members(model)
    log.info(
        "model: %s parameters%s, vocabulary %d, device %s, GRU path %s, precision %s",
        f"{sum(p.numel() for p in classifiers[0].parameters()):,}",
        f" in each of {len(classifiers)} ensemble members" if len(classifiers) > 1 else "", model_config.vocab_size, device,
        model_config.gru_impl, resolve_precision(tcfg.precision, device),
    )
    loop = Loop(batches=_training_batches(data, encoded, labels, training_tokenizer, config, dist), val_ids=encoded["validation"],
                val_labels=labels["validation"], tcfg=tcfg, device=device, dist=dist, progress=progress if dist.is_main else False,
                checkpoints=checkpoints)

    student_config, student = _student(tcfg, model_config, classifiers[0]) if tcfg.distill else (None, None)
    if student is not None:
        student.to(device)
    stages = classifiers + ([student] if student is not None else [])  # trained one after the other, each checkpointed

    pretrained, pretraining = None, []
    pretrain_state = resumed.get("pretrain_state") if resumed is not None else None  # stopped while pretraining
    if tcfg.pretrain_epochs and (resumed is None or pretrain_state is not None):
        pretrain_ids = encoded["train"] if data.pretrain is None else TokenIds.from_dataset(
            encode_dataset(training_tokenizer, data.pretrain, tcfg.num_proc))
        save_pretraining = None
        if checkpoints is not None and dist.is_main:
            def save_pretraining(state: dict) -> None:
                checkpoints.save({"member": 0, "finished": [], "history": [], "best_epochs": [], "pretrain_state": state,
                                  "tokenizer": tokenizer.to_str(), "fit": None}, tokenizer)
        with reusing_freed_memory():
            pretraining = pretrain(classifiers[0], pretrain_ids, encoded["validation"], tcfg, device, dist, progress,
                                   checkpoints=checkpoints, save=save_pretraining, resume=pretrain_state)
        pretrained = copy.deepcopy(classifiers[0].state_dict())
    elif resumed is not None:
        pretrained, pretraining = resumed.get("pretrained"), resumed.get("pretraining", [])
    if pretrained is not None:  # every member starts from the pretrained network
        for member in classifiers:
            member.load_state_dict(pretrained)

    history: list[dict[str, float]] = []
    best_epochs = []
    first = 0
    if resumed is not None:
        first, history, best_epochs = resumed["member"], resumed["history"], resumed["best_epochs"]
        for member, state in zip(stages, resumed["finished"]):
            member.load_state_dict(state)
        if resumed["fit"] is not None:
            log.info("resuming from %s/: member %d, %d epochs done", checkpoints.folder, first + 1, resumed["fit"]["epoch"])
    for k, member in enumerate(stages[first:], start=first):
        seed = tcfg.seed + k
        set_seed(seed)
        if dist.enabled:
            torch.manual_seed(seed + 100_003 * dist.rank)  # each rank its own dropout masks; rank 0 keeps a single run's
        stage_loop = loop
        if member is student:
            model.eval()
            if tcfg.distill_from_member and not (resumed is not None and k == first):  # a resumed student has its own weights
                best = _best_member(history, len(classifiers))
                student.load_state_dict(classifiers[best].state_dict())
                log.info("the student starts from member %d, the best on validation", best + 1)
            student_tcfg = dataclasses.replace(tcfg, epochs=tcfg.distill_epochs or tcfg.epochs,
                                               learning_rate=tcfg.distill_learning_rate or tcfg.learning_rate)
            transfer_ids = None if data.transfer is None else TokenIds.from_dataset(
                encode_dataset(training_tokenizer, data.transfer, tcfg.num_proc))
            stage_loop = dataclasses.replace(loop, tcfg=student_tcfg,
                                             batches=DistilledBatches(loop.batches, model, encoded["train"], device,
                                                                      copies=tcfg.distill_copies, seed=seed, transfer_ids=transfer_ids))
            log.info("student (seed %d): distilled from the ensemble of %d (logit matching, weight %g, %d made-up copies per batch%s)",
                     seed, len(classifiers), tcfg.distill_weight, tcfg.distill_copies,
                     "" if transfer_ids is None else f", {len(transfer_ids):,} unlabelled texts from --distill-file")
        elif len(classifiers) > 1:
            log.info("ensemble member %d/%d (seed %d)", k + 1, len(classifiers), seed)
        save = None
        if checkpoints is not None and dist.is_main:
            def save(fit_state: dict, k: int = k) -> None:
                run_state = {"member": k, "finished": [m.state_dict() for m in stages[:k]], "history": history,
                             "best_epochs": best_epochs, "pretrained": pretrained, "pretraining": pretraining}
                checkpoints.save({**run_state, "tokenizer": tokenizer.to_str(), "fit": fit_state}, tokenizer)
        try:
            with reusing_freed_memory():
                member_history, best_epoch = _fit(member, stage_loop, seed, save=save,
                                                  resume=resumed["fit"] if resumed is not None and k == first else None)
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"Out of {device.type.upper()} memory with --batch-size {tcfg.batch_size} and --max-length {config.tokenizer.max_length}: "
                "lower one of them (or use --device cpu)."
            ) from None
        role = {"role": "student"} if member is student else {}
        history += [{"member": k, **role, **row} if len(stages) > 1 else row for row in member_history]
        best_epochs.append(best_epoch)
    model.eval()
    if len(classifiers) > 1 and dist.is_main:
        val_logits = batched_logits(model, loop.val_ids, batch_size=256, device=device)
        acc, f1 = map(float, accuracy_and_macro_f1(loop.val_labels, val_logits.argmax(-1).numpy(), len(data.label_names)))
        log.info("ensemble of %d: val acc %.4f  val macro-F1 %.4f", len(classifiers), acc, f1)
    shipped, shipped_config = (student.eval(), student_config) if student is not None else (model, model_config)
    return TrainResult(
        model=shipped, tokenizer=tokenizer, model_config=shipped_config, history=history,
        best_epoch=best_epochs[0] if len(best_epochs) == 1 else best_epochs,
        train_seconds=time.perf_counter() - started, device=str(device), precision=resolve_precision(tcfg.precision, device),
        encoded=encoded, teacher=model if student is not None else None, pretraining=pretraining,
    )


def _best_member(history: list[dict[str, float]], count: int) -> int:
    """The finished member whose best epoch scored best on validation (`metrics.better`), from the run's history rows."""
    best_member, best_row = 0, None
    for member in range(count):
        for row in (r for r in history if r.get("member", 0) == member):
            if best_row is None or better(row["val_accuracy"], row["val_loss"], best_row["val_accuracy"], best_row["val_loss"]):
                best_member, best_row = member, row
    return best_member


def _student(tcfg: TrainConfig, model_config: ModelConfig, member: GRUClassifier) -> tuple[ModelConfig, GRUClassifier]:
    """The untrained student: the members' configuration with the student sizes given, sharing their lexicon tables."""
    sizes = {name: value for name, value in (("hidden_size", tcfg.student_hidden_size), ("embedding_dim", tcfg.student_embedding_dim),
                                              ("num_layers", tcfg.student_num_layers)) if value}
    config = dataclasses.replace(model_config, ensemble_size=1, **sizes)
    lexicon = (member.lexicon_ids, member.lexicon_offsets) if config.lexicon_categories else None
    return config, build_model(config, lexicon=lexicon, token_rows=member.token_rows if config.embedding_rows else None)


class DistilledBatches:
    """Training batches with the teacher's log-probabilities attached, and `copies` made-up variants of each batch
    that the teacher labels as they are made (Tang et al. 2019, "Distilling task-specific knowledge from BERT into
    simple neural networks"): with probability `ngram_p` a text is cut to a random window of 1 to 5 tokens;
    otherwise each token is replaced by [UNK] with probability `mask_p` and, with the lexicon, by a word of one
    of its categories (a near-synonym) with probability `swap_p`. With `transfer_ids` (unlabelled texts, a transfer
    set: Hinton et al. 2015), their batches, labelled by the teacher once, are shuffled in among the training
    batches. The variants of a batch and the place of each transfer batch depend only on the epoch and the batch's
    place in it, so a resumed epoch makes them again exactly.
    """

    def __init__(self, batches: HeldBatches, teacher: nn.Module, train_ids: TokenIds, device: torch.device, copies: int = 0,
                 mask_p: float = 0.1, swap_p: float = 0.1, ngram_p: float = 0.25, seed: int = 0,
                 transfer_ids: TokenIds | None = None):
        self.batches, self.teacher, self.device = batches, teacher, device
        self.copies, self.mask_p, self.swap_p, self.ngram_p, self.seed = copies, mask_p, swap_p, ngram_p, seed
        self.targets = batched_logits(teacher, train_ids, batch_size=256, device=device)  # [train rows, classes]
        self.transfer = self.transfer_targets = None
        if transfer_ids is not None:
            self.transfer = HeldBatches(transfer_ids, np.zeros(len(transfer_ids), dtype=np.int64), batches.batch_size,
                                        batches.bucket_size, batches.rank, batches.world_size, batches.pad_id)
            self.transfer_targets = batched_logits(teacher, transfer_ids, batch_size=256, device=device)
        self.steps = batches.steps * (1 + copies) + (self.transfer.steps if self.transfer is not None else 0)
        self.swaps = _category_words(members(teacher)[0]) if copies and swap_p > 0 else None

    def epoch(self, number: int, rng: random.Random, skip: int = 0):
        step = 0
        for variant in self._mixed(number, rng):
            if step >= skip:
                yield variant() if callable(variant) else variant
            step += 1

    def _mixed(self, number: int, rng: random.Random):
        """The epoch's batches in order: each training batch followed by its variants (made only when wanted), with
        the transfer set's batches at places drawn from the epoch's own seed."""
        own = self._own(number, rng)
        if self.transfer is None:
            yield from own
            return
        order = np.random.default_rng((self.seed, number)).permutation(np.repeat([0, 1], [self.batches.steps, self.transfer.steps]))
        transfer = self.transfer.epoch(number, random.Random(f"transfer {self.seed} {number}"))
        for source in order:
            if source == 0:
                for _ in range(1 + self.copies):
                    yield next(own)
            else:
                batch = next(transfer)
                yield Batch(batch.ids, batch.lengths, batch.labels, None, teacher=self.transfer_targets[torch.from_numpy(batch.rows)])

    def _own(self, number: int, rng: random.Random):
        for index, batch in enumerate(self.batches.epoch(number, rng)):
            batch.teacher = self.targets[torch.from_numpy(batch.rows)]
            yield batch
            for k in range(self.copies):
                yield lambda k=k, batch=batch, index=index: self._variant(batch, number, index, k)

    @torch.no_grad()
    def _variant(self, batch: Batch, epoch: int, index: int, copy: int) -> Batch:
        """A made-up variant of `batch`, labelled by the teacher."""
        rng = np.random.default_rng((self.seed, epoch, index, copy))
        sequences = []
        for row, length in zip(batch.ids.numpy(), batch.lengths.tolist()):
            ids = row[:length].copy()
            if rng.random() < self.ngram_p:
                n = min(length, int(rng.integers(1, 6)))
                start = int(rng.integers(0, length - n + 1))
                ids = ids[start:start + n]
            else:
                if self.swaps is not None:
                    for i in np.flatnonzero(rng.random(length) < self.swap_p):
                        ids[i] = self.swaps(int(ids[i]), rng)
                ids[rng.random(length) < self.mask_p] = UNK_ID
            sequences.append(ids.tolist())
        ids, lengths = collate(sequences, PAD_ID)
        self.teacher.eval()
        teacher = self.teacher(ids.to(self.device), lengths).float().cpu()
        return Batch(ids, lengths, batch.labels, None, teacher=teacher)


def _category_words(member: GRUClassifier):
    """With the lexicon, `swap(token, rng)`: a random token sharing one of `token`'s categories (itself when it has
    none), the smaller (more specific) categories much likelier; None without the lexicon."""
    if not member.config.lexicon_categories:
        return None
    ids, offsets = member.lexicon_ids.cpu().numpy(), member.lexicon_offsets.cpu().numpy()
    owners = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))  # the token of each (token, category) entry
    order = np.argsort(ids, kind="stable")
    sizes = np.bincount(ids, minlength=member.config.lexicon_categories)
    members_of = np.split(owners[order], np.cumsum(sizes)[:-1])

    def swap(token: int, rng: np.random.Generator) -> int:
        own = ids[offsets[token]:offsets[token + 1]]
        if not len(own):
            return token
        weights = 1.0 / sizes[own].astype(np.float64) ** 2
        words = members_of[int(rng.choice(own, p=weights / weights.sum()))]
        return int(words[rng.integers(len(words))])

    return swap


def _tokenizer(config: RunConfig, data: LoadedData, dist: Dist, resumed: dict | None):
    """The run's tokenizer: the interrupted run's when resuming; else trained on rank 0 and sent to the other ranks."""
    from tokenizers import Tokenizer

    if resumed is not None:
        return Tokenizer.from_str(resumed["tokenizer"])
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
        if train_ids is not None:  # a streamed split is not counted: every token keeps a row of its own
            rows = _seen_token_rows(train_ids.token_counts(derived["vocab_size"]))
            token_rows = torch.from_numpy(rows)
            derived["embedding_rows"] = int(rows.max()) + 1
    model_config = ModelConfig(**{**config.model.__dict__, **derived})
    return model_config, build_model(model_config, lexicon=table, token_rows=token_rows)


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


def _fit(model: GRUClassifier, loop: Loop, seed: int, save=None, resume: dict | None = None) -> tuple[list[dict[str, float]], int]:
    """Train one classifier with early stopping; leave it at its best validation epoch.

    `save(state)` is called at the end of each epoch, and after the current step when a
    stop was asked for; `resume` is such a state to continue from. With several
    processes the model is wrapped in DistributedDataParallel; the train loss, token
    counts and stop requests are summed over the ranks each step, validation is split
    between them and gathered, and rank 0's early-stopping decision holds for all.
    """
    tcfg, device, dist, checkpoints = loop.tcfg, loop.device, loop.dist, loop.checkpoints
    groups = layer_groups(model)[::-1]  # top down: the classifier, the GRU layers, the embedding
    optimizer = torch.optim.AdamW(_optimizer_groups(model, groups, tcfg), lr=tcfg.learning_rate)
    steps_per_epoch = loop.batches.steps
    precision = resolve_precision(tcfg.precision, device)  # autocast for the forward pass; the loss is computed in fp32
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(steps_per_epoch * tcfg.epochs, tcfg.warmup_fraction))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=tcfg.label_smoothing)
    rng = random.Random(seed)
    num_classes = model.config.num_classes
    val_rows = np.arange(dist.rank, len(loop.val_ids), dist.world_size)
    my_val = loop.val_ids.take(val_rows) if dist.enabled else loop.val_ids

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
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.enabled else model  # averages gradients over the ranks

    def checkpoint(where: str, signum: int | None) -> None:
        if save is not None:
            save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "history": history, "best": best, "best_state": best_state, "stale": stale,
                "epoch": epoch, "step": step, "totals": totals, "bucket_rng": epoch_rng, "rng": rng_states(),
            })
        if checkpoints is not None and (signum is not None or not dist.enabled):
            checkpoints.check_stop(where, signum)

    while epoch < tcfg.epochs and stale < tcfg.patience:
        if tcfg.gradual_unfreezing:  # the top epoch + 1 groups train
            for depth, group in enumerate(groups):
                for param in group:
                    param.requires_grad_(depth <= epoch)
            if dist.enabled:  # DistributedDataParallel fixes the parameters it averages when it is made
                net = torch.nn.parallel.DistributedDataParallel(model)
        net.train()
        epoch_start = time.perf_counter()
        set_random_state(rng, epoch_rng)
        progress = Progress(log, f"epoch {epoch + 1}/{tcfg.epochs}", step, steps_per_epoch, loop.progress)
        for batch in loop.batches.epoch(epoch, rng, step):
            target, lengths = batch.labels, batch.lengths
            ids = batch.ids.to(device, non_blocking=True)
            # adversarial training: the clean pass's gradient on this zero perturbation gives each text's worst direction
            zero = torch.zeros(*ids.shape, model.config.embedding_dim, device=device, requires_grad=True) if tcfg.adversarial else None
            loss = _batch_loss(net, batch, ids, zero, loss_fn, precision, device, tcfg)
            value = loss.item()
            # summed over the ranks: loss * texts, texts, tokens, stop flags; a non-finite loss anywhere stops every rank
            stats = dist.sum([value * len(target), len(target), int(lengths.sum()), *stop_flags(checkpoints)], device)
            if not math.isfinite(stats[0]):
                raise _diverged(f"the training loss became {stats[0] / stats[1] if dist.enabled else value}", step + 1, epoch + 1, tcfg,
                                checkpoints)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if zero is not None:  # the gradients of both passes are summed before the step
                _batch_loss(net, batch, ids, _adversarial_perturbation(zero.grad, tcfg.adversarial), loss_fn, precision, device,
                            tcfg).backward()
            if tcfg.clip_norm > 0:
                norm = float(nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_norm))
                if not math.isfinite(norm):
                    raise _diverged(f"the gradient norm became {norm}", step + 1, epoch + 1, tcfg, checkpoints)
            optimizer.step()
            scheduler.step()
            step += 1
            totals = [totals[0] + stats[0], totals[1] + int(stats[1]), totals[2] + int(stats[2])]
            progress.update(*totals)
            signum = agreed_signal(stats[3:]) if dist.enabled else (checkpoints.stop_signal if checkpoints is not None else None)
            if signum is not None:
                checkpoint(f"after step {step} of epoch {epoch + 1}", signum)
        progress.close()
        train_seconds = time.perf_counter() - epoch_start

        val_logits = dist.gather_rows(batched_logits(model, my_val, batch_size=256, device=device), len(loop.val_ids), device)
        val_loss = float(loss_fn(val_logits, torch.from_numpy(loop.val_labels)).item())
        if not math.isfinite(val_loss):
            raise _diverged(f"the validation loss became {val_loss}", step, epoch + 1, tcfg, checkpoints)
        val_acc, val_f1 = map(float, accuracy_and_macro_f1(loop.val_labels, val_logits.argmax(-1).numpy(), num_classes))
        epoch += 1
        row = {
            "epoch": epoch, "train_loss": totals[0] / totals[1], "val_loss": val_loss, "val_accuracy": val_acc, "val_macro_f1": val_f1,
            "seconds": train_seconds, "tokens_per_second": totals[2] / train_seconds, "learning_rate": scheduler.get_last_lr()[0],
        }
        history.append(row)
        improved = better(val_acc, val_loss, best["accuracy"], best["loss"])
        improved = dist.broadcast(improved)  # decided once, on rank 0, for every rank
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
        signum = agreed_signal(dist.sum(stop_flags(checkpoints), device)) if dist.enabled else None
        checkpoint(f"at the end of epoch {epoch}", signum)
    model.requires_grad_(True)
    model.load_state_dict(best_state)
    return history, best["epoch"]


def _batch_loss(net: nn.Module, batch: Batch, ids: torch.Tensor, perturbation: torch.Tensor | None, loss_fn: nn.Module,
                precision: str, device: torch.device, tcfg: TrainConfig) -> torch.Tensor:
    """The batch's training loss: cross-entropy on its labels, or the distillation loss when it has the teacher's logits."""
    with autocast(precision, device):
        logits = net(ids, batch.lengths) if perturbation is None else net(ids, batch.lengths, perturbation)
    loss = loss_fn(logits.float(), batch.labels.to(device))
    if batch.teacher is not None:  # made-up variants (no rows) learn from the teacher alone
        loss = _distillation_loss(loss if batch.rows is not None else None, logits.float(), batch.teacher.to(device), tcfg)
    return loss


def _adversarial_perturbation(grad: torch.Tensor, size: float) -> torch.Tensor:
    """`size` times the loss gradient on the token vectors, scaled to unit L2 norm per text: [batch, seq, dim]."""
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return (size * grad / norms[:, None, None]).detach()


def _optimizer_groups(model: GRUClassifier, groups: list[list[nn.Parameter]], tcfg: TrainConfig) -> list[dict]:
    """AdamW parameter groups: per layer group (top down), the learning rate divided by `discriminative_lr` once more
    for each group down; weight decay on the weight matrices but not on biases or the token embedding."""
    no_decay = {id(p) for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("embedding")}
    optimizer_groups = []
    for depth, group in enumerate(groups):
        lr = tcfg.learning_rate / tcfg.discriminative_lr ** depth
        for decays in (True, False):
            params = [p for p in group if (id(p) not in no_decay) == decays]
            if params:
                optimizer_groups.append({"params": params, "lr": lr, "weight_decay": tcfg.weight_decay if decays else 0.0})
    return optimizer_groups


def _distillation_loss(hard: torch.Tensor | None, logits: torch.Tensor, teacher: torch.Tensor, tcfg: TrainConfig) -> torch.Tensor:
    """The student's loss: the squared error between its logits and the teacher's log-probabilities, both centred
    (logit matching, the high-temperature limit of distillation: Hinton et al. 2015; Ba & Caruana 2014), mixed with
    `hard`, the loss on the true labels (None: the matching alone).

    logits: [batch, classes] the student's; teacher: [batch, classes] the ensemble's log-probabilities. For two
    classes the matching term is the squared error of the two logit gaps.
    """
    gap = (logits - logits.mean(-1, keepdim=True)) - (teacher - teacher.mean(-1, keepdim=True))
    soft = 2 * gap.pow(2).sum(-1).mean()
    return soft if hard is None else tcfg.distill_weight * soft + (1 - tcfg.distill_weight) * hard


def _diverged(what: str, step: int, epoch: int, tcfg, checkpoints: Checkpoints | None) -> TrainingError:
    kept = ""
    if checkpoints is not None and (checkpoints.folder / STATE_FILE).is_file():
        kept = f" The last good checkpoint is kept in {checkpoints.folder}/; delete it before retrying with other options."
    return TrainingError(
        f"Training diverged: {what} at step {step} of epoch {epoch}. "
        f"Lower --learning-rate (now {tcfg.learning_rate:g}), e.g. to {tcfg.learning_rate / 10:g}.{kept}"
    )
