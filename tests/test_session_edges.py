"""The session at its edges: first configuration, malformed config, slow sockets, threads."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from kernl_trio import RealtimeAgent, open_session, tool
from kernl_trio.errors import SessionRejected
from kernl_trio.model import ConnectOptions, RealtimeConnection, RealtimeModel, StatusChanged
from kernl_trio.protocol import (
    PCM16_24K,
    AudioInputAppend,
    AudioOutputDelta,
    ClientEvent,
    InvalidFrame,
    ResponseCreated,
    ResponseDone,
    ResponseInterrupted,
    ResponseStatus,
    ServerVAD,
    SessionConfig,
    SessionCreated,
    SessionError,
    SessionInfo,
    SessionUpdate,
    SessionUpdated,
    SpeechStarted,
    ToolCall,
    Transcription,
    TransportStatus,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import CLOSE_GRACE
from kernl_trio.testing import AudioReply, Reply, ToolCallReply, VirtualChannel
from kernl_trio.testing.server import ServerConnection

from .helpers import library_tasks, start_server

AGENT = RealtimeAgent(id="a", name="A", instructions="Be brief.")


async def test_initial_config_goes_in_the_first_update_and_is_confirmed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    config = SessionConfig(
        voice="marin",
        modalities=("audio",),
        turn_detection=ServerVAD(silence_duration_ms=300, interrupt_response=False),
        transcription=Transcription(model="gpt-4o-transcribe"),
    )
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model, config=config) as session:
        [update] = server.connections[0].of_type("session.update")
        assert session.config.voice == "marin"  # confirmed before the block
        detection = session.config.turn_detection
        assert isinstance(detection, ServerVAD) and detection.silence_duration_ms == 300
    wire = update["session"]
    assert wire["instructions"] == "Be brief."
    assert wire["audio"]["output"]["voice"] == "marin"
    assert wire["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 300
    assert wire["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}


async def test_a_refused_configuration_is_a_typed_error(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    def refuse(self: ServerConnection, event: dict[str, Any]) -> None:
        self._error("invalid_value", "voice 'nope' is not supported", event.get("event_id"))

    monkeypatch.setattr(ServerConnection, "_on_session_update", refuse)
    server = await start_server(nursery, [])
    before = library_tasks()
    with pytest.raises(SessionRejected, match="voice 'nope'"):
        async with open_session(
            AGENT, model=OpenAIRealtimeModel(base_url=server.url), config=SessionConfig(voice="x")
        ):
            raise AssertionError("entered a refused session")
    assert library_tasks() == before


async def test_an_unusable_output_rate_is_an_error_event_and_the_session_goes_on(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Still here.", ms=400))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session:
        async with session.events() as events:
            conn = await server.connection()
            broken = {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 0}}}}
            await conn.send({"type": "session.updated", "session": broken})
            error = await session.wait_for(SessionError)
            assert error.error.type == "invalid_config"
            unknown = {"audio": {"output": {"format": {"type": "audio/flac"}}}}
            await conn.send({"type": "session.updated", "session": unknown})
            invalid = await session.wait_for(InvalidFrame)
            assert "unknown audio format" in invalid.reason
            await session.send_message("hello?")
            async for event in events:
                if isinstance(event, ResponseDone):
                    break
            await session.interrupt()  # truncation arithmetic on the kept 24 kHz format
        assert session.output_format == PCM16_24K


class StuckSocketConnection:
    """A connection whose socket takes no audio: ``send`` of an append never returns."""

    def __init__(self) -> None:
        self.sent: list[ClientEvent] = []
        self.incoming: list[Any] = []
        self.wakeup = trio.Event()
        self.status = TransportStatus.CONNECTED
        self.muted = False
        self.session_id = "s"
        self.provider_metadata: dict[str, Any] = {}
        self.close_error = None
        self.log: list[str] = []

    @property
    def events(self) -> AsyncIterator[Any]:
        return self.receive_batch_one_by_one()

    async def receive_batch_one_by_one(self) -> AsyncIterator[Any]:
        while True:
            for event in await self.receive_batch():
                yield event

    def push(self, *events: Any) -> None:
        self.incoming.extend(events)
        self.wakeup.set()

    async def receive_batch(self) -> Iterator[Any]:
        while not self.incoming:
            self.wakeup = trio.Event()
            await self.wakeup.wait()
        batch, self.incoming = self.incoming, []
        await trio.lowlevel.checkpoint()
        return self._pull(batch)

    def _pull(self, batch: list[Any]) -> Iterator[Any]:
        """The batch, noting in ``log`` when the reader takes each event."""
        for event in batch:
            self.log.append(f"took {type(event).__name__}")
            yield event

    async def send(self, event: ClientEvent) -> None:
        if isinstance(event, AudioInputAppend):
            await trio.sleep_forever()
        self.send_nowait(event)
        await trio.lowlevel.checkpoint()

    def send_nowait(self, event: ClientEvent) -> None:
        self.sent.append(event)
        if isinstance(event, SessionUpdate):
            info = SessionInfo("s", SessionConfig())
            self.push(SessionCreated(info), SessionUpdated(info))

    async def send_raw(self, message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()

    def mute(self) -> None: ...

    def unmute(self) -> None: ...

    async def interrupt(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class StuckModel:
    provider = "test"
    model_id = "stuck"
    spec = "1.0"

    def __init__(self) -> None:
        self.conn = StuckSocketConnection()

    @asynccontextmanager
    async def connect(self, options: ConnectOptions | None = None) -> AsyncIterator[Any]:
        yield self.conn

    async def authenticate(self) -> Any:
        raise NotImplementedError


async def test_channel_barge_in_does_not_wait_behind_audio_stuck_in_the_socket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    model = StuckModel()
    assert isinstance(model.conn, RealtimeConnection)
    assert isinstance(model, RealtimeModel)
    channel = VirtualChannel()
    async with open_session(AGENT, model=model, channel=channel) as session:
        async with session.events() as events:
            model.conn.push(
                ResponseCreated("r1"), AudioOutputDelta("r1", "i1", b"\x00" * 48 * 2000)
            )
            await trio.sleep(0.5)
            for _ in range(5):  # the first append sticks in the socket; the rest queue
                await channel.say(b"\x00" * 960, paced=False)
            started = trio.current_time()
            await channel.barge_in()
            with trio.fail_after(0.1):
                async for event in events:
                    if isinstance(event, ResponseInterrupted):
                        assert event.source == "channel"
                        break
            assert trio.current_time() == started


async def test_an_interruption_runs_its_cancelled_tools_before_the_rest_of_its_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The events read with ``speech_started`` (here the next response) wait until the
    tasks the interruption cancelled have run: the router steps aside mid-batch."""
    model = StuckModel()
    log = model.conn.log

    @tool
    async def lookup() -> str:
        """Never finishes on its own."""
        try:
            await trio.sleep_forever()
        finally:
            log.append("tool finally")
        return "never"

    agent = RealtimeAgent(id="t", name="T", instructions="x", tools=[lookup])
    async with open_session(agent, model=model) as session, session.events() as events:
        call = ToolCall("c1", "lookup", "{}", response_id="r1", item_id="i1")
        model.conn.push(ResponseCreated("r1"), call, ResponseDone("r1", ResponseStatus.COMPLETED))
        await trio.sleep(0.5)
        log.clear()
        model.conn.push(
            SpeechStarted(item_id="u1"),
            ResponseCreated("r2"),
            AudioOutputDelta("r2", "i2", b"\x00" * 480),
        )
        async for event in events:
            if isinstance(event, AudioOutputDelta):
                break
    assert log == [
        "took SpeechStarted",
        "tool finally",
        "took ResponseCreated",
        "took AudioOutputDelta",
    ]


async def test_interrupted_sync_tool_is_reported_as_an_abandoned_thread(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    release = threading.Event()

    @tool
    def slow_lookup() -> str:
        """Blocks its worker thread."""
        release.wait(timeout=30)
        return "done"

    agent = RealtimeAgent(id="t", name="T", instructions="x", tools=[slow_lookup])
    server = await start_server(nursery, [Reply.of(ToolCallReply("slow_lookup"))])
    model = OpenAIRealtimeModel(base_url=server.url)
    try:
        async with open_session(agent, model=model) as session:
            async with session.events() as events:
                await session.send_message("go")
                async for event in events:
                    if isinstance(event, ToolCall):
                        break
                await trio.sleep(0.1)
                await session.interrupt()
                await trio.sleep(0.1)
                assert session.statistics().abandoned_threads == 1
    finally:
        release.set()


async def test_close_waits_a_bounded_time_for_a_call_that_must_finish(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    finished: list[str] = []

    @tool(cancel_on_interrupt=False)
    async def book() -> str:
        """Takes far longer than close waits."""
        try:
            await trio.sleep(3600)
        finally:
            finished.append("finally ran")
        return "booked"

    agent = RealtimeAgent(id="t", name="T", instructions="x", tools=[book])
    server = await start_server(nursery, [Reply.of(ToolCallReply("book"))])
    model = OpenAIRealtimeModel(base_url=server.url)
    before = library_tasks()
    async with open_session(agent, model=model) as session:
        await session.send_message("book it")
        await session.wait_for(ToolCall)
        closing = trio.current_time()
    assert trio.current_time() - closing == pytest.approx(CLOSE_GRACE)
    assert finished == ["finally ran"]
    assert library_tasks() == before
    statuses = [e for e in session.startup_events if isinstance(e, StatusChanged)]
    assert statuses[0].status is TransportStatus.CONNECTING
