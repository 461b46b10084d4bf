"""A channel that lives in trio time: its speaker "plays" audio by sleeping for it.

Under ``trio.testing.MockClock(autojump_threshold=0)`` a five-second answer plays in
microseconds of wall time, yet every position is exact in virtual time, so a test can
interrupt at t=1.5 s and see exactly 1500 ms heard. Its microphone is a memory channel the
test (or a demo) feeds.
"""

from __future__ import annotations

import attrs
import trio

from ..model import ChannelAudio, ChannelCommit, ChannelInput, ChannelInterrupt
from ..protocol import PCM16_24K, AudioFormat


@attrs.frozen
class PlayedChunk:
    """One chunk the speaker played, or the part of it played before an interruption."""

    item_id: str
    started_at: float
    audio: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")


@attrs.define(eq=False)
class _Current:
    item_id: str
    started_at: float
    audio: bytes


class VirtualChannel:
    """Speaker and microphone paced by trio's clock (see the module docstring)."""

    def __init__(
        self,
        *,
        input_format: AudioFormat = PCM16_24K,
        output_format: AudioFormat = PCM16_24K,
        microphone_buffer: int = 64,
    ) -> None:
        self.input_format = input_format
        self.output_format = output_format
        self._mic_send, self._mic_receive = trio.open_memory_channel[ChannelInput](
            microphone_buffer
        )
        self._played_ms: dict[str, float] = {}
        self._current: _Current | None = None
        self.played: list[PlayedChunk] = []
        self.interruptions = 0
        self.closed = False

    # -- speaker ---------------------------------------------------------------------------------
    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._mic_receive

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the channel is closed")
        current = self._current = _Current(item_id, trio.current_time(), audio)
        try:
            await trio.sleep(self.output_format.duration_ms(len(audio)) / 1000)
        finally:
            if self._current is current:
                self._stop_current()

    def played_ms(self, item_id: str) -> float:
        played = self._played_ms.get(item_id, 0.0)
        current = self._current
        if current is not None and current.item_id == item_id:
            played += self._elapsed_ms(current)
        return played

    def interrupt(self) -> None:
        self.interruptions += 1
        if self._current is not None:
            self._stop_current()

    async def wait_drained(self) -> None:
        await trio.lowlevel.checkpoint()  # play() returns only once a chunk has played

    async def aclose(self) -> None:
        self.closed = True
        if self._current is not None:
            self._stop_current()
        self._mic_send.close()
        await trio.lowlevel.checkpoint()

    @property
    def played_audio(self) -> bytes:
        """Everything the user heard, in order."""
        return b"".join(chunk.audio for chunk in self.played)

    def _elapsed_ms(self, current: _Current) -> float:
        total = self.output_format.duration_ms(len(current.audio))
        return min((trio.current_time() - current.started_at) * 1000, total)

    def _stop_current(self) -> None:
        current = self._current
        assert current is not None
        self._current = None
        ms = self._elapsed_ms(current)
        self._played_ms[current.item_id] = self._played_ms.get(current.item_id, 0.0) + ms
        width = self.output_format.sample_width
        nbytes = int(self.output_format.bytes_per_second * ms / 1000 + 1e-6) // width * width
        self.played.append(PlayedChunk(current.item_id, current.started_at, current.audio[:nbytes]))

    # -- microphone ------------------------------------------------------------------------------
    @property
    def microphone(self) -> trio.MemorySendChannel[ChannelInput]:
        """Feed microphone input here (what the user says)."""
        return self._mic_send

    async def say(self, audio: bytes, *, chunk_ms: int = 20, paced: bool = True) -> None:
        """Send ``audio`` from the microphone in ``chunk_ms`` chunks, in real (trio) time."""
        step = max(1, int(self.input_format.bytes_per_second * chunk_ms / 1000))
        width = self.input_format.sample_width
        step -= step % width
        for offset in range(0, len(audio), step):
            chunk = audio[offset : offset + step]
            await self._mic_send.send(ChannelAudio(chunk))
            if paced:
                await trio.sleep(self.input_format.duration_ms(len(chunk)) / 1000)

    async def commit(self) -> None:
        await self._mic_send.send(ChannelCommit())

    async def barge_in(self) -> None:
        """The user interrupts from the channel side (like a keypad press)."""
        await self._mic_send.send(ChannelInterrupt())
