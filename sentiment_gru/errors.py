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
