"""TwilioChannel alone, over an in-memory socket: the test plays Twilio's side."""

from __future__ import annotations

import base64
import logging
import math
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from kernl_trio._websocket import WebSocketClosed
from kernl_trio.audio import Transcoder, tone
from kernl_trio.channels.twilio import (
    TwilioChannel,
    TwilioDtmf,
    TwilioMalformed,
    TwilioMarkEcho,
    TwilioOptions,
    TwilioStopped,
)
from kernl_trio.errors import ConnectionLost
from kernl_trio.model import ChannelAudio, ChannelInterrupt
from kernl_trio.protocol import PCM16_24K, PCMU_8K

SID = "MZ" + "1" * 32
START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": SID,
    "start": {
        "accountSid": "AC" + "0" * 32,
        "streamSid": SID,
        "callSid": "CA" + "2" * 32,
        "tracks": ["inbound"],
        "customParameters": {"caller": "+15551230000"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


class MemoryWebSocket:
    """The channel's end of an in-memory socket; ``twilio()`` speaks for Twilio."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[str | bytes](math.inf)
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    async def send(self, message: str | bytes) -> None:
        if self.closed:
            raise WebSocketClosed(1000, None)
        self.sent.append(orjson.loads(message))
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise WebSocketClosed(1000, None) from None

    async def receive_batch(self) -> list[str | bytes]:
        return [await self.receive()]

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = True
        self._send.close()
        await trio.lowlevel.checkpoint()

    def twilio(self, message: dict[str, Any] | str | bytes) -> None:
        frame = orjson.dumps(message).decode() if isinstance(message, dict) else message
        self._send.send_nowait(frame)

    def echo(self, name: str) -> None:
        self.twilio({"event": "mark", "streamSid": SID, "mark": {"name": name}})

    def media(self, payload: bytes, timestamp: int | None = None) -> None:
        media: dict[str, Any] = {"track": "inbound", "payload": base64.b64encode(payload).decode()}
        if timestamp is not None:
            media["timestamp"] = str(timestamp)
        self.twilio({"event": "media", "streamSid": SID, "media": media})

    def of_event(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["event"] == event]

    @property
    def audio(self) -> bytes:
        return b"".join(base64.b64decode(m["media"]["payload"]) for m in self.of_event("media"))


async def open_channel(
    nursery: trio.Nursery, options: TwilioOptions | None = None
) -> tuple[TwilioChannel, MemoryWebSocket]:
    ws = MemoryWebSocket()
    ws.twilio({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    ws.twilio(START)
    channel = TwilioChannel(ws, options)
    start = await nursery.start(channel.run)
    assert start.custom_parameters == {"caller": "+15551230000"}
    return channel, ws


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_start_gives_identity_and_defaults_to_ulaw_both_ways(nursery: trio.Nursery) -> None:
    channel, _ = await open_channel(nursery)
    assert channel.call_sid == "CA" + "2" * 32
    assert channel.stream_sid == SID
    assert channel.input_format == channel.output_format == PCMU_8K


async def test_play_sends_frames_each_followed_by_a_mark_with_cumulative_ms(
    nursery: trio.Nursery,
) -> None:
    channel, ws = await open_channel(nursery)
    audio = bytes(range(256)) * 2 + b"\x01" * 13  # 525 bytes: 3 frames + 45 bytes
    await channel.play(audio, item_id="item_a")
    await settle()
    assert [m["event"] for m in ws.sent] == ["media", "mark"] * 4
    assert ws.audio == audio  # u-law passes through byte for byte
    assert [len(base64.b64decode(m["media"]["payload"])) for m in ws.of_event("media")] == [
        160,
        160,
        160,
        45,
    ]
    names = [m["mark"]["name"] for m in ws.of_event("mark")]
    assert names == ["item_a:20", "item_a:40", "item_a:60", "item_a:65.625"]
    assert all(m["streamSid"] == SID for m in ws.sent)
    assert channel.played_ms("item_a") == 0.0


async def test_played_ms_is_the_last_echoed_mark(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery)
    await channel.play(b"\x11" * 480, item_id="item_a")
    await settle()
    ws.echo("item_a:20")
    await settle()
    assert channel.played_ms("item_a") == 20
    ws.echo("item_a:40")
    await settle()
    assert channel.played_ms("item_a") == 40
    ws.echo("bogus:999")  # not ours: ignored
    await settle()
    assert channel.played_ms("item_a") == 40
    assert channel.played_ms("bogus") == 0


async def test_an_echo_acknowledges_the_marks_before_it(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery)
    await channel.play(b"\x11" * 480, item_id="item_a")
    await settle()
    ws.echo("item_a:60")
    await settle()
    assert channel.played_ms("item_a") == 60
    assert channel.statistics().marks_acknowledged == 3


async def test_interrupt_sends_clear_and_ignores_echoes_of_cleared_marks(
    nursery: trio.Nursery,
) -> None:
    channel, ws = await open_channel(nursery)
    async with channel.events() as events:
        await channel.play(b"\x11" * 800, item_id="item_a")
        await settle()
        ws.echo("item_a:20")
        await settle()
        channel.interrupt()
        assert channel.played_ms("item_a") == 20  # unchanged by the interrupt itself
        await settle()
        assert ws.sent[-1] == {"event": "clear", "streamSid": SID}
        for name in ("item_a:40", "item_a:60", "item_a:80", "item_a:100"):
            ws.echo(name)  # Twilio returns the marks the clear flushed
        await settle()
        assert channel.played_ms("item_a") == 20
        echoes = [events.receive_nowait() for _ in range(5)]
    assert [e.cleared for e in echoes if isinstance(e, TwilioMarkEcho)] == [False] + [True] * 4
    stats = channel.statistics()
    assert (stats.clears, stats.marks_cleared, stats.marks_acknowledged) == (1, 4, 1)


async def test_interrupt_drops_audio_not_yet_sent(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery)
    channel.queue_audio(b"\x11" * 1600, "item_a")  # 10 frames queued, none sent yet
    channel.interrupt()
    await settle()
    assert ws.sent == [{"event": "clear", "streamSid": SID}]
    # nothing was sent, so no echo is expected: the next turn drains at once
    await channel.play(b"\x22" * 160, item_id="item_b")
    await settle()
    ws.echo("item_b:20")
    with trio.fail_after(1):
        await channel.wait_drained()


async def test_wait_drained_waits_for_the_last_mark(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    channel, ws = await open_channel(nursery)
    await channel.play(b"\x11" * 320, item_id="item_a")
    drained = trio.Event()

    async def drain() -> None:
        await channel.wait_drained()
        drained.set()

    nursery.start_soon(drain)
    await settle()
    ws.echo("item_a:20")
    await settle()
    assert not drained.is_set()
    ws.echo("item_a:40")
    await settle()
    assert drained.is_set()


async def test_wait_drained_returns_on_clear(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    channel, _ = await open_channel(nursery)
    await channel.play(b"\x11" * 320, item_id="item_a")
    async with trio.open_nursery() as inner:
        inner.start_soon(channel.wait_drained)
        await settle()
        channel.interrupt()


async def test_wait_drained_gives_up_when_marks_never_come_back(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    channel, _ = await open_channel(nursery, TwilioOptions(mark_grace=1.5))
    start = trio.current_time()
    await channel.play(b"\x11" * 800, item_id="item_a")  # 100 ms
    await channel.wait_drained()
    assert trio.current_time() - start == pytest.approx(0.1 + 1.5)
    assert channel.statistics().drain_timeouts == 1
    assert "not echoed" in caplog.text


async def test_outbound_transcoding_from_pcm16_24k(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery, TwilioOptions(model_format=PCM16_24K))
    assert channel.input_format == channel.output_format == PCM16_24K
    audio = tone(PCM16_24K, 440, 500)
    for offset in range(0, len(audio), 960):
        await channel.play(audio[offset : offset + 960], item_id="item_a")
    await channel.play(tone(PCM16_24K, 440, 100), item_id="item_b")  # flushes item_a's tail
    await settle()
    expected = Transcoder(PCM16_24K, PCMU_8K)
    ulaw_a = b"".join(expected.convert(audio[o : o + 960]) for o in range(0, len(audio), 960))
    ulaw_a += expected.flush()
    marks = [m["mark"]["name"] for m in ws.of_event("mark")]
    last_a = [n for n in marks if n.startswith("item_a:")][-1]
    assert last_a == f"item_a:{len(ulaw_a) / 8:g}"
    assert ws.audio.startswith(ulaw_a)
    assert abs(len(ulaw_a) / 8 - 500) <= 1


async def test_inbound_media_passes_through_or_is_transcoded(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery)
    payload = bytes(range(160))
    ws.media(payload)
    assert await channel.input.receive() == ChannelAudio(payload)
    pcm_channel, pcm_ws = await open_channel(nursery, TwilioOptions(model_format=PCM16_24K))
    for _ in range(5):
        pcm_ws.media(b"\xff" * 160)
    await settle()
    received = b""
    while True:
        try:
            item = pcm_channel.input.receive_nowait()
        except trio.WouldBlock:
            break
        assert isinstance(item, ChannelAudio)
        received += item.audio
    assert set(received) == {0}  # u-law silence is PCM16 silence
    assert 960 * 3 <= len(received) <= 960 * 5  # 20 ms at 24 kHz per frame, minus the delay


async def test_gaps_in_inbound_timestamps_are_filled_with_silence(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery)
    ws.media(b"\x01" * 160, timestamp=0)
    ws.media(b"\x02" * 160, timestamp=20)
    ws.media(b"\x03" * 160, timestamp=100)  # 60 ms lost
    await settle()
    chunks = [channel.input.receive_nowait() for _ in range(3)]
    assert chunks[2] == ChannelAudio(b"\xff" * 480 + b"\x03" * 160)
    assert channel.statistics().gap_filled_ms == 60


async def test_dtmf_reaches_subscribers_and_a_configured_key_interrupts(
    nursery: trio.Nursery,
) -> None:
    channel, ws = await open_channel(nursery, TwilioOptions(interrupt_digits="*"))
    async with channel.events() as first, channel.events() as second:
        for digit in "5*":
            ws.twilio({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})
        await settle()
        for events in (first, second):
            assert [events.receive_nowait(), events.receive_nowait()] == [
                TwilioDtmf("5", "inbound_track"),
                TwilioDtmf("*", "inbound_track"),
            ]
    assert channel.input.receive_nowait() == ChannelInterrupt()
    with pytest.raises(trio.WouldBlock):
        channel.input.receive_nowait()


async def test_malformed_frames_are_reported_and_the_call_goes_on(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    channel, ws = await open_channel(nursery)
    async with channel.events() as events:
        with caplog.at_level(logging.WARNING, logger="kernl_trio.channels.twilio"):
            ws.twilio("{not json")
            ws.twilio({"event": "wobble"})
            ws.twilio({"event": "media", "streamSid": SID})
            ws.twilio(b"\x00binary")
            ws.media(b"\x07" * 160)
            await settle()
        reports = [events.receive_nowait() for _ in range(4)]
    assert all(isinstance(r, TwilioMalformed) for r in reports)
    assert [r.frame for r in reports if isinstance(r, TwilioMalformed)][3] == b"\x00binary"
    assert caplog.text.count("malformed message") == 4
    assert channel.input.receive_nowait() == ChannelAudio(b"\x07" * 160)
    assert channel.statistics().malformed == 4


async def test_stop_ends_the_stream_and_closes_input(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery)
    async with channel.events() as events:
        ws.twilio({"event": "stop", "stop": {"callSid": "CA" + "2" * 32}})
        await channel.wait_ended()
        assert [e async for e in events] == [TwilioStopped("stop")]
    with pytest.raises(trio.EndOfChannel):
        await channel.input.receive()
    await channel.play(b"\x11" * 160, item_id="late")  # a hung-up call swallows audio
    await channel.wait_drained()


async def test_socket_closing_before_start_raises_connection_lost() -> None:
    ws = MemoryWebSocket()
    ws.twilio({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    await ws.aclose()
    ws.closed = False
    with pytest.raises(ConnectionLost):
        await TwilioChannel(ws).run()


async def test_full_input_drops_frames_and_counts_them(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery, TwilioOptions(input_buffer=2))
    for _ in range(5):
        ws.media(b"\x01" * 160)
    await settle()
    assert channel.statistics().input_dropped == 3


async def test_play_waits_for_the_socket_beyond_the_outbox_limit(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    class SlowSocket(MemoryWebSocket):
        def __init__(self) -> None:
            super().__init__()
            self.gate = trio.Event()

        async def send(self, message: str | bytes) -> None:
            await self.gate.wait()
            await super().send(message)

    ws = SlowSocket()
    ws.twilio(START)
    channel = TwilioChannel(ws, TwilioOptions(outbox_limit=4))
    await nursery.start(channel.run)
    with trio.move_on_after(1) as waited:  # the socket never moves
        await channel.play(b"\x11" * 1600, item_id="item_a")
    assert waited.cancelled_caught
    assert channel.statistics().outbox == 19  # 10 frames + 10 marks, one in flight
    ws.gate.set()
    await channel.play(b"\x11" * 160, item_id="item_a")


async def test_aclose_closes_the_socket(nursery: trio.Nursery) -> None:
    channel, ws = await open_channel(nursery)
    await channel.aclose()
    assert ws.closed
    await channel.wait_ended()
    with pytest.raises(trio.ClosedResourceError):
        await channel.play(b"\x11", item_id="x")
