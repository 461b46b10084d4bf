"""A channel of WAV files: the microphone reads one, the speaker writes two.

:class:`WavChannel` sends a WAV file as microphone input, ``chunk_ms`` at a time, paced in
trio time (so under ``MockClock`` a minute of audio goes by in milliseconds), and "plays" the
assistant's audio the way :class:`~kernl_trio.channels.VirtualChannel` does: by sleeping for
it in trio time, which gives the exact played position for truncation; an interruption stops
playback within the current chunk. At close it writes what the speaker was handed
(``output_path``) and what was really heard (``played_path``, cut at every interruption)::

    channel = WavChannel(Path("question.wav"), Path("assistant.wav"), played_path=Path("heard.wav"))
    async with open_session(agent, model=model, channel=channel) as session:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(channel.feed)  # the file goes to the model, paced
            await channel.input_done.wait()
            ...

Input files may have any sample rate, mono or stereo (mixed down), 16-bit samples; they are
resampled to ``input_format`` with :class:`~kernl_trio.audio.Transcoder`. Output files are
16-bit mono at the rate of ``output_format`` (G.711 output is decoded to PCM16 for the file).

Audio the session drops at an interruption before handing it to the speaker is in neither
file: the speaker never received it (the session's ``AudioOutputDelta`` events have it).
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Literal

import numpy as np
import trio

from ..audio import Transcoder, bytes_for_ms, silence
from ..model import ChannelAudio, ChannelInput
from ..protocol import PCM16_24K, AudioEncoding, AudioFormat
from ._speaker import ClockSpeaker, PlayedChunk


def read_wav(path: Path, audio_format: AudioFormat = PCM16_24K) -> bytes:
    """The audio of a 16-bit WAV file (any rate, mono or stereo) in ``audio_format``."""
    with wave.open(str(path), "rb") as reader:
        channels = reader.getnchannels()
        width = reader.getsampwidth()
        rate = reader.getframerate()
        frames = reader.readframes(reader.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit WAV files are supported, not {8 * width}-bit")
    if channels not in (1, 2):
        raise ValueError(f"{path}: only mono or stereo WAV files are supported ({channels} ch)")
    if channels == 2:
        samples = np.frombuffer(frames, dtype="<i2").reshape(-1, 2).astype(np.int32)
        frames = (samples.sum(axis=1) // 2).astype("<i2").tobytes()
    transcoder = Transcoder(AudioFormat(AudioEncoding.PCM16, rate), audio_format)
    return transcoder.convert(frames) + transcoder.flush()


def write_wav(path: Path, audio: bytes, audio_format: AudioFormat = PCM16_24K) -> None:
    """Write ``audio`` of ``audio_format`` as a 16-bit mono WAV file at the same rate."""
    pcm_format = AudioFormat(AudioEncoding.PCM16, audio_format.rate)
    if audio_format.encoding is not AudioEncoding.PCM16:
        audio = Transcoder(audio_format, pcm_format).convert(audio)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(audio_format.rate)
        writer.writeframes(audio)


class WavChannel:
    """Microphone from a WAV file, speaker to WAV files (see the module docstring).

    ``realtime=False`` drops the pacing: the file goes to the model as fast as it is read and
    the speaker plays every chunk in no time. After the file, the microphone sends silence
    (``after_input="silence"``, like a real microphone, so the server can hear the end of the
    last utterance) until the channel closes, or ends the input (``"end"``; always so without
    ``realtime``).
    """

    def __init__(
        self,
        input_path: Path | None = None,
        output_path: Path | None = None,
        *,
        input_format: AudioFormat = PCM16_24K,
        output_format: AudioFormat = PCM16_24K,
        realtime: bool = True,
        chunk_ms: int = 20,
        played_path: Path | None = None,
        after_input: Literal["silence", "end"] = "silence",
        microphone_buffer: int = 64,
    ) -> None:
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be positive, not {chunk_ms}")
        self.input_format = input_format
        self.output_format = output_format
        self.output_path = output_path
        self.played_path = played_path
        self.realtime = realtime
        self.chunk_ms = chunk_ms
        self.after_input = after_input
        self.input_audio = read_wav(input_path, input_format) if input_path is not None else b""
        self.input_done = trio.Event()
        self._mic_send, self._mic_receive = trio.open_memory_channel[ChannelInput](
            microphone_buffer
        )
        self._feed_scope = trio.CancelScope()
        self._received = bytearray()
        self.speaker = ClockSpeaker(output_format, realtime=realtime)
        self.closed = False

    # -- microphone ------------------------------------------------------------------------------
    @property
    def input(self) -> trio.MemoryReceiveChannel[ChannelInput]:
        return self._mic_receive

    @property
    def input_ms(self) -> float:
        """Duration of the input file (in ``input_format``)."""
        return self.input_format.duration_ms(len(self.input_audio))

    async def feed(self) -> None:
        """Send the input file as microphone audio (then silence, or the end of input).

        Chunk ``k`` goes out at ``start + k * chunk_ms`` of trio time; ``input_done`` is set
        once the whole file is out. Returns when the channel closes (or, with
        ``after_input="end"``, after the file).
        """
        step = bytes_for_ms(self.input_format, self.chunk_ms)
        await trio.lowlevel.checkpoint()  # also for an empty file
        with self._feed_scope:
            try:
                start = trio.current_time()
                sent = 0
                for offset in range(0, len(self.input_audio), step):
                    chunk = self.input_audio[offset : offset + step]
                    await self._mic_send.send(ChannelAudio(chunk))
                    sent += len(chunk)
                    await self._pace(start, sent)
                self.input_done.set()
                if self.after_input == "end" or not self.realtime:
                    self._mic_send.close()
                    return
                quiet = silence(self.input_format, self.chunk_ms)
                while True:
                    await self._mic_send.send(ChannelAudio(quiet))
                    sent += len(quiet)
                    await self._pace(start, sent)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            finally:
                self.input_done.set()

    async def _pace(self, start: float, sent: int) -> None:
        if self.realtime:
            await trio.sleep_until(start + self.input_format.duration_ms(sent) / 1000)
        else:
            await trio.lowlevel.checkpoint()

    # -- speaker ---------------------------------------------------------------------------------
    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the channel is closed")
        self._received += audio
        await self.speaker.play(audio, item_id=item_id)

    @property
    def speaker_free_at(self) -> float:
        """The trio time the speaker finishes what it was handed (``-inf`` before any)."""
        return self.speaker.free_at

    def played_ms(self, item_id: str) -> float:
        return self.speaker.played_ms(item_id)

    def interrupt(self) -> None:
        self.speaker.interrupt()

    async def wait_drained(self) -> None:
        await trio.lowlevel.checkpoint()  # play() returns only once a chunk has played

    @property
    def played(self) -> list[PlayedChunk]:
        """The chunks heard, in order (partial ones cut at interruptions)."""
        return self.speaker.played

    @property
    def interruptions(self) -> int:
        return self.speaker.interruptions

    async def aclose(self) -> None:
        """Stop the microphone and the speaker, and write the output files (once)."""
        if self.closed:
            await trio.lowlevel.checkpoint()
            return
        self.closed = True
        self._feed_scope.cancel()
        self.speaker.stop()
        self._mic_send.close()
        received, played = bytes(self._received), self.played_audio
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._write_files, received, played)

    def _write_files(self, received: bytes, played: bytes) -> None:
        if self.output_path is not None:
            write_wav(self.output_path, received, self.output_format)
        if self.played_path is not None:
            write_wav(self.played_path, played, self.output_format)

    @property
    def received_audio(self) -> bytes:
        """Everything handed to the speaker, in order (``output_path``'s content)."""
        return bytes(self._received)

    @property
    def played_audio(self) -> bytes:
        """Everything the user heard, in order (``played_path``'s content)."""
        return self.speaker.played_audio


__all__ = ["WavChannel", "read_wav", "write_wav"]
