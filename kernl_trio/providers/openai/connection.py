"""One live connection to an OpenAI Realtime (GA) server.

Reading has no task of its own: whoever iterates ``events`` (the session's router) reads and
decodes frames directly, which saves a task switch per frame. That consumer never blocks on
anything else, so the socket keeps draining. The writer is a task, the only one that writes
frames, so a cancelled caller can never cut a frame in half.
"""

from __future__ import annotations

import collections
import math
from collections.abc import AsyncIterator
from typing import Any

import orjson
import trio

from ..._websocket import WebSocket, WebSocketClosed
from ...errors import ConnectionClosed, ConnectionLost, FrameDecodeError
from ...model import ConnectionEvent, StatusChanged
from ...protocol import (
    AudioInputAppend,
    ClientEvent,
    InvalidFrame,
    ResponseCancel,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    TransportStatus,
)
from .codec import OpenAICodec

CLOSE_TIMEOUT = 5.0


class OpenAIRealtimeConnection:
    """Implements :class:`kernl_trio.model.RealtimeConnection` for OpenAI's GA protocol."""

    def __init__(self, ws: WebSocket, *, metadata: dict[str, Any]) -> None:
        self._ws = ws
        self._codec = OpenAICodec()
        self._metadata = metadata
        self._status = TransportStatus.CONNECTED
        self._muted = False
        self._session_id: str | None = None
        self._active_response: str | None = None
        self._close_error: BaseException | None = None
        self._closing = False
        # Status changes wait here until the reader hands them out, in order, before frames.
        self._pending: collections.deque[ConnectionEvent] = collections.deque()
        self._ended = False
        # Outgoing frames never block a caller on the network for long, and order is kept.
        self._out_tx, self._out_rx = trio.open_memory_channel[str](math.inf)
        self._writer_done = trio.Event()

    # -- the RealtimeConnection interface ------------------------------------------------
    @property
    def status(self) -> TransportStatus:
        return self._status

    @property
    def muted(self) -> bool:
        return self._muted

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def provider_metadata(self) -> dict[str, Any]:
        return self._metadata

    @property
    def events(self) -> AsyncIterator[ConnectionEvent]:
        """Every server event and status change, in order, for one consumer."""
        return self

    # A plain iterator, not an async generator: nothing to finalize when the reader is
    # cancelled mid-iteration.
    def __aiter__(self) -> AsyncIterator[ConnectionEvent]:
        return self

    async def __anext__(self) -> ConnectionEvent:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    @property
    def close_error(self) -> BaseException | None:
        return self._close_error

    async def send(self, event: ClientEvent) -> None:
        if self._muted and isinstance(event, AudioInputAppend):
            return
        self._queue(self._codec.encode_frames(event))
        await trio.lowlevel.checkpoint()

    async def send_raw(self, message: dict[str, Any]) -> None:
        self._queue([orjson.dumps(message).decode()])
        await trio.lowlevel.checkpoint()

    def send_nowait(self, event: ClientEvent) -> None:
        """Queue ``event`` without a checkpoint (used by the interrupt path)."""
        if self._muted and isinstance(event, AudioInputAppend):
            return
        self._queue(self._codec.encode_frames(event))

    def mute(self) -> None:
        self._muted = True

    def unmute(self) -> None:
        self._muted = False

    async def interrupt(self) -> None:
        if self._active_response is not None:
            await self.send(ResponseCancel(response_id=self._active_response))

    async def aclose(self) -> None:
        """Flush queued frames, then run the close handshake; bounded by CLOSE_TIMEOUT."""
        if self._closing:
            return
        self._closing = True
        self._set_status(TransportStatus.DISCONNECTING)
        self._out_tx.close()
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            await self._writer_done.wait()
            await self._ws.aclose(1000, "client closed")
        self._set_status(TransportStatus.CLOSED)

    # -- reading ----------------------------------------------------------------------------
    async def receive(self) -> ConnectionEvent:
        """The next event; ``trio.EndOfChannel`` once the connection has closed."""
        if self._pending:
            await trio.lowlevel.checkpoint()
            return self._pending.popleft()
        if self._ended:
            await trio.lowlevel.checkpoint()
            raise trio.EndOfChannel
        try:
            frame = await self._ws.receive()
        except WebSocketClosed as closed:
            self._record_loss(closed, f"the server closed the connection (code {closed.code})")
            self._ended = True
            if self._status is not TransportStatus.CLOSED:
                self._set_status(
                    TransportStatus.DISCONNECTED if self._close_error else TransportStatus.CLOSED
                )
            if self._pending:
                return self._pending.popleft()
            raise trio.EndOfChannel from None
        try:
            event = self._codec.decode(frame)
        except FrameDecodeError as error:
            event = InvalidFrame(frame=error.frame, reason=error.reason)
        self._observe(event)
        if self._pending:  # a status change from aclose() goes first
            self._pending.append(event)
            return self._pending.popleft()
        return event

    # -- writing ------------------------------------------------------------------------------
    async def write_loop(self) -> None:
        try:
            async for frame in self._out_rx:
                await self._ws.send(frame)
        except WebSocketClosed as closed:
            self._record_loss(closed, "the connection dropped while sending")
        finally:
            self._writer_done.set()

    def statistics(self) -> dict[str, int]:
        """Frames queued for the writer and not yet on the wire."""
        return {"frames_queued": self._out_rx.statistics().current_buffer_used}

    # -- internals --------------------------------------------------------------------------
    def _queue(self, frames: list[str]) -> None:
        try:
            for frame in frames:
                self._out_tx.send_nowait(frame)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConnectionClosed("the connection is closed") from None

    def _record_loss(self, closed: WebSocketClosed, message: str) -> None:
        """Remember the first unrequested close as the reason the connection ended."""
        if not self._closing and self._close_error is None:
            self._close_error = ConnectionLost(message, code=closed.code, reason=closed.reason)

    def _observe(self, event: ConnectionEvent) -> None:
        if isinstance(event, SessionCreated):
            self._session_id = event.session.id
        elif isinstance(event, ResponseCreated):
            self._active_response = event.response_id
        elif isinstance(event, ResponseDone) and event.response_id == self._active_response:
            self._active_response = None

    def _set_status(self, status: TransportStatus) -> None:
        previous, self._status = self._status, status
        if previous is not status:
            self._pending.append(StatusChanged(status, previous))
