"""Language-model pretraining: before it learns labels, the classifier's embedding and GRU learn to predict each
token from the tokens before it (the forward direction) and from those after it (the backward direction), on
unlabelled texts: the training split's own, or a file of the user's (ULMFiT, Howard & Ruder 2018; the two
directions of one network as in ELMo, Peters et al. 2018).

The classifier is then fine-tuned as in ULMFiT: discriminative learning rates (each layer group below the
classifier at the rate of the one above divided by a factor) and gradual unfreezing (the classifier alone in
the first epoch, one more group from the top each epoch after). See `layer_groups`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..data.batching import Batch, HeldBatches, TokenIds, sorted_batches
from ..model.classifier import GRUClassifier
from ..text.tokenizer import PAD_ID
from .checkpoint import Checkpoints
from .distributed import SINGLE, Dist
from .loop import Epoch, Loss, Settings, Validation, run
from .state import LoopState

log = logging.getLogger(__name__)

# Adaptive softmax (Grave et al. 2017): the most frequent tokens get full-width scores, the rarer ones narrower
# clusters, so the output layer costs about what the GRU does instead of several times more.
CLUSTER_EDGES = (2000, 8000)
# In training, each direction predicts this share of the positions, drawn afresh each batch: the GRU still reads every
# token, and the output layer, which would otherwise take most of the time, costs a quarter (measured on IMDB-length
# batches of 64 texts of 300-400 tokens here: 11k tok/s predicting every position, 33k a quarter; the classifier trains
# at 56k).
TRAINING_PREDICTION_SHARE = 0.25


class LanguageModel(nn.Module):
    """A classifier's embedding and encoder with a next-token head: `forward` returns the mean loss of predicting every
    token from its left context (forward states) and from its right context (backward states)."""

    def __init__(self, classifier: GRUClassifier, token_counts: np.ndarray):
        super().__init__()
        config = classifier.config
        self.classifier = classifier
        vocab = config.vocab_size
        # the head's classes are the tokens by falling frequency in the pretraining texts
        order = np.argsort(-token_counts[:vocab], kind="stable")
        rank = np.empty(vocab, dtype=np.int64)
        rank[order] = np.arange(vocab)
        self.register_buffer("rank", torch.from_numpy(rank))
        # each cluster's vectors are 4 times narrower than the one before's; no cluster narrower than one unit
        cutoffs = [edge for k, edge in enumerate(CLUSTER_EDGES, 1) if edge < vocab - 1 and config.hidden_size >= 4 ** k]
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.AdaptiveLogSoftmaxWithLoss(config.hidden_size, vocab, cutoffs, div_value=4.0) if cutoffs else None
        self.full = nn.Linear(config.hidden_size, vocab) if not cutoffs else None  # small vocabularies: a plain softmax

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
        """ids: [batch, seq], lengths: [batch] (CPU) -> (mean loss per predicted token, number of predictions)."""
        classifier = self.classifier
        H = classifier.config.hidden_size
        out = classifier.encoder.forward_directions(classifier.token_dropout(classifier.embed(ids)), lengths)  # [batch, seq, 2H]
        positions = torch.arange(ids.size(1), device=ids.device)[None, :]
        length = lengths.to(ids.device)[:, None]
        ahead = positions < length - 1  # the forward state at t predicts token t + 1
        behind = (positions >= 1) & (positions < length)  # the backward state at t predicts token t - 1
        if self.training:
            ahead &= torch.rand(ahead.shape, device=ids.device) < TRAINING_PREDICTION_SHARE
            behind &= torch.rand(behind.shape, device=ids.device) < TRAINING_PREDICTION_SHARE
        states = torch.cat([out[..., :H][ahead], out[..., H:][behind]])  # [predictions, H]
        targets = torch.cat([ids[:, 1:][ahead[:, :-1]], ids[:, :-1][behind[:, 1:]]])
        if not len(targets):  # one-token texts only: nothing to predict
            return out.sum() * 0.0, 0
        states, targets = self.dropout(states), self.rank[targets]
        if self.head is not None:
            return self.head(states, targets).loss, len(targets)
        return nn.functional.cross_entropy(self.full(states), targets), len(targets)


class Pretraining:
    """Language-model pretraining as a task for the training loop: `classifier`'s embedding and GRU, with a next-token
    head, learn to predict the tokens of `ids` both ways; `val_ids` give each epoch's validation perplexity (on rank 0)."""

    name = "pretraining epoch"
    # the classifier's output layer is not used here, and a rare-token cluster may get no target in a batch: with
    # several processes, DistributedDataParallel has to look for the parameters each step leaves without a gradient
    find_unused_parameters = True

    def __init__(self, classifier: GRUClassifier, ids: TokenIds, val_ids: TokenIds | None, tcfg: TrainConfig, device: torch.device,
                 dist: Dist = SINGLE, from_scratch: bool = True):
        self.model = LanguageModel(classifier, ids.token_counts(classifier.config.vocab_size)).to(device)
        if from_scratch:  # a trained parent's weights between the directions are kept: pretraining does not use them
            _zero_cross_direction_inputs(classifier)
        self.param_groups = [{"params": list(self.model.parameters()), "weight_decay": tcfg.weight_decay}]
        self.batches = HeldBatches(ids, np.zeros(len(ids), dtype=np.int64), batch_size=tcfg.batch_size, bucket_size=tcfg.bucket_size,
                                   rank=dist.rank, world_size=dist.world_size, pad_id=PAD_ID)
        self.val_ids, self.device, self.dist = val_ids, device, dist

    def before_epoch(self, epoch: int) -> bool:
        return False

    def loss(self, net: nn.Module, batch: Batch) -> Loss:
        loss, predictions = net(batch.ids.to(self.device, non_blocking=True), batch.lengths)
        return Loss(loss, predictions)

    def validate(self, epoch: Epoch) -> Validation:
        row = {"pretrain_epoch": epoch.number, "train_loss": epoch.train_loss, "seconds": epoch.seconds,
               "tokens_per_second": epoch.tokens_per_second}
        summary = f"train perplexity {math.exp(epoch.train_loss):.1f}"
        if self.val_ids is not None and self.dist.is_main:
            row["val_loss"] = language_model_loss(self.model, self.val_ids, self.device)
            summary += f"  val perplexity {math.exp(row['val_loss']):.1f}"
        return Validation(row, summary)


def pretrain(classifier: GRUClassifier, ids: TokenIds, val_ids: TokenIds | None, tcfg: TrainConfig, device: torch.device,
             dist: Dist = SINGLE, progress: bool | None = None, checkpoints: Checkpoints | None = None,
             save: Callable[[LoopState], None] | None = None, resume: LoopState | None = None,
             from_scratch: bool = True) -> list[dict[str, float]]:
    """Train `classifier`'s embedding and GRU as forward and backward language models on `ids` for
    `tcfg.pretrain_epochs` epochs of the training loop; return one history row per epoch.

    The input columns through which a direction above the first layer reads the other direction start at zero
    and stay there (`BiGRUEncoder.forward_directions` never uses them), so the fine-tuned classifier starts
    from exactly the pretrained network and learns to mix the directions; a classifier started from a trained
    model (not `from_scratch`) keeps its own. `save` and `resume` are the loop's.
    """
    task = Pretraining(classifier, ids, val_ids, tcfg, device, dist, from_scratch=from_scratch)
    log.info("pretraining the embedding and GRU as forward and backward language models: %s texts, %s tokens, %d epochs",
             f"{len(ids):,}", f"{int(ids.lengths.sum()):,}", tcfg.pretrain_epochs)
    settings = Settings.of(tcfg, epochs=tcfg.pretrain_epochs, learning_rate=tcfg.pretrain_learning_rate or tcfg.learning_rate,
                           rate_option="--pretrain-learning-rate")
    return run(task, settings, tcfg.seed, device, dist, progress, checkpoints, save, resume).history


@torch.no_grad()
def language_model_loss(model: LanguageModel, ids: TokenIds, device: torch.device, batch_size: int = 64) -> float:
    """Mean loss per predicted token over `ids`, in eval mode (no dropout); the model's mode is restored."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for rows in sorted_batches(ids.lengths, batch_size):
        batch, lengths = ids.batch(rows, PAD_ID)
        loss, predictions = model(batch.to(device), lengths)
        total, count = total + float(loss) * predictions, count + predictions
    model.train(was_training)
    return total / max(1, count)


def _zero_cross_direction_inputs(classifier: GRUClassifier) -> None:
    """Zero the input weights through which each direction above the first layer reads the other direction."""
    gru = classifier.encoder.gru
    H = gru.hidden_size
    with torch.no_grad():
        for layer in range(1, gru.num_layers):
            getattr(gru, f"weight_ih_l{layer}")[:, H:].zero_()
            getattr(gru, f"weight_ih_l{layer}_reverse")[:, :H].zero_()


def layer_groups(classifier: GRUClassifier) -> list[list[nn.Parameter]]:
    """The classifier's parameters in layer groups from the bottom up: the embedding (with the lexicon's category
    vectors), each GRU layer (both directions), then the classifier on top."""
    groups: list[list[nn.Parameter]] = [[], *([] for _ in range(classifier.config.num_layers)), []]
    for name, param in classifier.named_parameters():
        if name.startswith(("embedding", "categories")):
            groups[0].append(param)
        elif name.startswith("encoder.gru."):
            groups[1 + int(name.split("_l")[1].split("_")[0])].append(param)
        else:
            groups[-1].append(param)
    return groups
