"""The playback clock a session uses when it has no channel.

Without a channel the application plays the audio it reads from ``session.events()``. Unless
it reports what it really played (``report``), the session assumes real-time playback: an
item starts playing when its first delta arrives (or when the previous item ends, if later)
and has played ``now - start``, capped at the audio received.
"""

from __future__ import annotations

import math

import trio

from .model import ChannelInput
from .protocol import PCM16_24K, AudioFormat


class AssumedPlayback:
    """A :class:`~kernl_trio.model.RealtimeChannel` that plays nothing and keeps time."""

    def __init__(self, output_format: AudioFormat = PCM16_24K) -> None:
        self.output_format = output_format
        self.input_format = output_format
        send, self._input = trio.open_memory_channel[ChannelInput](0)
        send.close()
        self._start: dict[str, float] = {}
        self._received_ms: dict[str, float] = {}
        self._reported: dict[str, float] = {}
        self._frozen: dict[str, float] = {}
        self._end = -math.inf

    @property
    def output_format(self) -> AudioFormat:
        return self._output_format

    @output_format.setter
    def output_format(self, value: AudioFormat) -> None:
        self._output_format = value
        self._bytes_per_second = value.bytes_per_second  # once, not per delta

    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._input

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        self.play_nowait(audio, item_id=item_id)
        await trio.lowlevel.checkpoint()

    def play_nowait(self, audio: bytes, *, item_id: str) -> None:
        """Account for ``audio`` as playing from now (or from the end of what came before)."""
        now = trio.current_time()
        start = max(now, self._end)
        self._start.setdefault(item_id, start)
        ms = len(audio) * 1000 / self._bytes_per_second  # = output_format.duration_ms()
        self._received_ms[item_id] = self._received_ms.get(item_id, 0.0) + ms
        self._end = start + ms / 1000

    def report(self, item_id: str, played_ms: float) -> None:
        """The application says how much of ``item_id`` it has really played."""
        self._reported[item_id] = played_ms

    def played_ms(self, item_id: str) -> float:
        if item_id in self._reported:
            return self._reported[item_id]
        if item_id in self._frozen:
            return self._frozen[item_id]
        start = self._start.get(item_id)
        if start is None:
            return 0.0
        elapsed = (trio.current_time() - start) * 1000
        return max(0.0, min(elapsed, self._received_ms[item_id]))

    def interrupt(self) -> None:
        # Items sit on the timeline in arrival order: only the last ones can still be playing,
        # so the walk back stops at the first item that has finished.
        now = trio.current_time()
        for item_id in reversed(self._start):
            if self._start[item_id] + self._received_ms[item_id] / 1000 <= now:
                break
            self._frozen.setdefault(item_id, self.played_ms(item_id))
        self._end = now

    async def wait_drained(self) -> None:
        await trio.sleep_until(max(self._end, trio.current_time()))

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
