"""The training loop knows nothing of the model: a made-up task on a linear layer stops early at its best epoch, and a
run stopped after any step resumes, through a checkpoint's plain dict, to exactly the uninterrupted result."""

from __future__ import annotations

import io
import signal
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sentiment_gru.errors import TrainingInterrupted
from sentiment_gru.train.checkpoint import Checkpoints
from sentiment_gru.train.loop import Epoch, Loss, Settings, Validation, run
from sentiment_gru.train.state import LoopState

CPU = torch.device("cpu")


class Toy:
    """Four shuffled batches of 8 rows an epoch through dropout and a linear layer; `scores[e]` is epoch e + 1's accuracy."""

    name = "epoch"
    find_unused_parameters = False

    def __init__(self, scores: list[float], stop_at: tuple[Checkpoints, int] | None = None):
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Dropout(0.3), nn.Linear(4, 2))  # dropout draws from torch's RNG every step
        self.param_groups = [{"params": list(self.model.parameters())}]
        data = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(32, 4, generator=data), torch.randint(0, 2, (32,), generator=data)
        self.batches, self.steps = self, 4
        self.scores, self.stop_at, self.calls, self.weights = scores, stop_at, 0, []

    def epoch(self, number, rng, skip=0):
        rows = list(range(32))
        rng.shuffle(rows)
        for k in range(skip, self.steps):
            batch = rows[8 * k:8 * k + 8]
            yield SimpleNamespace(x=self.x[batch], y=self.y[batch], lengths=torch.full((8,), 3))

    def before_epoch(self, epoch: int) -> bool:
        return False

    def loss(self, net, batch) -> Loss:
        self.calls += 1
        if self.stop_at is not None and self.calls == self.stop_at[1]:
            self.stop_at[0].stop_signal = signal.SIGTERM  # as SIGTERM arriving during this step would
        return Loss(nn.functional.cross_entropy(net(batch.x), batch.y), len(batch.y))

    def validate(self, epoch: Epoch) -> Validation:
        self.weights.append({name: value.clone() for name, value in self.model.state_dict().items()})
        return Validation({"epoch": epoch.number, "train_loss": epoch.train_loss}, "", accuracy=self.scores[epoch.number - 1], loss=1.0)


def _saved(into: list[bytes]):
    """A save callback that keeps each state as `checkpoint.pt` holds it."""
    def save(state: LoopState) -> None:
        buffer = io.BytesIO()
        torch.save(state.to_dict(), buffer)
        into.append(buffer.getvalue())
    return save


def _loaded(saved: bytes) -> LoopState:
    return LoopState.from_dict(torch.load(io.BytesIO(saved), weights_only=True))


def test_the_loop_stops_after_patience_epochs_without_gain_at_its_best_epoch():
    task, saved = Toy([0.5, 0.7, 0.6, 0.6, 0.9]), []
    state = run(task, Settings(epochs=5, learning_rate=0.1, warmup_fraction=0.1, clip_norm=1.0, patience=2), seed=0, device=CPU,
                save=_saved(saved))
    assert [row["epoch"] for row in state.history] == [1, 2, 3, 4] and state.best_epoch == 2
    assert [_loaded(s).epoch for s in saved] == [0, 1, 2, 3, 4]  # when it starts, then after each epoch
    for name, value in task.model.state_dict().items():
        torch.testing.assert_close(value, task.weights[1][name], rtol=0, atol=0)
    assert not all(torch.equal(value, task.weights[-1][name]) for name, value in task.model.state_dict().items())


def test_a_run_stopped_after_any_step_resumes_to_the_uninterrupted_result(tmp_path):
    settings = Settings(epochs=3, learning_rate=0.05, warmup_fraction=0.2, clip_norm=1.0)
    scores = [0.5, 0.6, 0.7]
    whole = Toy(scores)
    reference = run(whole, settings, seed=3, device=CPU)

    checkpoints, saved = Checkpoints(tmp_path / "run.checkpoint", {}, resume=False), []
    with pytest.raises(TrainingInterrupted, match="stopped in epoch 2 after step 2"):
        run(Toy(scores, stop_at=(checkpoints, 6)), settings, seed=3, device=CPU, checkpoints=checkpoints, save=_saved(saved))
    assert (_loaded(saved[-1]).epoch, _loaded(saved[-1]).step) == (1, 2)

    resumed = Toy(scores)
    state = run(resumed, settings, seed=3, device=CPU, resume=_loaded(saved[-1]))
    assert state.history == reference.history
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, whole.model.state_dict()[name], rtol=0, atol=0)
