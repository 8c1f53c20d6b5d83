"""The service's settings: what it loads, how it batches, the limits it enforces; each field is the serve command's
option of the same name, its default, bounds and help declared once."""

from dataclasses import dataclass, field

from ..config import MAX_BATCH_SIZE, option, validate_options
from ..errors import ConfigError
from ..inference.backends import BACKEND_CHOICES, BACKEND_HELP

API_KEY_VARIABLE = "SENTIMENT_GRU_API_KEY"  # the environment variable that gives the API key (kept out of `ps`)
MIN_API_KEY_LENGTH = 16


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
    max_explain_tokens: int = option(1024, "tokens per /explain request, its texts together (each token costs a forward pass "
                                           "over its text)", low=1, high=1_000_000)
    work_timeout: float = option(60.0, "seconds one call of the model (a /predict batch, an /explain request) may take; past it "
                                       "the request gets a 503 and /health says failed, so that the service is restarted",
                                 low=0.1, high=86_400.0)
    keep_alive_timeout: float = option(5.0, "seconds a connection may stay idle, before its first request and between "
                                            "requests (uvicorn's timeout_keep_alive)", low=0.1, high=86_400.0)
    header_timeout: float = option(10.0, "seconds a client has to send a request's line and headers, from their first byte; "
                                         "then a 408 and the connection is closed", low=0.1, high=86_400.0)
    body_timeout: float = option(30.0, "seconds a client has to send a request's body once its headers are in; then a 408 and "
                                       "the connection is closed", low=0.1, high=86_400.0)
    max_header_bytes: int = option(16_384, "bytes in a request's line and headers; more gets a 431 and the connection is closed",
                                   low=1024, high=1 << 24)
    graceful_timeout: float = option(30.0, "on SIGTERM or Ctrl+C, seconds to let requests in flight finish", low=0.0, high=float("inf"))
    api_key: str | None = field(default=None, repr=False)  # --api-key or API_KEY_VARIABLE: clients send "Authorization: Bearer KEY"

    def __post_init__(self) -> None:
        validate_options(self)
        if self.api_key is not None and (not isinstance(self.api_key, str) or len(self.api_key) < MIN_API_KEY_LENGTH
                                         or not self.api_key.isprintable() or self.api_key != self.api_key.strip()):
            raise ConfigError(f"The API key (--api-key or {API_KEY_VARIABLE}) must be at least {MIN_API_KEY_LENGTH} printable "
                              "characters without spaces at either end; make one with: python -c \"import secrets; "
                              "print(secrets.token_urlsafe(32))\"")

    def limits(self) -> dict[str, int]:
        return {"max_body_bytes": self.max_body_bytes, "max_texts": self.max_texts, "max_explain_texts": self.max_explain_texts,
                "max_chars": self.max_chars, "max_explain_tokens": self.max_explain_tokens, "max_header_bytes": self.max_header_bytes}

    def timeouts(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in ("work_timeout", "keep_alive_timeout", "header_timeout", "body_timeout")}


# The command-line options of ServeSettings' fields but artifacts and api_key, by section of --help (None: the first section).
OPTION_GROUPS = {
    "model": ("backend", "threads"),
    "micro-batching": ("max_batch_size", "max_wait_ms"),
    "limits (a request over one gets a 413, 422 or 431 that names it)": ("max_body_bytes", "max_texts", "max_explain_texts", "max_chars",
                                                                        "max_explain_tokens", "max_header_bytes"),
    "timeouts (seconds)": ("work_timeout", "keep_alive_timeout", "header_timeout", "body_timeout", "graceful_timeout"),
}


def flag(setting: str) -> str:
    """The option of a setting: --max-texts for max_texts."""
    return "--" + setting.replace("_", "-")
