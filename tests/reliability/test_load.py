"""Slow and stuck parts while audio streams at real-time rate (issue 12, part 4).

The microphone streams 24 kHz PCM16 in 20 ms chunks, paced in trio time, and the server
streams its answer in real time, while one part is stuck:

- ``never_reads``: a subscriber (``max_backlog=64``) that is never read;
- ``stalled_playback``: a channel whose ``play`` stops returning after a few chunks;
- ``hanging_tool``: a tool that never returns (and must be cancelled by the barge-in);
- ``blocked_writes``: a proxy that stops taking what the client writes (socket writes back
  up, then block);
- ``all``: every one of them at once.

Then the server hears the user: the interruption must be published in the very scheduler pass
that handles ``speech_started`` (before it, at the same step), two reading subscribers must
both get every event (the same list; every audio delta the server sent before the barge-in),
and memory stays inside the documented bounds: the stuck subscriber is detached at its
``max_backlog`` with ``SubscriberOverflow``, the microphone queue never exceeds
``MICROPHONE_BACKLOG``, the frames queued behind a blocked write never exceed ``SEND_QUEUE``,
and a turn's playback queue holds no more than its response's audio.
"""

from __future__ import annotations

import operator

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

from kernl_trio import RealtimeAgent, open_session, tool
from kernl_trio.errors import ConnectionLost, SubscriberOverflow
from kernl_trio.limits import CLOSE_TIMEOUT, SEND_QUEUE, SEND_STALL_TIMEOUT, WATCHDOG_TICK
from kernl_trio.protocol import (
    AudioOutputDelta,
    ResponseCreated,
    ResponseInterrupted,
    SpeechStarted,
    ToolCall,
    ToolCancelled,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.providers.openai.connection import OpenAIRealtimeConnection
from kernl_trio.session import MICROPHONE_BACKLOG, MICROPHONE_STALL, RealtimeSession, SessionEvent
from kernl_trio.testing import AudioReply, Reply, ScriptedServer, ToolCallReply, VirtualChannel

from ..test_session_edges import AGENT, StuckModel
from ._scenarios import FAKE_API_KEY
from .test_faults import Proxy

PARTS = ("never_reads", "stalled_playback", "hanging_tool", "blocked_writes", "all")


class StallingChannel(VirtualChannel):
    """Plays ``chunks`` chunks, then ``play`` never returns."""

    def __init__(self, chunks: int) -> None:
        super().__init__()
        self.left = chunks

    async def play(self, audio: bytes, *, item_id: str, content_index: int = 0) -> None:
        if self.left <= 0:
            await trio.sleep_forever()
        self.left -= 1
        await super().play(audio, item_id=item_id, content_index=content_index)


class StepCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1


@attrs.define
class HighWater:
    """The most each bounded queue of a session held, sampled by the microphone's task."""

    microphone: int = 0  # chunks queued for the microphone sender
    outbox: int = 0  # frames queued on the connection, not yet on the wire
    playback: int = 0  # audio deltas queued for a turn's playback

    def sample(self, session: RealtimeSession) -> None:
        self.microphone = max(self.microphone, session._mic_send.statistics().current_buffer_used)
        if isinstance(session._conn, OpenAIRealtimeConnection):
            self.outbox = max(self.outbox, session._conn.statistics()["frames_queued"])
        for turn in session._turns.values():
            self.playback = max(self.playback, turn.audio_send.statistics().current_buffer_used)


@attrs.define
class StuckSetup:
    stuck: set[str]
    hang_log: list[str]
    server: ScriptedServer
    proxy: Proxy | None
    channel: VirtualChannel
    agent: RealtimeAgent
    model: OpenAIRealtimeModel


async def _stuck_setup(part: str, nursery: trio.Nursery, *, answer_ms: int) -> StuckSetup:
    """A real-time answer of ``answer_ms`` with ``part`` stuck (or all parts, for "all")."""
    stuck = {part} if part != "all" else set(PARTS)
    hang_log: list[str] = []

    @tool
    async def hang() -> str:
        """Never returns."""
        hang_log.append("start")
        try:
            await trio.sleep_forever()
        finally:
            hang_log.append("finally")
        return ""

    parts = (ToolCallReply("hang"),) if "hanging_tool" in stuck else ()
    reply = Reply.of(*parts, AudioReply("A long answer.", ms=answer_ms), realtime=True)
    server: ScriptedServer = await nursery.start(ScriptedServer([reply]).run)
    url = server.url
    proxy = None
    if "blocked_writes" in stuck:
        proxy = await nursery.start(Proxy(server.port).run)
        url = f"ws://127.0.0.1:{proxy.port}/v1/realtime"
    channel = StallingChannel(10) if "stalled_playback" in stuck else VirtualChannel()
    agent = RealtimeAgent(id="l", name="L", instructions="x", tools=[hang])
    model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=url)
    return StuckSetup(stuck, hang_log, server, proxy, channel, agent, model)


@pytest.mark.parametrize("part", PARTS)
async def test_stuck_part_under_real_time_audio(
    part: str, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    setup = await _stuck_setup(part, nursery, answer_ms=6000)
    stuck, hang_log, server, proxy = setup.stuck, setup.hang_log, setup.server, setup.proxy
    channel, agent, model = setup.channel, setup.agent, setup.model
    steps = StepCounter()
    published: list[tuple[int, float, SessionEvent]] = []
    received: list[list[SessionEvent]] = [[], []]
    high = HighWater()
    lost = False
    try:
        async with open_session(agent, model=model, channel=channel) as session:
            publish = session._events.publish

            def recording(event: SessionEvent) -> None:
                published.append((steps.steps, trio.current_time(), event))
                publish(event)

            session._events.publish = recording  # type: ignore[method-assign]
            trio.lowlevel.add_instrument(steps)
            never_read = session.events(max_backlog=64)
            readers = [session.events(), session.events()]
            async with trio.open_nursery() as inner:

                async def read(index: int) -> None:
                    async with readers[index] as stream:
                        async for event in stream:
                            received[index].append(event)

                async def speak() -> None:
                    for _ in range(2000):  # 40 s, one 20 ms chunk at a time, in real time
                        await channel.say(b"\x01\x00" * 480)
                        high.sample(session)

                for index in range(2):
                    inner.start_soon(read, index)
                inner.start_soon(speak)
                conn = await server.connection()
                if proxy is not None:
                    proxy.frozen_up = True
                conn.start_response({"type": "response.create"})
                if "hanging_tool" in stuck:
                    await session.wait_for(ToolCall)
                await session.wait_for(AudioOutputDelta)
                await trio.sleep(2)
                deltas_sent = sum(e["type"] == "response.output_audio.delta" for e in conn.sent)
                await conn.speech_started()
                await trio.sleep(3)
                inner.cancel_scope.cancel()
            overflowed = [s for s in session.statistics().subscribers if s.overflowed]
            assert not overflowed  # detached subscribers leave the statistics
            with pytest.raises(SubscriberOverflow) as raised:
                async with never_read:
                    async for _ in never_read:
                        pass
            assert raised.value.delivered == 64
    except ConnectionLost:
        lost = True  # the blocked writes are given up on (after the interruption)
    finally:
        trio.lowlevel.remove_instrument(steps)

    interrupted = [(s, t) for s, t, e in published if isinstance(e, ResponseInterrupted)]
    speech = [(s, t) for s, t, e in published if isinstance(e, SpeechStarted)]
    assert len(interrupted) == 1 and len(speech) == 1, published[-5:]
    assert interrupted[0] == speech[0]  # the same step of the same task: one pass
    order = [type(e) for _, _, e in published]
    assert order.index(ResponseInterrupted) == order.index(SpeechStarted) - (
        2 if "hanging_tool" in stuck else 1
    )
    if "hanging_tool" in stuck:
        assert hang_log == ["start", "finally"]
        assert any(isinstance(e, ToolCancelled) for _, _, e in published)
    everything = [e for _, _, e in published]
    assert received[0] == received[1]
    # each reader got every event from its first on, the interruption included, none lost
    first = next(i for i, e in enumerate(everything) if e is received[0][0])
    window = everything[first : first + len(received[0])]
    assert len(window) == len(received[0]) and all(map(operator.is_, window, received[0]))
    assert any(isinstance(e, ResponseInterrupted) for e in received[0])
    assert [e for e in received[0] if isinstance(e, AudioOutputDelta)] == [
        e for e in everything if isinstance(e, AudioOutputDelta)
    ]
    assert len([e for e in everything if isinstance(e, AudioOutputDelta)]) == deltas_sent
    assert high.microphone <= MICROPHONE_BACKLOG
    assert high.outbox <= SEND_QUEUE
    assert high.playback <= deltas_sent  # the response bounds its playback queue
    if "stalled_playback" in stuck:
        assert high.playback > 10  # the stalled channel did leave audio queued
    print(f"\n{part}: lost={lost} {high} deltas={deltas_sent} events={len(published)}")
    assert not lost or "blocked_writes" in stuck
    assert channel.closed


async def test_channel_barge_in_with_the_microphone_queue_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Found by this suite: once MICROPHONE_BACKLOG chunks waited behind a socket that takes
    no audio, the channel's reader blocked on the full queue, so a barge-in from the channel
    waited behind the audio until the connection was given up. Now the reader waits at most
    MICROPHONE_STALL for room, then drops (and counts) microphone audio while the socket
    takes none, and the interrupt gets through."""
    model = StuckModel()  # a connection whose socket never takes an audio append
    channel = VirtualChannel()
    async with open_session(AGENT, model=model, channel=channel) as session:
        async with session.events() as events:
            model.conn.push(
                ResponseCreated("r1"), AudioOutputDelta("r1", "i1", b"\x00" * 48 * 60_000)
            )
            await trio.sleep(0.5)
            with trio.fail_after(10):  # the channel is never held back for long
                for _ in range(MICROPHONE_BACKLOG + 100):  # more than the queue holds
                    await channel.say(b"\x00" * 960, paced=False)
            started = trio.current_time()
            with trio.fail_after(MICROPHONE_STALL + 0.1):
                await channel.barge_in()
                async for event in events:
                    if isinstance(event, ResponseInterrupted):
                        assert event.source == "channel"
                        break
            assert trio.current_time() - started <= MICROPHONE_STALL
        statistics = session.statistics()
    assert statistics.microphone_dropped >= 99
    assert session._mic_send.statistics().current_buffer_used <= MICROPHONE_BACKLOG


@pytest.mark.parametrize("part", PARTS)
async def test_channel_barge_in_with_a_stuck_part(
    part: str, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The same stuck parts, 8 s into real-time audio both ways; the user barges in from the
    channel: the interruption is published at that instant, the hanging tool is cancelled,
    and the queues stay inside their bounds."""
    setup = await _stuck_setup(part, nursery, answer_ms=40_000)
    stuck, hang_log, server, proxy = setup.stuck, setup.hang_log, setup.server, setup.proxy
    channel, agent, model = setup.channel, setup.agent, setup.model
    high = HighWater()
    async with open_session(agent, model=model, channel=channel) as session:
        never_read = session.events(max_backlog=64)
        async with session.events() as events, trio.open_nursery() as inner:

            async def speak() -> None:
                while True:
                    await channel.say(b"\x01\x00" * 480)
                    high.sample(session)

            inner.start_soon(speak)
            conn = await server.connection()
            if proxy is not None:
                proxy.frozen_up = True
            conn.start_response({"type": "response.create"})
            await trio.sleep(8)  # (a socket blocked for 10 s is given up on)
            barged = trio.current_time()
            await channel.barge_in()
            async for event in events:
                if isinstance(event, ResponseInterrupted):
                    assert event.source == "channel"
                    break
            assert trio.current_time() == barged
            inner.cancel_scope.cancel()
        never_read.close()
        sent = sum(e["type"] == "response.output_audio.delta" for e in conn.sent)
    if "hanging_tool" in stuck:
        assert hang_log == ["start", "finally"]
    assert high.microphone <= MICROPHONE_BACKLOG
    assert high.outbox <= SEND_QUEUE
    assert high.playback <= sent
    if "blocked_writes" in stuck:
        assert high.microphone > 100  # the socket did hold the audio back


async def test_microphone_behind_a_write_that_never_ends_is_bounded(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Found by this suite: when the socket stopped taking writes while the connection's
    writer task (not the microphone sender) was writing, every ``send()`` of microphone
    audio was queued behind that write and returned at once: the microphone queue stayed
    empty, nothing was dropped, and the connection's outbox grew with all the audio the
    channel delivered until the stall timeout (all 3,000 chunks here). Now ``send()``
    waits once ``SEND_QUEUE`` frames are queued behind a write, so the microphone queue
    fills, and then drops, as documented."""

    @tool
    async def report() -> str:
        """A result too large for the socket's buffers."""
        return "x" * 8_000_000

    reply = Reply.of(ToolCallReply("report"), AudioReply("Done.", ms=20_000), realtime=True)
    server: ScriptedServer = await nursery.start(ScriptedServer([reply]).run)
    proxy = await nursery.start(Proxy(server.port).run)
    channel = VirtualChannel()
    agent = RealtimeAgent(id="l", name="L", instructions="x", tools=[report])
    model = OpenAIRealtimeModel(api_key=FAKE_API_KEY, base_url=f"ws://127.0.0.1:{proxy.port}/v1")
    high = HighWater()
    chunks = 0
    with pytest.raises(ConnectionLost):
        async with open_session(agent, model=model, channel=channel) as session:
            conn = await server.connection()
            proxy.frozen_up = True  # the server reads nothing from now on
            conn.start_response({"type": "response.create"})
            await session.wait_for(ToolCall)  # its output goes out from the writer task
            await trio.sleep(0.5)
            blocked = trio.current_time()
            for _ in range(3_000):  # 60 s of audio, as fast as the channel takes it
                await channel.say(b"\x01\x00" * 480, paced=False)
                chunks += 1
                high.sample(session)
            await trio.sleep_forever()
    # given up on as a stalled write (watchdog ticks), then a close the peer never answers
    assert trio.current_time() - blocked <= SEND_STALL_TIMEOUT + 2 * WATCHDOG_TICK + CLOSE_TIMEOUT
    assert chunks == 3_000
    assert high.outbox <= SEND_QUEUE
    assert high.microphone <= MICROPHONE_BACKLOG
    assert session.statistics().microphone_dropped >= chunks - MICROPHONE_BACKLOG - SEND_QUEUE
