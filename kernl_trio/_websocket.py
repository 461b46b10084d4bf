"""The small WebSocket client interface connections are written against.

Connections only need: send a text frame, receive a frame, close. Keeping the client behind
this interface lets another trio WebSocket library be swapped in (see ``WebSocketConnector``)
without touching any provider.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import attrs
import trio
import trio_websocket

from ._errors import collapse
from .errors import HandshakeFailed

CLOSE_TIMEOUT = 5.0


@attrs.frozen
class WebSocketClosed(Exception):
    """The peer (or the network) closed the socket; ``code`` is the close code, if any."""

    code: int | None
    reason: str | None


class WebSocket(Protocol):
    async def send(self, message: str | bytes) -> None:
        """Send one text frame; ``bytes`` are UTF-8 text already (no decode and re-encode)."""
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

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None: ...


WebSocketConnector = Callable[
    [str, Sequence[tuple[str, str]], int, float],
    AbstractAsyncContextManager[WebSocket],
]
"""``connector(url, headers, max_message_size, connect_timeout)``."""


@attrs.define
class _TrioWebSocket:
    _ws: trio_websocket.WebSocketConnection
    _stream: trio.abc.Stream | None = None  # forced closed if the close handshake stalls

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            message = message.decode()  # wsproto sends bytes as a binary frame
        try:
            await self._ws.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from None

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            await trio.lowlevel.checkpoint()  # a closed connection raises without one
            raise _closed(exc) from None

    async def receive_batch(self) -> list[str | bytes]:
        # trio-websocket hands out one message per call; its queue is private.
        return [await self.receive()]

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        try:
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self._ws.aclose(code, reason)
        finally:
            # A peer that never answers (or never reads) must not keep the socket open.
            if self._stream is not None:
                await trio.aclose_forcefully(self._stream)


@asynccontextmanager
async def connect_trio_websocket(
    url: str,
    headers: Sequence[tuple[str, str]],
    max_message_size: int,
    connect_timeout: float,
) -> AsyncIterator[WebSocket]:
    """A connector on trio-websocket.

    It owns the TCP (or TLS) stream itself so the socket is closed on every path, including
    a peer that vanishes without a close handshake.
    """
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if parts.port is None else f"{host}:{port}"
    stream: trio.abc.Stream | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(connect_timeout):
                    stream = await trio.open_tcp_stream(host, port)
                    if secure:
                        stream = trio.SSLStream(
                            stream, ssl.create_default_context(), server_hostname=host
                        )
                    ws = await trio_websocket.wrap_client_stream(
                        nursery,
                        stream,
                        host_header,
                        resource,
                        extra_headers=[(k.encode(), v.encode()) for k, v in headers],
                        max_message_size=max_message_size,
                        # A deeper queue lets trio-websocket keep handling pings and closes
                        # while the connection's reader hands the previous message on.
                        message_queue_size=64,
                    )
            except (trio_websocket.HandshakeError, OSError, trio.TooSlowError) as exc:
                raise _handshake_failed(url, exc) from None
            try:
                yield _TrioWebSocket(ws, stream)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = collapse(group)
        # trio-websocket raises a refused upgrade from its reader task, so it arrives here
        if isinstance(error, trio_websocket.HandshakeError):
            raise _handshake_failed(url, error) from None
        raise error from None
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)


def _handshake_failed(url: str, exc: BaseException) -> HandshakeFailed:
    if isinstance(exc, trio_websocket.ConnectionRejected):
        return HandshakeFailed(
            f"{url} refused the WebSocket upgrade ({exc.status_code})",
            status_code=exc.status_code,
        )
    return HandshakeFailed(f"cannot open a WebSocket to {url}: {exc!r}")


def _closed(exc: trio_websocket.ConnectionClosed) -> WebSocketClosed:
    reason = exc.reason
    if reason is None:
        return WebSocketClosed(None, None)
    return WebSocketClosed(reason.code, reason.reason)
