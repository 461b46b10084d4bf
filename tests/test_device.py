"""LocalDeviceChannel without hardware: a fake ``sounddevice`` module drives the callbacks."""

from __future__ import annotations

import math
import sys
import types
from typing import Any

import pytest
import trio
import trio.testing

from kernl_trio.agent import RealtimeAgent
from kernl_trio.audio import tone
from kernl_trio.channels.device import LocalDeviceChannel
from kernl_trio.errors import ConfigurationError
from kernl_trio.model import ChannelAudio
from kernl_trio.protocol import PCM16_24K, ResponseInterrupted
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import open_session
from kernl_trio.testing import AudioReply, Reply, ScriptedServer


class FakeStream:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.callback = kwargs["callback"]
        self.started = self.aborted = self.closed = False

    def start(self) -> None:
        self.started = True

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


class FakeOutputStream(FakeStream):
    def pull(self, frames: int, status: int = 0) -> bytes:
        """What PortAudio does each period: hand the callback a buffer to fill."""
        buffer = bytearray(b"\x55" * frames * 2)  # garbage the callback must overwrite
        self.callback(buffer, frames, None, status)
        return bytes(buffer)


class FakeInputStream(FakeStream):
    def push(self, data: bytes, status: int = 0) -> None:
        self.callback(memoryview(data), len(data) // 2, None, status)


class FakeSounddevice(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("sounddevice")
        self.outputs: list[FakeOutputStream] = []
        self.inputs: list[FakeInputStream] = []

    def RawOutputStream(self, **kwargs: Any) -> FakeOutputStream:
        self.outputs.append(FakeOutputStream(**kwargs))
        return self.outputs[-1]

    def RawInputStream(self, **kwargs: Any) -> FakeInputStream:
        self.inputs.append(FakeInputStream(**kwargs))
        return self.inputs[-1]


@pytest.fixture
def sd(monkeypatch: pytest.MonkeyPatch) -> FakeSounddevice:
    fake = FakeSounddevice()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    return fake


FRAME = 480  # 20 ms at 24 kHz


async def test_missing_sounddevice_raises_configuration_error_with_a_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    with pytest.raises(ConfigurationError, match=r"pip install 'kernl-trio\[device\]'"):
        LocalDeviceChannel()


def test_outside_trio_is_a_configuration_error(sd: FakeSounddevice) -> None:
    with pytest.raises(ConfigurationError, match=r"inside trio\.run"):
        LocalDeviceChannel()


async def test_streams_open_mono_int16_at_the_format_rate_and_start(sd: FakeSounddevice) -> None:
    channel = LocalDeviceChannel()
    (out,), (mic,) = sd.outputs, sd.inputs
    for stream in (out, mic):
        assert stream.started
        assert {k: stream.kwargs[k] for k in ("samplerate", "channels", "dtype", "blocksize")} == {
            "samplerate": 24000,
            "channels": 1,
            "dtype": "int16",
            "blocksize": FRAME,
        }
    await channel.aclose()
    assert out.aborted and out.closed and mic.closed


async def test_microphone_blocks_reach_input(sd: FakeSounddevice) -> None:
    channel = LocalDeviceChannel()
    block = tone(PCM16_24K, 300, 20)
    sd.inputs[0].push(block)
    assert await channel.input.receive() == ChannelAudio(block)
    await channel.aclose()
    with pytest.raises(trio.EndOfChannel):
        await channel.input.receive()


async def test_microphone_from_portaudio_threads(sd: FakeSounddevice) -> None:
    channel = LocalDeviceChannel()
    blocks = [bytes([i]) * FRAME * 2 for i in range(10)]
    for block in blocks:
        await trio.to_thread.run_sync(sd.inputs[0].push, block)
    received = [await channel.input.receive() for _ in blocks]
    assert received == [ChannelAudio(b) for b in blocks]
    await channel.aclose()


async def test_played_ms_follows_the_frames_the_callback_consumed(sd: FakeSounddevice) -> None:
    channel = LocalDeviceChannel()
    out = sd.outputs[0]
    audio = tone(PCM16_24K, 440, 100)
    await channel.play(audio, item_id="item_a")
    assert channel.played_ms("item_a") == 0
    assert out.pull(FRAME * 2) == audio[: FRAME * 4]
    assert channel.played_ms("item_a") == 40
    rest = out.pull(FRAME * 4)  # more than is left: the rest is silence
    assert rest == audio[FRAME * 4 :] + bytes(FRAME * 2)
    assert channel.played_ms("item_a") == 100  # never more than it was given
    await channel.aclose()


async def test_played_ms_is_per_item(sd: FakeSounddevice) -> None:
    channel = LocalDeviceChannel()
    await channel.play(bytes(FRAME * 2), item_id="item_a")
    await channel.play(bytes(FRAME * 4), item_id="item_b")
    sd.outputs[0].pull(FRAME * 3 // 2)  # 30 ms: all 20 ms of a, then 10 ms of b
    assert (channel.played_ms("item_a"), channel.played_ms("item_b")) == (20, 10)
    await channel.aclose()


async def test_interrupt_flushes_what_the_speaker_has_not_taken(sd: FakeSounddevice) -> None:
    channel = LocalDeviceChannel()
    out = sd.outputs[0]
    await channel.play(b"\x01\x02" * FRAME * 10, item_id="item_a")
    out.pull(FRAME * 3)
    channel.interrupt()
    assert out.pull(FRAME) == bytes(FRAME * 2)
    assert channel.played_ms("item_a") == 60
    assert channel.statistics().buffered_ms == 0
    await channel.aclose()


async def test_wait_drained_returns_once_the_callback_took_everything(
    sd: FakeSounddevice, autojump_clock: trio.testing.MockClock
) -> None:
    channel = LocalDeviceChannel()
    await channel.play(bytes(FRAME * 2 * 3), item_id="item_a")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.wait_drained)
        for _ in range(3):
            await trio.sleep(0.02)
            await trio.to_thread.run_sync(sd.outputs[0].pull, FRAME)
    assert channel.played_ms("item_a") == 60
    await channel.aclose()


async def test_play_waits_when_too_far_ahead_of_the_speaker(
    sd: FakeSounddevice, autojump_clock: trio.testing.MockClock
) -> None:
    channel = LocalDeviceChannel(max_buffered_ms=100)
    await channel.play(bytes(FRAME * 2 * 5), item_id="item_a")  # 100 ms: at the limit
    with trio.move_on_after(1) as waited:
        await channel.play(bytes(FRAME * 2), item_id="item_a")
    assert waited.cancelled_caught  # queued, but waiting for the speaker
    sd.outputs[0].pull(FRAME * 2)
    await channel.play(b"", item_id="item_a")
    assert channel.statistics().buffered_ms == 80
    await channel.aclose()


async def test_device_rate_differs_from_the_model_format(sd: FakeSounddevice) -> None:
    channel = LocalDeviceChannel(device_rate=48000)
    assert sd.outputs[0].kwargs["samplerate"] == 48000
    await channel.play(tone(PCM16_24K, 440, 200), item_id="item_a")
    out = sd.outputs[0]
    heard = out.pull(960 * 5)  # 100 ms at 48 kHz
    assert len(heard) == 960 * 10
    assert channel.played_ms("item_a") == 100
    sd.inputs[0].push(bytes(960 * 2))  # 20 ms at 48 kHz in
    sd.inputs[0].push(bytes(960 * 2))
    await trio.testing.wait_all_tasks_blocked()
    total = 0
    while True:
        try:
            item = channel.input.receive_nowait()
        except trio.WouldBlock:
            break
        assert isinstance(item, ChannelAudio)
        total += len(item.audio)
    assert 0 < total <= 2 * FRAME * 2  # resampled to 24 kHz (less the resampler's delay)
    await channel.aclose()


async def test_barge_in_truncates_at_the_frames_the_speaker_consumed(
    sd: FakeSounddevice, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server: ScriptedServer = await nursery.start(ScriptedServer().run)
    model = OpenAIRealtimeModel(base_url=server.url)
    agent = RealtimeAgent("desk", name="Desk", instructions="Talk.")
    channel = LocalDeviceChannel(microphone=False)
    pulls: list[tuple[float, float]] = []  # (trio time, ms of item played)
    item: list[str] = []

    async def portaudio_clock() -> None:
        """The output callback, every 20 ms of trio time, as PortAudio would call it."""
        while True:
            await trio.sleep(0.02)
            sd.outputs[0].pull(FRAME)
            if item:
                pulls.append((trio.current_time(), channel.played_ms(item[0])))

    nursery.start_soon(portaudio_clock)
    async with open_session(agent, model=model, channel=channel) as session:
        conn = await server.connection()
        async with session.events() as events:
            conn.start_response(
                {"type": "response.create"}, Reply.of(AudioReply("Hi", ms=3000), realtime=True)
            )
            await trio.sleep(0.3)
            item.append(next(iter(conn.audio_ms)))
            await trio.sleep(0.713)
            spoke_at = trio.current_time()
            await conn.speech_started()
            truncate = await conn.expect("conversation.item.truncate")
            async for event in events:
                if isinstance(event, ResponseInterrupted):
                    interrupted = event
                    break
    consumed = [ms for at, ms in pulls if at <= spoke_at][-1]
    assert truncate["audio_end_ms"] == math.floor(consumed)
    assert interrupted.played_ms == truncate["audio_end_ms"]
    assert 960 <= truncate["audio_end_ms"] <= 1013
