"""The WAV file channel: reading and writing files, microphone pacing, played positions."""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing

from kernl_trio.agent import RealtimeAgent
from kernl_trio.audio import silence, tone
from kernl_trio.channels.wav import WavChannel, read_wav, write_wav
from kernl_trio.model import ChannelAudio, RealtimeChannel
from kernl_trio.protocol import PCM16_24K, PCMU_8K, AudioEncoding, AudioFormat, ResponseInterrupted
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import open_session
from kernl_trio.testing import AudioReply, Reply, ScriptedServer

PCM16_48K = AudioFormat(AudioEncoding.PCM16, 48000)


def _write(path: Path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return path


def _wav_ms(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        return reader.getnframes() * 1000 / reader.getframerate()


def test_read_any_rate_and_stereo(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    stereo = np.stack([left, left], axis=1)
    audio = read_wav(_write(tmp_path / "s.wav", stereo, 48000, channels=2), PCM16_24K)
    assert len(audio) == 24000 * 2  # one second at 24 kHz
    mono = read_wav(_write(tmp_path / "m.wav", left, 48000), PCM16_24K)
    assert audio == mono  # both channels equal: the mix-down is the same signal
    ulaw = read_wav(tmp_path / "m.wav", PCMU_8K)
    assert len(ulaw) == 8000


def test_only_16_bit_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "8bit.wav", np.zeros(100, dtype=np.uint8), 8000, width=1)
    with pytest.raises(ValueError, match="16-bit"):
        read_wav(path)


def test_write_decodes_g711_and_round_trips(tmp_path: Path) -> None:
    audio = tone(PCM16_24K, 440, 250)
    write_wav(tmp_path / "a.wav", audio)
    assert read_wav(tmp_path / "a.wav") == audio
    write_wav(tmp_path / "u.wav", tone(PCMU_8K, 440, 250), PCMU_8K)
    assert _wav_ms(tmp_path / "u.wav") == 250
    with wave.open(str(tmp_path / "u.wav"), "rb") as reader:
        assert reader.getframerate() == 8000


def test_it_is_a_realtime_channel() -> None:
    assert isinstance(WavChannel(), RealtimeChannel)


async def test_the_microphone_is_paced_in_trio_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "in.wav"
    write_wav(path, tone(PCM16_48K, 300, 1010), PCM16_48K)
    channel = WavChannel(path, after_input="end")
    assert channel.input_ms == 1010
    start = trio.current_time()
    arrivals: list[tuple[float, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.feed)
        async for item in channel.input:
            assert isinstance(item, ChannelAudio)
            arrivals.append((round(trio.current_time() - start, 6), len(item.audio)))
    assert channel.input_done.is_set()
    assert len(arrivals) == 51  # fifty 20 ms chunks and a 10 ms one
    assert arrivals[:3] == [(0.0, 960), (0.02, 960), (0.04, 960)]
    assert arrivals[-1] == (1.0, 480)


async def test_after_the_file_the_microphone_sends_silence(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "in.wav"
    write_wav(path, tone(PCM16_24K, 300, 100))
    channel = WavChannel(path, chunk_ms=50)
    chunks: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.feed)
        async for item in channel.input:
            assert isinstance(item, ChannelAudio)
            chunks.append(item.audio)
            if len(chunks) == 4:
                await channel.aclose()  # ends the feed, and so the input
    assert channel.input_done.is_set()
    assert chunks[2:] == [silence(PCM16_24K, 50)] * 2
    assert b"".join(chunks[:2]) == channel.input_audio


async def test_played_positions_and_interruption(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out, heard = tmp_path / "out.wav", tmp_path / "heard.wav"
    channel = WavChannel(None, out, played_path=heard)
    second = tone(PCM16_24K, 440, 1000)
    start = trio.current_time()
    await channel.play(second, item_id="a")
    assert trio.current_time() - start == 1.0 and channel.played_ms("a") == 1000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(channel.play, second, item_id="b"))
        await trio.sleep(0.3)
        assert channel.played_ms("b") == pytest.approx(300)
        channel.interrupt()
        nursery.cancel_scope.cancel()  # the session cancels the turn
    assert channel.played_ms("b") == pytest.approx(300)
    assert channel.speaker_free_at == trio.current_time()
    await channel.aclose()
    assert channel.received_audio == second + second
    assert channel.played_audio == second + second[: 300 * 48]
    assert (_wav_ms(out), _wav_ms(heard)) == (2000, 1300)
    assert read_wav(heard) == channel.played_audio


async def test_back_to_back_chunks_do_not_drift(autojump_clock: trio.testing.MockClock) -> None:
    channel = WavChannel()
    chunk = silence(PCM16_24K, 20)
    start = trio.current_time()
    for _ in range(50):
        await channel.play(chunk, item_id="a")
    assert trio.current_time() - start == pytest.approx(1.0)
    assert channel.speaker_free_at == pytest.approx(start + 1.0)
    assert [p.started_at - start for p in channel.played[:3]] == pytest.approx([0, 0.02, 0.04])


async def test_without_realtime_everything_plays_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "in.wav"
    write_wav(path, tone(PCM16_24K, 300, 200))
    channel = WavChannel(path, realtime=False)
    start = trio.current_time()
    await channel.play(tone(PCM16_24K, 440, 1000), item_id="a")
    assert channel.played_ms("a") == 1000
    received = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.feed)
        async for item in channel.input:
            received.append(item)
    assert len(received) == 10 and trio.current_time() == start


async def test_a_session_truncates_at_what_the_wav_channel_played(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            ScriptedServer([Reply.of(AudioReply("A long answer.", ms=4000))]).run
        )
        model = OpenAIRealtimeModel(base_url=server.url)
        channel = WavChannel(None, tmp_path / "got.wav", played_path=tmp_path / "heard.wav")
        agent = RealtimeAgent("t", name="T", instructions="Be brief.")
        async with open_session(agent, model=model, channel=channel) as session:
            start = trio.current_time()
            await session.send_message("Talk to me.")
            await trio.sleep_until(start + 1.25)
            async with session.events() as events:
                await session.interrupt()
                interrupted: ResponseInterrupted | None = None
                async for event in events:
                    if isinstance(event, ResponseInterrupted):
                        interrupted = event
                        break
            connection = await server.connection()
            truncate = await connection.expect("conversation.item.truncate")
        nursery.cancel_scope.cancel()
    assert interrupted is not None
    assert interrupted.played_ms == truncate["audio_end_ms"] == 1250
    assert _wav_ms(tmp_path / "heard.wav") == 1250
    assert _wav_ms(tmp_path / "got.wav") == 1260  # the chunk being played when it stopped
