"""Errors a user can act on.

Every mistake a user can make (a missing column, an unreadable file, no trained
model) raises a subclass of `UserError` whose message says what to do. The
scripts print that message as one line on stderr and exit with status 2.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_USER_ERROR = 2


def command(name: str) -> str:
    """How the user runs this project's `name` command: `python scripts/NAME.py` when they ran a script
    of a clone, `sentiment-gru NAME` when they ran the one command, else the console command that installing
    the package gives for it (`sentiment-gru-NAME`)."""
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if running is not None and running.parent.name == "scripts" and running.suffix == ".py":
        return f"python scripts/{name}.py"
    if running is not None and running.name == "sentiment-gru":
        return f"sentiment-gru {name}"
    return f"sentiment-gru-{name}"


def train_hint() -> str:
    """What to run when there is no usable model, said the way the user runs commands."""
    train = command("train")
    return f"Run: make train (or {train} --output-dir DIR)" if train.startswith("python") else f"Run: {train} --output-dir DIR"


class UserError(Exception):
    """A problem with the user's input or set-up, with the fix in the message."""


def run_command(main: Callable[..., int], *args: Any) -> int:
    """`main(*args)`'s exit status; a UserError becomes its message as one line on stderr and EXIT_USER_ERROR."""
    try:
        return main(*args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


class DataError(UserError):
    """The data cannot be loaded or is not usable for training."""


class ConfigError(UserError, ValueError):
    """An option or configuration value is out of range or malformed."""


class ArtifactsError(UserError):
    """A model folder is missing, incomplete or invalid."""


class TrainingError(UserError):
    """Training cannot go on: the loss diverged, or the device ran out of memory."""


class CheckpointError(UserError):
    """A training checkpoint is missing, unreadable, unsafe or from other options."""


class TrainingInterrupted(BaseException):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved; exit status 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + int(signum)
