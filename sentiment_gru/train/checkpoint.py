"""Resumable training checkpoints, and SIGINT/SIGTERM turned into a clean stop.

A run writing the model folder `OUT` keeps its checkpoint in the sibling folder
`OUT.checkpoint/`: `checkpoint.pt` (weights, optimizer, scheduler, RNG states,
epoch and step, early-stopping state, finished ensemble members), the
tokenizer and the run config. Every file is written to a temporary name and
renamed, so a checkpoint on disk is always complete. `checkpoint.pt` is read
with `torch.load(weights_only=True)`: tensors and plain Python values only, so
a crafted pickle cannot run code. The folder is removed when the run succeeds.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, TrainingInterrupted
from ..files import CONFIG_FILE, TOKENIZER_FILE, atomic_write

CHECKPOINT_FORMAT_VERSION = 2
STATE_FILE = "checkpoint.pt"
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def checkpoint_dir(output_dir: str | Path) -> Path:
    """The checkpoint folder of a run writing `output_dir`: its sibling `NAME.checkpoint/`."""
    output_dir = Path(output_dir)
    return output_dir.with_name(f"{output_dir.name}.checkpoint")


def rng_states() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors and plain values (loadable with weights_only)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def random_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_random_state(rng: random.Random, state: list[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """Read `checkpoint.pt` with weights_only=True; anything else (code, foreign objects, damage) is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain values, so loading it could run code "
            f"({reason}). Delete {path.parent}/ to start over."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]}). Delete {path.parent}/ to start over.") from None
    if not isinstance(state, dict) or state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a checkpoint of this version of sentiment-gru. Delete {path.parent}/ to start over.")
    return state


def stop_flags(checkpoints: "Checkpoints | None") -> list[float]:
    """This process's stop request as [SIGINT, SIGTERM] flags, to be summed over the ranks."""
    signum = checkpoints.stop_signal if checkpoints is not None else None
    return [float(signum == signal.SIGINT), float(signum == signal.SIGTERM)]


def agreed_signal(flags: list[float]) -> int | None:
    """The stop the ranks agree on from their summed flags: SIGTERM over SIGINT; None: go on."""
    return signal.SIGTERM if flags[1] else signal.SIGINT if flags[0] else None


class Checkpoints:
    """The checkpoint folder of one run: saves training state, holds the state to resume from, watches signals."""

    def __init__(self, folder: str | Path, config: dict[str, Any], resume: bool):
        self.folder = Path(folder)
        self.config = json.loads(json.dumps(config))  # the run config as plain JSON values
        self.stop_signal: int | None = None
        self.resumed: dict[str, Any] | None = None
        if resume:
            self.resumed = self._load()
        elif (self.folder / STATE_FILE).exists():
            raise CheckpointError(
                f"{self.folder}/ holds the checkpoint of an interrupted run. Add --resume to continue it, "
                f"or delete {self.folder}/ to start over."
            )

    def _load(self) -> dict[str, Any]:
        path = self.folder / STATE_FILE
        if not path.is_file():
            raise CheckpointError(f"--resume: no checkpoint in {self.folder}/. Run without --resume to start training.")
        state = load_checkpoint_file(path)
        saved = json.loads(state["config"])
        if saved != self.config:
            changed = sorted(
                f"{section}.{key}" for section in set(saved) | set(self.config)
                for key in set(saved.get(section) or {}) | set(self.config.get(section) or {})
                if (saved.get(section) or {}).get(key) != (self.config.get(section) or {}).get(key)
            )
            raise CheckpointError(
                f"--resume: the options differ from the interrupted run's ({', '.join(changed) or 'preset'}). "
                f"Repeat its options, or delete {self.folder}/ to start over."
            )
        return state

    def save(self, state: dict[str, Any], tokenizer: Any) -> None:
        """Write the state, tokenizer and config, each atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / ".gitignore").write_text("*\n")
        full = {"format_version": CHECKPOINT_FORMAT_VERSION, "config": json.dumps(self.config, sort_keys=True), **state}
        atomic_write(self.folder / TOKENIZER_FILE, lambda tmp: tokenizer.save(tmp))
        atomic_write(self.folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(self.config, indent=2) + "\n"))
        atomic_write(self.folder / STATE_FILE, lambda tmp: torch.save(full, tmp))

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)

    def check_stop(self, where: str, signum: int | None = None) -> None:
        """Raise TrainingInterrupted when a signal arrived; call right after saving a checkpoint.

        With several processes, `signum` is the signal they agreed on (None: go on), not this one's own.
        """
        signum = self.stop_signal if signum is None else signum
        if signum is not None:
            raise TrainingInterrupted(
                f"{SIGNAL_NAMES.get(signum, signum)} received: stopped {where}; checkpoint saved in {self.folder}/.", signum,
            )

    @contextlib.contextmanager
    def watch_signals(self) -> Iterator[None]:
        """Until the block ends, SIGINT/SIGTERM ask for a stop at the next step; a second one stops at once."""

        def handle(signum, frame):
            if self.stop_signal is not None:
                raise TrainingInterrupted(
                    f"{SIGNAL_NAMES.get(signum, signum)} received twice: stopped at once; "
                    f"the last checkpoint, if any, is in {self.folder}/.", signum,
                )
            self.stop_signal = signum

        try:
            previous = {s: signal.signal(s, handle) for s in SIGNAL_NAMES}
        except ValueError:  # not the main thread: signals stay as they are
            yield
            return
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
