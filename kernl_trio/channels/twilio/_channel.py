"""``TwilioChannel``: one phone call's Twilio Media Stream as a RealtimeChannel.

Inbound, Twilio's 20 ms u-law media frames become :class:`~kernl_trio.model.ChannelAudio` in
the channel's ``input_format``. Outbound, ``play()`` cuts the model's audio into media frames
and puts a mark named ``"<item_id>:<ms>"`` after each one, ``ms`` being the item's cumulative
audio sent so far. Twilio echoes a mark once everything before it has played, so the echo is
the exact position the caller heard: ``played_ms(item)`` is the ms of the item's last echoed
mark. ``interrupt()`` drops what is still queued here, sends ``clear``, and remembers the marks
already sent: Twilio echoes those too when it flushes them, and such echoes must not move the
position (protocols.md D.2, D.5).

With ``model_format=PCMU_8K`` (the default) audio passes through byte for byte both ways;
with another format each direction has its own streaming :class:`~kernl_trio.audio.Transcoder`.

The channel needs a task to read the socket and one to write it: run ``channel.run`` in a
nursery (``start = await nursery.start(channel.run)`` returns once Twilio's ``start`` message
has arrived). :func:`~kernl_trio.channels.twilio.handle_twilio_call` does all of it for one
call; :func:`~kernl_trio.channels.twilio.serve_twilio` for a server.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import attrs
import trio
import trio_websocket

from ..._errors import collapse
from ..._fanout import Broadcaster, Subscription
from ..._websocket import WebSocket, WebSocketClosed, _TrioWebSocket
from ...audio import Transcoder
from ...errors import ConnectionLost, FrameDecodeError
from ...model import ChannelAudio, ChannelInput, ChannelInterrupt
from ...protocol import PCMU_8K, AudioFormat
from ._stream import ULAW_BYTES_PER_MS as _ULAW_BYTES_PER_MS
from ._stream import MarkLedger
from ._wire import (
    Clear,
    Connected,
    Dtmf,
    Mark,
    MarkInfo,
    Media,
    OutboundMedia,
    OutboundPayload,
    Start,
    StartInfo,
    Stop,
    TwilioMessage,
    decode,
    encode,
)

__all__ = [
    "TwilioChannel",
    "TwilioChannelStatistics",
    "TwilioDtmf",
    "TwilioEvent",
    "TwilioMalformed",
    "TwilioMarkEcho",
    "TwilioOptions",
    "TwilioStopped",
]

logger = logging.getLogger("kernl_trio.channels.twilio")

_MAX_GAP_MS = 10_000  # longer inbound gaps are filled with this much silence at most
_MALFORMED_LOGGED = 10  # a call's first malformed messages each get a log line; then 1 in 1000


@attrs.frozen
class TwilioOptions:
    """How a :class:`TwilioChannel` behaves.

    ``model_format``: the audio format the model hears and speaks (the channel's
    ``input_format`` and ``output_format``); u-law 8 kHz passes through untouched.
    ``frame_ms``: outbound media frame length, and so the granularity of the marks that
    measure playback. ``interrupt_digits``: DTMF keys that interrupt the assistant (e.g.
    ``"*"``). ``input_buffer``: inbound frames held while the session is busy; beyond that new
    frames are dropped and counted. ``fill_gaps``: fill gaps in Twilio's inbound ``timestamp``
    with silence (up to 10 s), so the model's audio clock stays aligned with the call.
    ``outbox_limit``: outbound messages queued before ``play()`` waits for the socket.
    ``mark_grace``: seconds past the estimated end of playback after which ``wait_drained()``
    stops waiting for an echo that never comes (a peer that does not echo marks).
    """

    model_format: AudioFormat = PCMU_8K
    frame_ms: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    interrupt_digits: str = ""
    input_buffer: int = attrs.field(default=250, validator=attrs.validators.ge(1))
    fill_gaps: bool = True
    outbox_limit: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    mark_grace: float = 2.0


@attrs.frozen
class TwilioDtmf:
    """The caller pressed a key."""

    kind = "twilio.dtmf"
    digit: str
    track: str | None = None


@attrs.frozen
class TwilioMarkEcho:
    """Twilio echoed a mark: played up to it, or (``cleared``) flushed by a ``clear``."""

    kind = "twilio.mark"
    name: str
    item_id: str | None
    ms: float | None
    cleared: bool


@attrs.frozen
class TwilioMalformed:
    """A frame from Twilio that could not be understood; the call goes on."""

    kind = "twilio.malformed"
    reason: str
    frame: str | bytes


@attrs.frozen
class TwilioStopped:
    """The stream ended: Twilio sent ``stop`` or the socket closed (``"closed"``)."""

    kind = "twilio.stopped"
    reason: Literal["stop", "closed"]


TwilioEvent = TwilioDtmf | TwilioMarkEcho | TwilioMalformed | TwilioStopped


@attrs.frozen
class TwilioChannelStatistics:
    media_in: int
    input_dropped: int
    gap_filled_ms: float
    media_out: int
    marks_sent: int
    marks_acknowledged: int
    marks_cleared: int
    clears: int
    dtmf: int
    malformed: int
    drain_timeouts: int
    outbox: int
    media_before_start: int = 0


@attrs.define(eq=False, slots=True)
class _Outgoing:
    frame: str
    mark: str | None = None


@attrs.define
class _Counters:
    media_in: int = 0
    input_dropped: int = 0
    gap_filled_ms: float = 0.0
    media_out: int = 0
    marks_sent: int = 0
    marks_acknowledged: int = 0
    marks_cleared: int = 0
    clears: int = 0
    dtmf: int = 0
    malformed: int = 0
    drain_timeouts: int = 0
    media_before_start: int = 0


class TwilioChannel:
    """One call's Media Stream (see the module docstring)."""

    def __init__(
        self,
        websocket: WebSocket | trio_websocket.WebSocketConnection,
        options: TwilioOptions | None = None,
    ) -> None:
        if isinstance(websocket, trio_websocket.WebSocketConnection):
            websocket = _TrioWebSocket(websocket)
        self._ws: WebSocket = websocket
        self.options = options = options or TwilioOptions()
        self.input_format: AudioFormat = options.model_format
        self.output_format: AudioFormat = options.model_format
        self._decoder = Transcoder(PCMU_8K, options.model_format)
        self._encoder = Transcoder(options.model_format, PCMU_8K)
        self._frame_bytes = options.frame_ms * _ULAW_BYTES_PER_MS
        self._mic_send, self._mic_receive = trio.open_memory_channel[ChannelInput](
            options.input_buffer
        )
        self._events: Broadcaster[TwilioEvent] = Broadcaster()
        self._nursery: trio.Nursery | None = None
        self.start: StartInfo | None = None
        self._stream_sid: str | None = None
        self._ended = trio.Event()
        self._closed = False
        self._next_timestamp: float | None = None
        self.close_code: int | None = None
        """The WebSocket close code the stream ended with, if the socket closed."""
        self.close_reason: str | None = None
        self.end_reason: Literal["stop", "closed"] | None = None
        """How the stream ended: Twilio's ``stop``, or the socket closed."""
        self.closed_here = False
        """Whether this side ended the stream (``aclose()`` before Twilio did)."""
        # outbound
        self._outbox: collections.deque[_Outgoing] = collections.deque()
        self._work = trio.lowlevel.ParkingLot()  # the writer waits here for messages
        self._space = trio.lowlevel.ParkingLot()  # play() waits here for the outbox to shrink
        self._echoes = trio.lowlevel.ParkingLot()  # wait_drained() waits here for echoes
        self._item: str | None = None  # the item whose audio the encoder holds
        self._marks = MarkLedger(self._frame_bytes)
        self._n = _Counters()
        self.first_malformed: str | None = None
        """Why the first malformed message was refused (``None``: none was)."""

    # -- identity ----------------------------------------------------------------------------
    @property
    def call_sid(self) -> str | None:
        return self.start.call_sid if self.start is not None else None

    @property
    def stream_sid(self) -> str | None:
        return self._stream_sid

    @property
    def custom_parameters(self) -> dict[str, str]:
        """The ``<Parameter>`` values of the TwiML ``<Stream>`` ({} before ``start``)."""
        return dict(self.start.custom_parameters) if self.start is not None else {}

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        """Return once the stream has ended (Twilio ``stop``, or the socket closed)."""
        await self._ended.wait()

    def events(self, max_backlog: int = 1024) -> Subscription[TwilioEvent]:
        """A stream of this call's Twilio events (DTMF, mark echoes, malformed frames, stop)
        from now on, for one consumer; it ends when the stream ends (see
        ``RealtimeSession.events`` for ``max_backlog``)."""
        return self._events.subscribe(max_backlog)

    def statistics(self) -> TwilioChannelStatistics:
        return TwilioChannelStatistics(**attrs.asdict(self._n), outbox=len(self._outbox))

    # -- the tasks ---------------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[StartInfo] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Read and write the socket until the stream ends.

        ``task_status.started(start)`` fires when Twilio's ``start`` message arrives. Raises
        :class:`~kernl_trio.errors.ConnectionLost` if the stream ends before that.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write_loop)
                await self._read_loop(task_status)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise collapse(group) from None
        if self.start is None:
            raise ConnectionLost("the Twilio stream ended before its start message")

    async def _read_loop(self, task_status: trio.TaskStatus[StartInfo]) -> None:
        reason: Literal["stop", "closed"] = "closed"
        # A socket that hands over every message already parsed at once (one checkpoint per
        # burst, not per message) is read that way; others one message at a time.
        batch: Callable[[], Awaitable[list[str | bytes]]] | None
        batch = getattr(self._ws, "receive_batch", None)
        try:
            while True:
                try:
                    frames = await batch() if batch is not None else [await self._ws.receive()]
                except WebSocketClosed as closed:
                    self.close_code, self.close_reason = closed.code, closed.reason
                    return  # noqa: ASYNC910 - the receive checkpoints, raising too
                for frame in frames:
                    message = self.receive_frame(frame)
                    if isinstance(message, Start) and self.start is message.start:
                        task_status.started(message.start)
                    elif isinstance(message, Stop):
                        reason = "stop"
                        return
        finally:
            self._end(reason)

    async def _write_loop(self) -> None:
        outbox = self._outbox
        # A socket that can frame several messages and write them at once (one write for a
        # media frame and its mark, not two) is written that way; others one at a time.
        many: Callable[[list[str]], Awaitable[None]] | None
        many = getattr(self._ws, "send_many", None)
        while True:
            if not outbox:
                await self._work.park()
                continue
            try:
                if many is not None:
                    frames = [out.frame for out in outbox]
                    outbox.clear()
                    self._space.unpark_all()
                    await many(frames)
                    continue
                out = outbox.popleft()
                if len(outbox) <= self.options.outbox_limit:
                    self._space.unpark_all()
                await self._ws.send(out.frame)
            except WebSocketClosed:
                # The reader sees the same close and ends the stream, after the messages that
                # came before it (Twilio's stop among them): it decides how the stream ended.
                return  # noqa: ASYNC910 - the send checkpoints, raising too

    # -- inbound -----------------------------------------------------------------------------
    def receive_frame(self, frame: str | bytes) -> TwilioMessage | None:
        """Handle one frame from Twilio (synchronously); the decoded message, or ``None`` if
        it was malformed (reported as a :class:`TwilioMalformed` event and a log record)."""
        try:
            message = decode(frame)
        except FrameDecodeError as exc:
            self._malformed(exc.reason, frame)
            return None
        if isinstance(message, Media):
            self._on_media(message)
        elif isinstance(message, Mark):
            self._on_mark(message.mark.name)
        elif isinstance(message, Dtmf):
            self._on_dtmf(message)
        elif isinstance(message, Start):
            self._on_start(message, frame)
        elif isinstance(message, Stop):
            self._end("stop")
        else:
            assert isinstance(message, Connected)
        return message

    def _on_start(self, message: Start, frame: str | bytes) -> None:
        if self.start is not None:
            self._malformed("a second start message", frame)
            return
        self.start = message.start
        self._stream_sid = message.start.stream_sid
        media_format = message.start.media_format
        if (media_format.encoding, media_format.sample_rate) != ("audio/x-mulaw", 8000):
            self._malformed(
                f"unsupported media format {media_format}; treating the audio as u-law 8 kHz",
                frame,
            )

    def _on_media(self, message: Media) -> None:
        media = message.media
        if media.track not in ("inbound", "inbound_track"):
            return
        if self.start is None:  # no call yet, so no session to hear it
            self._n.media_before_start += 1
            return
        self._n.media_in += 1
        data = media.payload
        if self.options.fill_gaps and media.timestamp is not None:
            expected = self._next_timestamp
            if expected is not None:
                gap = min(media.timestamp - expected, _MAX_GAP_MS)
                if gap >= self.options.frame_ms:
                    silence = b"\xff" * (int(gap) * _ULAW_BYTES_PER_MS)
                    self._n.gap_filled_ms += int(gap)
                    data = silence + data
            self._next_timestamp = media.timestamp + len(media.payload) / _ULAW_BYTES_PER_MS
        audio = self._decoder.convert(data)
        if not audio:
            return
        try:
            self._mic_send.send_nowait(ChannelAudio(audio))
        except trio.WouldBlock:
            self._n.input_dropped += 1
            if self._n.input_dropped == 1 or self._n.input_dropped % 500 == 0:
                logger.warning(
                    "Twilio call %s: the session is not keeping up; %d inbound frames dropped",
                    self.call_sid,
                    self._n.input_dropped,
                )
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _on_dtmf(self, message: Dtmf) -> None:
        self._n.dtmf += 1
        digit = message.dtmf.digit
        self._events.publish(TwilioDtmf(digit, message.dtmf.track))
        if digit and digit in self.options.interrupt_digits:
            try:
                self._mic_send.send_nowait(ChannelInterrupt())
            except trio.WouldBlock:
                assert self._nursery is not None  # an interrupt is never dropped
                self._nursery.start_soon(self._send_interrupt)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

    async def _send_interrupt(self) -> None:  # noqa: ASYNC910 - a task (start_soon), never awaited
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._mic_send.send(ChannelInterrupt())

    def _on_mark(self, name: str) -> None:
        echo = self._marks.echo(name)
        if echo.cleared:
            self._n.marks_cleared += 1
        elif echo.acknowledged:
            self._n.marks_acknowledged += echo.acknowledged
            self._echoes.unpark_all()
        self._events.publish(TwilioMarkEcho(name, echo.item_id, echo.ms, cleared=echo.cleared))

    def _malformed(self, reason: str, frame: str | bytes) -> None:
        self._n.malformed += 1
        count = self._n.malformed
        if self.first_malformed is None:
            self.first_malformed = reason
        # Before start this is not a call yet (a scanner, a probe): the server's one line for
        # the stream says what it sent. During a call, a peer sending junk non-stop must not
        # flood the log: the first few, then one line in 1000, with the count.
        if self.start is not None and (count <= _MALFORMED_LOGGED or count % 1000 == 0):
            more = ""
            if count == _MALFORMED_LOGGED:
                more = "; more are counted, and logged 1 in 1000"
            elif count > _MALFORMED_LOGGED:
                more = f"; {count} so far"
            logger.warning(
                "Twilio call %s: malformed message (%s): %.200r%s",
                self.call_sid,
                reason,
                frame,
                more,
            )
        self._events.publish(TwilioMalformed(reason, frame))

    def _end(self, reason: Literal["stop", "closed"]) -> None:
        if self._ended.is_set():
            return
        self.end_reason = reason
        self._ended.set()
        self._mic_send.close()
        self._work.unpark_all()
        self._space.unpark_all()
        self._echoes.unpark_all()
        self._events.publish(TwilioStopped(reason))
        self._events.close()

    # -- RealtimeChannel -----------------------------------------------------------------------
    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._mic_receive

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        """Queue ``audio`` (in ``output_format``) for Twilio: media frames, each followed by
        a mark. Waits only while more than ``outbox_limit`` messages wait for the socket."""
        if self._closed:
            raise trio.ClosedResourceError("the channel is closed")
        await trio.lowlevel.checkpoint()
        if self._ended.is_set():
            return  # the caller hung up: nothing will ever play
        self.queue_audio(audio, item_id)
        while len(self._outbox) > self.options.outbox_limit and not self._ended.is_set():
            await self._space.park()

    def queue_audio(self, audio: bytes, item_id: str) -> None:
        """The synchronous part of :meth:`play`: encode and queue, never wait."""
        if self._stream_sid is None:
            raise RuntimeError("audio for Twilio before its start message (run the channel)")
        if item_id != self._item:
            self._finish_item()
            self._item = item_id
        self._queue_ulaw(self._encoder.convert(audio), item_id)

    def played_ms(self, item_id: str) -> float:
        """The ms of ``item_id`` in the last mark Twilio echoed as played."""
        return self._marks.played_ms(item_id)

    def interrupt(self) -> None:
        """Drop queued audio, send ``clear``; echoes of the marks it flushes are ignored."""
        unsent = {out.mark for out in self._outbox if out.mark is not None}
        self._outbox.clear()
        self._marks.clear(trio.current_time(), unsent)
        self._encoder.reset()
        self._item = None
        if self._stream_sid is not None and not self._ended.is_set():
            self._n.clears += 1
            self._outbox.append(_Outgoing(encode(Clear(self._stream_sid))))
            self._work.unpark_all()
        self._space.unpark_all()
        self._echoes.unpark_all()

    async def wait_drained(self) -> None:
        """Return once Twilio has echoed the last mark sent (or it was cleared).

        A peer that never echoes cannot hold the session: past the estimated end of playback
        plus ``mark_grace`` seconds this gives up and counts a drain timeout.
        """
        self._finish_item()
        self._item = None
        await trio.lowlevel.checkpoint()
        marks = self._marks
        last = marks.last_mark
        while marks.waiting_for(last) and not self._ended.is_set():
            with trio.move_on_at(marks.playback_end + self.options.mark_grace) as waited:
                await self._echoes.park()
            if waited.cancelled_caught:
                self._n.drain_timeouts += 1
                logger.warning(
                    "Twilio call %s: mark %s not echoed %.1f s after its audio should have "
                    "played; is the stream bidirectional (<Connect><Stream>)?",
                    self.call_sid,
                    last,
                    self.options.mark_grace,
                )
                return

    async def aclose(self) -> None:
        """Stop accepting audio and close the call's socket (ends the stream for Twilio)."""
        if not self._ended.is_set():
            self.closed_here = True
        self._closed = True
        self._mic_send.close()
        self._space.unpark_all()
        self._echoes.unpark_all()
        with trio.move_on_after(2):
            await self._ws.aclose()
        await trio.lowlevel.checkpoint()

    # -- outbound internals --------------------------------------------------------------------
    def _finish_item(self) -> None:
        """Send the encoder's held-back tail of the current item (transcoding only)."""
        if self._item is not None:
            tail = self._encoder.flush()
            if tail:
                self._queue_ulaw(tail, self._item)

    def _queue_ulaw(self, data: bytes, item_id: str) -> None:
        if not data or self._stream_sid is None:
            return
        sid = self._stream_sid
        outbox = self._outbox
        n = self._n
        for frame, name in self._marks.frames(data, item_id, trio.current_time()):
            outbox.append(_Outgoing(encode(OutboundMedia(sid, OutboundPayload(frame)))))
            outbox.append(_Outgoing(encode(Mark(MarkInfo(name), stream_sid=sid)), name))
            n.media_out += 1
            n.marks_sent += 1
        self._work.unpark_all()
