"""Session behaviour against the scripted GA server, over a real WebSocket, in virtual time."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
import trio
import trio.lowlevel
import trio.testing

from kernl_trio.agent import RealtimeAgent
from kernl_trio.errors import (
    ConfigurationError,
    ConnectionLost,
    HandshakeFailed,
    SubscriberOverflow,
)
from kernl_trio.model import StatusChanged
from kernl_trio.protocol import (
    AudioOutputDelta,
    InvalidFrame,
    ResponseDone,
    ResponseInterrupted,
    ServerVAD,
    SessionConfig,
    SessionError,
    SpeechStarted,
    ToolCall,
    ToolCancelled,
    TransportStatus,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import SessionEvent, Subscription, ToolOutput, open_session
from kernl_trio.testing import (
    AudioReply,
    Reply,
    ScriptedServer,
    ServerConnection,
    ToolCallReply,
    VirtualChannel,
)
from kernl_trio.tools import tool

from .helpers import library_tasks, start_server

AGENT = RealtimeAgent(id="helper", name="Helper", instructions="Be brief.")


async def _collect_until(stream: Subscription[SessionEvent], kind: type[Any]) -> list[SessionEvent]:
    seen: list[SessionEvent] = []
    async for event in stream:
        seen.append(event)
        if isinstance(event, kind):
            return seen
    raise AssertionError(f"stream ended before {kind.__name__}")


def _late_delta(response_id: str, item_id: str, ms: int) -> dict[str, Any]:
    return {
        "type": "response.output_audio.delta",
        "response_id": response_id,
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(b"\x01\x00" * 24 * ms).decode(),
    }


async def test_text_in_audio_out_all_played_and_subscribers_agree(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Four.", ms=2000))])
    channel = VirtualChannel()
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model, channel=channel) as session:
        first, second = session.events(), session.events()
        async with first, second:
            await session.send_message("What is two plus two?")
            seen_first = await _collect_until(first, ResponseDone)
            seen_second = await _collect_until(second, ResponseDone)
        await trio.sleep(3)
    assert seen_first == seen_second
    deltas = [e for e in seen_first if isinstance(e, AudioOutputDelta)]
    assert len(deltas) == 100  # 2 s in 20 ms chunks
    received = b"".join(d.audio for d in deltas)
    assert channel.played_audio == received
    assert channel.played_ms(deltas[0].item_id) == pytest.approx(2000)
    conn = server.connections[0]
    assert [e["type"] for e in conn.received] == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]
    assert conn.received[1]["item"] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "What is two plus two?"}],
    }
    assert conn.received[2] == {"type": "response.create"}


async def _start_long_answer(
    session: Any, stream: Subscription[SessionEvent]
) -> tuple[AudioOutputDelta, float]:
    await session.send_message("Tell me a long story.")
    async for event in stream:
        if isinstance(event, AudioOutputDelta):
            return event, trio.current_time()
    raise AssertionError("no audio")


@pytest.mark.parametrize("server_cancels", [True, False])
async def test_barge_in_truncates_at_exactly_what_was_heard(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, server_cancels: bool
) -> None:
    vad = {"audio": {"input": {"turn_detection": {"interrupt_response": server_cancels}}}}
    server = await start_server(
        nursery,
        [Reply.of(AudioReply("Once upon a time...", ms=5000), realtime=True)],
        session=vad,
    )
    channel = VirtualChannel()
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model, channel=channel) as session:
        async with session.events() as stream:
            first, t0 = await _start_long_answer(session, stream)
            conn = await server.connection()
            await trio.sleep_until(t0 + 1.5)
            await conn.speech_started()
            # audio the server had already sent when it saw the user speak
            for _ in range(3):
                await conn.send(_late_delta(first.response_id, first.item_id, 20))
            interruptions = []
            order = []
            late_seen = 0
            with trio.move_on_after(2):
                async for event in stream:
                    if isinstance(event, ResponseInterrupted | SpeechStarted):
                        order.append(type(event))
                    if isinstance(event, ResponseInterrupted):
                        interruptions.append((event, trio.current_time()))
                    elif interruptions and isinstance(event, AudioOutputDelta):
                        late_seen += 1
            truncate = await conn.expect("conversation.item.truncate")

    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": first.item_id,
        "content_index": 0,
        "audio_end_ms": 1500,
    }
    [(event, at)] = interruptions
    assert order == [ResponseInterrupted, SpeechStarted]  # the interruption first
    assert at == pytest.approx(t0 + 1.5)
    assert event.played_ms == 1500
    assert event.item_id == first.item_id
    assert event.source == "server"
    assert late_seen == 0
    assert channel.played_ms(first.item_id) == pytest.approx(1500)
    assert len(channel.played_audio) == 1500 * 48  # nothing after the interruption
    types = [e["type"] for e in conn.received]
    after_speech = types[types.index("response.create") + 1 :]
    if server_cancels:
        assert after_speech == ["conversation.item.truncate"]
    else:
        assert after_speech == ["response.cancel", "conversation.item.truncate"]
        assert conn.of_type("response.cancel") == [
            {"type": "response.cancel", "response_id": first.response_id}
        ]
    assert session.statistics().late_audio_dropped == 3


async def test_client_interrupt_cancels_and_truncates(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("A long answer", ms=4000))])
    channel = VirtualChannel()
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model, channel=channel) as session:
        async with session.events() as stream:
            _, t0 = await _start_long_answer(session, stream)
            await trio.sleep_until(t0 + 0.75)
            await session.interrupt()
            event = await _collect_until(stream, ResponseInterrupted)
            conn = await server.connection()
            truncate = await conn.expect("conversation.item.truncate")
    assert isinstance(event[-1], ResponseInterrupted)
    assert event[-1].source == "client"
    assert truncate["audio_end_ms"] == 750
    # the response had been fully streamed and was done: no cancel for a finished response
    assert conn.of_type("response.cancel") == []


async def test_no_truncate_when_nothing_was_played(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(
        nursery, [Reply.of(ToolCallReply("slow"), AudioReply("later", ms=1000))]
    )
    finished: list[float] = []

    @tool
    async def slow() -> str:
        """Takes ten seconds."""
        try:
            await trio.sleep(10)
        finally:
            finished.append(trio.current_time())
        return "done"

    agent = RealtimeAgent(id="a", name="A", instructions="x", tools=[slow])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(agent, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_message("go")
            await _collect_until(stream, AudioOutputDelta)
            await session.interrupt()  # the same instant the audio arrived: nothing heard
            event = await _collect_until(stream, ResponseInterrupted)
            await trio.sleep(1)
    conn = server.connections[0]
    assert conn.of_type("conversation.item.truncate") == []
    assert isinstance(event[-1], ResponseInterrupted)
    assert event[-1].played_ms is None
    assert len(finished) == 1


@pytest.mark.parametrize("source", ["client", "server"])
async def test_interrupt_cancels_pending_tool_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, source: str
) -> None:
    server = await start_server(nursery, [Reply.of(ToolCallReply("slow", call_id="call_slow"))])
    log: list[tuple[str, float]] = []

    @tool
    async def slow() -> str:
        """Sleeps for ten seconds."""
        log.append(("start", trio.current_time()))
        try:
            await trio.sleep(10)
        finally:
            log.append(("finally", trio.current_time()))
        return "finished"

    agent = RealtimeAgent(id="a", name="A", instructions="x", tools=[slow])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(agent, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_message("do the slow thing")
            await _collect_until(stream, ToolCall)
            t_call = trio.current_time()
            await trio.sleep(0.2)
            t_interrupt = trio.current_time()
            if source == "client":
                await session.interrupt()
            else:
                await (await server.connection()).speech_started()
            events = await _collect_until(stream, ResponseInterrupted)
            interrupted = events[-1]
            assert isinstance(interrupted, ResponseInterrupted)
            # the interruption comes first, then one ToolCancelled per cancelled call
            assert await stream.receive() == ToolCancelled(
                "call_slow", "slow", interrupted.response_id
            )
            await trio.sleep(15)  # long enough for the tool to have finished, had it run
    assert log == [("start", t_call), ("finally", t_interrupt)]
    assert not any(isinstance(e, ToolCancelled) for e in events)
    assert interrupted.cancelled_call_ids == ("call_slow",)
    conn = server.connections[0]
    outputs = conn.of_type("conversation.item.create")[1:]
    assert len(outputs) == 1
    assert outputs[0]["item"]["type"] == "function_call_output"
    assert outputs[0]["item"]["call_id"] == "call_slow"
    assert orjson.loads(outputs[0]["item"]["output"])["error"] == "cancelled"
    index = conn.received.index(outputs[0])
    assert conn.received_at[index] == pytest.approx(t_interrupt)
    assert len(conn.of_type("response.create")) == 1  # the user's; none after the cancel


async def test_completed_tool_sends_output_then_response(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(
        nursery,
        [
            Reply.of(ToolCallReply("add", '{"a": 2, "b": 3}', call_id="call_add")),
            Reply.of(AudioReply("Five.", ms=500)),
        ],
    )

    @tool
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    agent = RealtimeAgent(id="a", name="A", instructions="x", tools=[add])
    model = OpenAIRealtimeModel(base_url=server.url)
    channel = VirtualChannel()
    async with open_session(agent, model=model, channel=channel) as session:
        async with session.events() as stream:
            await session.send_message("2+3?")
            # the sync tool runs in a thread: its output and the first response.done race
            events = await _collect_until(stream, ResponseDone)
            events += await _collect_until(stream, ResponseDone)
            await trio.sleep(1)
    assert [e for e in events if isinstance(e, ToolOutput)] == [
        ToolOutput("call_add", "add", "5", False)
    ]
    conn = server.connections[0]
    types = [e["type"] for e in conn.received]
    assert types == [
        "session.update",
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
        "response.create",
    ]
    assert conn.received[3]["item"] == {
        "type": "function_call_output",
        "call_id": "call_add",
        "output": "5",
    }
    assert len(channel.played_audio) == 500 * 48


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("boom", "{}", "boom failed: ValueError: no weather today"),
        ("boom", "{not json", "arguments of tool 'boom' are not valid JSON"),
        ("nope", "{}", "unknown tool 'nope'"),
    ],
)
async def test_failing_tool_calls_get_error_outputs_and_session_goes_on(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    name: str,
    arguments: str,
    expected: str,
) -> None:
    server = await start_server(
        nursery,
        [Reply.of(ToolCallReply(name, arguments)), Reply.of(AudioReply("Sorry.", ms=200))],
    )

    @tool
    def boom() -> str:
        """Always fails."""
        raise ValueError("no weather today")

    agent = RealtimeAgent(id="a", name="A", instructions="x", tools=[boom])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(agent, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_message("weather?")
            events = await _collect_until(stream, ResponseDone)
            events += await _collect_until(stream, ResponseDone)
    [output] = [e for e in events if isinstance(e, ToolOutput)]
    assert output.error
    assert expected in orjson.loads(output.output)["error"]
    conn = server.connections[0]
    assert [e["type"] for e in conn.received][-2:] == [
        "conversation.item.create",
        "response.create",
    ]


async def _talking_with_slow_tool(
    nursery: trio.Nursery,
) -> tuple[ScriptedServer, RealtimeAgent, list[float]]:
    """A server that calls a one-minute tool while it talks for 5 s in real time."""
    server = await start_server(
        nursery, [Reply.of(ToolCallReply("slow"), AudioReply("talking", ms=5000), realtime=True)]
    )
    finally_ran: list[float] = []

    @tool
    async def slow() -> None:
        """Waits."""
        try:
            await trio.sleep(60)
        finally:
            finally_ran.append(trio.current_time())

    return server, RealtimeAgent(id="a", name="A", instructions="x", tools=[slow]), finally_ran


async def test_dropped_socket_raises_one_typed_error_and_cleans_up(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, agent, finally_ran = await _talking_with_slow_tool(nursery)
    model = OpenAIRealtimeModel(base_url=server.url)
    channel = VirtualChannel()
    before = library_tasks()
    with pytest.raises(ConnectionLost) as raised:
        async with open_session(agent, model=model, channel=channel) as session:
            async with session.events() as stream:
                await session.send_message("go")
                await _collect_until(stream, AudioOutputDelta)
                await trio.sleep(0.5)
                t_drop = trio.current_time()
                await (await server.connection()).drop()
                await trio.sleep_forever()
    assert type(raised.value) is ConnectionLost
    assert finally_ran == [pytest.approx(t_drop)]
    assert channel.closed
    assert library_tasks() == before


async def test_outer_cancellation_joins_everything(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server, agent, finally_ran = await _talking_with_slow_tool(nursery)
    model = OpenAIRealtimeModel(base_url=server.url)
    channel = VirtualChannel()
    before = library_tasks()
    with trio.move_on_after(1) as scope:
        async with open_session(agent, model=model, channel=channel) as session:
            await session.send_message("go")
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert finally_ran and channel.closed
    assert library_tasks() == before
    await trio.sleep(0.1)
    assert (await server.connection()).closed.is_set()


async def test_malformed_frame_is_an_error_event_and_session_continues(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("fine", ms=100))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            conn = await server.connection()
            await conn.send_frame('{"type": "response.output_audio.delta", "delta": 5')
            await conn.send_frame('{"type": "response.output_audio.delta"}')
            bad = [await _collect_until(stream, InvalidFrame) for _ in range(2)]
            await session.send_message("still there?")
            await _collect_until(stream, ResponseDone)
    frames = [events[-1] for events in bad]
    # exactly what arrived: text, or its UTF-8 bytes with connectors that skip decoding
    raw = [f.frame for f in frames]  # type: ignore[union-attr]
    assert [r if isinstance(r, str) else r.decode() for r in raw] == [
        '{"type": "response.output_audio.delta", "delta": 5',
        '{"type": "response.output_audio.delta"}',
    ]


async def test_server_error_event_reaches_subscribers(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_raw({"type": "response.cancel", "event_id": "evt_1"})
            error = (await _collect_until(stream, SessionError))[-1]
    assert isinstance(error, SessionError)
    assert error.error.code == "response_cancel_not_active"
    assert error.error.event_id == "evt_1"


async def test_update_config_sends_partial_session_update(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model, channel=VirtualChannel()) as session:
        await session.update_config(
            SessionConfig(
                turn_detection=ServerVAD(silence_duration_ms=800, interrupt_response=False)
            )
        )
        await session.wait_for(lambda e: e.kind == "session.updated")
    conn = server.connections[0]
    assert conn.received[-1] == {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {
                "input": {
                    "turn_detection": {
                        "type": "server_vad",
                        "silence_duration_ms": 800,
                        "interrupt_response": False,
                    }
                }
            },
        },
    }


async def test_duplicate_tool_names_fail_at_session_start() -> None:
    @tool
    def lookup() -> str:
        """One."""
        return "1"

    @tool(name="lookup")
    def lookup_again() -> str:
        """Two."""
        return "2"

    # the agent refuses at construction already, before any connection is attempted
    with pytest.raises(ConfigurationError, match="lookup"):
        RealtimeAgent(id="a", name="A", instructions="x", tools=[lookup, lookup_again])


async def test_handshake_failure_is_one_typed_error() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    model = OpenAIRealtimeModel(base_url=f"ws://127.0.0.1:{port}/v1/realtime")
    with pytest.raises(HandshakeFailed):
        async with open_session(AGENT, model=model):
            pass


async def test_bearer_header_and_model_query(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel("gpt-realtime", api_key="sk-test", base_url=server.url)
    assert model.url == server.url + "?model=gpt-realtime"
    async with open_session(AGENT, model=model) as session:
        assert session.id is not None and session.id.startswith("sess_")
    headers = dict(server.request_headers[0])
    assert headers[b"authorization"] == b"Bearer sk-test"
    assert b"openai-beta" not in headers


async def test_without_channel_playback_is_assumed_realtime(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("hello", ms=3000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session, session.events() as stream:
        first, t0 = await _start_long_answer(session, stream)
        await trio.sleep_until(t0 + 2.25)
        await session.interrupt()
    truncate = server.connections[0].of_type("conversation.item.truncate")
    assert truncate == [
        {
            "type": "conversation.item.truncate",
            "item_id": first.item_id,
            "content_index": 0,
            "audio_end_ms": 2250,
        }
    ]


async def test_reported_playback_wins_over_the_assumed_clock(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("hello", ms=3000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session, session.events() as stream:
        first, t0 = await _start_long_answer(session, stream)
        await trio.sleep_until(t0 + 2)
        session.report_played(first.item_id, 1234)
        await session.interrupt()
    truncate = server.connections[0].of_type("conversation.item.truncate")
    assert truncate[0]["audio_end_ms"] == 1234


async def test_slow_subscriber_does_not_delay_interruption(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("long", ms=5000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    channel = VirtualChannel()
    async with open_session(AGENT, model=model, channel=channel) as session:
        slow = session.events(max_backlog=1000)  # never read until the end
        async with session.events() as stream, slow:
            _, t0 = await _start_long_answer(session, stream)
            await trio.sleep_until(t0 + 1)
            await (await server.connection()).speech_started()
            await _collect_until(stream, ResponseInterrupted)
            assert trio.current_time() == pytest.approx(t0 + 1)
            [stats, _] = session.statistics().subscribers
            assert stats.backlog > 250  # everything is still queued for the slow reader
            lagging = [event async for event in _drain(slow)]
    assert sum(isinstance(e, AudioOutputDelta) for e in lagging) == 250
    assert sum(isinstance(e, ResponseInterrupted) for e in lagging) == 1


async def test_subscriber_past_its_backlog_is_detached_with_a_typed_error(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Four.", ms=2000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session:
        lagging = session.events(max_backlog=10)  # never read while the answer streams
        async with session.events() as reader:
            await session.send_message("What is two plus two?")
            everything = await _collect_until(reader, ResponseDone)
            assert len(session.statistics().subscribers) == 1  # the laggard is detached
        got: list[SessionEvent] = []
        with pytest.raises(SubscriberOverflow) as raised:
            async with lagging:
                async for event in lagging:
                    got.append(event)
    assert got == everything[:10]  # what it was given, then the error
    assert raised.value.delivered == 10
    assert raised.value.max_backlog == 10


async def test_subscriber_that_breaks_out_or_never_reads_never_breaks_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Four.", ms=2000))] * 2)
    model = OpenAIRealtimeModel(base_url=server.url)
    before = library_tasks()
    async with open_session(AGENT, model=model) as session:
        session.events(max_backlog=4)  # never entered, never read
        broken = session.events(max_backlog=4)
        await session.send_message("What is two plus two?")
        async for _event in broken:
            break  # leaves the subscription open and unread
        await session.wait_for(ResponseDone)
        await session.send_message("And three plus three?")
        await session.wait_for(ResponseDone)
    assert library_tasks() == before


async def test_dropped_socket_with_a_stale_subscriber_is_connection_lost(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Four.", ms=2000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    with pytest.raises(ConnectionLost):
        async with open_session(AGENT, model=model) as session:
            stale = session.events(max_backlog=2)
            async with session.events() as reader:
                await session.send_message("hi")
                await _collect_until(reader, AudioOutputDelta)
                await (await server.connection()).drop()
                async for _ in reader:
                    pass
    with pytest.raises(SubscriberOverflow):
        async for _ in stale:
            pass


async def test_readers_get_every_event_before_close_then_end(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Four.", ms=2000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session:
        late_reader = session.events()
        async with session.events() as reader:
            await session.send_message("What is two plus two?")
            expected = await _collect_until(reader, ResponseDone)
    async with late_reader:
        got = [event async for event in late_reader]
    assert got[: len(expected)] == expected
    statuses = [e.status for e in got[len(expected) :] if isinstance(e, StatusChanged)]
    assert statuses == [TransportStatus.DISCONNECTING, TransportStatus.DISCONNECTED]


async def test_first_events_are_observable_from_start(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session:
        async with session.events(from_start=True) as stream:
            first = [stream.receive_nowait() for _ in range(len(session.startup_events))]
    assert first == list(session.startup_events)
    kinds = [type(e).__name__ for e in first]
    assert kinds == ["StatusChanged", "StatusChanged", "SessionCreated", "SessionUpdated"]
    assert [e.status for e in first if isinstance(e, StatusChanged)] == [
        TransportStatus.CONNECTING,
        TransportStatus.CONNECTED,
    ]


async def test_event_batches_carry_every_event_in_order(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Four.", ms=2000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session:
        async with session.events() as single, session.event_batches() as batches:
            await session.send_message("What is two plus two?")
            one_by_one = await _collect_until(single, ResponseDone)
            lists: list[list[SessionEvent]] = []
            while sum(map(len, lists)) < len(one_by_one):
                lists.append(await batches.receive())
    assert all(lists)  # never an empty list
    assert [event for batch in lists for event in batch] == one_by_one
    assert sum(isinstance(e, AudioOutputDelta) for e in one_by_one) == 100


async def test_unread_batch_grows_then_is_read_whole_after_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(AudioReply("Four.", ms=2000))])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(AGENT, model=model) as session:
        batches = session.event_batches()  # not read while the session runs
        async with session.events() as single:
            await session.send_message("What is two plus two?")
            one_by_one = await _collect_until(single, ResponseDone)
            [_, unread] = session.statistics().subscribers
            assert unread.backlog == len(one_by_one)
    async with batches:
        lists = [batch async for batch in batches]
    [everything] = lists  # one list: nothing was taken before the session closed
    assert everything[: len(one_by_one)] == one_by_one
    rest = everything[len(one_by_one) :]
    assert rest and all(isinstance(e, StatusChanged) for e in rest)
    assert rest[-1].status is TransportStatus.DISCONNECTED  # type: ignore[union-attr]


async def _drain(stream: Subscription[SessionEvent]) -> Any:
    while True:
        try:
            yield stream.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return
        await trio.lowlevel.checkpoint()


def _unused(conn: ServerConnection) -> None:  # keeps the import for type checkers
    del conn


async def test_tool_timeout_is_an_error_output(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(
        nursery, [Reply.of(ToolCallReply("lookup")), Reply.of(AudioReply("Too slow.", ms=100))]
    )

    @tool(timeout=2.5)
    async def lookup() -> str:
        """Never answers in time."""
        await trio.sleep(60)
        return "late"

    agent = RealtimeAgent(id="a", name="A", instructions="x", tools=[lookup])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(agent, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_message("look it up")
            await _collect_until(stream, ToolCall)
            t_call = trio.current_time()
            output = (await _collect_until(stream, ToolOutput))[-1]
            assert trio.current_time() == pytest.approx(t_call + 2.5)
            await _collect_until(stream, ResponseDone)
    assert isinstance(output, ToolOutput) and output.error
    assert orjson.loads(output.output) == {"error": "lookup timed out after 2.5 s"}
    assert len(server.connections[0].of_type("response.create")) == 2


async def test_call_that_must_finish_survives_the_interruption(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(
        nursery, [Reply.of(ToolCallReply("pay", '{"cents": 500}', call_id="call_pay"))]
    )
    paid: list[float] = []

    @tool(cancel_on_interrupt=False)
    async def pay(cents: int) -> str:
        """Charges the card; must not be cut in half."""
        await trio.sleep(3)
        paid.append(trio.current_time())
        return f"charged {cents}"

    agent = RealtimeAgent(id="a", name="A", instructions="x", tools=[pay])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(agent, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_message("pay five dollars")
            await _collect_until(stream, ToolCall)
            t_call = trio.current_time()
            await trio.sleep(0.2)
            await session.interrupt()
            interrupted = (await _collect_until(stream, ResponseInterrupted))[-1]
            output = (await _collect_until(stream, ToolOutput))[-1]
            await trio.sleep(1)
    assert isinstance(interrupted, ResponseInterrupted)
    assert interrupted.cancelled_call_ids == ()
    assert paid == [pytest.approx(t_call + 3)]
    assert output == ToolOutput("call_pay", "pay", "charged 500", False)
    conn = server.connections[0]
    assert conn.of_type("conversation.item.create")[-1]["item"]["output"] == "charged 500"
    assert len(conn.of_type("response.create")) == 1  # the interrupted turn starts nothing


async def test_late_tool_call_of_a_cancelled_response_never_runs(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(
        nursery, [Reply.of(AudioReply("Let me check", ms=3000), realtime=True)]
    )
    ran: list[str] = []

    @tool
    async def lookup() -> str:
        """Looks something up."""
        ran.append("lookup")
        return "x"

    agent = RealtimeAgent(id="a", name="A", instructions="x", tools=[lookup])
    model = OpenAIRealtimeModel(base_url=server.url)
    async with open_session(agent, model=model, channel=VirtualChannel()) as session:
        async with session.events() as stream:
            first, t0 = await _start_long_answer(session, stream)
            conn = await server.connection()
            await trio.sleep_until(t0 + 1)
            await conn.speech_started()
            await _collect_until(stream, ResponseInterrupted)
            # the call the server had already emitted before it saw the user speak
            await conn.send(
                {
                    "type": "response.function_call_arguments.done",
                    "response_id": first.response_id,
                    "item_id": "item_late",
                    "output_index": 1,
                    "call_id": "call_late",
                    "name": "lookup",
                    "arguments": "{}",
                }
            )
            cancelled = (await _collect_until(stream, ToolCancelled))[-1]
            await trio.sleep(1)
    assert ran == []
    assert isinstance(cancelled, ToolCancelled) and cancelled.call_id == "call_late"
    outputs = [e["item"] for e in conn.of_type("conversation.item.create")[1:]]
    assert [o["call_id"] for o in outputs] == ["call_late"]
    assert orjson.loads(outputs[0]["output"])["error"] == "cancelled"
    assert len(conn.of_type("response.create")) == 1
