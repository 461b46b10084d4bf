"""A simulated Twilio: a WebSocket client that follows the Media Streams protocol in trio time.

It does what Twilio does on a ``<Connect><Stream>`` call (protocols.md D): sends ``connected``
and ``start`` (with custom parameters), then paces inbound 20 ms u-law frames by trio's clock;
it "plays" the bridge's outbound media in trio time, one frame after the other, and echoes
each mark once the audio before it has played; on ``clear`` it drops what it has not played
and echoes the pending marks at once. Everything is recorded for assertions.

    peer = await nursery.start(TwilioPeer(f"ws://127.0.0.1:{server.port}/twilio").run)
    await peer.say(ulaw_audio)
    await peer.dtmf("5")
    await peer.hang_up()

It builds its JSON by hand, independently of the channel's codec, so it checks it.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import itertools
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson
import trio
import trio_websocket

__all__ = ["PeerMark", "TwilioPeer"]

_ULAW_SILENCE = b"\xff"
_BYTES_PER_MS = 8


@attrs.frozen
class PeerMark:
    """A mark the peer echoed: at trio time ``at``; ``cleared`` if a ``clear`` flushed it."""

    name: str
    at: float
    cleared: bool

    @property
    def item_id(self) -> str:
        return self.name.rpartition(":")[0]

    @property
    def ms(self) -> float:
        return float(self.name.rpartition(":")[2])


class TwilioPeer:
    """One simulated call (see the module docstring)."""

    _counter = itertools.count(1)

    def __init__(
        self,
        url: str,
        *,
        custom_parameters: Mapping[str, str] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        call_sid: str | None = None,
        stream_sid: str | None = None,
        microphone: bool = True,
        frame_ms: int = 20,
        echo_marks: bool = True,
        send_start: bool = True,
    ) -> None:
        n = next(self._counter)
        self.url = url
        self.custom_parameters = dict(custom_parameters or {})
        self.headers = tuple(headers)
        self.call_sid = call_sid or f"CA{n:032x}"
        self.stream_sid = stream_sid or f"MZ{n:032x}"
        self.account_sid = "AC" + "0" * 32
        self.microphone = microphone
        self.echo_marks = echo_marks
        self.send_start = send_start
        self.frame_ms = frame_ms
        # what happened
        self.received: list[dict[str, Any]] = []
        self.received_audio = bytearray()
        self.played_audio = bytearray()
        self.sent_audio = bytearray()
        self.marks: list[PeerMark] = []
        self.clears: list[float] = []
        self.closed = trio.Event()
        # internals
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._out_send, self._out_receive = trio.open_memory_channel[str | bytes](math.inf)
        self._sequence = itertools.count(1)
        self._speech = bytearray()
        self._speech_sent = trio.Event()
        self._queue: collections.deque[tuple[str, bytes | str]] = collections.deque()
        self._queued = trio.lowlevel.ParkingLot()
        self._play_scope: trio.CancelScope | None = None
        self._play_started = 0.0
        self._playing = b""
        self._received_event = trio.lowlevel.ParkingLot()
        self._done = trio.Event()

    # -- driving the call ------------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[TwilioPeer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, send ``connected`` and ``start``, and serve the call until it ends.

        A refused upgrade raises ``trio_websocket.ConnectionRejected`` (``.status_code``).
        """
        headers = [(k.encode(), v.encode()) for k, v in self.headers]
        url = urllib.parse.urlsplit(self.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        resource = url.path + (f"?{url.query}" if url.query else "")
        # The peer owns its TCP stream: trio-websocket leaves a client's socket to the garbage
        # collector when the server closes first or refuses the handshake.
        stream = await trio.open_tcp_stream(host, port)
        try:
            async with trio.open_nursery() as ws_nursery:
                ws = await trio_websocket.wrap_client_stream(
                    ws_nursery, stream, host, resource, extra_headers=headers
                )
                await self._serve(ws, task_status)
                ws_nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            refused = group.subgroup(trio_websocket.ConnectionRejected)
            if refused is None:
                raise
            leaf: BaseException = refused
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise leaf from None
        finally:
            await stream.aclose()
            self.closed.set()

    async def _serve(
        self, ws: trio_websocket.WebSocketConnection, task_status: trio.TaskStatus[TwilioPeer]
    ) -> None:
        self._ws = ws
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop, ws)
            self.send_nowait({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            if self.send_start:
                self.send_nowait(self._start_message())
            nursery.start_soon(self._read_loop, ws)
            nursery.start_soon(self._speaker)
            if self.microphone and self.send_start:
                nursery.start_soon(self._microphone)
            task_status.started(self)
            await self._done.wait()
            nursery.cancel_scope.cancel()
        with trio.move_on_after(1):
            await ws.aclose()

    def send_nowait(self, message: dict[str, Any] | str | bytes) -> None:
        """Send one message (a dict gets a ``sequenceNumber``); raw text/bytes go as is."""
        if isinstance(message, dict):
            message = {**message, "sequenceNumber": str(next(self._sequence))}
            if message["event"] not in ("connected",):
                message.setdefault("streamSid", self.stream_sid)
            message = orjson.dumps(message).decode()
        self._out_send.send_nowait(message)

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        self.send_nowait(message)
        await trio.lowlevel.checkpoint()

    async def say(self, audio: bytes) -> None:
        """Speak ``audio`` (u-law 8 kHz) into the call, in paced frames; returns once sent."""
        await trio.lowlevel.checkpoint()  # also for no audio
        if not self.microphone:
            raise RuntimeError("this peer was made with microphone=False")
        self._speech += audio
        while self._speech:
            await self._speech_sent.wait()

    async def dtmf(self, digit: str) -> None:
        await self.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})

    async def hang_up(self) -> None:
        """Send ``stop`` and close the socket, as Twilio does when the caller hangs up."""
        stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
        await self.send({"event": "stop", "stop": stop})
        await self.disconnect()

    async def disconnect(self) -> None:
        """Close the socket (after what was queued is sent) without a ``stop``."""
        self._out_send.close()
        await self.closed.wait()

    async def wait_received(self, event: str, count: int = 1) -> dict[str, Any]:
        """Wait until the bridge has sent ``count`` messages of ``event``; the last of them."""
        await trio.lowlevel.checkpoint()  # also for messages received already
        while True:
            found = [m for m in self.received if m.get("event") == event]
            if len(found) >= count:
                return found[count - 1]
            if self._done.is_set():
                raise trio.EndOfChannel(f"the call ended before {count} {event!r}")
            await self._received_event.park()

    def acknowledged(self, before: float = math.inf) -> list[PeerMark]:
        """The marks echoed as played (not cleared), before trio time ``before``."""
        return [m for m in self.marks if not m.cleared and m.at < before]

    # -- protocol ------------------------------------------------------------------------------
    def _start_message(self) -> dict[str, Any]:
        return {
            "event": "start",
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": self.custom_parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }

    async def _write_loop(self, ws: trio_websocket.WebSocketConnection) -> None:  # noqa: ASYNC910 - a task (start_soon), never awaited
        try:
            async for frame in self._out_receive:
                await ws.send_message(frame)
            await ws.aclose()
        except trio_websocket.ConnectionClosed:
            pass
        self._done.set()

    async def _read_loop(self, ws: trio_websocket.WebSocketConnection) -> None:  # noqa: ASYNC910 - a task (start_soon), never awaited
        try:
            while True:
                frame = await ws.get_message()
                message = orjson.loads(frame)
                self.received.append(message)
                self._received_event.unpark_all()
                event = message.get("event")
                if event == "media":
                    audio = base64.b64decode(message["media"]["payload"], validate=True)
                    self.received_audio += audio
                    self._queue.append(("audio", audio))
                    self._queued.unpark_all()
                elif event == "mark":
                    self._queue.append(("mark", message["mark"]["name"]))
                    self._queued.unpark_all()
                elif event == "clear":
                    self._clear()
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            self._done.set()
            self._received_event.unpark_all()

    def _clear(self) -> None:
        now = trio.current_time()
        self.clears.append(now)
        if self._play_scope is not None:
            self._play_scope.cancel()
            heard = int((now - self._play_started) * 1000 * _BYTES_PER_MS)
            self.played_audio += self._playing[:heard]
            self._play_scope = None
        for kind, value in self._queue:
            if kind == "mark":
                assert isinstance(value, str)
                self._echo(value, cleared=True)
        self._queue.clear()

    def _echo(self, name: str, *, cleared: bool) -> None:
        self.marks.append(PeerMark(name, trio.current_time(), cleared))
        if self.echo_marks:
            with contextlib.suppress(trio.ClosedResourceError):
                self.send_nowait({"event": "mark", "mark": {"name": name}})

    async def _speaker(self) -> None:
        while True:
            if not self._queue:
                await self._queued.park()
                continue
            kind, value = self._queue.popleft()
            if kind == "mark":
                assert isinstance(value, str)
                self._echo(value, cleared=False)
                continue
            assert isinstance(value, bytes)
            with trio.CancelScope() as scope:
                self._play_scope, self._playing = scope, value
                self._play_started = trio.current_time()
                await trio.sleep(len(value) / _BYTES_PER_MS / 1000)
                self._play_scope = None
                self.played_audio += value

    async def _microphone(self) -> None:  # noqa: ASYNC910 - a task (start_soon), never awaited
        frame_bytes = self.frame_ms * _BYTES_PER_MS
        started = trio.current_time()
        for chunk in itertools.count(1):
            if self._speech:
                payload = bytes(self._speech[:frame_bytes])
                del self._speech[:frame_bytes]
                payload += _ULAW_SILENCE * (frame_bytes - len(payload))
                if not self._speech:
                    self._speech_sent.set()
                    self._speech_sent = trio.Event()
            else:
                payload = _ULAW_SILENCE * frame_bytes
            self.sent_audio += payload
            media = {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str((chunk - 1) * self.frame_ms),
                "payload": base64.b64encode(payload).decode(),
            }
            try:
                self.send_nowait({"event": "media", "media": media})
            except trio.ClosedResourceError:
                return  # noqa: ASYNC910 - a task (start_soon), never awaited
            await trio.sleep_until(started + chunk * self.frame_ms / 1000)
