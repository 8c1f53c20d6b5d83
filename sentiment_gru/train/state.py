"""The training state a checkpoint holds, typed: the training loop's (`LoopState`) inside the run's (`RunState`).

`to_dict` gives tensors and plain Python values only, which `torch.load(weights_only=True)` reads back; `from_dict`
takes such a dict back (other keys, such as the checkpoint's format version and config, are left aside).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch

StateDict = dict[str, torch.Tensor]


@dataclass
class LoopState:
    """Where one run of the training loop stands: what it trains, and where in its epochs it is."""

    model: StateDict = field(default_factory=dict)  # the trained module's weights (filled in when saved)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0  # epochs done
    step: int = 0  # steps done in the next epoch
    totals: list[float] = field(default_factory=lambda: [0.0, 0, 0])  # the next epoch's so far: loss x terms, terms, tokens
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch done
    best_epoch: int = 0  # the epoch validation liked best (0: none yet)
    best_accuracy: float = -1.0
    best_loss: float = math.inf
    best_weights: StateDict | None = None  # the model's weights after `best_epoch`
    stale: int = 0  # epochs done since `best_epoch`
    bucket_rng: list[Any] = field(default_factory=list)  # the batches' RNG at the start of the next epoch (`checkpoint.random_state`)
    rng: dict[str, Any] = field(default_factory=dict)  # Python's, NumPy's and torch's RNG states when saved (`checkpoint.rng_states`)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> LoopState:
        return cls(**{f.name: state[f.name] for f in fields(cls)})


@dataclass
class RunState:
    """Where a whole run stands: pretraining, or which classifier (ensemble member or student) is training; the
    classifiers done; and the loop state of the stage under way."""

    tokenizer: str  # the run's tokenizer as JSON (`Tokenizer.to_str`)
    member: int = 0  # after pretraining, the classifier training: ensemble member k, or the student after the last member
    finished: list[StateDict] = field(default_factory=list)  # the weights of the classifiers before `member`, at their best epochs
    history: list[dict[str, float]] = field(default_factory=list)  # their history rows
    best_epochs: list[int] = field(default_factory=list)  # their best epochs
    pretrained: StateDict | None = None  # the classifier's weights after pretraining (None: none, or not yet)
    pretraining: list[dict[str, float]] = field(default_factory=list)  # pretraining's history rows, once it is done
    pretrain_state: LoopState | None = None  # while pretraining: its loop's state
    fit: LoopState | None = None  # while classifier `member` trains: its loop's state

    def to_dict(self) -> dict[str, Any]:
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**state, **{key: None if state[key] is None else state[key].to_dict() for key in ("pretrain_state", "fit")}}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RunState:
        loops = {key: None if state[key] is None else LoopState.from_dict(state[key]) for key in ("pretrain_state", "fit")}
        return cls(**{**{f.name: state[f.name] for f in fields(cls)}, **loops})
