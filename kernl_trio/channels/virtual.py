"""A channel that lives in trio time: its speaker "plays" audio by sleeping for it.

Under ``trio.testing.MockClock(autojump_threshold=0)`` a five-second answer plays in
microseconds of wall time, yet every position is exact in virtual time, so a test can
interrupt at t=1.5 s and see exactly 1500 ms heard. Its microphone is a memory channel the
test (or a demo) feeds.
"""

from __future__ import annotations

import trio

from ..audio import bytes_for_ms
from ..model import ChannelAudio, ChannelCommit, ChannelInput, ChannelInterrupt
from ..protocol import PCM16_24K, AudioFormat
from ._speaker import ClockSpeaker, PlayedChunk


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
        self.speaker = ClockSpeaker(output_format)
        self.closed = False

    # -- speaker ---------------------------------------------------------------------------------
    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._mic_receive

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the channel is closed")
        await self.speaker.play(audio, item_id=item_id)

    def played_ms(self, item_id: str) -> float:
        return self.speaker.played_ms(item_id)

    def interrupt(self) -> None:
        self.speaker.interrupt()

    async def wait_drained(self) -> None:
        await trio.lowlevel.checkpoint()  # play() returns only once a chunk has played

    async def aclose(self) -> None:
        self.closed = True
        self.speaker.stop()
        self._mic_send.close()
        await trio.lowlevel.checkpoint()

    @property
    def played(self) -> list[PlayedChunk]:
        """The chunks heard, in order (partial ones cut at interruptions)."""
        return self.speaker.played

    @property
    def played_audio(self) -> bytes:
        """Everything the user heard, in order."""
        return self.speaker.played_audio

    @property
    def interruptions(self) -> int:
        return self.speaker.interruptions

    # -- microphone ------------------------------------------------------------------------------
    @property
    def microphone(self) -> trio.MemorySendChannel[ChannelInput]:
        """Feed microphone input here (what the user says)."""
        return self._mic_send

    async def say(self, audio: bytes, *, chunk_ms: int = 20, paced: bool = True) -> None:
        """Send ``audio`` from the microphone in ``chunk_ms`` chunks, in real (trio) time."""
        step = max(self.input_format.sample_width, bytes_for_ms(self.input_format, chunk_ms))
        await trio.lowlevel.checkpoint()  # also for no audio
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


__all__ = ["PlayedChunk", "VirtualChannel"]
