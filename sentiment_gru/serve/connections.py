"""Connections: uvicorn's HTTP protocol (httptools) with a deadline on every phase of a request and a limit on its head.

uvicorn closes a connection that stays idle after a response (`timeout_keep_alive`), but sets no bound on a connection
that never sends a byte, on a request head sent one byte at a time, on a body shorter than its Content-Length, and
none on the size of a head (llhttp buffers any header). Here:

- a connection idle before its first request is closed after `--keep-alive-timeout`, as between requests;
- a request's line and headers must arrive within `--header-timeout` of their first byte, its body within
  `--body-timeout` of the end of the headers; past either, a 408 and the connection is closed;
- a request line and headers over `--max-header-bytes` get a 431 and the connection is closed.

Each error body is JSON naming the setting, as the app's own errors do. Nothing here runs once a request is read: the
app's time is bounded by its own `--work-timeout`.

Each request's scope also gets `scope["extensions"][DISCONNECTED]`: a function that says, at no cost, whether its client
has gone, so the app can drop the work of a request nobody will read before its forward pass.
"""

import asyncio
import json
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import ServeSettings, flag

LINGER = 1.0  # seconds a refused connection is drained before it is closed
DISCONNECTED = "sentiment_gru.disconnected"  # the scope extension: () -> whether the request's client has gone


class DeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the deadlines and the head limit above; `protocol_for` sets their values."""

    header_timeout = 10.0
    body_timeout = 30.0
    max_header_bytes = 16_384

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase: str | None = None  # the deadline the request being read is under: header_timeout, body_timeout, or None
        self._armed: str | None = "idle"  # the phase the timer below was set for
        self._deadline: asyncio.TimerHandle | None = self.loop.call_later(self.timeout_keep_alive, self._expired, None)
        self._head_bytes = 0  # bytes received since the request head began
        self._refused = False  # answered with an error: what the client still sends is dropped until the connection closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)  # the parser calls on_message_begin, on_headers_complete, on_message_complete
        if self._refused or self.transport.is_closing():
            return
        if self._phase == "header_timeout":  # a head still incomplete: llhttp would buffer all of it
            self._head_bytes += len(data)  # the whole read: at most one read more than the head itself
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()
                return
        if self._phase != self._armed:  # a phase began or ended in this read: set its deadline once (most requests
            self._disarm()  # arrive whole in one read and need none)
            if self._phase is not None:
                self._deadline = self.loop.call_later(getattr(self, self._phase), self._expired, self._phase)
            self._armed = self._phase

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._head_bytes = "header_timeout", 0

    def on_headers_complete(self) -> None:
        if self._head_size() > self.max_header_bytes:  # a whole head that came in one read
            raise HeadTooLarge()  # stops the parser; uvicorn then calls send_400_response, which answers the 431
        self._phase = "body_timeout"
        self.scope.setdefault("extensions", {})[DISCONNECTED] = self._gone
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = None
        super().on_message_complete()

    def _head_size(self) -> int:
        """Bytes of the request line and headers parsed so far (about: llhttp does not count the spaces it drops)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _gone(self) -> bool:
        """Whether this connection's client has gone (read from any thread: one attribute)."""
        return self.transport.is_closing()

    def send_400_response(self, msg: str) -> None:
        if self._head_size() > self.max_header_bytes:  # the parser stopped at HeadTooLarge
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "max_header_bytes", self.max_header_bytes,
                     f"The request's line and headers are over {self.max_header_bytes:,} bytes ({flag('max_header_bytes')}). "
                     "Send fewer or shorter headers.")

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, setting: str | None) -> None:
        """The deadline `setting` (None: idle) has passed: close the connection, with a 408 once a request has begun."""
        self._deadline = None
        if self.transport.is_closing():
            return
        if setting is None:  # an idle connection: nothing to answer
            self.transport.close()
            return
        part = "line and headers" if setting == "header_timeout" else "body"
        seconds = getattr(self, setting)
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, setting, seconds,
                     f"The request's {part} took longer than {seconds:g} s to arrive ({flag(setting)}). Send it at once.")

    def _refuse(self, status: HTTPStatus, setting: str, value: float, message: str) -> None:
        """Answer `status` with a JSON error naming `setting` (unless a response has begun), then close the connection.

        The close lingers: the answer goes out with the end of our side, and what the client still sends is read and
        dropped for LINGER seconds, since closing a socket with unread data resets the connection, answer and all."""
        self._disarm()
        self._refused = True
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            body = json.dumps({"error": message, "limit": setting, "value": value}).encode()
            head = (f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
            self.transport.write(head + body)
        self.logger.info("%s:%d - closed: %s", *(self.client or ("-", 0)), message)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()


class HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a request whose line and headers are over the limit."""


def protocol_for(settings: ServeSettings) -> type[DeadlineProtocol]:
    """The protocol class uvicorn serves with (`uvicorn.Config(http=...)`), with the deadlines and limit of `settings`.
    The idle deadline is uvicorn's own `timeout_keep_alive`, which the serve command sets from `keep_alive_timeout`."""
    return type("ServeProtocol", (DeadlineProtocol,), {"header_timeout": settings.header_timeout, "body_timeout": settings.body_timeout,
                                                      "max_header_bytes": settings.max_header_bytes})
