"""``LocalDeviceChannel``: the computer's microphone and speaker, through PortAudio.

Needs the optional ``sounddevice`` package (``pip install 'kernl-trio[device]'``; on Linux also
the PortAudio library, e.g. ``apt install libportaudio2``).

PortAudio calls back from its own threads. The microphone callback copies each block and hands
it to trio with ``TrioToken.run_sync_soon`` (thread-safe, never blocks the audio thread); the
trio side converts it to the channel's ``input_format`` and queues it on ``input``. The speaker
callback pulls from a buffer that ``play()`` fills, under a lock held for microseconds, and
counts the bytes it really handed to the device, per item: ``played_ms(item)`` is that count.
Audio in the device's own output buffer (its latency, typically 10-50 ms) counts as played.

Both streams run at ``device_rate`` (default: the formats' own rate); when the formats differ
from the device, a :class:`~kernl_trio.audio.Transcoder` per direction converts.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import threading
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ..audio import Transcoder
from ..errors import ConfigurationError
from ..model import ChannelAudio, ChannelInput
from ..protocol import PCM16_24K, AudioEncoding, AudioFormat

__all__ = ["DeviceChannelStatistics", "LocalDeviceChannel"]

_INSTALL_HINT = (
    "LocalDeviceChannel needs the optional 'sounddevice' package: "
    "pip install 'kernl-trio[device]' (on Linux also the PortAudio library, "
    "e.g. apt install libportaudio2)"
)


@attrs.frozen
class DeviceChannelStatistics:
    input_blocks: int
    input_dropped: int
    input_status_flags: int  # blocks PortAudio flagged (e.g. input overflow)
    output_status_flags: int  # e.g. output underflow
    buffered_ms: float  # audio waiting for the speaker


@attrs.define(eq=False, slots=True)
class _Segment:
    item_id: str
    data: bytes
    offset: int = 0


class LocalDeviceChannel:
    """Microphone and speaker of this machine (see the module docstring).

    Create it inside ``trio.run``; its streams start at once and stop at :meth:`aclose`
    (the session calls it). ``block_ms`` is PortAudio's callback period; ``max_buffered_ms``
    how far ``play()`` may run ahead of the speaker before it waits.
    """

    def __init__(
        self,
        *,
        input_format: AudioFormat = PCM16_24K,
        output_format: AudioFormat = PCM16_24K,
        input_device: int | str | None = None,
        output_device: int | str | None = None,
        device_rate: int | None = None,
        block_ms: int = 20,
        max_buffered_ms: float = 200.0,
        microphone_buffer: int = 250,
        microphone: bool = True,
    ) -> None:
        try:
            sounddevice = importlib.import_module("sounddevice")
        except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
            raise ConfigurationError(f"{_INSTALL_HINT} ({exc})") from exc
        try:
            self._token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise ConfigurationError("create LocalDeviceChannel inside trio.run") from None
        self.input_format = input_format
        self.output_format = output_format
        self.max_buffered_ms = max_buffered_ms
        in_rate = device_rate or input_format.rate
        out_rate = device_rate or output_format.rate
        self._device_in = AudioFormat(AudioEncoding.PCM16, in_rate)
        self._device_out = AudioFormat(AudioEncoding.PCM16, out_rate)
        self._decoder = Transcoder(self._device_in, input_format)
        self._encoder = Transcoder(output_format, self._device_out)
        self._mic_send, self._mic_receive = trio.open_memory_channel[ChannelInput](
            microphone_buffer
        )
        self._closed = False
        self._item: str | None = None
        # shared with the speaker's thread, under _lock
        self._lock = threading.Lock()
        self._segments: collections.deque[_Segment] = collections.deque()
        self._buffered = 0
        self._consumed: dict[str, int] = {}
        self._output_flags = 0
        # the trio side waits here; the speaker's thread wakes it through the token
        self._progress = trio.lowlevel.ParkingLot()
        self._waiters = 0
        # microphone counters (written by the input thread or the trio thread, read anywhere)
        self._input_blocks = 0
        self._input_dropped = 0
        self._input_flags = 0
        self._streams: list[Any] = []

        def open_stream(kind: Any, rate: int, device: Any, callback: Any) -> Any:
            """Mono int16 at ``rate``, ``block_ms`` blocks, low latency."""
            return kind(
                samplerate=rate,
                channels=1,
                dtype="int16",
                blocksize=rate * block_ms // 1000,
                device=device,
                latency="low",
                callback=callback,
            )

        try:
            self._output = open_stream(
                sounddevice.RawOutputStream, out_rate, output_device, self._speaker_callback
            )
            self._streams.append(self._output)
            if microphone:
                self._input = open_stream(
                    sounddevice.RawInputStream, in_rate, input_device, self._microphone_callback
                )
                self._streams.append(self._input)
            else:
                self._mic_send.close()
            for stream in self._streams:
                stream.start()
        except Exception as exc:
            for stream in self._streams:
                stream.close()
            raise ConfigurationError(f"cannot open the audio device: {exc}") from exc

    # -- PortAudio threads -------------------------------------------------------------------
    def _microphone_callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        if status:
            self._input_flags += 1
        data = bytes(indata)
        with contextlib.suppress(trio.RunFinishedError):  # the session is over
            self._token.run_sync_soon(self._deliver, data)

    def _speaker_callback(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        need = len(outdata)
        filled = 0
        with self._lock:
            if status:
                self._output_flags += 1
            segments = self._segments
            while filled < need and segments:
                segment = segments[0]
                take = min(need - filled, len(segment.data) - segment.offset)
                outdata[filled : filled + take] = segment.data[
                    segment.offset : segment.offset + take
                ]
                filled += take
                segment.offset += take
                self._consumed[segment.item_id] = self._consumed.get(segment.item_id, 0) + take
                if segment.offset == len(segment.data):
                    segments.popleft()
            self._buffered -= filled
        if filled < need:
            outdata[filled:need] = bytes(need - filled)  # silence
        if self._waiters and filled:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._progress.unpark_all)

    # -- trio side ---------------------------------------------------------------------------
    def _deliver(self, data: bytes) -> None:
        self._input_blocks += 1
        if self._closed:
            return
        audio = self._decoder.convert(data)
        if not audio:
            return
        try:
            self._mic_send.send_nowait(ChannelAudio(audio))
        except trio.WouldBlock:
            self._input_dropped += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._mic_receive

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        """Queue ``audio`` for the speaker; waits while more than ``max_buffered_ms`` is queued."""
        if self._closed:
            raise trio.ClosedResourceError("the channel is closed")
        if item_id != self._item:
            self._finish_item()
            self._item = item_id
        self._queue(item_id, self._encoder.convert(audio))
        await trio.lowlevel.checkpoint()
        limit = self._device_out.bytes_per_second * self.max_buffered_ms / 1000
        await self._wait(lambda: self._buffered <= limit)

    def played_ms(self, item_id: str) -> float:
        """Milliseconds of ``item_id`` the speaker callback has handed to the device."""
        with self._lock:
            consumed = self._consumed.get(item_id, 0)
        return self._device_out.duration_ms(consumed)

    def interrupt(self) -> None:
        """Flush everything the speaker has not taken yet (takes the lock for microseconds)."""
        with self._lock:
            self._segments.clear()
            self._buffered = 0
        self._encoder.reset()
        self._item = None
        self._progress.unpark_all()

    async def wait_drained(self) -> None:
        """Return once the speaker callback has taken everything queued (or it was flushed)."""
        self._finish_item()
        self._item = None
        await trio.lowlevel.checkpoint()
        await self._wait(lambda: self._buffered == 0)

    async def aclose(self) -> None:
        """Stop both streams and end ``input``."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._mic_send.close()
        self._progress.unpark_all()
        await trio.to_thread.run_sync(self._close_streams)

    def statistics(self) -> DeviceChannelStatistics:
        with self._lock:
            buffered = self._device_out.duration_ms(self._buffered)
            output_flags = self._output_flags
        return DeviceChannelStatistics(
            self._input_blocks, self._input_dropped, self._input_flags, output_flags, buffered
        )

    # -- internals ---------------------------------------------------------------------------
    def _queue(self, item_id: str, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._segments.append(_Segment(item_id, data))
            self._buffered += len(data)

    def _finish_item(self) -> None:
        if self._item is not None:
            self._queue(self._item, self._encoder.flush())

    async def _wait(self, done: Callable[[], bool]) -> None:
        await trio.lowlevel.checkpoint()
        while not done() and not self._closed:
            self._waiters += 1
            try:
                await self._progress.park()
            finally:
                self._waiters -= 1

    def _close_streams(self) -> None:
        for stream in self._streams:
            try:
                stream.abort()
            finally:
                stream.close()
