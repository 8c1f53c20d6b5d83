"""The classifier task the training loop runs, for an ensemble member and for the student alike: cross-entropy on the
labels (each label weighed by --class-weight), with an adversarial second pass, or the distillation loss where a batch
carries the teacher's logits; validation accuracy and loss to choose the best epoch; ULMFiT's per-group learning rates
and gradual unfreezing."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig, class_weight_spec
from ..data.batching import Batch, TokenIds, batched_logits
from ..errors import ConfigError
from ..metrics import accuracy_and_macro_f1
from ..model.classifier import GRUClassifier
from .distill import distillation_loss
from .distributed import SINGLE, Dist
from .loop import Epoch, Loss, Validation
from .precision import autocast, resolve_precision
from .pretrain import layer_groups


class ClassifierTask:
    """Train `model` on `batches` (held, streamed or distilled), choosing the best epoch on the validation split.

    With several processes, validation is split between the ranks and gathered.
    """

    name = "epoch"
    find_unused_parameters = False

    def __init__(self, model: GRUClassifier, batches, val_ids: TokenIds, val_labels: np.ndarray, tcfg: TrainConfig,
                 device: torch.device, dist: Dist = SINGLE, class_weights: np.ndarray | None = None):
        self.model, self.batches, self.tcfg, self.device, self.dist = model, batches, tcfg, device, dist
        self.groups = layer_groups(model)[::-1]  # top down: the classifier, the GRU layers, the embedding
        self.param_groups = _optimizer_groups(model, self.groups, tcfg)
        self.precision = resolve_precision(tcfg.precision, device)  # autocast for the forward pass; the loss is computed in fp32
        # class_weights: [classes], each label's weight in the loss (`class_weights`); None: every label weighs 1
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32, device=device)
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=tcfg.label_smoothing)
        self.val_ids, self.val_labels = val_ids, val_labels  # val_labels: [n] class ids
        self.my_val = val_ids.take(np.arange(dist.rank, len(val_ids), dist.world_size)) if dist.enabled else val_ids

    def before_epoch(self, epoch: int) -> bool:
        """Gradual unfreezing: the top `epoch + 1` layer groups train."""
        if not self.tcfg.gradual_unfreezing:
            return False
        for depth, group in enumerate(self.groups):
            for param in group:
                param.requires_grad_(depth <= epoch)
        return True

    def loss(self, net: nn.Module, batch: Batch) -> Loss:
        ids = batch.ids.to(self.device, non_blocking=True)
        if not self.tcfg.adversarial:
            return Loss(self._loss(net, batch, ids), len(batch.labels))
        # adversarial training: the clean pass's gradient on this zero perturbation gives each text's worst direction
        zero = torch.zeros(*ids.shape, self.model.config.embedding_dim, device=self.device, requires_grad=True)
        return Loss(self._loss(net, batch, ids, zero), len(batch.labels),
                    again=lambda: self._loss(net, batch, ids, _adversarial_perturbation(zero.grad, self.tcfg.adversarial)))

    def _loss(self, net: nn.Module, batch: Batch, ids: torch.Tensor, perturbation: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy on the batch's labels, or the distillation loss when it has the teacher's logits."""
        with autocast(self.precision, self.device):
            logits = net(ids, batch.lengths) if perturbation is None else net(ids, batch.lengths, perturbation)
        loss = self.loss_fn(logits.float(), batch.labels.to(self.device))
        if batch.teacher is not None:  # made-up variants (no rows) learn from the teacher alone
            loss = distillation_loss(loss if batch.rows is not None else None, logits.float(), batch.teacher.to(self.device),
                                     self.tcfg.distill_weight)
        return loss

    def validate(self, epoch: Epoch) -> Validation:
        logits = self.dist.gather_rows(batched_logits(self.model, self.my_val, batch_size=256, device=self.device), len(self.val_ids),
                                       self.device)
        loss = float(self.loss_fn(logits.to(self.device), torch.from_numpy(self.val_labels).to(self.device)).item())
        accuracy, f1 = map(float, accuracy_and_macro_f1(self.val_labels, logits.argmax(-1).numpy(), self.model.config.num_classes))
        row = {"epoch": epoch.number, "train_loss": epoch.train_loss, "val_loss": loss, "val_accuracy": accuracy, "val_macro_f1": f1,
               "seconds": epoch.seconds, "tokens_per_second": epoch.tokens_per_second, "learning_rate": epoch.learning_rate}
        summary = f"train loss {epoch.train_loss:.4f}  val loss {loss:.4f}  val acc {accuracy:.4f}  val macro-F1 {f1:.4f}"
        return Validation(row, summary, accuracy=accuracy, loss=loss)


def class_weights(spec: str | None, label_names: list[str], labels: np.ndarray | None) -> np.ndarray | None:
    """Each label's weight in the training loss from --class-weight (`config.class_weight_spec`): "balanced" is
    n_samples / (n_classes * count) over the training labels `labels` (class ids), as scikit-learn computes it; named
    weights leave the other labels at 1. None without --class-weight."""
    parsed = class_weight_spec(spec)
    if parsed is None:
        return None
    if parsed == "balanced":
        counts = np.bincount(labels, minlength=len(label_names))
        return len(labels) / (len(label_names) * np.maximum(counts, 1))
    unknown = sorted(set(parsed) - set(label_names))
    if unknown:
        raise ConfigError(f"--class-weight names labels the data does not have: {', '.join(unknown)}. "
                          f"Its labels are: {', '.join(label_names)}.")
    return np.array([parsed.get(name, 1.0) for name in label_names])


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
