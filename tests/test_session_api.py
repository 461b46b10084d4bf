"""The rest of the session API: run() under nursery.start, audio, mute, history, tool outputs."""

from __future__ import annotations

import base64
from typing import TypeVar

import trio
import trio.testing

from kernl_trio import RealtimeAgent, RealtimeSession, SessionEvent
from kernl_trio.protocol import (
    PCM16_24K,
    InputText,
    ItemCreate,
    ItemDelete,
    ItemTruncate,
    MessageItem,
    OutputAudio,
    ResponseDone,
    ToolCall,
    TransportStatus,
)
from kernl_trio.providers.openai import OpenAIRealtimeModel
from kernl_trio.session import history_changes
from kernl_trio.testing import Reply, ToolCallReply, VirtualChannel

from .helpers import library_tasks, start_server

T = TypeVar("T")
AGENT = RealtimeAgent(id="a", name="A", instructions="x")


async def test_run_under_nursery_start_and_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    before = library_tasks()
    session = RealtimeSession(AGENT, model=OpenAIRealtimeModel(base_url=server.url))
    async with trio.open_nursery() as inner:
        started = await inner.start(session.run)
        assert started is session
        assert session.status is TransportStatus.CONNECTED
        assert session.id is not None
        session.close()
    assert session.status is TransportStatus.CLOSED
    assert library_tasks() == before


async def test_audio_commit_and_mute(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [])
    channel = VirtualChannel()
    async with open_session_with(server.url, channel) as session:
        await session.send_audio(b"\x01\x00" * 480, commit=True)
        session.mute()
        assert session.muted is True
        await session.send_audio(b"\x02\x00" * 480)
        await channel.say(b"\x03\x00" * 480, paced=False)
        await trio.sleep(0.01)  # let the channel pump forward it while muted
        session.unmute()
        await channel.say(b"\x04\x00" * 960)  # two 20 ms chunks, paced
        await channel.commit()
        await trio.sleep(0.1)
    conn = server.connections[0]
    appends = [base64.b64decode(e["audio"]) for e in conn.of_type("input_audio_buffer.append")]
    assert appends == [b"\x01\x00" * 480, b"\x04\x00" * 480, b"\x04\x00" * 480]
    assert len(conn.of_type("input_audio_buffer.commit")) == 2


def open_session_with(url: str, channel: VirtualChannel):  # type: ignore[no-untyped-def]
    from kernl_trio import open_session

    return open_session(AGENT, model=OpenAIRealtimeModel(base_url=url), channel=channel)


async def test_send_tool_output_for_an_unhandled_call(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, [Reply.of(ToolCallReply("external", call_id="call_x"))])
    # the agent does not define "external": the session answers with an error by itself,
    # and an application may also answer a call through send_tool_output
    async with open_session_with(server.url, VirtualChannel()) as session:
        async with session.events() as stream:
            await session.send_message("hi")
            call = await _next_of(stream, ToolCall)
            await session.send_tool_output(call, '{"ok": true}', start_response=False)
            await _next_of(stream, ResponseDone)
    outputs = [e["item"] for e in server.connections[0].of_type("conversation.item.create")[1:]]
    assert {
        "type": "function_call_output",
        "call_id": "call_x",
        "output": '{"ok": true}',
    } in outputs


async def _next_of(stream: trio.MemoryReceiveChannel[SessionEvent], kind: type[T]) -> T:
    async for event in stream:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


def test_history_changes_delete_truncate_create() -> None:
    hello = MessageItem(role="user", content=(InputText("hello"),), id="u1")
    spoken = MessageItem(
        role="assistant", content=(OutputAudio("hi there", audio=b"\x00" * 4800),), id="a1"
    )
    heard = MessageItem(
        role="assistant", content=(OutputAudio("hi there", audio=b"\x00" * 960),), id="a1"
    )
    old_q = MessageItem(role="user", content=(InputText("old"),), id="u2")
    new_q = MessageItem(role="user", content=(InputText("new"),))
    events = history_changes([hello, spoken, old_q], [hello, heard, new_q], PCM16_24K)
    assert events == [
        ItemDelete("u2"),
        ItemTruncate("a1", 20),  # 960 bytes of 24 kHz PCM16
        ItemCreate(new_q, previous_item_id="a1"),
    ]


def test_history_changes_replaces_changed_items_in_place() -> None:
    first = MessageItem(role="user", content=(InputText("a"),), id="u1")
    edited = MessageItem(role="user", content=(InputText("b"),), id="u1")
    assert history_changes([first], [edited], PCM16_24K) == [
        ItemDelete("u1"),
        ItemCreate(edited, previous_item_id="root"),
    ]
