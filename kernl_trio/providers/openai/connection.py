"""One live connection to an OpenAI Realtime (GA) server, as two trio tasks.

The reader drains the socket continuously into a bounded memory channel; the writer is the
only task that writes frames, so a cancelled caller can never cut a frame in half.
"""

from __future__ import annotations

import contextlib
import math
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
        # Unbounded on purpose: status changes and frames must never be lost or block the
        # reader (which would stall ping/close handling). The session's router drains it
        # without ever waiting, so it stays near empty; statistics() shows its depth.
        self._events_tx, self._events_rx = trio.open_memory_channel[ConnectionEvent](math.inf)
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
    def events(self) -> trio.MemoryReceiveChannel[ConnectionEvent]:
        return self._events_rx

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

    # -- tasks ------------------------------------------------------------------------------
    async def read_loop(self) -> None:
        """Decode every frame into ``events`` until the socket closes."""
        try:
            while True:
                try:
                    frame = await self._ws.receive()
                except WebSocketClosed as closed:
                    if not self._closing:
                        self._close_error = ConnectionLost(
                            f"the server closed the connection (code {closed.code})",
                            code=closed.code,
                            reason=closed.reason,
                        )
                    return
                try:
                    event = self._codec.decode(frame)
                except FrameDecodeError as error:
                    event = InvalidFrame(frame=error.frame, reason=error.reason)
                self._observe(event)
                self._events_tx.send_nowait(event)
        finally:
            if self._status is not TransportStatus.CLOSED:
                self._set_status(
                    TransportStatus.DISCONNECTED if self._close_error else TransportStatus.CLOSED
                )
            self._events_tx.close()

    async def write_loop(self) -> None:
        try:
            async for frame in self._out_rx:
                await self._ws.send(frame)
        except WebSocketClosed as closed:
            if not self._closing and self._close_error is None:
                self._close_error = ConnectionLost(
                    "the connection dropped while sending", code=closed.code, reason=closed.reason
                )
        finally:
            self._writer_done.set()

    def statistics(self) -> dict[str, int]:
        """Depth of the incoming and outgoing queues (frames not yet consumed / written)."""
        return {
            "events_buffered": self._events_rx.statistics().current_buffer_used,
            "frames_queued": self._out_rx.statistics().current_buffer_used,
        }

    # -- internals --------------------------------------------------------------------------
    def _queue(self, frames: list[str]) -> None:
        try:
            for frame in frames:
                self._out_tx.send_nowait(frame)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConnectionClosed("the connection is closed") from None

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
            # After the reader has ended, nobody is left to tell.
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                self._events_tx.send_nowait(StatusChanged(status, previous))
