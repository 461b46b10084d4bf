"""The second connector, on trio-websocket (wsproto and h11).

It owns the TCP (or TLS) stream itself so the socket is closed on every path, including a
peer that vanishes without a close handshake. trio-websocket answers pings itself and
closes with 1009 a message over ``max_message_size``. It sends no pings of its own: one
keepalive task per connection pings every ``PING_INTERVAL`` and closes the stream when no
pong comes within ``PING_TIMEOUT``, so a silent peer ends in ``WebSocketClosed(1006)`` with
the reason, as on the sans-I/O connector.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import cast

import attrs
import trio
import trio_websocket

from .._errors import collapse
from .._secret import reveal
from ..errors import HandshakeFailed
from ..limits import CLOSE_TIMEOUT, PING_INTERVAL, PING_TIMEOUT, RECEIVE_QUEUE
from ._base import (
    ABNORMAL_CLOSURE,
    MESSAGE_TOO_BIG,
    Header,
    WebSocket,
    WebSocketClosed,
    cannot_open,
    refused,
    too_big,
)

__all__ = ["connect_trio_websocket"]

_TOO_BIG_LOCALLY = "Exceeded maximum message size"  # trio-websocket's own close reason


@attrs.define
class _TrioWebSocket:
    _ws: trio_websocket.WebSocketConnection
    _stream: trio.abc.Stream | None = None  # forced closed if the close handshake stalls
    _max_message_size: int | None = None
    _failure: str | None = None  # why the client gave up on the peer, if it did

    async def keepalive(self) -> None:
        """Ping every PING_INTERVAL; no pong within PING_TIMEOUT closes the stream."""
        while True:
            await trio.sleep(PING_INTERVAL)
            with trio.move_on_after(PING_TIMEOUT) as waited:
                try:
                    await self._ws.ping()
                except trio_websocket.ConnectionClosed:
                    return
            if waited.cancelled_caught:
                self._failure = f"nothing from the peer for {PING_INTERVAL + PING_TIMEOUT:g} s"
                if self._stream is not None:
                    await trio.aclose_forcefully(self._stream)
                return

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            message = message.decode()  # wsproto sends bytes as a binary frame
        try:
            await self._ws.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            await trio.lowlevel.checkpoint()  # a closed connection raises without one
            raise self._closed(exc) from None

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

    def _closed(self, exc: trio_websocket.ConnectionClosed) -> WebSocketClosed:
        reason = exc.reason
        if self._failure is not None:
            return WebSocketClosed(ABNORMAL_CLOSURE, self._failure)
        if reason is None:
            return WebSocketClosed(None, None)
        if (
            reason.code == MESSAGE_TOO_BIG
            and self._max_message_size is not None
            and (reason.reason or "").startswith(_TOO_BIG_LOCALLY)  # trio-websocket closed it
        ):
            return too_big(self._max_message_size)
        return WebSocketClosed(reason.code, reason.reason)


class _ReaderWatch:
    """Stands in for the nursery trio-websocket starts its reader in: when the reader ends,
    the handshake wait is cancelled (after the handshake, cancelling it does nothing)."""

    def __init__(self, nursery: trio.Nursery, handshake: trio.CancelScope) -> None:
        self._nursery = nursery
        self._handshake = handshake

    def start_soon(self, task: Callable[[], Awaitable[object]], *args: object) -> None:
        async def reader() -> None:
            try:
                await task()
            finally:
                self._handshake.cancel()

        assert not args
        self._nursery.start_soon(reader)


@asynccontextmanager
async def connect_trio_websocket(
    url: str,
    headers: Sequence[Header],
    max_message_size: int,
    connect_timeout: float,
) -> AsyncIterator[WebSocket]:
    """A :data:`~kernl_trio.transports.WebSocketConnector` on trio-websocket."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if parts.port is None else f"{host}:{port}"
    stream: trio.abc.Stream | None = None
    opened = False
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(connect_timeout):
                    stream = await trio.open_tcp_stream(host, port)
                    if secure:
                        stream = trio.SSLStream(
                            stream, ssl.create_default_context(), server_hostname=host
                        )
                    # trio-websocket waits for the upgrade's answer even once its reader
                    # has ended (a server that hangs up): end the wait with the reader.
                    with trio.CancelScope() as handshake:
                        ws = await trio_websocket.wrap_client_stream(
                            cast(trio.Nursery, _ReaderWatch(nursery, handshake)),
                            stream,
                            host_header,
                            resource,
                            # revealed here: the secret reaches the wire, not a log
                            extra_headers=[(k.encode(), reveal(v).encode()) for k, v in headers],
                            max_message_size=max_message_size,
                            # A deeper queue lets trio-websocket keep handling pings and
                            # closes while the connection's reader hands a message on.
                            message_queue_size=RECEIVE_QUEUE,
                        )
                if handshake.cancelled_caught or ws.closed is not None:  # a bad answer, a hang-up
                    raise cannot_open(url, OSError("the server closed during the handshake"))
            except (trio_websocket.HandshakeError, OSError, trio.TooSlowError) as exc:
                raise _handshake_failed(url, exc, headers) from None
            opened = True
            socket = _TrioWebSocket(ws, stream, max_message_size)
            nursery.start_soon(socket.keepalive)
            try:
                yield socket
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        rejected = group.subgroup(trio_websocket.ConnectionRejected)
        if not opened and rejected is not None:  # the status says the most
            raise _handshake_failed(url, collapse(rejected), headers) from None
        error = collapse(group)
        # trio-websocket raises a refused upgrade from its reader task, so it arrives here,
        # as do wsproto's and h11's errors on an answer that is no WebSocket upgrade
        if not opened and isinstance(error, Exception) and not isinstance(error, HandshakeFailed):
            raise _handshake_failed(url, error, headers) from None
        raise error from None
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)


def _handshake_failed(url: str, exc: BaseException, headers: Sequence[Header]) -> HandshakeFailed:
    if isinstance(exc, trio_websocket.ConnectionRejected):
        return refused(url, exc.status_code, exc.body, headers)
    return cannot_open(url, exc)
