"""Errors a user can act on.

Every mistake a user can make (a missing column, an unreadable file, no trained
model) raises a subclass of `UserError` whose message says what to do. The
scripts print that message as one line on stderr and exit with status 2.
"""

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with the user's input or set-up, with the fix in the message."""


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
