"""One live connection to an OpenAI Realtime (GA) server.

Reading has no task of its own: whoever calls ``receive_batch`` (the session's router) reads
the socket directly, every frame already received in one call and one checkpoint. Frames are
decoded as the caller iterates the batch, so an event that interrupts a response is handled
before the frames read with it are decoded. That consumer never blocks on anything else, so
the socket keeps draining.

Writing: frames go out in the order they were queued, one writer at a time. ``await send()``
writes from the caller's task when nobody else is writing (no task switch per frame); frames
queued meanwhile, and frames queued synchronously (``send_nowait``, used by the interrupt
path), are written by whoever is writing, or by the writer task. ``send()`` leaves at most
``SEND_QUEUE`` frames behind a write in progress, then waits for room: a socket that takes
nothing holds its senders back instead of queueing without limit. A write is shielded, so a
cancelled caller never cuts a frame in half, and bounded by ``SEND_STALL_TIMEOUT``: a server
that stops reading for that long ends the connection with ``ConnectionLost``. A WebSocket
whose ``send`` does both itself (``send_is_shielded``, the sans-I/O connector) is not wrapped
again: each cancel scope entered costs about as much as a small write.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import trio

from ...errors import ConnectionClosed, ConnectionLost, FrameDecodeError
from ...limits import CLOSE_TIMEOUT, SEND_QUEUE, SEND_STALL_TIMEOUT
from ...model import ConnectionEvent, StatusChanged
from ...protocol import (
    AudioInputAppend,
    ClientEvent,
    InvalidFrame,
    ResponseCancel,
    SessionCreated,
    TransportStatus,
)
from ...transports import WebSocket, WebSocketClosed
from .codec import OpenAICodec


class OpenAIRealtimeConnection:
    """Implements :class:`kernl_trio.model.RealtimeConnection` for OpenAI's GA protocol."""

    def __init__(self, ws: WebSocket, *, metadata: dict[str, Any]) -> None:
        self._ws = ws
        self._codec = OpenAICodec()
        self._metadata = metadata
        self._status = TransportStatus.CONNECTED
        self._muted = False
        self._session_id: str | None = None
        self._close_error: BaseException | None = None
        self._closing = False
        # Status changes wait here until the reader hands them out, in order, before frames.
        self._pending: collections.deque[ConnectionEvent] = collections.deque()
        # Frames received and not yet decoded: what a batch's iterator has not reached.
        self._frames: collections.deque[str | bytes] = collections.deque()
        self._ended = False
        # Frames not yet written, in order; `_writing` while some task is writing them.
        self._outbox: collections.deque[bytes] = collections.deque()
        self._writing = False
        self._out_closed = False
        self._broken = False
        self._writer_wakeup = trio.lowlevel.ParkingLot()
        self._writer_done = trio.Event()
        # send() callers waiting for the outbox to shrink below SEND_QUEUE.
        self._room = trio.lowlevel.ParkingLot()

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
            batch = await self.receive_batch()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        return next(batch)  # the rest stay queued for the next call

    @property
    def close_error(self) -> BaseException | None:
        return self._close_error

    async def send(self, event: ClientEvent) -> None:
        if self._muted and isinstance(event, AudioInputAppend):
            await trio.lowlevel.checkpoint()
            return
        await self._send_frames(self._codec.encode_wire(event))

    async def send_raw(self, message: dict[str, Any]) -> None:
        await self._send_frames([orjson.dumps(message)])

    def send_nowait(self, event: ClientEvent) -> None:
        """Queue ``event`` without a checkpoint (used by the interrupt path)."""
        if self._muted and isinstance(event, AudioInputAppend):
            return
        self._queue(self._codec.encode_wire(event))

    def mute(self) -> None:
        self._muted = True

    def unmute(self) -> None:
        self._muted = False

    async def interrupt(self) -> None:
        """Cancel the response in progress, if any (the server ignores it otherwise)."""
        await self.send(ResponseCancel())

    async def aclose(self) -> None:
        """Flush queued frames, then run the close handshake; bounded by CLOSE_TIMEOUT."""
        if self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        self._set_status(TransportStatus.DISCONNECTING)
        self._out_closed = True
        self._writer_wakeup.unpark_all()
        self._room.unpark_all()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self._writer_done.wait()
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self._ws.aclose(1000, "client closed")
        self._set_status(TransportStatus.CLOSED)

    # -- reading ----------------------------------------------------------------------------
    async def receive_batch(self) -> Iterator[ConnectionEvent]:
        """Every event of the frames already received (at least one), in order.

        Always one checkpoint; ``trio.EndOfChannel`` once the connection has closed. Each
        frame is decoded when the iterator reaches it; what the caller leaves unread comes
        first from the next call. A frame that cannot be decoded is an ``InvalidFrame``
        event, not an error.
        """
        if self._ended or self._frames or self._pending:
            await trio.lowlevel.checkpoint()
            return self._take_queued()
        try:
            frames = await self._ws.receive_batch()
        except WebSocketClosed as closed:
            await trio.lowlevel.checkpoint()
            if closed.code == 1006 and closed.reason:  # no close frame; the client gave up
                self._record_loss(closed, f"the connection was lost: {closed.reason}")
            elif closed.code == 1009 and closed.reason:  # the client refused a message
                self._record_loss(closed, f"the connection was closed: {closed.reason}")
            else:
                self._record_loss(closed, f"the server closed the connection (code {closed.code})")
            self._ended = True
            if self._status is not TransportStatus.CLOSED:
                self._set_status(
                    TransportStatus.DISCONNECTED if self._close_error else TransportStatus.CLOSED
                )
            return self._take_queued()
        self._frames.extend(frames)
        return self._take_queued()

    def _take_queued(self) -> Iterator[ConnectionEvent]:
        if not self._pending and not self._frames:
            raise trio.EndOfChannel
        return self._drain()

    def _drain(self) -> Iterator[ConnectionEvent]:
        """Status changes first (from aclose()), then each frame, decoded when reached."""
        pending, frames, decode = self._pending, self._frames, self._decode
        while True:
            if pending:
                yield pending.popleft()
            elif frames:
                yield decode(frames.popleft())
            else:
                return

    def _decode(self, frame: str | bytes) -> ConnectionEvent:
        try:
            event = self._codec.decode(frame)
        except FrameDecodeError as error:
            return InvalidFrame(frame=error.frame, reason=error.reason)
        if isinstance(event, SessionCreated):
            self._session_id = event.session.id
        return event

    # -- writing ------------------------------------------------------------------------------
    async def write_loop(self) -> None:
        """Write what synchronous callers queued, when no caller is writing already."""
        await trio.lowlevel.checkpoint()
        try:
            while not (self._out_closed and not self._outbox and not self._writing):
                if self._outbox and not self._writing and not self._broken:
                    await self._write_outbox()
                else:
                    await self._writer_wakeup.park()
                    # Let the tasks woken with this one run first: after an interruption the
                    # application's ResponseInterrupted matters more than the truncate's
                    # write (benchmarks/run.py W2 and W4 measure the difference).
                    await trio.lowlevel.checkpoint()
        finally:
            self._writer_done.set()

    def statistics(self) -> dict[str, int]:
        """Frames queued and not yet on the wire."""
        return {"frames_queued": len(self._outbox)}

    # -- internals --------------------------------------------------------------------------
    def _queue(self, frames: list[bytes]) -> None:
        if self._out_closed or self._broken:
            raise self._unwritable()
        self._outbox.extend(frames)
        if not self._writing:
            self._writer_wakeup.unpark_all()

    async def _send_frames(self, frames: list[bytes]) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        # Behind a write that does not finish (a socket taking nothing), wait for room rather
        # than queue without limit; cancelled here, nothing of this call was queued.
        while self._writing and len(self._outbox) >= SEND_QUEUE:
            if self._out_closed or self._broken:
                break
            await self._room.park()
        if self._out_closed or self._broken:
            raise self._unwritable()
        self._outbox.extend(frames)
        if self._writing:  # the task writing now writes these too, in order
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        await self._write_outbox()
        if self._broken:
            raise self._unwritable()

    def _unwritable(self) -> BaseException:
        if self._broken and self._close_error is not None:
            return self._close_error
        return ConnectionClosed("the connection is closed")

    async def _write_outbox(self) -> None:
        """Write every queued frame, in order; only one task at a time gets here."""
        self._writing = True
        try:
            if getattr(self._ws, "send_is_shielded", False):
                await self._write_frames()  # the socket's send protects itself
                return
            # Shielded so a cancelled caller never leaves half a frame on the wire; bounded
            # so a server that stops reading cannot hold the caller forever.
            deadline = trio.current_time() + SEND_STALL_TIMEOUT
            with trio.CancelScope(shield=True, deadline=deadline) as stall:
                await self._write_frames()
            if stall.cancelled_caught:
                lost = f"the server read nothing for {SEND_STALL_TIMEOUT:g} s"
                self._fail_writing(ConnectionLost(lost))
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    await self._ws.aclose(1011, "send stalled")
        finally:
            self._writing = False
            if self._out_closed or self._outbox:
                self._writer_wakeup.unpark_all()
            if self._room:
                self._room.unpark_all()

    async def _write_frames(self) -> None:  # noqa: ASYNC910 - only called with frames queued
        outbox, send, room = self._outbox, self._ws.send, self._room
        try:
            while outbox:
                await send(outbox[0])
                outbox.popleft()
                if len(outbox) == SEND_QUEUE // 2 and room:
                    room.unpark_all()
        except WebSocketClosed as closed:
            self._record_loss(closed, "the connection dropped while sending")
            self._fail_writing(None)

    def _fail_writing(self, error: BaseException | None) -> None:
        self._broken = True
        self._outbox.clear()
        if error is not None and not self._closing and self._close_error is None:
            self._close_error = error

    def _record_loss(self, closed: WebSocketClosed, message: str) -> None:
        """Remember the first unrequested close as the reason the connection ended."""
        if not self._closing and self._close_error is None:
            self._close_error = ConnectionLost(message, code=closed.code, reason=closed.reason)

    def _set_status(self, status: TransportStatus) -> None:
        previous, self._status = self._status, status
        if previous is not status:
            self._pending.append(StatusChanged(status, previous))
