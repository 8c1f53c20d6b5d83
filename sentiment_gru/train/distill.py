"""Distillation: a student classifier (`build_student`, started from scratch or from the `best_member`) learns to match the
ensemble's logits (`distillation_loss`) on the training batches, on made-up variants of them and on unlabelled texts
(`DistilledBatches`)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..data.batching import Batch, HeldBatches, TokenIds, batched_logits, collate
from ..metrics import better
from ..model.classifier import GRUClassifier, build_model, members
from ..text.tokenizer import PAD_ID, UNK_ID


def best_member(history: list[dict[str, float]], count: int) -> int:
    """The finished member whose best epoch scored best on validation (`metrics.better`), from the run's history rows."""
    best_member, best_row = 0, None
    for member in range(count):
        for row in (r for r in history if r.get("member", 0) == member):
            if best_row is None or better(row["val_accuracy"], row["val_loss"], best_row["val_accuracy"], best_row["val_loss"]):
                best_member, best_row = member, row
    return best_member


def build_student(tcfg: TrainConfig, model_config: ModelConfig, member: GRUClassifier) -> tuple[ModelConfig, GRUClassifier]:
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
        self.swaps = category_words(members(teacher)[0]) if copies and swap_p > 0 else None

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


def category_words(member: GRUClassifier):
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


def distillation_loss(hard: torch.Tensor | None, logits: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """The student's loss: the squared error between its logits and the teacher's log-probabilities, both centred
    (logit matching, the high-temperature limit of distillation: Hinton et al. 2015; Ba & Caruana 2014), mixed with
    `hard`, the loss on the true labels, as `weight` x matching + (1 - `weight`) x `hard` (None: the matching alone).

    logits: [batch, classes] the student's; teacher: [batch, classes] the ensemble's log-probabilities. For two
    classes the matching term is the squared error of the two logit gaps.
    """
    gap = (logits - logits.mean(-1, keepdim=True)) - (teacher - teacher.mean(-1, keepdim=True))
    soft = 2 * gap.pow(2).sum(-1).mean()
    return soft if hard is None else weight * soft + (1 - weight) * hard

