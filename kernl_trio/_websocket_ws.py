"""A :data:`~kernl_trio._websocket.WebSocketConnector` on the ``websockets`` library's trio client.

``websockets`` (>= 17) ships a trio implementation (``websockets.trio.client.connect``) whose
frame parsing costs less than half of what trio-websocket's (wsproto + h11) does per message;
see docs/performance.md, "Session benchmarks". This module adapts it to the small interface
connections are written against (``send`` / ``receive`` / ``aclose``), with the same error
contract as :func:`kernl_trio._websocket.connect_trio_websocket`:

* a failed opening handshake (refused upgrade, DNS or TCP error, timeout, invalid URL) raises
  :class:`~kernl_trio.errors.HandshakeFailed`, with ``status_code`` when the server answered;
* once open, a closed socket makes ``send`` and ``receive`` raise
  :class:`~kernl_trio._websocket.WebSocketClosed` (close code 1006 when no close frame came).

Choices, all measured or matching the trio-websocket connector:

* no permessage-deflate (``websockets`` enables it by default): base64 audio hardly compresses
  and deflate would cost CPU on every frame; trio-websocket offers no compression either;
* text frames are returned as UTF-8 ``bytes`` (``recv(decode=False)``): the codec's
  ``orjson.loads`` reads bytes directly, so no ``str`` is built per frame;
* ``max_queue=64`` frames before the reader pauses (trio-websocket: ``message_queue_size=64``);
* keepalive pings every 20 s (the library's default) detect a dead peer;
* closing waits at most 5 s for the peer's close frame.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
)
from websockets.trio.client import ClientConnection, connect

from ._websocket import WebSocket, WebSocketClosed
from .errors import HandshakeFailed

__all__ = ["connect_websockets_trio"]

CLOSE_TIMEOUT = 5.0
MAX_QUEUE = 64
_ABNORMAL_CLOSURE = 1006


@attrs.define
class _WebsocketsTrio:
    _ws: ClientConnection

    async def send(self, message: str) -> None:
        try:
            await self._ws.send(message)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.recv(decode=False)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        await self._ws.aclose(code, reason or "")


@asynccontextmanager
async def connect_websockets_trio(
    url: str,
    headers: Sequence[tuple[str, str]],
    max_message_size: int,
    connect_timeout: float,
) -> AsyncIterator[WebSocket]:
    """A connector on ``websockets.trio`` (same signature as ``connect_trio_websocket``)."""
    opened = False
    try:
        async with connect(
            url,
            additional_headers=list(headers),
            compression=None,
            open_timeout=connect_timeout,
            close_timeout=CLOSE_TIMEOUT,
            max_size=max_message_size,
            max_queue=MAX_QUEUE,
        ) as ws:
            opened = True
            yield _WebsocketsTrio(ws)
    except InvalidStatus as exc:
        if opened:
            raise
        status = exc.response.status_code
        raise HandshakeFailed(
            f"{url} refused the WebSocket upgrade ({status})", status_code=status
        ) from None
    except (InvalidHandshake, InvalidURI, InvalidProxy, OSError, trio.TooSlowError) as exc:
        # TimeoutError (the open timeout) is an OSError.
        if opened:
            raise
        raise HandshakeFailed(f"cannot open a WebSocket to {url}: {exc!r}") from None


def _closed(exc: ConnectionClosed) -> WebSocketClosed:
    received = exc.rcvd
    if received is None:
        return WebSocketClosed(_ABNORMAL_CLOSURE, None)
    return WebSocketClosed(received.code, received.reason or None)
