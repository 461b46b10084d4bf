"""The small WebSocket interface connections are written against, and what both connectors
share: the error for a failed handshake, and redaction of secret headers."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs

from .._secret import Secret
from ..errors import HandshakeFailed
from ..limits import HANDSHAKE_BODY_CHARS

__all__ = [
    "SENSITIVE_HEADERS",
    "Header",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketConnector",
]

MESSAGE_TOO_BIG = 1009
ABNORMAL_CLOSURE = 1006

SENSITIVE_HEADERS = frozenset(
    ["authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie"]
)
"""Header names whose values the connectors never log."""


@attrs.frozen
class WebSocketClosed(Exception):
    """The peer (or the network) closed the socket; ``code`` is the close code, if any.

    1006 means no close frame came (``reason`` then says why the client gave up, if it
    did); 1009 means an incoming message was over ``max_message_size``.
    """

    code: int | None
    reason: str | None


class WebSocket(Protocol):
    """One open WebSocket, as a connection uses it."""

    async def send(self, message: str | bytes) -> None:
        """Send one text frame; ``bytes`` are UTF-8 text already (no decode and re-encode).

        Raises :class:`WebSocketClosed` once the socket is closed."""
        ...

    async def receive(self) -> str | bytes:
        """The next message; raises :class:`WebSocketClosed` once the socket is closed.

        Always a checkpoint."""
        ...

    async def receive_batch(self) -> list[str | bytes]:
        """Every message already received (at least one), waiting for one if there is none.

        Always a checkpoint, once per call rather than once per message: a reader that
        handles a burst of frames yields to other tasks once per burst. Raises
        :class:`WebSocketClosed` once the socket is closed and nothing is left."""
        ...

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Run the close handshake (bounded by ``limits.CLOSE_TIMEOUT``), close the socket."""
        ...


Header = tuple[str, str | Secret]
"""A header for the upgrade request; a :class:`Secret` value is revealed only on the wire."""

WebSocketConnector = Callable[
    [str, Sequence[Header], int, float],
    AbstractAsyncContextManager[WebSocket],
]
"""``connector(url, headers, max_message_size, connect_timeout)``: an async context manager
that opens the WebSocket (raising :class:`~kernl_trio.errors.HandshakeFailed` if it cannot)
and closes it on exit."""


def refused(
    url: str,
    status: int,
    body: bytes | bytearray | str | None,
    headers: Sequence[Header] = (),
) -> HandshakeFailed:
    """The server answered the upgrade with something other than 101.

    A secret of ``headers`` that the body quotes back (a server may echo the request's
    ``Authorization``) is replaced by ``<redacted>`` before the body reaches the error.
    """
    if isinstance(body, bytes | bytearray):
        text = body[: HANDSHAKE_BODY_CHARS * 4].decode("utf-8", "replace")
    else:
        text = body or ""
    for _, value in headers:
        if isinstance(value, Secret):
            secret = value.reveal()
            for part in (secret, secret.partition(" ")[2]):
                if len(part) >= 8:  # a short fragment would redact ordinary words
                    text = text.replace(part, "<redacted>")
    text = text[:HANDSHAKE_BODY_CHARS]
    message = f"{url} refused the WebSocket upgrade ({status})"
    if text.strip():
        message += f": {text.strip()}"
    return HandshakeFailed(message, status_code=status, body=text or None)


def cannot_open(url: str, exc: BaseException) -> HandshakeFailed:
    return HandshakeFailed(f"cannot open a WebSocket to {url}: {exc!r}")


def too_big(limit: int) -> WebSocketClosed:
    return WebSocketClosed(MESSAGE_TOO_BIG, f"a message was over max_message_size ({limit} bytes)")


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that prints ``<redacted>`` for the value of a sensitive header.

    ``websockets`` logs every header of the upgrade at DEBUG as ``("> %s: %s", name,
    value)``; this replaces the value when the name is in :data:`SENSITIVE_HEADERS`.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if len(args) == 2 and isinstance(args[0], str) and args[0].lower() in SENSITIVE_HEADERS:
            args = (args[0], "<redacted>")
        super().log(level, msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs
