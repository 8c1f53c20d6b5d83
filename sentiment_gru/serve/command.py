"""The serve command: its options, the listening socket, and a clean stop on SIGTERM or Ctrl+C.

    $ python scripts/serve.py --artifacts artifacts --port 8000
"""

import argparse
import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
import socket

import uvicorn

from ..errors import ArtifactsError, ConfigError, run_command
from ..inference.backends import choose_backend
from ..inference.folder import read_folder
from .app import create_app
from .connections import protocol_for
from .settings import API_KEY_VARIABLE, OPTION_GROUPS, ServeSettings, flag

logger = logging.getLogger(__name__)


def serve_parser() -> argparse.ArgumentParser:
    fields = {f.name: f for f in dataclasses.fields(ServeSettings)}
    parser = argparse.ArgumentParser(prog="serve", description="Serve a trained model over HTTP: POST /predict, POST /explain, "
                                                               "GET /health, GET /info, /docs, and a page at /.")
    parser.add_argument("--artifacts", default=fields["artifacts"].default, help="trained model folder (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    for title, names in OPTION_GROUPS.items():
        group = parser if title is None else parser.add_argument_group(title)
        for name in names:
            meta, default = fields[name].metadata, fields[name].default
            kind = {"choices": meta["choices"]} if meta["choices"] else {"type": type(default)}
            group.add_argument(flag(name), default=default, help=f"{meta['help']} (default: %(default)s)", **kind)
    parser.add_argument("--api-key", default=None, help=f"clients must send 'Authorization: Bearer KEY' to /predict, /explain and "
                                                        f"/info (/health, the page and the docs stay open); better given as the "
                                                        f"environment variable {API_KEY_VARIABLE}, which `ps` does not show")
    parser.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    return parser


def serve_main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl+C; 0 after a graceful stop, 2 (one line on stderr) on a user error."""
    args = serve_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    return run_command(_serve, args)


def _serve(args: argparse.Namespace) -> int:
    settings = ServeSettings(artifacts=args.artifacts, api_key=args.api_key or os.environ.get(API_KEY_VARIABLE) or None,
                             **{name: getattr(args, name) for names in OPTION_GROUPS.values() for name in names})
    folder = read_folder(settings.artifacts, verify=())  # the usual mistakes, said before the server starts
    choose_backend(settings.backend, folder.path)  # and what the backend asked for needs (--backend onnx: model.onnx)
    listening = _listen(args.host, args.port)
    server: uvicorn.Server | None = None

    def stop() -> None:
        assert server is not None
        server.should_exit = True

    app = create_app(settings, on_load_error=stop)
    # uvicorn's own keep-alive timeout; the other deadlines and the head limit are in its protocol class (connections.py)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=args.access_log, lifespan="on",
                                           timeout_graceful_shutdown=settings.graceful_timeout, http=protocol_for(settings),
                                           timeout_keep_alive=settings.keep_alive_timeout))
    host, port = listening.getsockname()[:2]
    logger.info("serving on http://%s:%d (docs: /docs)%s", host, port, "; API key required" if settings.api_key else "")
    if settings.api_key is None and not _loopback(host):
        logger.warning("warning: %s is reachable from other machines and no API key is set: anyone who can reach port %d can use "
                       "the model. Set %s (or --api-key), or listen on 127.0.0.1.", host, port, API_KEY_VARIABLE)
    with _graceful_signals(stop):
        server.run(sockets=[listening])
    if app.state.service.load_error is not None:
        raise ArtifactsError(app.state.service.load_error)
    return 0


def _loopback(host: str) -> bool:
    """Whether the listening address `host` is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a ConfigError saying why not."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535]. Got {port}.")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}). Pick another --port or --host, "
                          "or stop the process that uses it.") from None


@contextlib.contextmanager
def _graceful_signals(stop):
    """Let SIGTERM and SIGINT end the process with status 0 once uvicorn has shut down gracefully.

    uvicorn re-raises the signal it caught to the handler that was there before it; the default one would kill
    the process (status -15) or raise KeyboardInterrupt. A signal that comes before uvicorn has put its own handlers
    in place calls `stop`, so it is not lost.
    """
    previous = {sig: signal.signal(sig, lambda signum, frame: stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
