"""The service's settings: what it loads, how it batches, the limits it enforces; each field is the serve command's
option of the same name, its default, bounds and help declared once."""

from dataclasses import dataclass

from ..config import MAX_BATCH_SIZE, option, validate_options
from ..inference.backends import BACKEND_CHOICES, BACKEND_HELP


@dataclass(frozen=True)
class ServeSettings:
    """What the server loads, how it batches, the limits it enforces and how long it lets requests finish when stopped;
    each field is the option of the same name."""

    artifacts: str = "artifacts"  # the model folder to serve
    backend: str = option("auto", BACKEND_HELP, choices=BACKEND_CHOICES)
    threads: int = option(1, "threads per forward pass, on either backend: one leaves a core to the HTTP side, and micro-batching, "
                             "not threads, makes a busy server fast; scale out with more processes", low=1, high=1024)
    max_batch_size: int = option(32, "texts per forward pass; 1 turns micro-batching off", low=1, high=MAX_BATCH_SIZE)
    max_wait_ms: float = option(0.0, "how long a request may wait for others to share its forward pass; 0: a batch is whatever "
                                     "waits when the model is free, which grows with the load", low=0.0, high=10_000.0)
    max_body_bytes: int = option(1 << 20, "bytes in a request body", low=64, high=1 << 30)
    max_texts: int = option(64, "texts per /predict request", low=1, high=1_000_000)
    max_explain_texts: int = option(8, "texts per /explain request (each costs a forward pass per token)", low=1, high=1_000_000)
    max_chars: int = option(10_000, "characters per text", low=1, high=100_000_000)
    graceful_timeout: float = option(30.0, "on SIGTERM or Ctrl+C, seconds to let requests in flight finish", low=0.0, high=float("inf"))

    def __post_init__(self) -> None:
        validate_options(self)

    def limits(self) -> dict[str, int]:
        return {"max_body_bytes": self.max_body_bytes, "max_texts": self.max_texts,
                "max_explain_texts": self.max_explain_texts, "max_chars": self.max_chars}


# The command-line options of ServeSettings' fields but artifacts, by section of --help (None: the first section).
OPTION_GROUPS = {
    "model": ("backend", "threads"),
    "micro-batching": ("max_batch_size", "max_wait_ms"),
    "limits (a request over one gets a 413 or 422 that names it)": ("max_body_bytes", "max_texts", "max_explain_texts", "max_chars"),
    None: ("graceful_timeout",),
}


def flag(setting: str) -> str:
    """The option of a setting: --max-texts for max_texts."""
    return "--" + setting.replace("_", "-")
