"""``BrowserChannel``: one browser tab's WebSocket as a RealtimeChannel.

The page (``static/``) sends the microphone as binary PCM16 24 kHz mono frames and JSON text
messages; the server sends the agent's audio as binary frames of the same format, each run of
them preceded by ``{"type": "item", "item_id": ...}``, plus JSON messages for the page's
display. The page plays the audio from an AudioWorklet ring buffer and reports back what it
has really rendered: ``{"type": "played", "item_id": ..., "ms": ...}`` each time an item's
position crosses a multiple of 20 ms, and when the item's buffered audio runs out. That report
is ``played_ms(item)``, so a barge-in truncates at most one 20 ms frame before what was heard
(the Twilio channel's marks, done by the page). ``interrupt()`` drops the audio still queued
here and sends ``{"type": "clear"}``: the page empties its ring buffer before its next render
quantum and answers ``{"type": "cleared", "played": {item: ms}}``.

``play()`` is paced by those reports: it waits while the audio sent runs more than
``max_ahead_ms`` ahead of what the page has played, so the page's buffer stays short and the
model's audio arrives as fast as it is heard, not faster.

Inbound frames are checked: size (``max_frame_bytes``, ``max_text_bytes``), rate (a token
bucket on messages and one on audio milliseconds, in trio time) and shape. A frame that breaks
a limit closes the socket with 1009 (too big) or 1008 (policy); a malformed message is
reported (:class:`BrowserMalformed`, a WARNING log) and the tab goes on, up to
``max_malformed`` of them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
from typing import Any, Protocol

import attrs
import orjson
import trio

from ..._errors import collapse
from ...model import ChannelAudio, ChannelCommit, ChannelInput, ChannelInterrupt
from ...protocol import PCM16_24K, AudioFormat

__all__ = [
    "BrowserChannel",
    "BrowserChannelStatistics",
    "BrowserCleared",
    "BrowserClosed",
    "BrowserDisconnected",
    "BrowserEvent",
    "BrowserMalformed",
    "BrowserOptions",
    "BrowserPlayed",
    "BrowserSocket",
]

logger = logging.getLogger("kernl_trio.channels.browser")

_BYTES_PER_MS = PCM16_24K.rate * 2 / 1000  # 48 bytes per ms of PCM16 24 kHz mono

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_REPLACED = 4001  # the page resumed the tab on another socket


class BrowserDisconnected(Exception):
    """The tab's socket is closed (``code`` as the close frame gave it, 1006 if none)."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"browser socket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class BrowserSocket(Protocol):
    """What the channel needs of a WebSocket (the server adapts its ASGI socket to it)."""

    async def receive(self) -> str | bytes:
        """The next message; raises :class:`BrowserDisconnected` once the socket is closed."""
        ...

    async def send(self, message: str | bytes) -> None:
        """Send one message; raises :class:`BrowserDisconnected` if the socket is closed."""
        ...

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None: ...


@attrs.frozen
class BrowserOptions:
    """How a :class:`BrowserChannel` behaves.

    ``frame_ms``: outbound audio frame length. ``max_ahead_ms``: how far the audio sent may
    run ahead of what the page reports played before ``play()`` waits. ``drain_grace``:
    seconds past the estimated end of playback after which ``wait_drained()`` and ``play()``
    stop waiting for a report that never comes. ``input_buffer``: inbound frames held while
    the session is busy (more are dropped and counted). ``outbox_limit``: display messages
    queued for the socket before more are dropped (audio and control messages never are).
    ``max_frame_bytes`` / ``max_text_bytes``: the largest binary / text frame accepted.
    ``max_messages_per_second`` (burst ``message_burst``) and ``max_audio_speed`` (inbound
    audio ms per ms of time, burst ``audio_burst_ms``): beyond them the socket is closed with
    1008. ``max_malformed``: malformed messages tolerated before closing with 1008.
    ``resume_grace``: seconds a tab whose socket dropped (no ``bye`` from the page) waits
    for the page to reconnect and resume the same session (0: end at once).
    """

    frame_ms: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    max_ahead_ms: float = attrs.field(default=1000.0, validator=attrs.validators.gt(0))
    drain_grace: float = 2.0
    input_buffer: int = attrs.field(default=250, validator=attrs.validators.ge(1))
    outbox_limit: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    max_frame_bytes: int = attrs.field(default=16 * 1024, validator=attrs.validators.ge(2))
    max_text_bytes: int = attrs.field(default=8 * 1024, validator=attrs.validators.ge(64))
    max_messages_per_second: float = 300.0
    message_burst: float = 600.0
    max_audio_speed: float = 1.5
    audio_burst_ms: float = 3000.0
    max_malformed: int = 100
    resume_grace: float = 10.0


@attrs.frozen
class BrowserPlayed:
    """The page reported ``ms`` of ``item_id`` played."""

    kind = "browser.played"
    item_id: str
    ms: float
    at: float  # trio time the report arrived


@attrs.frozen
class BrowserCleared:
    """The page flushed its buffer on a ``clear``; ``played`` is where each item stopped."""

    kind = "browser.cleared"
    played: dict[str, float]
    at: float


@attrs.frozen
class BrowserMalformed:
    """A message from the page that could not be understood; the tab goes on."""

    kind = "browser.malformed"
    reason: str


@attrs.frozen
class BrowserClosed:
    """The tab's socket closed (``code`` 1000/1001: closed by the page; 1006: dropped)."""

    kind = "browser.closed"
    code: int
    reason: str


BrowserEvent = BrowserPlayed | BrowserCleared | BrowserMalformed | BrowserClosed


@attrs.frozen
class BrowserChannelStatistics:
    frames_in: int
    input_dropped: int
    frames_out: int
    sent_ms: float
    reports: int
    clears: int
    display_dropped: int
    malformed: int
    pacing_timeouts: int
    drain_timeouts: int
    resumes: int
    outbox: int


@attrs.define
class _Counters:
    frames_in: int = 0
    input_dropped: int = 0
    frames_out: int = 0
    sent_ms: float = 0.0
    reports: int = 0
    clears: int = 0
    display_dropped: int = 0
    malformed: int = 0
    pacing_timeouts: int = 0
    drain_timeouts: int = 0
    resumes: int = 0


@attrs.define(eq=False, slots=True)
class _Out:
    message: str | bytes
    audio: bool = False
    display: bool = False


class _Bucket:
    """A token bucket in trio time: ``take(n)`` is False once the rate is exceeded."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at: float | None = None

    def take(self, amount: float) -> bool:
        now = trio.current_time()
        if self.at is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= amount
        return self.tokens >= 0


class _PolicyViolation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class BrowserChannel:
    """One tab's socket (see the module docstring). Run :meth:`run` in a nursery."""

    input_format: AudioFormat = PCM16_24K
    output_format: AudioFormat = PCM16_24K

    def __init__(
        self,
        socket: BrowserSocket,
        options: BrowserOptions | None = None,
        *,
        close_socket: bool = True,
    ) -> None:
        self._ws = socket
        self._close_socket = close_socket
        self.options = options = options or BrowserOptions()
        self._mic_send, self._mic_receive = trio.open_memory_channel[ChannelInput](
            options.input_buffer
        )
        self._subscribers: list[trio.MemorySendChannel[BrowserEvent]] = []
        self._ended = trio.Event()
        self._closed = False
        self._writing = False  # the writer task runs
        self._bye = False  # the page said it is going away: do not wait for a resume
        self._detached = False
        self._attached = trio.Event()
        self._socket_done = trio.Event()  # set when the channel is done with the socket
        self._inner: trio.CancelScope | None = None  # serves the current socket
        self._takeover: tuple[BrowserSocket, dict[str, Any] | None, trio.Event] | None = None
        self._nursery: trio.Nursery | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._outbox: collections.deque[_Out] = collections.deque()
        self._work = trio.lowlevel.ParkingLot()  # the writer waits here
        self._flushed = trio.lowlevel.ParkingLot()  # aclose_with() waits here for the outbox
        self._progress = trio.lowlevel.ParkingLot()  # play() / wait_drained() wait here
        self._frame_bytes = max(2, round(options.frame_ms * _BYTES_PER_MS) // 2 * 2)
        self._item: str | None = None  # the item the page's audio frames now belong to
        self._carry = b""  # an odd byte held back from the last chunk
        self._sent: dict[str, float] = {}  # ms of audio sent per item
        self._played: dict[str, float] = {}  # ms the page reported played per item
        self._pending: dict[str, float] = {}  # items with audio sent since the last clear
        self._playback_end = -math.inf
        self._messages = _Bucket(options.max_messages_per_second, options.message_burst)
        self._audio = _Bucket(options.max_audio_speed * 1000, options.audio_burst_ms)
        self._n = _Counters()
        self.cleared: list[BrowserCleared] = []
        """What the page reported at each ``clear`` (the last 100)."""

    # -- state ---------------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        """Return once the tab's socket has closed."""
        await self._ended.wait()

    def statistics(self) -> BrowserChannelStatistics:
        return BrowserChannelStatistics(**attrs.asdict(self._n), outbox=len(self._outbox))

    def events(self, buffer: int = 256) -> trio.MemoryReceiveChannel[BrowserEvent]:
        """This tab's channel events from now on (played reports, clears, malformed
        messages, the close), for one consumer; a full buffer drops events for it."""
        send, receive = trio.open_memory_channel[BrowserEvent](buffer)
        if self._ended.is_set():
            send.close()
        else:
            self._subscribers.append(send)
        return receive

    def _publish(self, event: BrowserEvent) -> None:
        for send in self._subscribers:
            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                send.send_nowait(event)

    def ahead_ms(self) -> float:
        """Audio sent since the last clear that the page has not reported played."""
        return sum(
            max(0.0, sent - self._played.get(item, 0.0)) for item, sent in self._pending.items()
        )

    # -- display messages ------------------------------------------------------------------------
    def send_json(self, message: dict[str, Any]) -> None:
        """Queue a JSON message for the page (never waits; dropped and counted when more
        than ``outbox_limit`` display messages wait for the socket)."""
        if self._ended.is_set():
            return
        if sum(1 for out in self._outbox if out.display) >= self.options.outbox_limit:
            self._n.display_dropped += 1
            return
        self._outbox.append(_Out(orjson.dumps(message).decode(), display=True))
        self._work.unpark_all()

    # -- the tasks -------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read and write the socket until the tab is gone.

        A socket that drops without the page's ``bye`` (and without a close code 1000/1001)
        leaves the tab *detached* for ``resume_grace`` seconds: the agent's audio is discarded
        (nothing plays), display messages wait, and :meth:`attach` resumes on a new socket.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    code, reason = await self._serve_socket()
                    if self._ended.is_set():
                        break
                    if self._takeover is not None:  # resumed while this socket looked alive
                        await self._retire(self._ws)
                        self._detach()
                        self._take(*self._takeover)
                        continue
                    if (
                        self._bye
                        or self._closed
                        or code in (CLOSE_NORMAL, CLOSE_GOING_AWAY)
                        or self.options.resume_grace <= 0
                    ):
                        self._end(code, reason)
                        break
                    self._detach()
                    with trio.move_on_after(self.options.resume_grace):
                        await self._attached.wait()
                    if self._ended.is_set():
                        break
                    if self._detached:
                        logger.info("browser tab: not resumed in time; ending its session")
                        self._end(code, reason)
                        break
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise collapse(group) from None
        finally:
            self._mic_send.close()  # cancelled: no more input (the socket may stay open)

    async def _serve_socket(self) -> tuple[int, str]:
        """Run the reader and the writer on the current socket until it closes."""
        ws, done = self._ws, self._socket_done
        result = (1006, "")
        try:
            async with trio.open_nursery() as inner:
                self._inner = inner.cancel_scope
                inner.start_soon(self._write_loop, ws, inner.cancel_scope)
                result = await self._read_loop(ws)
                inner.cancel_scope.cancel()
        finally:
            self._inner = None
            done.set()
        return result

    async def _retire(self, ws: BrowserSocket) -> None:  # noqa: ASYNC910 - close() checkpoints, raising too
        """Close a socket another one replaced (if it still is open at all)."""
        with trio.move_on_after(1), contextlib.suppress(BrowserDisconnected):
            await ws.close(CLOSE_REPLACED, "resumed on another connection")

    async def _read_loop(self, ws: BrowserSocket) -> tuple[int, str]:
        while True:
            try:
                message = await ws.receive()
            except BrowserDisconnected as exc:
                return exc.code, exc.reason  # noqa: ASYNC910 - receive() checkpoints, raising too
            try:
                self._receive(message)
            except _PolicyViolation as exc:
                logger.warning("browser tab: closing the socket: %s", exc.reason)
                with trio.move_on_after(2), contextlib.suppress(BrowserDisconnected):
                    await ws.close(exc.code, exc.reason)
                self._end(exc.code, exc.reason)
                return exc.code, exc.reason  # noqa: ASYNC910 - after receive()

    async def _write_loop(self, ws: BrowserSocket, scope: trio.CancelScope) -> None:
        self._writing = True
        try:
            outbox = self._outbox
            while True:
                if not outbox:
                    self._flushed.unpark_all()
                    await self._work.park()
                    continue
                out = outbox.popleft()
                try:
                    await ws.send(out.message)
                except BrowserDisconnected:
                    scope.cancel()  # the reader learns how it closed, or the socket is gone
                    return  # noqa: ASYNC910 - send() checkpoints, raising too
        finally:
            self._writing = False
            self._flushed.unpark_all()

    # -- resuming ------------------------------------------------------------------------------
    @property
    def detached(self) -> bool:
        """The socket dropped and the tab waits (``resume_grace`` s) for :meth:`attach`."""
        return self._detached and not self._ended.is_set()

    def _detach(self) -> None:
        self._detached = True
        self._attached = trio.Event()
        # What was sent and not played is lost with the socket; queued audio is dropped.
        kept = [out for out in self._outbox if not out.audio]
        self._outbox.clear()
        self._outbox.extend(kept)
        self._item = None
        self._carry = b""
        self._pending.clear()
        self._playback_end = trio.current_time()
        self._progress.unpark_all()

    def attach(
        self, socket: BrowserSocket, greeting: dict[str, Any] | None = None
    ) -> trio.Event | None:
        """Resume the tab on ``socket`` (``greeting`` is sent first). Returns an event set
        once the channel is done with that socket, or ``None`` if the tab is gone (or closing).

        A tab whose socket still looks alive (a dropped connection the server has not
        noticed yet) gives that socket up, closed with 4001, for the new one."""
        if self._ended.is_set() or self._closed or self._bye:
            return None
        done = trio.Event()
        if self.detached:
            self._take(socket, greeting, done)
        else:
            if self._takeover is not None:
                self._takeover[2].set()  # a takeover that never started: superseded
            self._takeover = (socket, greeting, done)
            if self._inner is not None:
                self._inner.cancel()
        return done

    def _take(
        self, socket: BrowserSocket, greeting: dict[str, Any] | None, done: trio.Event
    ) -> None:
        self._takeover = None
        self._ws = socket
        self._detached = False
        self._socket_done = done
        if greeting is not None:
            self._outbox.appendleft(_Out(orjson.dumps(greeting).decode(), display=True))
        self._n.resumes += 1
        self._attached.set()

    # -- inbound ---------------------------------------------------------------------------------
    def _receive(self, message: str | bytes) -> None:
        """Handle one message from the page (synchronously). Raises ``_PolicyViolation``
        when it breaks a limit (the reader then closes the socket)."""
        if not self._messages.take(1):
            raise _PolicyViolation(CLOSE_POLICY, "too many messages")
        if isinstance(message, bytes):
            self._on_audio(message)
            return
        if len(message) > self.options.max_text_bytes:
            raise _PolicyViolation(CLOSE_TOO_BIG, "text message too big")
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError:
            self._malformed("not JSON")
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "played":
            self._on_played(data)
        elif kind == "cleared":
            self._on_cleared(data)
        elif kind == "bye":
            self._bye = True
        elif kind in ("interrupt", "commit"):
            self._send_signal(ChannelInterrupt() if kind == "interrupt" else ChannelCommit())
        else:
            self._malformed(f"unknown message type {kind!r}")

    def _on_audio(self, data: bytes) -> None:
        if len(data) > self.options.max_frame_bytes:
            raise _PolicyViolation(CLOSE_TOO_BIG, "audio frame too big")
        if len(data) % 2:
            self._malformed("audio frame of an odd number of bytes (not PCM16)")
            return
        if not self._audio.take(len(data) / _BYTES_PER_MS):
            raise _PolicyViolation(CLOSE_POLICY, "microphone audio faster than real time")
        self._n.frames_in += 1
        if not data:
            return
        try:
            self._mic_send.send_nowait(ChannelAudio(data))
        except trio.WouldBlock:
            self._n.input_dropped += 1
            if self._n.input_dropped == 1 or self._n.input_dropped % 500 == 0:
                logger.warning(
                    "browser tab: the session is not keeping up; %d microphone frames dropped",
                    self._n.input_dropped,
                )
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _send_signal(self, item: ChannelInterrupt | ChannelCommit) -> None:
        """An interrupt or a commit is never dropped: with the input full, a task waits."""
        try:
            self._mic_send.send_nowait(item)
        except trio.WouldBlock:
            if self._nursery is not None:
                self._nursery.start_soon(self._send_later, item)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _send_later(self, item: ChannelInterrupt | ChannelCommit) -> None:  # noqa: ASYNC910 - a task (start_soon), never awaited
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._mic_send.send(item)

    @staticmethod
    def _position(value: object) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        position = float(value)
        return position if math.isfinite(position) and position >= 0 else None

    def _on_played(self, data: dict[str, Any]) -> None:
        item, ms = data.get("item_id"), self._position(data.get("ms"))
        if not isinstance(item, str) or ms is None:
            self._malformed("a played report needs item_id (string) and ms (a number >= 0)")
            return
        self._n.reports += 1
        self._advance(item, ms)
        self._publish(BrowserPlayed(item, self._played.get(item, 0.0), trio.current_time()))

    def _on_cleared(self, data: dict[str, Any]) -> None:
        played = data.get("played")
        if not isinstance(played, dict):
            self._malformed("a cleared message needs played: {item_id: ms}")
            return
        positions: dict[str, float] = {}
        for item, value in played.items():
            ms = self._position(value)
            if ms is None:
                self._malformed("a cleared position is not a number >= 0")
                return
            positions[item] = ms
            self._advance(item, ms)
        event = BrowserCleared(positions, trio.current_time())
        self.cleared.append(event)
        del self.cleared[:-100]
        self._publish(event)

    def _advance(self, item: str, ms: float) -> None:
        """Move ``item``'s played position to ``ms`` (never back, never past what was sent)."""
        sent = self._sent.get(item)
        if sent is None:
            return  # not an item this channel sent: ignore
        ms = min(ms, sent)
        if ms > self._played.get(item, 0.0):
            self._played[item] = ms
        if item in self._pending and self._played[item] >= self._pending[item]:
            del self._pending[item]
        self._progress.unpark_all()

    def _malformed(self, reason: str) -> None:
        self._n.malformed += 1
        logger.warning("browser tab: malformed message (%s)", reason)
        self._publish(BrowserMalformed(reason))
        if self._n.malformed > self.options.max_malformed:
            raise _PolicyViolation(CLOSE_POLICY, "too many malformed messages")

    def _end(self, code: int, reason: str) -> None:
        if self._ended.is_set():
            return
        self.close_code, self.close_reason = code, reason
        self._ended.set()
        self._attached.set()
        self._socket_done.set()
        if self._takeover is not None:
            self._takeover[2].set()
        self._mic_send.close()
        self._outbox.clear()
        self._work.unpark_all()
        self._progress.unpark_all()
        self._publish(BrowserClosed(code, reason))
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()

    # -- RealtimeChannel -------------------------------------------------------------------------
    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._mic_receive

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        """Queue ``audio`` (PCM16 24 kHz) for the page in ``frame_ms`` frames, then wait while
        the page is more than ``max_ahead_ms`` behind (bounded by ``drain_grace``)."""
        if self._closed:
            raise trio.ClosedResourceError("the channel is closed")
        await trio.lowlevel.checkpoint()
        if self._ended.is_set() or self._detached:
            return  # no page to play it: nothing of it will be heard
        self.queue_audio(audio, item_id)
        options = self.options
        while self.ahead_ms() > options.max_ahead_ms and not (
            self._ended.is_set() or self._detached
        ):
            with trio.move_on_at(self._playback_end + options.drain_grace) as waited:
                await self._progress.park()
            if waited.cancelled_caught:
                self._n.pacing_timeouts += 1
                logger.warning(
                    "browser tab: no played report for %.1f s past the expected end of "
                    "playback; sending on without it",
                    options.drain_grace,
                )
                return

    def queue_audio(self, audio: bytes, item_id: str) -> None:
        """The synchronous part of :meth:`play`: cut into frames and queue, never wait."""
        if item_id != self._item:
            self._item = item_id
            self._carry = b""
            self._outbox.append(_Out(orjson.dumps({"type": "item", "item_id": item_id}).decode()))
        data = self._carry + audio
        usable = len(data) // 2 * 2
        data, self._carry = data[:usable], data[usable:]
        if not data:
            return
        now = trio.current_time()
        step = self._frame_bytes
        for offset in range(0, len(data), step):
            frame = data[offset : offset + step]
            self._outbox.append(_Out(frame, audio=True))
            self._n.frames_out += 1
        ms = len(data) / _BYTES_PER_MS
        self._sent[item_id] = self._sent.get(item_id, 0.0) + ms
        self._pending[item_id] = self._sent[item_id]
        self._n.sent_ms += ms
        self._playback_end = max(self._playback_end, now) + ms / 1000
        self._trim()
        self._work.unpark_all()

    def played_ms(self, item_id: str) -> float:
        """The ms of ``item_id`` the page last reported as rendered."""
        return self._played.get(item_id, 0.0)

    def interrupt(self) -> None:
        """Drop the audio queued here and tell the page to flush its buffer."""
        kept = [out for out in self._outbox if not out.audio]
        self._outbox.clear()
        self._outbox.extend(kept)
        self._item = None
        self._carry = b""
        self._pending.clear()
        self._playback_end = trio.current_time()
        if not self._ended.is_set() and not self._closed:
            self._n.clears += 1
            self._outbox.append(_Out('{"type":"clear"}'))
            self._work.unpark_all()
        self._progress.unpark_all()

    async def wait_drained(self) -> None:
        """Return once the page has reported everything sent as played (or it was cleared,
        or the tab is gone); past the estimated end of playback plus ``drain_grace`` it
        stops waiting and counts a drain timeout."""
        await trio.lowlevel.checkpoint()
        while self._pending and not (self._ended.is_set() or self._detached):
            with trio.move_on_at(self._playback_end + self.options.drain_grace) as waited:
                await self._progress.park()
            if waited.cancelled_caught:
                self._n.drain_timeouts += 1
                logger.warning(
                    "browser tab: playback not reported finished %.1f s after its expected end",
                    self.options.drain_grace,
                )
                return

    async def aclose(self) -> None:
        """The session is over: stop accepting audio and close the tab's socket (unless the
        channel was made with ``close_socket=False``: then whoever runs the tab closes it)."""
        self._closed = True
        self._mic_send.close()
        self._progress.unpark_all()
        if self._close_socket:
            await self.aclose_with(CLOSE_NORMAL, "session ended")
        else:
            await trio.lowlevel.checkpoint()

    async def aclose_with(self, code: int, reason: str) -> None:
        """Close the tab's socket with ``code`` (e.g. 1001 when the server shuts down), after
        the messages already queued for the page (not its audio) have gone, for at most a
        second; the channel has ended when this returns."""
        if not self._ended.is_set():
            kept = [out for out in self._outbox if not out.audio]
            self._outbox.clear()
            self._outbox.extend(kept)
            with trio.move_on_after(1):
                while self._outbox and self._writing and not self._ended.is_set():
                    await self._flushed.park()
            with trio.move_on_after(2), contextlib.suppress(BrowserDisconnected):
                while self._outbox and not self._writing:  # no writer: send them here
                    await self._ws.send(self._outbox.popleft().message)
                await self._ws.close(code, reason)
            self._end(code, reason)
        await trio.lowlevel.checkpoint()

    def _trim(self) -> None:
        # A long session must not grow these without bound: keep the recent items.
        for table in (self._sent, self._played):
            while len(table) > 1000:
                del table[next(iter(table))]
