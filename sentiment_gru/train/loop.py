"""The one training loop: classifier training, language-model pretraining and distillation all run it.

It owns what they share: AdamW over the parameter groups a task gives, warm-up then linear decay, gradient clipping,
the divergence checks, DistributedDataParallel, the progress shown, the epochs and steps, early stopping on
validation (`metrics.better`), and checkpoints: when it starts, after each epoch, and after the current step when
SIGINT/SIGTERM asks for a stop. It knows nothing of the model: a `Task` brings its batches, its loss and its validation.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import TrainingError
from ..metrics import better
from .checkpoint import STATE_FILE, Checkpoints, agreed_signal, random_state, rng_states, set_random_state, set_rng_states, stop_flags
from .distributed import SINGLE, Dist
from .schedule import Progress, warmup_linear
from .state import LoopState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """How long and how fast a task trains."""

    epochs: int  # at most; fewer when validation stops early
    learning_rate: float  # the peak rate of parameter groups that set none; the divergence advice names it
    warmup_fraction: float
    clip_norm: float  # the largest gradient norm (0: no clipping)
    patience: float = math.inf  # epochs without a better validation score before stopping
    rate_option: str = "--learning-rate"  # the option that sets `learning_rate`, for the divergence advice

    @classmethod
    def of(cls, tcfg: TrainConfig, **changes: Any) -> Settings:
        return cls(**{"epochs": tcfg.epochs, "learning_rate": tcfg.learning_rate, "warmup_fraction": tcfg.warmup_fraction,
                      "clip_norm": tcfg.clip_norm, "patience": tcfg.patience, **changes})


@dataclass
class Loss:
    """A batch's loss, as a task's `loss` gives it."""

    value: torch.Tensor  # the batch's mean loss, to backpropagate
    count: int  # how many terms the mean is over (texts, predicted tokens): an epoch's train loss weighs batches by it
    again: Callable[[], torch.Tensor] | None = None  # a second pass after the first backward (adversarial); its gradients add


@dataclass
class Epoch:
    """What the loop measured in an epoch, for the task's history row."""

    number: int  # counted from 1
    train_loss: float
    seconds: float
    tokens_per_second: float
    learning_rate: float  # the first parameter group's, at the end of the epoch


@dataclass
class Validation:
    """An epoch's end, as a task's `validate` gives it."""

    row: dict[str, float]  # the epoch's history row
    summary: str  # its figures for the log line, e.g. `train loss 0.5231  val loss 0.4960  val acc 0.7710`
    accuracy: float | None = None  # with `loss`: the score the best epoch is chosen by; None: no choice, the last epoch stays
    loss: float | None = None  # the validation loss; training stops when it is not finite


class Task(Protocol):
    """What one kind of training brings to the loop."""

    name: str  # what its epochs are called in logs and messages: "epoch", "pretraining epoch"
    model: nn.Module  # what trains: clipped, checkpointed, wrapped in DistributedDataParallel
    param_groups: list[dict]  # AdamW's parameter groups, in order
    batches: Any  # `.steps` per epoch; `.epoch(number, rng, skip)`: that epoch's batches after the first `skip`
    find_unused_parameters: bool  # whether DistributedDataParallel must look for parameters a step leaves without a gradient

    def before_epoch(self, epoch: int) -> bool:
        """Called before epoch `epoch` (from 0); True when it changed which parameters train."""

    def loss(self, net: nn.Module, batch: Any) -> Loss:
        """The batch's loss, computed through `net` (the model, or its DistributedDataParallel wrapper)."""

    def validate(self, epoch: Epoch) -> Validation:
        """Validate the model after an epoch; the row it gives goes into the history."""


def run(task: Task, settings: Settings, seed: int, device: torch.device, dist: Dist = SINGLE, progress: bool | None = None,
        checkpoints: Checkpoints | None = None, save: Callable[[LoopState], None] | None = None,
        resume: LoopState | None = None) -> LoopState:
    """Train `task.model`; leave it at its best epoch (with no choice, its last) and return the final state.

    `seed` seeds the batches' RNG. `save(state)` is called when the loop starts (unless resuming), after each epoch,
    and after the current step when `checkpoints` saw a stop asked for; `resume` is such a state to go on from. With
    several processes, the train loss, token counts and stop requests are summed over the ranks each step, and rank
    0's choice of the best epoch holds for all. `progress`: None shows a bar on a terminal; False nothing.
    """
    model = task.model
    optimizer = torch.optim.AdamW(task.param_groups, lr=settings.learning_rate)
    steps = task.batches.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(steps * settings.epochs, settings.warmup_fraction))
    rng = random.Random(seed)  # shuffles the batches
    if resume is None:
        state = LoopState(bucket_rng=random_state(rng))
    else:
        state = resume
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        set_rng_states(state.rng)

    def wrap() -> nn.Module:  # DistributedDataParallel averages the gradients over the ranks
        return nn.parallel.DistributedDataParallel(model, find_unused_parameters=task.find_unused_parameters) if dist.enabled else model

    def checkpoint(where: str, signum: int | None = None) -> None:
        if save is not None:
            save(dataclasses.replace(state, model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                     rng=rng_states()))
        if checkpoints is not None and (signum is not None or not dist.enabled):
            checkpoints.check_stop(where, signum)

    def diverged(what: str, step: int) -> TrainingError:
        kept = ""
        if checkpoints is not None and (checkpoints.folder / STATE_FILE).is_file():
            kept = f" The last good checkpoint is kept in {checkpoints.folder}/; delete it before retrying with other options."
        rate = settings.learning_rate
        return TrainingError(f"Training diverged: {what} at step {step} of {task.name} {state.epoch + 1}. "
                             f"Lower {settings.rate_option} (now {rate:g}), e.g. to {rate / 10:g}.{kept}")

    net = wrap()
    if resume is None:
        checkpoint(f"before {task.name} 1")
    while state.epoch < settings.epochs and state.stale < settings.patience:
        if task.before_epoch(state.epoch) and dist.enabled:  # DistributedDataParallel fixes the parameters it averages when made
            net = wrap()
        net.train()
        started = time.perf_counter()
        set_random_state(rng, state.bucket_rng)
        shown = Progress(log, f"{task.name} {state.epoch + 1}/{settings.epochs}", state.step, steps, progress if dist.is_main else False)
        for batch in task.batches.epoch(state.epoch, rng, state.step):
            loss = task.loss(net, batch)
            value = loss.value.item()
            # summed over the ranks: loss x terms, terms, tokens, stop flags; a non-finite loss anywhere stops every rank
            stats = dist.sum([value * loss.count, loss.count, int(batch.lengths.sum()), *stop_flags(checkpoints)], device)
            if not math.isfinite(stats[0]):
                raise diverged(f"the training loss became {stats[0] / stats[1] if dist.enabled else value}", state.step + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.value.backward()
            if loss.again is not None:
                loss.again().backward()
            if settings.clip_norm > 0:
                norm = float(nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm))
                if not math.isfinite(norm):
                    raise diverged(f"the gradient norm became {norm}", state.step + 1)
            optimizer.step()
            scheduler.step()
            state.step += 1
            state.totals = [state.totals[0] + stats[0], state.totals[1] + int(stats[1]), state.totals[2] + int(stats[2])]
            shown.update(*state.totals)
            signum = agreed_signal(stats[3:]) if dist.enabled else (checkpoints.stop_signal if checkpoints is not None else None)
            if signum is not None:
                checkpoint(f"in {task.name} {state.epoch + 1} after step {state.step}", signum)
        shown.close()
        seconds = time.perf_counter() - started

        speed = state.totals[2] / seconds  # tokens per second
        validation = task.validate(Epoch(state.epoch + 1, state.totals[0] / max(1, state.totals[1]), seconds, speed, scheduler.get_last_lr()[0]))
        if validation.loss is not None and not math.isfinite(validation.loss):
            raise diverged(f"the validation loss became {validation.loss}", state.step)
        state.epoch += 1
        state.history.append(validation.row)
        improved = False
        if validation.accuracy is not None:  # decided once, on rank 0, for every rank
            improved = dist.broadcast(better(validation.accuracy, validation.loss, state.best_accuracy, state.best_loss))
        log.info("%s %d/%d  %s  %.1fs  %s tok/s%s", task.name, state.epoch, settings.epochs, validation.summary, seconds,
                 f"{speed:,.0f}", "  *best" if improved else "")
        if improved:
            state.best_epoch, state.best_accuracy, state.best_loss, state.stale = state.epoch, validation.accuracy, validation.loss, 0
            state.best_weights = copy.deepcopy(model.state_dict())
        elif validation.accuracy is not None:
            state.stale += 1
            if state.stale >= settings.patience:
                log.info("stopping early: no validation gain for %d epochs", state.stale)
        state.step, state.totals, state.bucket_rng = 0, [0.0, 0, 0], random_state(rng)
        signum = agreed_signal(dist.sum(stop_flags(checkpoints), device)) if dist.enabled else None
        checkpoint(f"at the end of {task.name} {state.epoch}", signum)
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    return state
